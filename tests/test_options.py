"""The typed options the faces take: every command-line option reaches its field, so a face
called from Python (no argparse) and one called by the CLI see the same run."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from safe_pip.cli import build_parser
from safe_pip.cli._common import RunFields, run_fields
from safe_pip.install.args import OWN_FLAGS, OWN_VALUE, InstallOptions, split_argv
from safe_pip.options import RunOptions


def _fields(cls: type[object]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


def test_run_fields_names_every_run_option() -> None:
    # a new RunOptions field: a key of cli/_common.RunFields and a line in run_fields
    assert set(RunFields.__annotations__) == _fields(RunOptions)


def test_the_cli_reads_every_run_option() -> None:
    args = build_parser().parse_args(
        [
            "verify",
            "pylock.toml",
            "--offline",
            "--embedded-root",
            "--staging",
            "--trust-root",
            "tr.json",
            "--policy",
            "p.toml",
            "--home",
            "h",
            "--history",
            "sqlite:///x",
            "--no-index-history",
            "--min-release-age",
            "36h",
        ]
    )
    assert RunOptions(**run_fields(args)) == RunOptions(
        offline=True,
        embedded_root=True,
        staging=True,
        trust_root="tr.json",
        policy="p.toml",
        home="h",
        history="sqlite:///x",
        no_index_history=True,
        min_release_age=timedelta(hours=36),
    )
    # a command without some of them: their defaults
    args = build_parser().parse_args(["history", "show", "alpha"])
    assert RunOptions(**run_fields(args)) == RunOptions()


def test_every_install_option_reaches_its_field() -> None:
    """Each of safe-pip install's own options sets its field of InstallOptions (and nothing
    reaches pip); the fields not named keep their defaults."""
    named = set(OWN_VALUE.values()) | set(OWN_FLAGS.values()) | {"help"}
    # a new own option: a field of InstallOptions, and a line in split_argv's construction
    assert named == _fields(InstallOptions)
    for option, name in OWN_VALUE.items():
        own, pip = split_argv([option, "v", "a"])
        given: dict[str, Any] = {name: "v"}
        assert own == dataclasses.replace(InstallOptions(), **given), option
        assert pip.resolve == ["a"]
    for option, name in OWN_FLAGS.items():
        own, pip = split_argv([option, "a"])
        given = {name: True}
        assert own == dataclasses.replace(InstallOptions(), **given), option
        assert pip.resolve == ["a"]
    own, _pip = split_argv(["--policy", "first", "--policy", "last"])
    assert own.policy == "last"  # the last given wins, as before
