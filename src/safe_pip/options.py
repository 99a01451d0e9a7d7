"""A run's options (:class:`RunOptions`, from the command line, else the environment) turned into
what the run needs: the trust root, the policy, the history store, the provenance index, the
Checker.

The faces (install, verify, serve, learn) and the CLI build these the same way from here; each
face's own options extend :class:`RunOptions` (``install.args.InstallOptions``,
``lock.run.LockRunOptions``, ``learn.run.LearnOptions``). Heavy modules are imported only when
called, so ``safe-pip --help`` stays fast."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from safe_pip.check import Checker
    from safe_pip.policy.file import Policy
    from safe_pip.provenance.trust import TrustConfig
    from safe_pip.store import HistoryStore


@dataclass(frozen=True)
class RunOptions:
    """What every run is told about its trust root, policy and history (``--offline``,
    ``--policy``, ``--home``, ...: ``cli/_common.py`` adds them to a command and reads them back,
    :func:`safe_pip.cli._common.run_fields`). A face's options extend it."""

    offline: bool = False  # no network at all; implies the embedded root
    embedded_root: bool = False
    staging: bool = False
    trust_root: str | None = None
    policy: str | None = None
    home: str | None = None
    history: str | None = None
    no_index_history: bool = False
    #: replaces the policy's min-release-age for this run: a duration, or the text as typed
    #: (install reads its own options without argparse; the text is parsed when the policy is
    #: loaded, so a bad value is reported the way every other error of the run is)
    min_release_age: timedelta | str | None = None


def trust_from_args(args: RunOptions) -> TrustConfig:
    from safe_pip.provenance.trust import TrustConfig

    return TrustConfig.from_options(
        offline=args.offline or args.embedded_root,
        staging=args.staging,
        trust_root=args.trust_root,
    )


def policy_from_args(args: RunOptions) -> Policy:
    from safe_pip.policy.file import load_policy

    policy = load_policy(Path(args.policy) if args.policy else None)
    age = args.min_release_age
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


def store_path(args: RunOptions) -> Path | None:
    home = args.home or os.environ.get("SAFE_PIP_HOME")
    return Path(home) / "history.sqlite3" if home else None


def open_store(args: RunOptions, *, readonly: bool = False) -> HistoryStore:
    from safe_pip.store import ENV_HISTORY, open_history

    location = args.history
    if location is None and not args.home:
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
    args: RunOptions,
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
        index_history=not args.no_index_history,
        offline=args.offline,
    )
