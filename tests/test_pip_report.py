"""pip's installation report reader and the install command's argument sorting (no pip run)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from safe_pip.errors import ConfigError
from safe_pip.install.apply import requirements_text
from safe_pip.install.args import (
    PIP_LONG,
    PIP_SHORT,
    PIP_TABLE_VERSION,
    PIP_VALUE_LONG,
    split_argv,
)
from safe_pip.install.piprun import install_argv, pip_env
from safe_pip.install.verdicts import unverifiable_verdict
from safe_pip.models import Action, ReasonCode
from safe_pip.sources.pip_options import match_abbrev
from safe_pip.sources.pip_report import parse_report, read_report

SHA = "a" * 64


def item(url: str, name: str = "alpha", version: str = "1.0", **info: Any) -> dict[str, Any]:
    download: dict[str, Any] = {"url": url}
    download.update(info or {"archive_info": {"hashes": {"sha256": SHA}}})
    return {
        "download_info": download,
        "is_direct": False,
        "requested": True,
        "metadata": {"name": name, "version": version},
    }


def report(*items: dict[str, Any]) -> dict[str, Any]:
    return {"version": "1", "pip_version": "26.3", "install": list(items)}


def test_wheel_from_an_index() -> None:
    (it,) = parse_report(report(item("https://h/files/alpha-1.0-py3-none-any.whl#sha256=x")))
    assert it.kind == "wheel"
    assert it.filename == "alpha-1.0-py3-none-any.whl"
    assert it.sha256 == SHA
    assert it.verifiable
    assert it.requested
    ref = it.to_fileref(index="https://h/simple/")
    assert ref.url == "https://h/files/alpha-1.0-py3-none-any.whl"  # fragment dropped
    assert ref.sha256 == SHA
    assert ref.project == "alpha"
    assert ref.version == "1.0"


def test_sdist_and_local_wheel() -> None:
    items = parse_report(
        report(
            item("https://h/f/Alpha-1.0.tar.gz", name="Alpha"),
            item("file:///tmp/w%20h/beta-2.0-py3-none-any.whl", name="beta", version="2.0"),
        )
    )
    assert [i.kind for i in items] == ["sdist", "wheel"]
    assert items[1].is_local
    assert items[1].local_path == Path("/tmp/w h/beta-2.0-py3-none-any.whl")


@pytest.mark.parametrize(
    ("url", "info", "kind"),
    [
        ("file:///src/proj", {"dir_info": {"editable": True}}, "dir"),
        ("https://github.com/o/r", {"vcs_info": {"vcs": "git", "commit_id": "abc"}}, "vcs"),
        ("https://github.com/o/r/archive/main.zip", {"archive_info": {}}, "other"),
        # a file whose name says another project or version is not that project's dist
        ("https://h/f/evil-1.0-py3-none-any.whl", {"archive_info": {}}, "other"),
        ("https://h/f/alpha-9.0-py3-none-any.whl", {"archive_info": {}}, "other"),
    ],
)
def test_unverifiable_sources(url: str, info: dict[str, Any], kind: str) -> None:
    (it,) = parse_report(report(item(url, **info)))
    assert it.kind == kind
    assert not it.verifiable
    assert it.filename is None
    refused = unverifiable_verdict(it, allowed=False)
    assert refused.action is Action.REFUSE
    assert refused.code is ReasonCode.REFUSED_UNVERIFIABLE_SOURCE
    assert "--allow-unverifiable-sources" in refused.fix
    allowed = unverifiable_verdict(it, allowed=True)
    assert allowed.action is Action.WARN
    assert allowed.code is ReasonCode.UNVERIFIABLE_ALLOWED


def test_editable_flag() -> None:
    (it,) = parse_report(report(item("file:///src/proj", dir_info={"editable": True})))
    assert it.editable


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"version": "2", "install": []},
        {"version": "1", "install": {}},
        {"version": "1", "install": [{"metadata": {"name": "a", "version": "1"}}]},
        {"version": "1", "install": [{"download_info": {"url": "x"}, "metadata": {}}]},
    ],
)
def test_malformed_reports_are_config_errors(doc: Any) -> None:
    with pytest.raises(ConfigError):
        parse_report(doc)


def test_read_report_file(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text(json.dumps(report(item("https://h/alpha-1.0-py3-none-any.whl"))), "utf-8")
    assert [i.name for i in read_report(p)] == ["alpha"]
    p.write_text("{not json", "utf-8")
    with pytest.raises(ConfigError):
        read_report(p)


# -- argument sorting -------------------------------------------------------------------------


def test_split_own_and_pip_options() -> None:
    own, pip = split_argv(
        [
            "--trust-root=/tr.json",
            "-i",
            "https://mirror/simple/",
            "--extra-index-url",
            "https://x/simple/",
            "--policy",
            "p.toml",
            "-r",
            "req.txt",
            "-qq",
            "--target",
            "/t",
            "-U",
            "--json",
            "--dry-run",
            "--pre",
            "--no-warn-script-location",
            "pkg[extra]>=1",
            "-v",
        ]
    )
    assert own.trust_root == "/tr.json"
    assert own.policy == "p.toml"
    assert own.json
    assert not own.offline
    assert pip.dry_run
    assert pip.quiet == 2
    assert pip.verbose == 1
    assert pip.index_url == "https://mirror/simple/"
    assert pip.indexes == ["https://mirror/simple/", "https://x/simple/"]
    assert pip.requirements == ["pkg[extra]>=1"]
    # pip gets every option in its canonical spelling (what safe-pip read is what pip reads)
    assert pip.resolve == [
        "--index-url",
        "https://mirror/simple/",
        "--extra-index-url",
        "https://x/simple/",
        "--requirement",
        "req.txt",
        "--target",
        "/t",
        "--upgrade",
        "--pre",
        "--no-warn-script-location",
        "pkg[extra]>=1",
    ]
    # The install call gets where/how, never sources or requirements.
    assert pip.install == ["--target", "/t", "--upgrade", "--no-warn-script-location"]


def test_option_values_are_never_read_as_options() -> None:
    own, pip = split_argv(["-r", "--json", "--report", "out.json", "-tdir", "a"])
    assert not own.json  # it was -r's value
    assert own.report == "out.json"
    assert pip.install == ["--target", "dir"]


def test_no_index_and_help() -> None:
    own, pip = split_argv(["--no-index", "-f", "/w", "x", "-h"])
    assert own.help
    assert pip.index_url is None
    assert pip.indexes == []
    assert pip.find_links == ["/w"]


def test_missing_values_are_usage_errors() -> None:
    with pytest.raises(ConfigError):
        split_argv(["--policy"])
    with pytest.raises(ConfigError):
        split_argv(["x", "--target"])


@pytest.mark.parametrize(
    ("argv", "indexes", "find_links"),
    [
        # optparse expands any unambiguous prefix of a long option
        (["--extra-index=https://x/", "a"], ["https://pypi.org/simple/", "https://x/"], []),
        (["--extra", "https://x/", "a"], ["https://pypi.org/simple/", "https://x/"], []),
        (["--index=https://i/", "a"], ["https://i/"], []),
        (["--pypi-url", "https://i/", "a"], ["https://i/"], []),  # a hidden alias of -i
        (["--pypi=https://i/", "a"], ["https://i/"], []),
        (["--find=/fl", "a"], ["https://pypi.org/simple/"], ["/fl"]),
        (["--fi", "/fl", "a"], ["https://pypi.org/simple/"], ["/fl"]),
        (["--no-index", "-f/fl", "a"], [], ["/fl"]),
        # combined short options: a flag, then a value-taking option that takes the rest of
        # the token or the next argument
        (["-Ui", "https://i/", "a"], ["https://i/"], []),
        (["-Uihttps://i/", "a"], ["https://i/"], []),
        (["-qUf", "/fl", "a"], ["https://pypi.org/simple/"], ["/fl"]),
        (["-UIqvf/fl", "a"], ["https://pypi.org/simple/"], ["/fl"]),
        (["-ihttps://i/", "a"], ["https://i/"], []),
    ],
)
def test_abbreviated_and_combined_options_are_read_as_pip_reads_them(
    argv: list[str], indexes: list[str], find_links: list[str]
) -> None:
    _own, pip = split_argv(argv)
    assert pip.indexes == indexes
    assert pip.find_links == find_links
    assert pip.requirements == ["a"]
    # pip is handed the canonical spelling, never the prefix
    assert all(not t.startswith("-") or t in PIP_LONG for t in pip.resolve)
    if find_links:
        assert pip.resolve[pip.resolve.index("--find-links") + 1] == find_links[0]


def test_combined_short_options_split_like_optparse() -> None:
    _own, pip = split_argv(["-Uqqv", "-tdir", "-i=x", "-Ie", "./proj"])
    assert pip.quiet == 2
    assert pip.verbose == 1
    assert pip.install == ["--upgrade", "--target", "dir", "--ignore-installed"]
    assert pip.index_urls == ["=x"]  # optparse keeps the '=' of -i=x as part of the value
    assert pip.editables == ["./proj"]
    own, _pip = split_argv(["-Uh"])
    assert own.help


def test_own_options_take_part_in_prefix_matching() -> None:
    own, pip = split_argv(["--pol=p.toml", "--js", "--trust-r", "tr.json", "--off", "a"])
    assert own.policy == "p.toml"
    assert own.json
    assert own.offline
    assert own.trust_root == "tr.json"
    assert pip.resolve == ["a"]
    own, pip = split_argv(["--rep", "r.json", "a"])  # safe-pip's --report, as before
    assert own.report == "r.json"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ext=https://x/", "a"], None),  # fine: control
        (["--ex=https://x/", "a"], "could mean --exists-action, --extra-index-url"),
        (["--in", "https://x/", "a"], None),  # --index-url
        (["--i", "https://x/", "a"], "could mean --ignore-installed, --ignore-requires-python"),
        (["--f=/fl", "a"], "could mean --find-links, --force-reinstall"),
        (["--no-i", "a"], "could mean --no-index, --no-index-history, --no-input"),
        (["--no-ind", "a"], "could mean --no-index, --no-index-history"),
        (["--trust", "x", "a"], "could mean --trust-root, --trusted-host"),
        (["--extra-index-urls=https://x/", "a"], "unknown option --extra-index-urls"),
        (["--bogus", "a"], "unknown option --bogus"),
        (["-Ux", "a"], "unknown option -x in -Ux"),
        (["-Z", "a"], "unknown option -Z"),
        (["--upgrade=yes", "a"], "--upgrade takes no value"),
        (["--json=1", "a"], "--json takes no value"),
        (["a", "-Ui"], "--index-url needs a value"),
    ],
)
def test_ambiguous_and_unknown_options_are_refused(argv: list[str], message: str | None) -> None:
    if message is None:
        split_argv(argv)
        return
    with pytest.raises(ConfigError) as exc:
        split_argv(argv)
    assert exc.value.exit_code == 2
    assert message in exc.value.message


def test_match_abbrev_is_optparse_matching() -> None:
    known = {"--index-url": 1, "--index": 1, "--indexes": 1, "--extra-index-url": 1}
    assert match_abbrev("--index", known, where="w") == "--index"  # an exact match wins
    assert match_abbrev("--ex", known, where="w") == "--extra-index-url"
    with pytest.raises(ConfigError, match="ambiguous: it could mean --index, --index-url, --in"):
        match_abbrev("--ind", known, where="w")
    with pytest.raises(ConfigError, match="unknown option --x"):
        match_abbrev("--x", known, where="w")


def test_option_table_covers_pip_install_help() -> None:
    """Every option `pip install --help` lists is in safe-pip's table, value-taking or flag as
    pip says (hidden aliases are checked against pip's parser by hand: see PIP_LONG)."""
    import subprocess
    import sys

    from safe_pip.install.piprun import pip_env

    text = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--help", "--isolated"],
        capture_output=True,
        text=True,
        env={**pip_env(), "COLUMNS": "200"},
        check=True,
    ).stdout
    listed = re.findall(r"^  (?:(-\w), )?(--[a-z0-9-]+)( <[^>]+>)?", text, flags=re.MULTILINE)
    assert len(listed) > 60
    # Options this pip has and the table lacks are refused (exit 2: fail closed), so a pip
    # other than the one the table was written for only costs usability: report, don't fail.
    unknown = [long for _s, long, _m in listed if PIP_LONG.get(long) != long]
    for short, long, metavar in listed:
        if long in unknown:
            continue
        assert (long in PIP_VALUE_LONG) == bool(metavar), long
        if short:
            assert PIP_SHORT[short] == long
    version = subprocess.run(
        [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    if unknown and version != PIP_TABLE_VERSION:
        pytest.skip(
            f"pip {version} has options the table (pip {PIP_TABLE_VERSION}) lacks: {unknown}"
        )
    assert not unknown, unknown


def test_install_call_is_offline_and_hash_pinned(tmp_path: Path) -> None:
    _own, pip = split_argv(["-i", "https://idx/", "--user", "-q", "a"])
    argv = install_argv(pip, tmp_path / "r.txt")
    for flag in ("--isolated", "--no-index", "--no-deps", "--require-hashes", "--user", "-q"):
        assert flag in argv
    assert "-i" not in argv
    assert "https://idx/" not in argv


def test_requirements_pin_the_verified_hash(tmp_path: Path) -> None:
    (it,) = parse_report(report(item("https://h/Alpha-1.0-py3-none-any.whl", name="Alpha")))
    text = requirements_text([(it, tmp_path / "Alpha-1.0-py3-none-any.whl", SHA)])
    assert text.startswith("alpha @ file://")
    assert text.rstrip().endswith(f"--hash=sha256:{SHA}")


def test_pip_env_drops_pip_variables() -> None:
    env = pip_env({"PIP_INDEX_URL": "x", "pip_find_links": "y", "PATH": "/bin"})
    assert env["PIP_CONFIG_FILE"]
    assert "PIP_INDEX_URL" not in env
    assert "pip_find_links" not in env
    assert env["PATH"] == "/bin"
