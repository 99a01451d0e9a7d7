"""The argparse options several subcommands share (light imports only); what a run builds
from them is :mod:`safe_pip.options`."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from safe_pip.options import RunOptions


def add_trust_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("trust root and network")
    g.add_argument(
        "--offline",
        action="store_true",
        help="no network access at all (as in pip and uv): index pages, provenance and index "
        "history come from local evidence (the history store, the provenance cache, "
        "--evidence, file:// indexes) or the file is could-not-check (exit 3) naming what is "
        "missing; implies --embedded-root",
    )
    g.add_argument(
        "--embedded-root",
        action="store_true",
        help="verify with the Sigstore production trust root shipped inside the installed "
        "sigstore package (no TUF refresh); the network is still used for packages and "
        "provenance",
    )
    g.add_argument(
        "--staging", action="store_true", help="verify against Sigstore's staging instance"
    )
    g.add_argument(
        "--trust-root",
        metavar="PATH",
        help="a Sigstore trusted_root.json to verify against (private deployments); "
        "also $SAFE_PIP_TRUST_ROOT",
    )


def add_policy_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("policy and history")
    g.add_argument(
        "--policy",
        metavar="PATH",
        help="policy file (default: $SAFE_PIP_POLICY, ./safe-pip.toml, or [tool.safe-pip] in "
        "./pyproject.toml)",
    )
    g.add_argument(
        "--home",
        metavar="DIR",
        help="where the known-good history database lives (default: $SAFE_PIP_HOME or the "
        "user data directory)",
    )
    add_history_option(g)
    g.add_argument(
        "--no-index-history",
        action="store_true",
        help="on first sight of a project, do not read its most recently published releases "
        "as history (install still judges the page it resolves from as one sequence)",
    )
    g.add_argument(
        "--min-release-age",
        metavar="AGE",
        type=_release_age_arg,
        help="for this run, the minimum release age of every file, replacing the policy's "
        'min-release-age settings: days or hours, e.g. "3d", "36h"; "0" turns the rule off '
        "(default: the policy's, built-in 3d)",
    )


def _release_age_arg(text: str) -> timedelta:
    from safe_pip.policy.age import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_history_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--history",
        metavar="URL",
        help="the history database: postgresql://USER@HOST/DB (shared by a team; needs "
        "safe-pip[postgres]), sqlite:///PATH or a file path (default: $SAFE_PIP_HISTORY, else "
        "history.sqlite3 in --home)",
    )


class RunFields(TypedDict):
    """The fields of :class:`safe_pip.options.RunOptions`, read from a parsed command line: a
    face's options are ``FaceOptions(**run_fields(args), ...)``."""

    offline: bool
    embedded_root: bool
    staging: bool
    trust_root: str | None
    policy: str | None
    home: str | None
    history: str | None
    no_index_history: bool
    min_release_age: timedelta | None


def run_fields(args: argparse.Namespace) -> RunFields:
    """The trust, policy and history options of a parsed command line (an option the command
    does not have takes its default)."""
    return RunFields(
        offline=bool(getattr(args, "offline", False)),
        embedded_root=bool(getattr(args, "embedded_root", False)),
        staging=bool(getattr(args, "staging", False)),
        trust_root=getattr(args, "trust_root", None),
        policy=getattr(args, "policy", None),
        home=getattr(args, "home", None),
        history=getattr(args, "history", None),
        no_index_history=bool(getattr(args, "no_index_history", False)),
        min_release_age=getattr(args, "min_release_age", None),
    )


def run_options(args: argparse.Namespace) -> RunOptions:
    """:func:`run_fields` as a :class:`safe_pip.options.RunOptions`."""
    from safe_pip.options import RunOptions

    return RunOptions(**run_fields(args))
