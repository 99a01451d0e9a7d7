"""``safe-pip install -r pylock.toml``: install exactly a PEP 751 lock's files.

The lock is verified first, exactly as ``safe-pip verify`` verifies it (every file of every
entry downloaded and hashed, provenance verified, ``attestation-identities`` enforced, the
policy and history applied). Only when every file passes does pip run: ``--no-deps
--require-hashes`` over one ``name==version ; marker --hash=...`` line per entry (the lock's
sha256 of each of its files, so pip can pick the wheel for this platform and nothing else),
wheels only, through the verifying index (the only source pip can reach). pip itself does not
read the lock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from safe_pip.errors import EXIT_OK, EXIT_PIP_FAILED, EXIT_REFUSED, ConfigError, RefusedError
from safe_pip.install import piprun
from safe_pip.install.resolve import DeadProxy, sealed_env, start_verifying_indexes
from safe_pip.install.sources import unique_indexes

if TYPE_CHECKING:
    from safe_pip.install.args import InstallOptions, PipArgs
    from safe_pip.install.report import Outcome
    from safe_pip.sources import Lock
    from safe_pip.store import HistoryStore


def lock_requirements(locks: Sequence[Lock]) -> str:
    """pip's requirement lines for the locks' entries: every file's sha256 pinned."""
    lines = []
    for lock in locks:
        for pkg in lock.packages:
            hashes = sorted({f.sha256 for f in pkg.files if f.sha256})
            marker = f" ; {pkg.marker}" if pkg.marker else ""
            pins = " ".join(f"--hash=sha256:{h}" for h in hashes)
            lines.append(f"{pkg.name}=={pkg.version}{marker} {pins}")
    return "\n".join(lines) + "\n"


#: What pip's requirement-file reader would change in a marker written on a requirement line:
#: a line break or other control character (starts a new line: pip would read the rest as
#: further requirements or options), whitespace then ``#`` (a comment: pip drops the rest),
#: ``${`` (pip expands environment variables). packaging accepts all three inside a quoted
#: marker value ("\n" escapes included).
_MARKER_UNSAFE = re.compile(r"[\x00-\x1f\x7f]|\s#|\$\{")


def refuse_unsafe_markers(locks: Sequence[Lock]) -> None:
    """A lock whose marker pip would not read as written is refused (exit 2) before anything
    is verified, recorded or run: each entry becomes one line of pip's requirement file."""
    from safe_pip.text import clean

    for lock in locks:
        for pkg in lock.packages:
            if pkg.marker is not None and _MARKER_UNSAFE.search(pkg.marker):
                raise ConfigError(
                    f"{lock.path}:{pkg.line}: package {clean(pkg.name)}: its marker "
                    f"{clean(repr(pkg.marker), limit=200)} holds a line break, a control "
                    "character, ' #' or '${', which pip's requirement-file reader would not "
                    "read as written",
                    fix="write the marker without them (regenerate the lock)",
                )


def lock_indexes(locks: Sequence[Lock], pip: PipArgs) -> list[str]:
    """The indexes the lock's files come from (``-i`` overrides the lock), normalized."""
    if pip.index_urls:
        urls = [pip.index_urls[-1]]
    else:
        urls = [p.index or lock.index or "" for lock in locks for p in lock.packages]
        urls = [u for u in urls if u] or ["https://pypi.org/simple/"]
    return unique_indexes(urls)


def install_lock(
    own: InstallOptions,
    pip: PipArgs,
    lock_paths: Sequence[Path],
    store: HistoryStore,
    outcome: Outcome,
    work: Path,
    *,
    out: TextIO,
    err: TextIO,
) -> int:
    from safe_pip.check import PYPI_SIMPLE
    from safe_pip.lock.checker import LockChecker
    from safe_pip.lock.outcome import VerifyOptions
    from safe_pip.lock.report import render_text
    from safe_pip.lock.run import verify_locks
    from safe_pip.options import policy_from_args, trust_from_args
    from safe_pip.output.terminal import ProgressLine
    from safe_pip.sources import read_lock
    from safe_pip.text import clean, clean_lines

    locks = [read_lock(p, "pylock") for p in lock_paths]
    refuse_unsafe_markers(locks)
    upstreams = lock_indexes(locks, pip)
    checker = LockChecker(
        cache=None,
        trust=trust_from_args(own),
        policy=policy_from_args(own),
        store=store,
        provenance_index=own.provenance_index or upstreams[0] or PYPI_SIMPLE,
        index_history=not own.no_index_history,
        offline=own.offline,  # no network at all
    )
    quiet = pip.quiet > 0
    opts = VerifyOptions(
        index_url=pip.index_urls[-1] if pip.index_urls else None,
        download=True,
        jobs=checker.jobs,
    )
    progress = ProgressLine("safe-pip: verifying the lock", quiet=quiet or own.json)
    result = verify_locks(locks, checker, opts, progress=progress)
    outcome.verdicts = [o.verdict for o in result.outcomes if o.verdict is not None]
    code = result.exit_code
    if code != EXIT_OK:
        err.write(render_text(result))
        err.write("safe-pip: the lock did not verify; nothing was installed.\n")
        return code
    if pip.dry_run:
        names = " ".join(f"{clean(p.name)}-{clean(p.version)}" for lk in locks for p in lk.packages)
        if not own.json:
            out.write(f"Would install {names}\n")
        return EXIT_OK
    try:
        checker.record([v for v in outcome.verdicts if v.allowed], index=upstreams[0])
    except RefusedError as exc:
        outcome.message = exc.diagnostics()
        err.write(f"safe-pip: {clean_lines(exc.diagnostics())}\nsafe-pip: nothing was installed.\n")
        return EXIT_REFUSED
    reqs = work / "lock-requirements.txt"
    reqs.write_text(lock_requirements(locks), encoding="utf-8")
    proxy = DeadProxy()
    try:
        with start_verifying_indexes(
            checker, upstreams, verbose=pip.verbose > 0, err=err
        ) as indexes:
            argv = [*pip.pip_global, "install", "--isolated", "--no-deps", "--require-hashes"]
            argv += ["--only-binary", ":all:", "--disable-pip-version-check", "--no-input"]
            argv += ["--retries", "0"]
            argv += ["-q"] * pip.quiet + ["-v"] * pip.verbose
            for pos, url in enumerate(indexes.index_urls):
                argv += ["--index-url" if pos == 0 else "--extra-index-url", url]
            argv += [*pip.install, "-r", str(reqs)]
            proc = piprun.run_pip(
                argv,
                env=sealed_env(proxy),
                capture=False,
                stdout=err if own.json else out,
                stderr=err,
            )
    finally:
        proxy.close()
    outcome.pip_exit_code = proc.returncode
    if proc.returncode != 0:
        outcome.message = (
            f"pip failed (exit {proc.returncode}) installing the verified lock; see pip's "
            "message above"
        )
        err.write(f"safe-pip: {outcome.message}.\n")
        return EXIT_PIP_FAILED
    outcome.installed = True
    if not quiet:
        err.write(f"safe-pip: {len(outcome.verdicts)} locked file(s) verified; installed.\n")
    return EXIT_OK


def refuse_mixed(lock_paths: Sequence[Path], other: bool) -> None:
    """A lock installs exactly its files: no other requirement may come with it."""
    if lock_paths and other:
        raise ConfigError(
            f"{lock_paths[0]} is a lock: it installs exactly its files, so no other requirement "
            "or requirement file can be given with it",
            fix="install the lock alone (safe-pip install -r pylock.toml), or add the other "
            "requirements to the lock",
        )
