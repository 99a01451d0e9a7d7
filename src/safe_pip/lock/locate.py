"""Locate each lock entry's files on the index (or in saved evidence): the FileRefs to check,
and the lock-level problems found before anything is fetched (hash mismatch, not on the index,
no sha256 pinned, another hash algorithm, name/version mismatch, local or unsupported source)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from safe_pip.check import PYPI_SIMPLE, QUARANTINED, Checker, quarantined_verdict
from safe_pip.errors import CouldNotCheckError, SafePipError
from safe_pip.lock.evidence import Evidence
from safe_pip.lock.outcome import (
    HASH_MISMATCH,
    LOCAL_SOURCE,
    NAME_VERSION_MISMATCH,
    NO_HASH_PINNED,
    NOT_ON_INDEX,
    UNSUPPORTED_SOURCE,
    UNVERIFIABLE_HASH,
    FileOutcome,
    Status,
    VerifyOptions,
)
from safe_pip.models import FileRef, ReasonCode
from safe_pip.sources.model import (
    Lock,
    LockedFile,
    LockedPackage,
    filename_project_version,
    name_version_mismatch,
)

if TYPE_CHECKING:
    from safe_pip.net import ProjectPage
    from safe_pip.policy.file import Policy


Progress = Callable[[int, int, str], None]


@dataclass
class _Planned:
    """One file to check, and every lock place that names it."""

    ref: FileRef
    places: list[tuple[Path, LockedPackage, LockedFile, str | None]]  # (lock, pkg, file, idx sha)


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _index_for(lock: Lock, pkg: LockedPackage, opts: VerifyOptions) -> str:
    return opts.index_url or pkg.index or lock.index or PYPI_SIMPLE


def _outcome(
    lock: Path,
    pkg: LockedPackage,
    f: LockedFile | None,
    status: Status,
    code: str,
    reason: str,
    *,
    fix: str = "",
    index_sha: str | None = None,
    rule: str = "lockfile",
) -> FileOutcome:
    return FileOutcome(
        lock=lock,
        package=pkg,
        filename=f.filename if f else "",
        kind=f.kind if f else "entry",
        line=(f.line if f and f.line else pkg.line),
        lock_sha256=f.sha256 if f else None,
        status=status,
        code=code,
        reason=reason,
        fix=fix,
        rule=rule,
        index_sha256=index_sha,
    )


def _uv_export_own(lock: Lock, pkg: LockedPackage) -> bool:
    """Whether ``pkg`` is the project itself (or a workspace member) as uv export writes it
    (``-e .``, a pylock ``directory`` entry): the same entry uv.lock marks editable/virtual,
    so it is decided the same way (``local-source``)."""
    local = any(word in (pkg.unsupported or "") for word in ("editable", "directory", "local"))
    return lock.generator == "uv" and lock.format != "uv" and local


def _unsupported_fix(lock: Lock, pkg: LockedPackage) -> str:
    """The fix for an entry that is no index release."""
    return "lock a release from an index, or remove the entry"


def _fetch_pages(
    checker: Checker,
    wanted: set[tuple[str, str]],
    jobs: int,
    progress: Progress | None = None,
) -> dict[tuple[str, str], ProjectPage | SafePipError]:
    """Every (index, project) page the locks need, read in parallel, each once per run
    (:meth:`Checker.project_page` keeps it for the history and provenance steps)."""
    from safe_pip.net import SimpleIndex

    for index in {index for index, _name in wanted}:
        SimpleIndex(checker.http, index)  # ConfigError (exit 2) on a bad URL, before any read
    keys = sorted(wanted)
    done = 0
    count_lock = threading.Lock()

    def one(key: tuple[str, str]) -> tuple[tuple[str, str], ProjectPage | SafePipError]:
        nonlocal done
        index, name = key
        result: ProjectPage | SafePipError
        try:
            result = checker.project_page(index, name)  # stale / replayed page: T21
        except SafePipError as exc:
            result = exc
        except Exception as exc:  # fail closed: could not check
            result = CouldNotCheckError(f"{name}: {type(exc).__name__}: {exc}")
        if progress is not None:
            with count_lock:
                done += 1
                progress(done, len(keys), f"index page {name}")
        return key, result

    if len(keys) <= 1:
        results = [one(k) for k in keys]
    else:
        with ThreadPoolExecutor(max_workers=min(jobs, len(keys))) as pool:
            results = list(pool.map(one, keys))
    return dict(results)


def plan(
    locks: Sequence[Lock],
    checker: Checker,
    opts: VerifyOptions,
    evidence: Evidence | None,
    progress: Progress | None = None,
) -> tuple[list[_Planned], list[FileOutcome]]:
    """FileRefs to check (deduplicated by filename + sha256) and lock-level failures."""
    from safe_pip.net import ProjectNotFound

    problems: list[FileOutcome] = []
    planned: dict[tuple[str, str], _Planned] = {}

    def add(
        lock: Lock, pkg: LockedPackage, f: LockedFile, ref: FileRef, index_sha: str | None
    ) -> None:
        key = (ref.filename, ref.sha256 or ref.url or "")
        entry = planned.get(key)
        if entry is None:
            planned[key] = entry = _Planned(ref, [])
        entry.places.append((lock.path, pkg, f, index_sha))

    pages: dict[tuple[str, str], ProjectPage | SafePipError] = {}
    local = evidence is not None or checker.offline  # the lock's own file list, no page
    if not local:
        wanted = {
            (_index_for(lock, pkg, opts), str(canonicalize_name(pkg.name)))
            for lock in locks
            for pkg in lock.packages
            if pkg.unsupported is None and not pkg.other_hashes
        }
        pages = _fetch_pages(checker, wanted, opts.jobs, progress)

    for lock in locks:
        for pkg in lock.packages:
            if pkg.unsupported is not None and (pkg.local_source or _uv_export_own(lock, pkg)):
                problems.append(_local_source(lock, pkg, checker.policy))
                continue
            if pkg.unsupported is not None:
                problems.append(
                    _outcome(
                        lock.path,
                        pkg,
                        None,
                        "fail",
                        UNSUPPORTED_SOURCE,
                        f"{pkg.name} is locked as {pkg.unsupported}, which carries no PEP 740 "
                        "provenance",
                        fix=_unsupported_fix(lock, pkg),
                    )
                )
                continue
            if pkg.other_hashes:
                problems.append(_unverifiable_entry(lock, pkg))
                continue
            index = _index_for(lock, pkg, opts)
            if local:
                names = evidence.filenames_for if evidence is not None else _offline_names
                _plan_offline(lock, pkg, index, names, add, problems, evidence)
                continue
            page = pages[(index, str(canonicalize_name(pkg.name)))]
            if isinstance(page, SafePipError):
                gone = isinstance(page, ProjectNotFound)
                problems.extend(
                    _outcome(
                        lock.path,
                        pkg,
                        f,
                        "fail" if gone else "error",
                        NOT_ON_INDEX if gone else ReasonCode.COULD_NOT_CHECK.value,
                        page.message,
                        fix=page.fix or "",
                    )
                    for f in (pkg.files or (None,))
                )
                continue
            _plan_online(lock, pkg, index, page, opts, add, problems)
    return list(planned.values()), problems


def _plan_online(
    lock: Lock,
    pkg: LockedPackage,
    index: str,
    page: ProjectPage,
    opts: VerifyOptions,
    add: Callable[[Lock, LockedPackage, LockedFile, FileRef, str | None], None],
    problems: list[FileOutcome],
) -> None:
    if (page.status or "").strip().lower() == QUARANTINED:
        # PEP 792: the index offers no files of a quarantined project (and a broken one that
        # still lists them is refused too): nothing is downloaded (threat T25).
        status_ref = FileRef(
            project=pkg.name,
            version=pkg.version,
            filename="",
            index=index,
            project_status=page.status,
            project_status_reason=page.status_reason,
        )
        refusal = quarantined_verdict(status_ref, "")
        for f in pkg.files or (None,):
            problems.append(
                _outcome(
                    lock.path,
                    pkg,
                    f,
                    "fail",
                    refusal.code.value,
                    refusal.reason,
                    fix=refusal.fix,
                    rule=refusal.rule,
                )
            )
        return
    by_name = {f.filename: f for f in page.files}
    files = list(pkg.files)
    if not files:  # requirements: hashes only -> the index's files of that version
        release = [f for f in page.files if _same_version(f.version, pkg.version)]
        if not release:
            problems.append(
                _outcome(
                    lock.path,
                    pkg,
                    None,
                    "fail",
                    NOT_ON_INDEX,
                    f"{pkg.name}=={pkg.version} has no files on {index}",
                    fix="check the pin and the index URL",
                )
            )
            return
        if pkg.hashes:
            by_sha = {f.sha256: f for f in release if f.sha256}
            for sha in pkg.hashes:
                cand = by_sha.get(sha)
                if cand is None:
                    problems.append(
                        _outcome(
                            lock.path,
                            pkg,
                            LockedFile(filename="", kind="wheel", sha256=sha, line=pkg.line),
                            "fail",
                            HASH_MISMATCH,
                            f"no file of {pkg.name}=={pkg.version} on {index} has the locked "
                            f"sha256 {sha}",
                            fix="the index's files changed since the lock was made: find out "
                            "why before re-locking",
                        )
                    )
                    continue
                files.append(
                    LockedFile(filename=cand.filename, kind=_kind(cand.filename), sha256=sha)
                )
        else:
            problems.append(_no_hash_entry(lock, pkg))
            return
    for f in files:
        cand = by_name.get(f.filename)
        line_f = f if f.line else replace(f, line=pkg.line)
        problem = _file_problem(lock, pkg, line_f)
        if problem is not None:
            problems.append(problem)
            continue
        if cand is None:
            problems.append(
                _outcome(
                    lock.path,
                    pkg,
                    line_f,
                    "fail",
                    NOT_ON_INDEX,
                    f"{f.filename} is not listed on {index}",
                    fix="the file was removed from the index, or the lock names another index",
                )
            )
            continue
        if cand.sha256 and f.sha256 != cand.sha256:
            problems.append(
                _outcome(
                    lock.path,
                    pkg,
                    line_f,
                    "fail",
                    HASH_MISMATCH,
                    f"the lock says sha256 {f.sha256}, the index's file has {cand.sha256}",
                    fix="the file on the index is not the file that was locked: find out why "
                    "before re-locking",
                    index_sha=cand.sha256,
                )
            )
            continue
        ref = FileRef(
            project=pkg.name,
            version=_file_version(f.filename, pkg.version),
            filename=f.filename,
            url=(f.url or cand.url) if opts.download else None,
            sha256=f.sha256,
            index=index,
            provenance_url=cand.provenance_url,
            yanked=cand.yanked,
            upload_time=cand.upload_time,
            size=cand.size,
            project_status=cand.project_status,  # PEP 792 (threat T25)
            project_status_reason=cand.project_status_reason,
            index_serves_provenance=cand.index_serves_provenance,
        )
        add(lock, pkg, line_f, ref, cand.sha256)


def _offline_names(_sha256: str) -> list[str]:
    return []


def _plan_offline(
    lock: Lock,
    pkg: LockedPackage,
    index: str,
    filenames_for: Callable[[str], list[str]],
    add: Callable[[Lock, LockedPackage, LockedFile, FileRef, str | None], None],
    problems: list[FileOutcome],
    evidence: Evidence | None,
) -> None:
    """Plan from the lock's own file list, without the index page (--evidence, --offline).
    Requirements files name hashes only: their files are found in the evidence, or are
    could-not-check offline."""
    files = list(pkg.files)
    if not files:
        for sha in pkg.hashes:
            names = filenames_for(sha)
            if not names:
                if evidence is not None:
                    reason = (
                        f"the evidence in {evidence.root} has no file of "
                        f"{pkg.name}=={pkg.version} with sha256 {sha}"
                    )
                    fix = "re-create it with --save-evidence after the lock changed"
                else:
                    reason = (
                        f"{pkg.name}=={pkg.version} is pinned by hash only; which file has "
                        f"sha256 {sha} is on the index page of {index}, and --offline allows "
                        "no network"
                    )
                    fix = (
                        "save evidence online (`safe-pip verify LOCK --save-evidence DIR`) and "
                        "verify with --evidence DIR, or run without --offline"
                    )
                problems.append(
                    _outcome(
                        lock.path,
                        pkg,
                        LockedFile(filename="", kind="wheel", sha256=sha, line=pkg.line),
                        "error",
                        ReasonCode.COULD_NOT_CHECK.value,
                        reason,
                        fix=fix,
                    )
                )
                continue
            files.append(LockedFile(filename=names[0], kind=_kind(names[0]), sha256=sha))
        if not pkg.hashes:
            problems.append(_no_hash_entry(lock, pkg))
    for f in files:
        line_f = f if f.line else replace(f, line=pkg.line)
        problem = _file_problem(lock, pkg, line_f)
        if problem is not None:
            problems.append(problem)
            continue
        ref = FileRef(
            project=pkg.name,
            version=_file_version(f.filename, pkg.version),
            filename=f.filename,
            sha256=f.sha256,
            index=index,
        )
        add(lock, pkg, line_f, ref, None)


_UNPINNED = (
    "the installer takes whatever bytes the index serves at install time, so verifying the "
    "file the index lists today says nothing about what will be installed"
)


def _no_hash_entry(lock: Lock, pkg: LockedPackage) -> FileOutcome:
    """A requirement that pins no sha256 ``--hash``: a failure at its line, never verified."""
    return _outcome(
        lock.path,
        pkg,
        None,
        "fail",
        NO_HASH_PINNED,
        f"{pkg.name}=={pkg.version} pins no --hash=sha256:...: {_UNPINNED}",
        fix="lock with hashes: `pip-compile --generate-hashes` or `uv pip compile "
        "--generate-hashes` (pip then installs in --require-hashes mode)",
    )


def _no_hash_file(lock: Lock, pkg: LockedPackage, f: LockedFile) -> FileOutcome:
    """A locked file without a sha256 (uv.lock / pylock): a failure at its line."""
    return _outcome(
        lock.path,
        pkg,
        f,
        "fail",
        NO_HASH_PINNED,
        f"{f.filename} of {pkg.name}=={pkg.version} has no sha256 in the lock: {_UNPINNED}",
        fix="re-lock so that every file records its sha256 (uv lock and pip lock do when the "
        "index publishes hashes)",
    )


_ANY_HASH = (
    "pip (--require-hashes) and uv install a file when ANY hash the lock lists for it matches, "
    "and safe-pip can verify only sha256 (the digest PEP 740 attestations sign), so a file "
    "matching the other hash would be installed without anyone having verified it"
)


_SHA256_ONLY_FIX = (
    "regenerate the lock with sha256 hashes only (pip-compile --generate-hashes, uv lock, "
    "uv pip compile --generate-hashes and pip lock write sha256), or delete the other hashes"
)


def _local_source(lock: Lock, pkg: LockedPackage, policy: Policy) -> FileOutcome:
    """A uv.lock entry of local code (editable / virtual): never silently skipped. Not
    verifiable (no index release, no provenance): it fails the run unless the policy sets
    ``allow-local-sources = true``, and is reported at its line either way."""
    what = f"{pkg.name} is locked as {pkg.unsupported}: local code, not verifiable"
    if policy.defaults.allow_local_sources:
        return _outcome(
            lock.path,
            pkg,
            None,
            "warn",
            LOCAL_SOURCE,
            what + " (allowed: allow-local-sources = true)",
            rule=policy.label() + " [defaults] allow-local-sources",
        )
    return _outcome(
        lock.path,
        pkg,
        None,
        "fail",
        LOCAL_SOURCE,
        what + "; nothing from an index was checked for it",
        fix=_local_fix(lock),
        rule="[defaults] allow-local-sources",
    )


def _local_fix(lock: Lock) -> str:
    fix = (
        "if it is your own project or a workspace member, set allow-local-sources = true "
        "in [defaults] of the policy (safe-pip.toml)"
    )
    if lock.format != "uv" and lock.generator == "uv":
        fmt = "pylock.toml" if lock.format == "pylock" else "requirements-txt"
        fix = (
            f"export without it: `uv export --no-emit-project --format {fmt}` (and "
            f"--no-emit-workspace for workspace members); or {fix}"
        )
    return fix


def _unverifiable_entry(lock: Lock, pkg: LockedPackage) -> FileOutcome:
    """A requirement with a ``--hash`` of another algorithm than sha256: fails at its line."""
    algos = ", ".join(pkg.other_hashes)
    return _outcome(
        lock.path,
        pkg,
        None,
        "fail",
        UNVERIFIABLE_HASH,
        f"{pkg.name}=={pkg.version} lists --hash={algos}:...: {_ANY_HASH}",
        fix=_SHA256_ONLY_FIX,
    )


def _file_problem(lock: Lock, pkg: LockedPackage, f: LockedFile) -> FileOutcome | None:
    """Why a locked file cannot be checked before anything is fetched (None: it can be).

    Another hash algorithm (``unverifiable-hash``), a file name of another project or version
    (``name-version-mismatch``; the reader's finding, and this backstop for every lock type),
    no sha256 (``no-hash-pinned``)."""
    if f.other_hashes:
        algos = ", ".join(f.other_hashes)
        return _outcome(
            lock.path,
            pkg,
            f,
            "fail",
            UNVERIFIABLE_HASH,
            f"{f.filename} of {pkg.name}=={pkg.version} has a {algos} hash in the lock: "
            f"{_ANY_HASH}",
            fix=_SHA256_ONLY_FIX,
        )
    mismatch = f.mismatch or name_version_mismatch(pkg.name, pkg.version, f.filename)
    if mismatch is not None:
        return _outcome(
            lock.path,
            pkg,
            f,
            "fail",
            NAME_VERSION_MISMATCH,
            f"{mismatch}: the installer takes this file, while the policy would decide it as "
            "the entry's project and version",
            fix="re-lock (the lock was edited or generated wrongly): the file's name must be "
            "of the entry's project and version",
        )
    if not f.sha256:
        return _no_hash_file(lock, pkg, f)
    return None


def _file_version(filename: str, fallback: str) -> str:
    """The version a file is decided as: its own name's (checked against the entry before)."""
    parsed = filename_project_version(filename)
    return parsed[1] if parsed is not None else fallback


def _kind(filename: str) -> Literal["wheel", "sdist"]:
    return "wheel" if filename.endswith(".whl") else "sdist"
