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

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from safe_pip.check import PYPI_SIMPLE, QUARANTINED, WARN_STATUSES, Checker, quarantined_verdict
from safe_pip.errors import (
    EXIT_COULD_NOT_CHECK,
    EXIT_OK,
    EXIT_REFUSED,
    ConfigError,
    CouldNotCheckError,
    SafePipError,
)
from safe_pip.models import (
    Action,
    FileRef,
    PublisherIdentity,
    ReasonCode,
    Verdict,
    VerificationResult,
    VerifyStatus,
)
from safe_pip.sources.model import (
    Lock,
    LockedFile,
    LockedPackage,
    filename_project_version,
    name_version_mismatch,
)

if TYPE_CHECKING:
    from safe_pip.lock.verified_cache import VerifiedBundles
    from safe_pip.net import ProjectPage
    from safe_pip.policy.file import Policy
    from safe_pip.policy.history import HistoryRecord, ProjectHistory

Status = Literal["ok", "warn", "fail", "error"]

#: Codes of lock-level problems (the others are safe_pip.models.ReasonCode values).
HASH_MISMATCH = "hash-mismatch"
NOT_ON_INDEX = "not-on-index"
NO_HASH_PINNED = "no-hash-pinned"
UNVERIFIABLE_HASH = "unverifiable-hash"
NAME_VERSION_MISMATCH = "name-version-mismatch"
UNSUPPORTED_SOURCE = "unsupported-source"
#: uv.lock editable / virtual entries: the project's own code (fails unless allow-local-sources)
LOCAL_SOURCE = "local-source"
LOCK_IDENTITY_RULE = "pylock attestation-identities"

EVIDENCE_SCHEMA = "safe-pip-evidence/1"
EVIDENCE_MANIFEST = "safe-pip-evidence.json"
MAX_PROVENANCE_BYTES = 2 * 1024 * 1024


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileOutcome:
    """The result for one file of one lock entry (or for an entry that names no usable file)."""

    lock: Path
    package: LockedPackage
    filename: str  # "" for an entry-level problem
    kind: str  # wheel | sdist | entry
    line: int
    lock_sha256: str | None
    status: Status
    code: str
    reason: str
    fix: str = ""
    rule: str = ""
    detail: str = ""  # the verification's own reason code (e.g. bad-signature)
    index_sha256: str | None = None
    identity: PublisherIdentity | None = None
    expected: tuple[PublisherIdentity, ...] = ()
    verdict: Verdict | None = field(default=None, compare=False, repr=False)

    @property
    def verified(self) -> bool:
        v = self.verdict
        return bool(v and v.verification and v.verification.verified)

    def to_json(self) -> dict[str, Any]:
        res = self.verdict.verification if self.verdict else None
        return {
            "lock": str(self.lock),
            "line": self.line,
            "package": self.package.name,
            "version": self.package.version,
            "filename": self.filename or None,
            "kind": self.kind,
            "sha256": self.lock_sha256,
            "index_sha256": self.index_sha256,
            "status": self.status,
            "code": self.code,
            "detail": self.detail or None,
            "reason": self.reason,
            "fix": self.fix or None,
            "rule": self.rule or None,
            "verified": self.verified,
            "identity": self.identity.to_json() if self.identity else None,
            "expected": [lock_identity_table(e) for e in self.expected],
            "predicate_types": list(res.predicate_types) if res else [],
            "tlog_index": res.tlog_index if res else None,
            "integrated_time": res.integrated_time if res else None,
            "tsa_time": res.tsa_time if res else None,
            "provenance_state": self.provenance_state,
            "release_time": self.verdict.release_time if self.verdict else None,
            "release_time_source": self.verdict.release_time_source if self.verdict else None,
            "min_release_age": self.verdict.min_release_age if self.verdict else None,
            "acceptable_from": self.verdict.acceptable_from if self.verdict else None,
            "build": res.build.to_json() if res and res.build else None,
            "build_changes": (
                [c.to_json() for c in self.verdict.build_changes] if self.verdict else []
            ),
        }

    @property
    def provenance_state(self) -> str | None:
        """PyPI's name for the release's provenance (``full``, ``lost``...), when known."""
        return self.verdict.provenance_state if self.verdict else None


@dataclass
class LockReport:
    lock: Lock
    outcomes: list[FileOutcome]

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


@dataclass
class VerifyRun:
    reports: list[LockReport]
    trust_root: str
    elapsed: float = 0.0
    written: dict[str, list[str]] = field(default_factory=dict)  # lock -> packages filled

    @property
    def outcomes(self) -> list[FileOutcome]:
        return [o for r in self.reports for o in r.outcomes]

    @property
    def exit_code(self) -> int:
        statuses = {o.status for o in self.outcomes}
        if "fail" in statuses:
            return EXIT_REFUSED
        if "error" in statuses:
            return EXIT_COULD_NOT_CHECK
        return EXIT_OK


@dataclass(frozen=True)
class VerifyOptions:
    index_url: str | None = None  # overrides the lock's index when given
    download: bool = False
    evidence: Path | None = None  # verify from saved evidence, no network
    save_evidence: Path | None = None
    cache_dir: Path | None = None  # None: no cache
    jobs: int = 16


# -- provenance cache --------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _hexdigest_ok(sha256: str) -> bool:
    return len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256)


class ProvenanceCache:
    """Fetched provenance by file sha256. A hit is only a candidate: it is verified like a
    fresh download, so a tampered cache can make a check fail but never pass."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path | None:
        sha = sha256.lower()
        if not _hexdigest_ok(sha):
            return None
        return self.root / sha[:2] / f"{sha}.json"

    def get(self, sha256: str) -> bytes | None:
        path = self._path(sha256)
        if path is None:
            return None
        try:
            with path.open("rb") as fh:
                data = fh.read(MAX_PROVENANCE_BYTES + 1)
        except OSError:
            return None
        return data if 0 < len(data) <= MAX_PROVENANCE_BYTES else None

    def put(self, sha256: str, provenance: bytes) -> None:
        path = self._path(sha256)
        if path is None or len(provenance) > MAX_PROVENANCE_BYTES:
            return
        with contextlib.suppress(OSError):  # a cache that cannot be written is no cache
            _atomic_write(path, provenance)


def default_cache_dir(home: str | None) -> Path:
    if home:
        return Path(home) / "cache" / "provenance"
    import platformdirs

    return Path(platformdirs.user_cache_dir("safe-pip")) / "provenance"


# -- evidence ----------------------------------------------------------------------------------


class Evidence:
    """A directory of provenance saved by ``--save-evidence``, keyed by sha256 and filename.

    Layout: ``safe-pip-evidence.json`` (manifest), ``trusted_root.json`` (the root the files
    were verified with, for the record), ``provenance/<sha256>/<filename>.provenance.json``.
    """

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        self._lock = threading.Lock()

    @classmethod
    def load(cls, root: Path) -> Evidence:
        path = root / EVIDENCE_MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(
                f"no evidence manifest at {path}: {exc.strerror or exc}",
                fix="create it with `safe-pip verify LOCK --save-evidence DIR`",
            ) from exc
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("schema") != EVIDENCE_SCHEMA:
            raise ConfigError(f"{path}: not a {EVIDENCE_SCHEMA} manifest")
        if not isinstance(data.get("files"), dict):
            raise ConfigError(f"{path}: manifest has no 'files' table")
        return cls(root, data)

    @classmethod
    def create(cls, root: Path) -> Evidence:
        try:
            return cls.load(root)
        except ConfigError:
            if (root / EVIDENCE_MANIFEST).exists():
                raise
        return cls(root, {"schema": EVIDENCE_SCHEMA, "files": {}})

    def entry(self, sha256: str) -> dict[str, Any] | None:
        files: dict[str, Any] = self.manifest["files"]
        entry = files.get(sha256.lower())
        return entry if isinstance(entry, dict) else None

    def filenames_for(self, sha256: str) -> list[str]:
        entry = self.entry(sha256)
        if entry is None or not isinstance(entry.get("filename"), str):
            return []
        return [entry["filename"]]

    def provenance(self, ref: FileRef) -> bytes | None:
        """The saved provenance for ``ref`` (None: it was unsigned when saved). Raises
        CouldNotCheckError when the evidence does not cover the file."""
        sha = (ref.sha256 or "").lower()
        entry = self.entry(sha)
        if entry is None or entry.get("filename") != ref.filename:
            entry = self._history_entry(sha)  # an earlier release the index history read
        if entry is None or entry.get("filename") != ref.filename:
            raise CouldNotCheckError(
                f"the evidence in {self.root} has nothing for {ref.filename} ({sha[:16]}...)",
                fix="re-create it with `safe-pip verify LOCK --save-evidence DIR` after the "
                "lock changed",
            )
        if entry.get("status") == "unsigned":
            return None
        rel = entry.get("provenance")
        if not isinstance(rel, str) or rel.startswith(("/", "\\")) or ".." in Path(rel).parts:
            raise CouldNotCheckError(f"evidence entry for {ref.filename} is malformed")
        try:
            data = (self.root / rel).read_bytes()
        except OSError as exc:
            raise CouldNotCheckError(
                f"cannot read evidence for {ref.filename}: {exc.strerror or exc}"
            ) from exc
        if len(data) > MAX_PROVENANCE_BYTES:
            raise CouldNotCheckError(f"evidence for {ref.filename} is too large")
        return data

    def _history_entry(self, sha256: str) -> dict[str, Any] | None:
        history = self.manifest.get("history")
        if not isinstance(history, dict):
            return None
        for entries in history.values():
            for e in entries if isinstance(entries, list) else ():
                if isinstance(e, dict) and e.get("sha256") == sha256:
                    return e
        return None

    @property
    def has_history(self) -> bool:
        """Whether the bundle carries index history (bundles saved before it did: no)."""
        return isinstance(self.manifest.get("history"), dict)

    def history_page(self, name: str, index: str) -> ProjectPage:
        """The earlier releases saved for ``name`` as a page the index-history step reads
        (one file per release, each with its provenance in this bundle, re-verified when
        used). Raises CouldNotCheckError when the bundle has no history for the project."""
        from packaging.utils import canonicalize_name

        from safe_pip.net import ProjectPage

        norm = str(canonicalize_name(name))
        history = self.manifest.get("history")
        entries = history.get(norm) if isinstance(history, dict) else None
        if not isinstance(entries, list):
            raise CouldNotCheckError(
                f"the evidence in {self.root} has no index history for {norm}",
                fix="re-create it with `safe-pip verify LOCK --save-evidence DIR` after the lock "
                "changed, or pass --no-index-history",
            )
        files: list[FileRef] = []
        for e in entries:
            if not isinstance(e, dict):
                continue
            filename, version, sha = e.get("filename"), e.get("version"), e.get("sha256")
            if not (isinstance(filename, str) and isinstance(version, str)):
                continue
            if not (isinstance(sha, str) and _hexdigest_ok(sha)):
                continue
            upload = e.get("upload_time")
            files.append(
                FileRef(
                    project=norm,
                    version=version,
                    filename=filename,
                    sha256=sha,
                    index=index,
                    upload_time=upload if isinstance(upload, str) else None,
                )
            )
        versions = tuple(dict.fromkeys(f.version for f in files))
        return ProjectPage(
            norm, tuple(files), versions, None, f"evidence:{self.root}", serves_provenance=True
        )

    def add_history(self, project: str, reads: Sequence[tuple[str, FileRef, bytes | None]]) -> None:
        """Keep the earlier releases the index-history step read for ``project``: each file
        (version, name, sha256, upload time) and its provenance as fetched (None: unsigned)."""
        entries: list[dict[str, Any]] = []
        for version, f, provenance in reads:
            sha = (f.sha256 or "").lower()
            if not _hexdigest_ok(sha) or "/" in f.filename or "\\" in f.filename:
                continue
            entry: dict[str, Any] = {
                "version": version,
                "filename": f.filename,
                "sha256": sha,
                "upload_time": f.upload_time,
            }
            if provenance is not None:
                rel = f"provenance/{sha}/{f.filename}.provenance.json"
                _atomic_write(self.root / rel, provenance)
                entry.update(status="provenance", provenance=rel)
            else:
                entry["status"] = "unsigned"
            entries.append(entry)
        with self._lock:
            self.manifest.setdefault("history", {})[project] = entries

    def add(self, project: str, version: str, result: VerificationResult) -> None:
        sha = result.sha256.lower()
        if not _hexdigest_ok(sha) or "/" in result.filename or "\\" in result.filename:
            return
        entry: dict[str, Any] = {
            "filename": result.filename,
            "project": project,
            "version": version,
        }
        if result.status is VerifyStatus.VERIFIED and result.provenance is not None:
            rel = f"provenance/{sha}/{result.filename}.provenance.json"
            _atomic_write(self.root / rel, result.provenance)
            entry.update(
                status="verified",
                provenance=rel,
                identity=result.identity.to_json() if result.identity else None,
            )
        elif result.status is VerifyStatus.UNSIGNED:
            entry["status"] = "unsigned"
        else:
            return
        with self._lock:
            self.manifest["files"][sha] = entry

    def save(self, trusted_root: bytes | None, trust_description: str) -> None:
        if trusted_root is not None:
            _atomic_write(self.root / "trusted_root.json", trusted_root)
            self.manifest["trusted_root"] = {
                "file": "trusted_root.json",
                "sha256": hashlib.sha256(trusted_root).hexdigest(),
                "source": trust_description,
            }
        self.manifest["saved_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        files = dict(sorted(self.manifest["files"].items()))
        self.manifest["files"] = files
        self.manifest.setdefault("history", {})  # this bundle carries index history
        _atomic_write(
            self.root / EVIDENCE_MANIFEST,
            (json.dumps(self.manifest, indent=2, sort_keys=False) + "\n").encode(),
        )


def trusted_root_bytes(checker: Checker) -> bytes | None:
    """The trusted_root.json the checker verifies with (None if it cannot be serialised)."""
    trust = checker.trust
    try:
        if trust.mode == "custom" and trust.path is not None:
            return trust.path.read_bytes()
        if trust.mode in ("offline", "staging"):
            from safe_pip.provenance.trust import embedded_trusted_root_path

            return embedded_trusted_root_path(staging=trust.mode == "staging").read_bytes()
        from safe_pip.provenance.trust import load_verifier

        root = load_verifier(trust)._trusted_root
        text = root._inner.to_json()
        return text.encode() if isinstance(text, str) else bytes(text)
    except Exception:
        return None


# -- the checker -------------------------------------------------------------------------------


class LockChecker(Checker):
    """The shared Checker, with provenance from saved evidence or the digest cache first."""

    def __init__(
        self,
        *,
        cache: ProvenanceCache | None = None,
        evidence: Evidence | None = None,
        verified: VerifiedBundles | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        #: bundles that verified before (permanent facts only; the verdicts are decided again)
        self.verified = verified
        self.evidence = evidence
        self.cache_hits = 0
        self.from_cache: set[str] = set()  # digests whose provenance came from the cache
        self._count_lock = threading.Lock()
        #: projects whose lock entries pin attestation-identities: the lock names the
        #: publisher, so their index history is not read (a first run stays fast)
        self.pinned: frozenset[str] = frozenset()
        #: --save-evidence: what the index-history step read, kept for the bundle
        self.keep_history = False
        self.history_reads: dict[str, dict[str, tuple[str, FileRef, bytes | None]]] = {}
        self._fetched: dict[str, bytes | None] = {}

    def verify_provenance(
        self, filename: str, sha256: str, provenance: bytes
    ) -> VerificationResult:
        """A bundle that verified before for this file under this trust root is not verified
        again (:class:`~safe_pip.lock.verified_cache.VerifiedBundles`); anything else is."""
        if self.verified is None:
            return super().verify_provenance(filename, sha256, provenance)
        hit = self.verified.get(filename, sha256, provenance)
        if hit is not None:
            return replace(hit, provenance=provenance)
        result = super().verify_provenance(filename, sha256, provenance)
        self.verified.put(provenance, result)
        return result

    def fetch_provenance(self, ref: FileRef) -> bytes | None:
        if self.evidence is not None:
            return self.evidence.provenance(ref)
        if self.cache is not None and ref.sha256:
            hit = self.cache.get(ref.sha256)
            if hit is not None:
                with self._count_lock:
                    self.cache_hits += 1
                    self.from_cache.add(ref.sha256.lower())
                return self._keep(ref, hit)
        return self._keep(ref, super().fetch_provenance(ref))

    def _keep(self, ref: FileRef, provenance: bytes | None) -> bytes | None:
        if self.keep_history and ref.sha256:
            with self._count_lock:
                self._fetched[ref.sha256.lower()] = provenance
        return provenance

    def _index_history(self, name: str, *args: Any, **kwargs: Any) -> ProjectHistory:
        from packaging.utils import canonicalize_name

        from safe_pip.policy.history import ProjectHistory

        if canonicalize_name(name) in self.pinned:
            return ProjectHistory(name, ())
        return super()._index_history(name, *args, **kwargs)

    def _history_page(self, name: str, index: str) -> ProjectPage | None:
        if self.evidence is not None:
            return self.evidence.history_page(name, index)  # saved reads, re-verified
        page = super()._history_page(name, index)
        if self.keep_history:
            with self._count_lock:  # read, even when no earlier release is on it
                self.history_reads.setdefault(str(canonicalize_name(name)), {})
        return page

    def _history_record(
        self, name: str, version: str, f: FileRef, index: str
    ) -> HistoryRecord | None:
        record = super()._history_record(name, version, f, index)
        if self.keep_history and self.evidence is None and f.sha256:
            sha = f.sha256.lower()
            with self._count_lock:
                provenance = self._fetched.get(sha)
                key = str(canonicalize_name(name))
                self.history_reads.setdefault(key, {})[sha] = (version, f, provenance)
        return record


# -- locating files on the index ---------------------------------------------------------------


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


# -- deciding with the lock's identities -------------------------------------------------------


def _code_of(verdict: Verdict) -> tuple[str, str]:
    res = verdict.verification
    detail = res.reason_code if res is not None and res.reason_code != "ok" else ""
    if res is not None and res.reason_code == HASH_MISMATCH:
        return HASH_MISMATCH, ""
    return verdict.code.value, detail


def _status_of(verdict: Verdict) -> Status:
    if verdict.code is ReasonCode.COULD_NOT_CHECK:
        return "error"
    if verdict.action is Action.REFUSE:
        return "fail"
    if verdict.action is Action.WARN:
        return "warn"
    return "ok"


#: Codes of verdicts that allowed a verified file outright (policy allowlist, history, first use).
_VERIFIED_CODES = frozenset(
    {ReasonCode.VERIFIED_ALLOWLISTED, ReasonCode.VERIFIED_KNOWN, ReasonCode.VERIFIED_FIRST_USE}
)


def apply_lock_identities(
    lock: Path, pkg: LockedPackage, f: LockedFile, verdict: Verdict, index_sha: str | None
) -> FileOutcome:
    """The outcome for one file: the policy's verdict, tightened by the lock's identities.

    The lock's ``attestation-identities`` can only make the outcome stricter: a publisher that
    does not match them, or a file without provenance, fails; a match confirms a verdict the
    policy and the history allowed (rule ``pylock attestation-identities``) and leaves every
    refusal, warning and could-not-check as it was."""
    res = verdict.verification
    code, detail = _code_of(verdict)
    if verdict.code is ReasonCode.REFUSED_QUARANTINED:
        detail = ""  # the attestation was not looked at
    out = FileOutcome(
        lock=lock,
        package=pkg,
        filename=f.filename,
        kind=f.kind,
        line=f.line or pkg.line,
        lock_sha256=f.sha256,
        status=_status_of(verdict),
        code=code,
        detail=detail,
        reason=verdict.reason,
        fix=verdict.fix,
        rule=verdict.rule,
        index_sha256=index_sha,
        identity=verdict.identity or (res.identity if res else None),
        expected=verdict.expected,
        verdict=verdict,
    )
    expected = pkg.identities
    if not expected or res is None or verdict.code is ReasonCode.REFUSED_QUARANTINED:
        return out  # a quarantined project stays refused, whatever the lock expects
    out = replace(out, expected=expected)
    names = "; ".join(e.describe() for e in expected)
    if res.status is VerifyStatus.VERIFIED and res.identity is not None:
        from safe_pip.policy.rules import classify_change, identity_matches

        if any(identity_matches(res.identity, e) for e in expected):
            # A match only confirms what the policy and the history allowed: the lock names a
            # publisher by its names, which a re-created (or transferred, renamed) repository
            # also carries, so it can never lift a refusal, a softened refusal or a
            # could-not-check (docs/verify.md "What is checked").
            if verdict.action is Action.REFUSE or verdict.code is ReasonCode.COULD_NOT_CHECK:
                return replace(
                    out,
                    expected=verdict.expected or expected,
                    reason=f"{verdict.reason} (the lock's attestation-identities name this "
                    "publisher, but a lock entry does not override a refusal by the policy or "
                    "the history)",
                )
            if verdict.code not in _VERIFIED_CODES:  # a refusal the policy softened to a warning
                return replace(
                    out,
                    expected=verdict.expected or expected,
                    reason=f"{verdict.reason} (the lock's attestation-identities name this "
                    "publisher; the policy's warning stands)",
                )
            reason = f"verified: published by {res.identity.describe()}, as the lock expects"
            status: Status = "ok"
            if verdict.project_status in WARN_STATUSES:  # archived / deprecated: still warned
                status = "warn"
                reason += f" (policy: {verdict.reason})"
            return replace(
                out,
                status=status,
                code=ReasonCode.VERIFIED_ALLOWLISTED.value,
                detail="",
                reason=reason,
                rule=LOCK_IDENTITY_RULE,
                fix="",
            )
        change = classify_change(res.identity, expected)
        why = ""
        if change is not None and change.kind in ("recreated", "renamed", "transferred"):
            why = f" ({change.detail})"  # same names, other numeric ids: say so
        return replace(
            out,
            status="fail",
            code=ReasonCode.REFUSED_UNEXPECTED_PUBLISHER.value,
            detail="",
            reason=f"published by {res.identity.describe()}, but the lock's "
            f"attestation-identities expect {names}{why}",
            rule=LOCK_IDENTITY_RULE,
            fix="if the new publisher is legitimate (check the project's announcement), "
            "update attestation-identities for this package in the lock and review the change",
        )
    if res.status is VerifyStatus.UNSIGNED:
        return replace(
            out,
            status="fail",
            code=ReasonCode.REFUSED_UNSIGNED.value,
            detail="no-provenance",
            reason=f"the index has no provenance for this file, but the lock's "
            f"attestation-identities expect {names}",
            rule=LOCK_IDENTITY_RULE,
            fix="do not install it: an attested project stopped attesting (or the index hides "
            "its provenance)",
        )
    return out


# -- the run -----------------------------------------------------------------------------------


Progress = Callable[[int, int, str], None]


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


def sdist_refusal(verdict: Verdict, pkg: LockedPackage, f: LockedFile, policy: Policy) -> Verdict:
    """``verdict``, refused (``refused-sdist``) when ``f`` is the sdist of a package the lock
    gives no wheel for and the policy does not allow sdists: installing that lock would build
    it, which install and serve refuse under ``allow-sdist = false`` (their verdicts and
    verify's agree). An sdist beside wheels is checked as it is (installers take the wheel)."""
    if (
        f.kind == "wheel"
        or f.filename.endswith(".whl")
        or policy.defaults.allow_sdist
        or not verdict.allowed
        or any(other.kind == "wheel" for other in pkg.files)
    ):
        return verdict
    return replace(
        verdict,
        action=Action.REFUSE,
        code=ReasonCode.REFUSED_SDIST,
        reason=f"{f.filename} is an sdist, the lock gives {pkg.name} {pkg.version} no wheel, "
        f"and the policy does not allow sdists (verified: {verdict.reason})",
        rule=policy.label() + " [defaults] allow-sdist",
        fix=f"lock a wheel of {pkg.name}, or set allow-sdist = true in [defaults] of the "
        "policy (install and serve then verify the sdist's build dependencies too)",
    )


# -- writing attestation-identities ------------------------------------------------------------


def lock_identity_table(identity: PublisherIdentity) -> dict[str, str]:
    """The ``attestation-identities`` table written for a verified publisher: the PEP 740 keys
    plus the numeric ``repository_id`` / ``repository_owner_id`` the certificate proved.

    With the ids pinned, :func:`safe_pip.policy.rules.identity_matches` no longer matches a
    repository that was deleted and re-created under the same name (new ids), even where no
    history exists (a fresh CI runner). PEP 751 defines only ``kind`` and defers the rest to
    PEP 740's publisher object; ``packaging.pylock`` (pip's reader) requires ``kind`` and keeps
    any other key, so the extra keys do not make the lock unreadable."""
    table = identity.to_table()
    for key in ("repository_id", "repository_owner_id"):
        value = getattr(identity, key)
        if value:
            table[key] = value
    return table


def identities_to_write(report: LockReport) -> dict[int, list[dict[str, str]]]:
    """For each pylock package (by position) without identities whose every file verified and
    was allowed: the distinct identity tables seen, first seen first."""
    by_pkg: dict[int, list[FileOutcome]] = {}
    for o in report.outcomes:
        by_pkg.setdefault(o.package.position, []).append(o)
    out: dict[int, list[dict[str, str]]] = {}
    for pkg in report.lock.packages:
        if pkg.identities is not None or pkg.unsupported is not None:
            continue
        items = by_pkg.get(pkg.position, [])
        if not items or len(items) != len(pkg.files):
            continue
        if any(
            o.status not in ("ok", "warn") or not o.verified or o.identity is None for o in items
        ):
            continue
        tables: list[dict[str, str]] = []
        for o in items:
            assert o.identity is not None
            table = lock_identity_table(o.identity)
            if table not in tables:
                tables.append(table)
        out[pkg.position] = tables
    return out


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def insert_identities(text: str, identities: dict[int, list[dict[str, str]]]) -> str:
    """``text`` with ``[[packages.attestation-identities]]`` tables appended to the given
    packages; every other byte is left as it was. Raises ConfigError when the layout is not one
    this can edit safely (checked by re-parsing)."""
    from safe_pip.sources.model import array_table_spans
    from safe_pip.sources.pylock import load_toml

    if not identities:
        return text
    nl = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    before = load_toml(text, Path("pylock.toml"))
    packages = before.get("packages", [])
    spans = array_table_spans(lines, "packages")
    if len(spans) != len(packages):
        raise ConfigError(
            "cannot add attestation-identities: the lock's [[packages]] tables could not be "
            "located line by line (inline tables?)",
            fix="write the packages as [[packages]] tables",
        )
    inserts: dict[int, str] = {}
    for pos, tables in identities.items():
        start, end = spans[pos]
        last = end - 1
        # trailing blank and comment lines belong to what follows (e.g. the next entry)
        while last > start and (not lines[last].strip() or lines[last].lstrip().startswith("#")):
            last -= 1
        block = "".join(
            nl
            + "[[packages.attestation-identities]]"
            + nl
            + "".join(f"{k} = {_toml_str(v)}{nl}" for k, v in table.items())
            for table in tables
        )
        if not lines[last].endswith(("\n", "\r")):
            block = nl + block  # the package ends the file without a final newline
        inserts[last] = block
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if i in inserts:
            out.append(inserts[i])
    new_text = "".join(out)
    after = load_toml(new_text, Path("pylock.toml"))
    expected = json.loads(json.dumps(before, default=str))
    for pos, tables in identities.items():
        expected["packages"][pos]["attestation-identities"] = tables
    if json.loads(json.dumps(after, default=str)) != expected:
        raise ConfigError(
            "cannot add attestation-identities safely to this lock's layout (the edited file "
            "would not parse to the same data)"
        )
    return new_text


def write_identities(path: Path, report: LockReport) -> list[str]:
    """Fill attestation-identities in the pylock at ``path``; return the packages written."""
    todo = identities_to_write(report)
    if not todo:
        return []
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    new_text = insert_identities(text, todo)
    mode = path.stat().st_mode & 0o7777
    _atomic_write(path, new_text.encode("utf-8"))
    os.chmod(path, mode)
    names = {p.position: p.name for p in report.lock.packages}
    return [names[pos] for pos in sorted(todo)]
