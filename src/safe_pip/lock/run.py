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
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from safe_pip.lock.checker import LockChecker
from safe_pip.lock.decide import apply_lock_identities, sdist_refusal
from safe_pip.lock.evidence import Evidence, trusted_root_bytes
from safe_pip.lock.locate import Progress, plan
from safe_pip.lock.outcome import FileOutcome, LockReport, VerifyOptions, VerifyRun
from safe_pip.sources.model import Lock


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
