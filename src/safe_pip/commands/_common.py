"""Options and set-up shared by the subcommands (light imports only)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from safe_pip.check import Checker
    from safe_pip.policy.file import Policy
    from safe_pip.provenance.trust import TrustConfig
    from safe_pip.store.db import HistoryStore


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
        help="on first sight of a project, do not read its earlier releases' provenance",
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


def trust_from_args(args: argparse.Namespace) -> TrustConfig:
    from safe_pip.provenance.trust import TrustConfig

    return TrustConfig.from_options(
        offline=bool(getattr(args, "offline", False) or getattr(args, "embedded_root", False)),
        staging=bool(getattr(args, "staging", False)),
        trust_root=getattr(args, "trust_root", None),
    )


def policy_from_args(args: argparse.Namespace) -> Policy:
    from safe_pip.policy.file import load_policy

    explicit = getattr(args, "policy", None)
    policy = load_policy(Path(explicit) if explicit else None)
    age = getattr(args, "min_release_age", None)
    if isinstance(age, str):  # install splits its own options without argparse types
        from safe_pip.errors import ConfigError
        from safe_pip.policy.age import parse_duration

        try:
            age = parse_duration(age)
        except ValueError as exc:
            raise ConfigError(
                f"--min-release-age: {exc}", fix="e.g. --min-release-age 3d"
            ) from None
    return policy.with_min_release_age(age)


def store_path(args: argparse.Namespace) -> Path | None:
    home = getattr(args, "home", None) or os.environ.get("SAFE_PIP_HOME")
    return Path(home) / "history.sqlite3" if home else None


def open_store(args: argparse.Namespace, *, readonly: bool = False) -> HistoryStore:
    from safe_pip.store import ENV_HISTORY, open_history

    location = getattr(args, "history", None)
    if location is None and not getattr(args, "home", None):
        location = os.environ.get(ENV_HISTORY) or None
    if location is None:
        path = store_path(args)
        return open_history(str(path) if path is not None else None, readonly=readonly)
    return open_history(location, readonly=readonly)


ENV_PROVENANCE_INDEX = "SAFE_PIP_PROVENANCE_INDEX"


def named_provenance_index(explicit: str | None) -> str | None:
    """The provenance index the user named (``--provenance-index``, else
    ``$SAFE_PIP_PROVENANCE_INDEX``), or None: provenance is then looked up only on each file's
    own index, so no other index learns which projects are used (docs/policy.md, "No
    disclosure by default")."""
    return explicit or os.environ.get(ENV_PROVENANCE_INDEX) or None


def make_checker(
    args: argparse.Namespace,
    *,
    store: HistoryStore | None,
    provenance_index: str | None = None,
    jobs: int | None = None,
) -> Checker:
    from safe_pip.check import Checker, default_jobs

    return Checker(
        trust=trust_from_args(args),
        policy=policy_from_args(args),
        store=store,
        jobs=jobs or default_jobs(),
        provenance_index=named_provenance_index(provenance_index),
        index_history=not getattr(args, "no_index_history", False),
        offline=bool(getattr(args, "offline", False)),
    )


class ProgressLine:
    """A one-line progress display on stderr when it is a terminal; silent otherwise."""

    def __init__(self, label: str, *, quiet: bool = False) -> None:
        self.label = label
        self.enabled = not quiet and sys.stderr.isatty()
        self._last = 0

    def __call__(self, done: int, total: int, item: str) -> None:
        if not self.enabled:
            return
        from safe_pip.text import clean

        text = f"\r{self.label}: {done}/{total} {clean(item, limit=50)}"
        sys.stderr.write(text.ljust(self._last) + ("\n" if done == total else ""))
        sys.stderr.flush()
        self._last = len(text)
