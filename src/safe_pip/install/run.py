"""The whole ``safe-pip install`` run, step by step (see the package docstring)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from safe_pip.errors import (
    EXIT_OK,
    EXIT_REFUSED,
    RefusedError,
    SafePipError,
)
from safe_pip.install import piprun
from safe_pip.install.apply import _build_files, _build_sdists, _install, _StepFailed
from safe_pip.install.piprun import PrestartedPip, pip_config_sources
from safe_pip.install.report import Outcome, _check_report_path, _emit, _exit_for, checked_text
from safe_pip.install.requirements import (
    Reading,
    read_requirements,
    refuse_unverifiable,
    write_requirement_files,
)
from safe_pip.install.resolve import (
    DeadProxy,
    VerifyingIndexes,
    file_cache_dir,
    resolve,
    resolve_argv,
    resolve_failed,
    say_too_new,
    sealed_env,
    start_verifying_indexes,
    vcs_hosts,
)
from safe_pip.install.sources import run_indexes
from safe_pip.install.verdicts import check_items
from safe_pip.models import Action, ReasonCode

if TYPE_CHECKING:
    from safe_pip.check import Checker
    from safe_pip.install.args import InstallOptions, PipArgs
    from safe_pip.lock.verified_cache import VerifiedBundles


def run_install(own: InstallOptions, pip: PipArgs, *, out: TextIO, err: TextIO) -> int:
    """The whole command. Returns the exit code; raises SafePipError for usage errors."""
    _check_report_path(own)
    outcome = Outcome()
    try:
        code = _run(own, pip, outcome, err=err, out=out)
    except SafePipError as exc:
        if not (own.json or own.report):
            raise
        from safe_pip.text import clean_lines

        outcome.exit_code = exc.exit_code
        outcome.message = exc.diagnostics()
        err.write(f"safe-pip: error: {clean_lines(exc.diagnostics())}\n")
        _emit(own, pip, outcome, out, err)
        return exc.exit_code
    outcome.exit_code = code
    _emit(own, pip, outcome, out, err)
    return code


def _run(own: InstallOptions, pip: PipArgs, outcome: Outcome, *, err: TextIO, out: TextIO) -> int:
    from safe_pip.options import make_checker, open_store
    from safe_pip.text import clean

    quiet = pip.quiet > 0
    ignored = pip_config_sources()
    if ignored and not quiet:
        err.write(
            "safe-pip: note: pip configuration is ignored (pip runs isolated): "
            + ", ".join(clean(s, limit=120) for s in ignored)
            + "; pass indexes and options on the command line\n"
        )
    # Everything pip would read is read here first; unverifiable forms stop the run (exit 2)
    # before any pip starts.
    reading = read_requirements(pip, allow_unverifiable=own.allow_unverifiable_sources)
    if reading.locks:
        return _run_lock(own, pip, outcome, reading, err=err, out=out)
    upstreams = run_indexes(pip, reading.sources)
    store = open_store(own, readonly=pip.dry_run)
    try:
        checker = make_checker(own, store=store, provenance_index=own.provenance_index)
        checker.verified = verified_bundles(own, checker)
        allow_sdist = bool(checker.policy.defaults.allow_sdist)
        blocker = None
        if allow_sdist and len(upstreams) > 1:
            blocker = "more than one index is configured (build dependencies could come from any)"
        sdist_builds = allow_sdist and blocker is None
        refuse_unverifiable(reading, sdist_builds=sdist_builds, blocker=blocker)
        outcome.sdist_builds = sdist_builds
        if blocker and not quiet:
            err.write(
                f"safe-pip: note: allow-sdist = true, but {clean(blocker)}: resolving wheels "
                "only (sdists are refused in this run)\n"
            )
        for u in reading.allowed_unverifiable if not quiet else ():
            err.write(
                f"safe-pip: warning: {clean(u.describe())}: pip builds and runs it unverified "
                "(--allow-unverifiable-sources)\n"
            )
        with tempfile.TemporaryDirectory(prefix="safe-pip-install-") as tmp:
            work = Path(tmp)  # mkdtemp: mode 0700, private to this user
            os.chmod(work, 0o700)
            with contextlib.ExitStack() as stack:
                proxy = DeadProxy()
                stack.callback(proxy.close)
                allowed = vcs_hosts([u.text for u in reading.allowed_unverifiable])
                env = sealed_env(proxy, allowed)
                early = None
                if not pip.dry_run:
                    # The final pip starts now and waits for the verified requirements.
                    early = PrestartedPip.start(
                        pip, work, env=env, out=err if own.json else out, err=err
                    )
                    if early is not None:
                        stack.callback(early.cancel)  # whatever happens next
                warm = _warm_up(checker)  # imports and trust root load meanwhile
                cache = file_cache_dir(own.home)
                indexes = stack.enter_context(
                    start_verifying_indexes(
                        checker, upstreams, verbose=pip.verbose > 0, err=err, file_cache=cache
                    )
                )
                if sdist_builds:
                    stack.callback(_build_files, indexes.servers[0], outcome)  # before it stops
                try:
                    return _verify_and_install(
                        own,
                        pip,
                        outcome,
                        checker,
                        work,
                        indexes,
                        reading,
                        env,
                        blocker,
                        out,
                        err,
                        early,
                        warm,
                    )
                except _StepFailed as failed:
                    return failed.code
    finally:
        store.close()


def _run_lock(
    own: InstallOptions,
    pip: PipArgs,
    outcome: Outcome,
    reading: Reading,
    *,
    err: TextIO,
    out: TextIO,
) -> int:
    """``-r pylock.toml``: verify the lock as ``safe-pip verify`` does, then install exactly
    its files (:mod:`safe_pip.install.lock`)."""
    from safe_pip.install.lock import install_lock, refuse_mixed
    from safe_pip.options import open_store

    other = bool(pip.requirements or pip.editables or reading.requirements)
    refuse_mixed(reading.locks, other or bool(reading.constraints) or len(reading.locks) > 1)
    refuse_unverifiable(reading, sdist_builds=False, blocker=None)
    store = open_store(own, readonly=pip.dry_run)
    try:
        with tempfile.TemporaryDirectory(prefix="safe-pip-install-") as tmp:
            work = Path(tmp)
            os.chmod(work, 0o700)
            return install_lock(own, pip, reading.locks, store, outcome, work, out=out, err=err)
    finally:
        store.close()


def _verify_and_install(
    own: InstallOptions,
    pip: PipArgs,
    outcome: Outcome,
    checker: Checker,
    work: Path,
    indexes: VerifyingIndexes,
    reading: Reading,
    env: dict[str, str],
    blocker: str | None,
    out: TextIO,
    err: TextIO,
    early: PrestartedPip | None,
    warm: threading.Thread,
) -> int:
    from safe_pip.output.render import refusal_table
    from safe_pip.output.terminal import ProgressLine
    from safe_pip.text import clean, clean_lines

    quiet = pip.quiet > 0
    sdist_builds = outcome.sdist_builds
    report = work / "pip-report.json"
    requirements, constraints = write_requirement_files(reading, work)
    argv = resolve_argv(
        pip,
        report,
        wheels_only=not sdist_builds,
        index_urls=indexes.index_urls,
        requirements=requirements,
        constraints=constraints,
    )
    items, proc = resolve(argv, report, env, verbose=pip.verbose > 0, err=err)
    warm.join()
    outcome.too_new = indexes.too_new()
    if not quiet or proc.returncode != 0:
        say_too_new(outcome.too_new, err)
    if proc.returncode != 0:
        return resolve_failed(
            proc, checker, outcome, indexes, blocker, err, sdist_builds=sdist_builds
        )
    outcome.items = items
    if piprun.HOOKS.after_resolve is not None:
        piprun.HOOKS.after_resolve(items)
    if not items:
        if not quiet:
            err.write("safe-pip: nothing to install (all requirements are satisfied)\n")
        return EXIT_OK
    wheelhouse = work / "wheelhouse"
    wheelhouse.mkdir(mode=0o700)
    progress = ProgressLine("safe-pip: verifying", quiet=quiet or own.json)
    verdicts = check_items(
        checker,
        items,
        wheelhouse,
        indexes,
        allow_unverifiable=own.allow_unverifiable_sources,
        progress=progress,
        sdist_builds=sdist_builds,
        sdist_blocker=blocker,
        file_cache=file_cache_dir(own.home),
    )
    outcome.verdicts = verdicts
    code = _exit_for(verdicts)
    if any(v.action is not Action.ALLOW for v in verdicts) and (code or not quiet):
        err.write(refusal_table(verdicts) + "\n")
    if code != EXIT_OK:
        refused = sum(1 for v in verdicts if v.action is Action.REFUSE)
        err.write(
            f"safe-pip: {refused} of {len(verdicts)} file(s) refused; nothing was installed.\n"
        )
        return code
    if pip.dry_run:
        names = " ".join(f"{clean(i.name)}-{clean(i.version)}" for i in items)
        if not own.json:
            out.write(f"Would install {names}\n")
        if not quiet:
            err.write(f"safe-pip: {checked_text(verdicts)} (dry run).\n")
        return EXIT_OK
    built: dict[int, tuple[Path, str]] = {}
    if sdist_builds:
        built = _build_sdists(
            pip, items, verdicts, wheelhouse, work, indexes.servers[0], outcome, err, env=env
        )
    if not quiet:
        extra = f", {len(built)} of them built from verified sdists" if built else ""
        err.write(
            f"safe-pip: {checked_text(verdicts)}; installing them from a private "
            f"wheelhouse{extra}.\n"
        )
    # The history records what was verified, before pip installs it (threat T20): a run that
    # raced another one into trusting a different first publisher stops here, with nothing
    # installed, instead of after pip has already installed the loser's files.
    try:
        checker.record(
            [v for v in verdicts if v.code is not ReasonCode.UNVERIFIABLE_ALLOWED],
            index=indexes.upstreams[0],
        )
    except RefusedError as exc:
        outcome.message = exc.diagnostics()
        err.write(f"safe-pip: {clean_lines(exc.diagnostics())}\nsafe-pip: nothing was installed.\n")
        return EXIT_REFUSED
    return _install(
        pip,
        items,
        verdicts,
        wheelhouse,
        work,
        outcome,
        own,
        out,
        err,
        built=built,
        early=early,
        env=env,
        index_urls=indexes.index_urls,
    )


def verified_bundles(own: InstallOptions, checker: Checker) -> VerifiedBundles:
    """The bundles that verified before, kept as ``safe-pip verify`` keeps them (permanent
    facts only, under the user's private cache; every verdict is still decided afresh)."""
    from safe_pip.lock.verified_cache import VerifiedBundles, cache_dir

    home = own.home or os.environ.get("SAFE_PIP_HOME")
    return VerifiedBundles(cache_dir(home), checker.trust)


def _warm_up(checker: Checker) -> threading.Thread:
    """Load the heavy parts (requests, the policy rules; sigstore and the verifier for the
    trust root when bundles will likely need verifying) in the background while pip
    resolves: the main thread only waits on pip then. Errors are left for the real call to
    raise.

    sigstore is loaded ahead only when no verified bundle is kept yet (a first run): once
    bundles are kept, a run mostly verifies none (every verdict is still decided afresh), and
    importing sigstore (about a third of a second of one core, holding the interpreter lock
    while the verifying index answers pip) was pure cost; a bundle that does need verifying
    loads it then."""
    warm_verifier = checker.verified is None or not checker.verified.any_kept()

    def work() -> None:
        try:
            import safe_pip.net
            import safe_pip.policy.rules

            if warm_verifier:
                import safe_pip.provenance.attestation  # noqa: F401
                from safe_pip.provenance.trust import load_verifier

                load_verifier(checker.trust)
        except Exception:  # noqa: S110 - the same call in the pipeline reports it properly
            pass

    thread = threading.Thread(target=work, name="safe-pip-warm-up", daemon=True)
    thread.start()
    return thread
