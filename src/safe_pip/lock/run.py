"""Verify a whole lockfile: every file each entry names, the way ``install`` checks files.

Steps (``verify_locks``):

1. **Locate.** For each package, read its project page on the index (the lock's ``index``, or
   ``--index-url``, or PyPI), in parallel. Each file the lock names is found by filename; a
   requirements file's hashes are matched against the files of the pinned version. A sha256 in
   the lock that differs from the index's is a failure (``hash-mismatch``); a file the index
   does not list is a failure (``not-on-index``).
2. **Check.** The files go through the shared :class:`safe_pip.check.Checker` (parallel fetch
   and verification, policy, history). Without ``--download`` the attestation is verified for the
   *lock's* sha256: that digest is what ``pip install --require-hashes`` / ``uv sync`` will
   enforce, so an attestation for it covers the bytes that get installed. ``--download``
   fetches and hashes the bytes as well.
   A lock entry that pins no sha256 (a requirement without ``--hash``, a uv.lock / pylock file
   without a sha256) fails with ``no-hash-pinned`` and is not checked: the installer would take
   whatever bytes the index serves later. An entry that lists a hash of another algorithm
   (``--hash=sha512:...``, pylock ``hashes.sha512``, uv.lock ``hash = "sha512:..."``) fails with
   ``unverifiable-hash``: installers accept a file when *any* listed hash matches, and PEP 740
   attests sha256 only. A file whose name names another project or version than its entry
   fails with ``name-version-mismatch``; every file is decided with its own name's version.
3. **Lock identities.** The policy and history decide; where a pylock package has
   ``attestation-identities``, every file's verified identity must also match one of them
   (:func:`safe_pip.policy.rules.identity_matches`). A match only confirms an allowed file: it
   never lifts a refusal (:func:`apply_lock_identities`).

Provenance is cached by file digest under ``$SAFE_PIP_HOME/cache/provenance`` (only material
that verified is stored; every use re-verifies it; absence and verdicts are never cached).
``--save-evidence DIR`` keeps each file's provenance and the trusted root used;
``--evidence DIR`` later verifies from that directory with no network at all.

:func:`run_verify` is the whole ``safe-pip verify`` run from its typed options
(:class:`LockRunOptions`): which locks, the checker with its caches, :func:`verify_locks`, and
``--write-identities``; the command only renders the :class:`VerifyRun` it returns.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from safe_pip.lock.checker import LockChecker
from safe_pip.lock.decide import apply_lock_identities, sdist_refusal
from safe_pip.lock.evidence import Evidence, trusted_root_bytes
from safe_pip.lock.locate import Progress, plan
from safe_pip.lock.outcome import FileOutcome, LockReport, VerifyOptions, VerifyRun
from safe_pip.options import RunOptions
from safe_pip.sources.model import Lock


@dataclass(frozen=True)
class LockRunOptions(RunOptions):
    """What a ``safe-pip verify`` run is asked to do (its command line, typed): the trust,
    policy and history options every run has, and the lock run's own."""

    locks: tuple[str, ...] = ()  # none: the first default lock file here (lock/read.py)
    write_identities: str | None = None  # a pylock.toml to fill attestation-identities of
    index_url: str | None = None  # overrides the locks' index
    provenance_index: str | None = None
    download: bool = False
    save_evidence: str | None = None
    evidence: str | None = None  # verify from saved evidence, with no network (offline)
    no_cache: bool = False
    jobs: int = 16
    progress: bool = True  # progress lines on stderr


def run_verify(options: LockRunOptions) -> VerifyRun:
    """Verify the locks ``options`` names (and fill ``--write-identities``). Raises
    ConfigError for usage errors and unreadable locks; every problem of a file is an outcome."""
    from safe_pip.check import PYPI_SIMPLE
    from safe_pip.errors import ConfigError
    from safe_pip.lock.provenance_cache import ProvenanceCache, default_cache_dir
    from safe_pip.lock.read import lock_index, lock_paths, read_locks
    from safe_pip.lock.verified_cache import VerifiedBundles, cache_dir
    from safe_pip.lock.write import write_identities
    from safe_pip.net.pagecache import PageCache
    from safe_pip.net.pagecache import cache_dir as pages_dir
    from safe_pip.options import (
        named_provenance_index,
        open_store,
        policy_from_args,
        trust_from_args,
    )
    from safe_pip.output.terminal import ProgressLine
    from safe_pip.sources import detect_format

    if options.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    if options.evidence and options.save_evidence:
        raise ConfigError("--evidence (read) and --save-evidence (write) cannot be combined")
    if options.evidence and options.download:
        raise ConfigError("--evidence verifies without network; --download needs it")
    if options.evidence:
        # the evidence run uses no network at all (and no TUF refresh)
        options = dataclasses.replace(options, offline=True)
    paths = lock_paths(options.locks, options.write_identities)
    if options.write_identities and detect_format(Path(options.write_identities)) != "pylock":
        raise ConfigError(
            f"--write-identities writes PEP 751 pylock.toml files, not {options.write_identities}"
        )

    locks = read_locks(paths)

    offline_evidence = Path(options.evidence) if options.evidence else None
    home = options.home or os.environ.get("SAFE_PIP_HOME")
    main_index = options.index_url or lock_index(locks)

    store = open_store(options, readonly=True)
    try:
        policy = policy_from_args(options)
        trust = trust_from_args(options)
        cache = None
        verified = None
        if not options.no_cache and offline_evidence is None:  # --offline reads the cache too
            cache = ProvenanceCache(default_cache_dir(home))
            # bundles that verified before (permanent facts); the index, history, policy and
            # clock are read again by every run
            verified = VerifiedBundles(cache_dir(home), trust)
        checker = LockChecker(
            cache=cache,
            verified=verified,
            trust=trust,
            policy=policy,
            store=store,
            jobs=options.jobs,
            provenance_index=None
            if offline_evidence
            else (named_provenance_index(options.provenance_index) or main_index or PYPI_SIMPLE),
            index_history=not options.no_index_history,  # with --evidence: the bundle's
            offline=options.offline,
        )
        if not options.no_cache and not options.offline:
            # index pages, still asked for every run (conditional requests: a 304 reuses one)
            checker.pages = PageCache(pages_dir(home), checker.http.limits)
        opts = VerifyOptions(
            index_url=options.index_url,
            download=options.download,
            evidence=offline_evidence,
            save_evidence=Path(options.save_evidence) if options.save_evidence else None,
            cache_dir=cache.root if cache else None,
            jobs=options.jobs,
        )
        quiet = not options.progress
        progress = ProgressLine("verifying", quiet=quiet)
        pages = ProgressLine("reading index pages", quiet=quiet)
        result = verify_locks(locks, checker, opts, progress=progress, page_progress=pages)
    finally:
        store.close()

    if options.write_identities:
        target = Path(options.write_identities)
        for report in result.reports:
            if report.lock.path.resolve() == target.resolve():
                result.written[str(target)] = write_identities(target, report)
    return result


def verify_locks(
    locks: Sequence[Lock],
    checker: LockChecker,
    opts: VerifyOptions,
    *,
    progress: Progress | None = None,
    page_progress: Progress | None = None,
) -> VerifyRun:
    """Verify every file of every lock; return all outcomes (problems never stop the run).
    ``page_progress`` is told about each index page read (the planning step), ``progress``
    about each file checked."""
    started = time.monotonic()
    evidence = Evidence.load(opts.evidence) if opts.evidence is not None else None
    if evidence is not None:
        checker.evidence = evidence
        if not evidence.has_history:
            checker.index_history = False  # a bundle saved before bundles carried history
    checker.pinned = frozenset(
        str(canonicalize_name(p.name)) for lock in locks for p in lock.packages if p.identities
    )
    checker.keep_history = opts.save_evidence is not None
    planned, problems = plan(locks, checker, opts, evidence, page_progress)

    refs = [p.ref for p in planned]
    with tempfile.TemporaryDirectory(prefix="safe-pip-verify-") as tmp:
        verdicts = checker.check(refs, download_dir=Path(tmp), progress=progress)

    save = Evidence.create(opts.save_evidence) if opts.save_evidence is not None else None
    outcomes: dict[Path, list[FileOutcome]] = {lock.path: [] for lock in locks}
    for item in problems:
        outcomes[item.lock].append(item)
    # which locked packages get a wheel (requirements files name hashes, not files)
    with_wheel = {
        (lock_path, pkg.position)
        for p in planned
        for lock_path, pkg, f, _sha in p.places
        if f.kind == "wheel" or f.filename.endswith(".whl")
    }
    for p, verdict in zip(planned, verdicts, strict=False):
        res = verdict.verification
        cache = checker.cache if evidence is None else None
        if (
            cache is not None
            and res is not None
            and res.verified
            and res.provenance is not None
            and res.sha256 not in checker.from_cache
        ):
            cache.put(res.sha256, res.provenance)  # only material that verified
        if save is not None and res is not None:
            save.add(p.ref.project, p.ref.version, res)
        for lock_path, pkg, f, index_sha in p.places:
            wheel = (lock_path, pkg.position) in with_wheel
            v = verdict if wheel else sdist_refusal(verdict, pkg, f, checker.policy)
            outcomes[lock_path].append(apply_lock_identities(lock_path, pkg, f, v, index_sha))
    if save is not None:
        for project, reads in sorted(checker.history_reads.items()):
            save.add_history(project, list(reads.values()))
        save.save(trusted_root_bytes(checker), checker.trust.describe())

    reports = []
    for lock in locks:
        items = sorted(outcomes[lock.path], key=lambda o: (o.package.position, o.line, o.filename))
        reports.append(LockReport(lock, items))
    # described after the run: "TUF refresh" only when a verification loaded the root
    return VerifyRun(reports, checker.trust.describe(), time.monotonic() - started)
