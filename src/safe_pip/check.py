"""The one pipeline every face runs: FileRef -> bytes + provenance -> verify -> decide.

``Checker`` owns the trust root, the policy, the history store and the HTTP client. It takes
file references (from pip's report, a lockfile, an index page or the command line), obtains the
file bytes (downloading into a private directory when needed) and their provenance, verifies
them with Sigstore, reads the project's known-good history (local, and on first sight the
index's earlier releases), and returns one Verdict per file. Work runs in a thread pool.

Nothing here installs anything; recording to the history is a separate, explicit step
(:meth:`Checker.record`) that a face calls only once it acts on the verdicts.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from safe_pip.errors import CouldNotCheckError, SafePipError, StaleIndexError
from safe_pip.models import (
    Action,
    FileRef,
    ReasonCode,
    Verdict,
    VerificationResult,
    VerifyStatus,
)
from safe_pip.provenance.trust import TrustConfig
from safe_pip.store.serials import SerialGuard
from safe_pip.text import clean

if TYPE_CHECKING:
    from safe_pip.lock.verified_cache import VerifiedBundles
    from safe_pip.net import Http, ProjectPage
    from safe_pip.net.pagecache import PageCache
    from safe_pip.policy.file import Policy
    from safe_pip.policy.history import HistoryRecord, ProjectHistory
    from safe_pip.store import HistoryStore

PYPI_SIMPLE = "https://pypi.org/simple/"

#: Parallel provenance reads of one project's earlier releases (index history on first sight).
HISTORY_READERS = 8
#: How many provenance answers a checker keeps (:meth:`Checker.fetch_provenance`): a run
#: reads far fewer; a long-running serve forgets the oldest.
PROVENANCE_KEPT = 4096

#: VerificationResult.reason_code of a file whose index serves no provenance at all (a mirror).
NO_PROVENANCE_SERVED = "no-provenance-served"
_MIRROR_FIX = (
    "look provenance up where it is published: --provenance-index https://pypi.org/simple/ "
    "(or an index that serves PEP 740 provenance); or verify with --evidence DIR saved where "
    "it is reachable (`safe-pip verify LOCK --save-evidence DIR`)"
)

Progress = Callable[[int, int, str], None]


def sha256_path(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Prepared:
    """A file's bytes (on disk) and its provenance, ready to verify."""

    ref: FileRef
    path: Path | None
    sha256: str | None
    provenance: bytes | None
    error: str | None = None  # could not obtain bytes or provenance: could-not-check


class Checker:
    """Verify and decide files against one trust root, policy and history."""

    def __init__(
        self,
        *,
        trust: TrustConfig,
        policy: Policy,
        store: HistoryStore | None = None,
        http: Http | None = None,
        now: datetime | None = None,
        jobs: int = 8,
        provenance_index: str | None = None,
        index_history: bool = True,
        offline: bool = False,
    ) -> None:
        self.trust = trust
        self.policy = policy
        self.store = store
        self._http = http
        self.now = now or datetime.now(timezone.utc)
        self.jobs = max(1, jobs)
        self.provenance_index = provenance_index
        self.index_history = index_history
        #: --offline: no network at all. Provenance and index history come from local evidence
        #: (the store, the provenance cache, --evidence) or the file is could-not-check.
        self.offline = offline
        #: threat T21: every index page read checks (and records) its _last-serial here.
        self.serials = SerialGuard(store)
        #: Bundles that verified before, by (trust root, file name, sha256, provenance bytes):
        #: permanent facts only, every verdict is still decided from them (install, verify).
        self.verified: VerifiedBundles | None = None
        #: Index pages kept between runs (verify): each page is still asked for every run, with
        #: a conditional request; a 304 reuses the kept parsed page (docs/adr/0014).
        self.pages: PageCache | None = None
        self._history_lock = threading.Lock()
        self._history_cache: dict[tuple[str, str | None, str | None], ProjectHistory] = {}
        #: project pages by (index, name): each is fetched and parsed once per run
        self._pages: dict[tuple[str, str], ProjectPage | Exception] = {}
        #: indexes whose pages showed they serve no PEP 740 provenance at all (mirrors)
        self._serves_none: set[str] = set()
        self._page_locks: dict[tuple[str, str], threading.Lock] = {}
        self._reading: dict[tuple[str, str | None, str | None], threading.Lock] = {}
        self._record_cache: dict[
            tuple[str, str, str], HistoryRecord | CouldNotCheckError | None
        ] = {}
        #: provenance read in this checker's life (a run; a serve process), by where it was
        #: read and the file's sha256, so the index history and the decision of a file read it
        #: once: answers only (a failure is read again), at most PROVENANCE_KEPT, oldest first
        #: out. Never written anywhere: the next run reads it again.
        self._provenance: OrderedDict[tuple[str, str, str, str], bytes | None] = OrderedDict()
        self._provenance_locks: dict[tuple[str, str, str, str], threading.Lock] = {}

    # -- plumbing -----------------------------------------------------------------------------

    @property
    def http(self) -> Http:
        if self._http is None:
            from safe_pip.net import Http

            self._http = Http(offline=self.offline)
        return self._http

    def project_page(self, index: str, name: str) -> ProjectPage:
        """The project's page on ``index``, fetched and parsed ONCE per run, whoever asks
        (locating lock files, provenance look-ups on a provenance index, index history).

        Parallel callers of the same page wait for the one read. The serial guard sees the page
        once (threat T21). Raises what the read raised (ProjectNotFound, NetworkError,
        StaleIndexError, ...), the same exception again for every later caller."""
        from safe_pip.net import SimpleIndex

        key = (index, str(canonicalize_name(name)))
        with self._history_lock:
            lock = self._page_locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._pages.get(key)
            if cached is None:
                try:
                    cached = SimpleIndex(self.http, index, pages=self.pages).project(name)
                    self.serials.observe_page(index, cached)
                except Exception as exc:  # remembered and re-raised: never read twice
                    cached = exc
                self._pages[key] = cached
        if isinstance(cached, Exception):
            raise cached
        return cached

    def offer_page(self, index: str, page: ProjectPage) -> None:
        """Take ``page``, read from ``index`` by another reader of this run (the verifying
        index, for the page it serves), as this checker's read of it: the project's index
        history is then read from the very page served, not fetched a second time. The caller
        observed its serial (threat T21)."""
        key = (index, str(canonicalize_name(page.name)))
        with self._history_lock:
            lock = self._page_locks.setdefault(key, threading.Lock())
        with lock:
            self._pages[key] = page

    def verify_provenance(
        self, filename: str, sha256: str, provenance: bytes
    ) -> VerificationResult:
        """Verify ``provenance`` for the file ``filename`` whose bytes hash to ``sha256``. A
        bundle that verified before for this file under this trust root is not verified again
        (:class:`~safe_pip.lock.verified_cache.VerifiedBundles`, when ``verified`` is set)."""
        from safe_pip.provenance.attestation import verify_provenance
        from safe_pip.provenance.trust import load_verifier

        if self.verified is not None:
            hit = self.verified.get(filename, sha256, provenance)
            if hit is not None:
                return replace(hit, provenance=provenance)
        result = verify_provenance(filename, sha256, provenance, load_verifier(self.trust))
        if self.verified is not None:
            self.verified.put(provenance, result)
        return result

    # -- obtaining bytes and provenance -----------------------------------------------------

    def fetch_provenance(self, ref: FileRef) -> bytes | None:
        """The provenance for ``ref``: None when the index says there is none (unsigned).

        Files without a provenance URL (mirrors, --find-links, local files) are looked up on
        the provenance index by (name, version, filename). Raises CouldNotCheckError.
        """
        from safe_pip.net import fetch_provenance

        if self.offline and not _local_source(ref, self.provenance_index):
            raise CouldNotCheckError(
                f"the provenance of {ref.filename} is not on this machine (not in the provenance "
                "cache or the --evidence directory), and --offline allows no network to fetch it",
                fix="save evidence online (`safe-pip verify LOCK --save-evidence DIR`) and verify "
                "with --evidence DIR, or run without --offline",
            )
        direct = bool(ref.provenance_url) or bool(ref.index and _is_pypi(ref.index))
        if not direct and self.provenance_index is None:
            return None
        key = (
            ref.provenance_url or "",
            ref.index or self.provenance_index or "",
            ref.filename,
            (ref.sha256 or "").lower(),
        )
        with self._history_lock:
            lock = self._provenance_locks.setdefault(key, threading.Lock())
        with lock:  # parallel readers of one provenance (history, decision) wait for one read
            with self._history_lock:
                if key in self._provenance:
                    return self._provenance[key]
            if direct:
                got = fetch_provenance(self.http, ref)
            else:
                assert self.provenance_index is not None
                got = self._provenance_from_index(ref, self.provenance_index)
            with self._history_lock:
                self._provenance[key] = got
                while len(self._provenance) > PROVENANCE_KEPT:
                    old, _ = self._provenance.popitem(last=False)
                    self._provenance_locks.pop(old, None)
        return got

    def _provenance_from_index(self, ref: FileRef, index_url: str) -> bytes | None:
        from safe_pip.net import fetch_provenance

        if _is_pypi(index_url):
            return fetch_provenance(self.http, replace(ref, index=index_url, provenance_url=None))
        from safe_pip.net import ProjectNotFound

        try:
            page = self.project_page(index_url, ref.project)  # once per run, not once per file
        except ProjectNotFound:
            # The provenance index has no such project (404), so no provenance for this file:
            # the same answer as its page listing the project without the file, and as index
            # history reads the 404 (_history_page). Never could-not-check: no retry changes
            # it, and whether a file of a project only on another index is allowed must not
            # depend on whether the provenance index happens to list anything for the name.
            return None
        if page.serves_provenance is False:
            with self._history_lock:
                self._serves_none.add(index_url)
        candidate = page.file(ref.filename)
        if candidate is None or not candidate.provenance_url:
            return None
        return fetch_provenance(self.http, candidate)

    def prepare(self, ref: FileRef, download_dir: Path | None) -> Prepared:
        """Get the bytes (hash them) and the provenance of one file; never raises."""
        path: Path | None = None
        sha: str | None = None
        try:
            if ref.local_path:
                path = Path(ref.local_path)
                sha = sha256_path(path)
            elif ref.url:
                if download_dir is None:
                    raise CouldNotCheckError(f"no download directory for {ref.filename}")
                path = download_dir / ref.filename
                cap = self.http.limits.max_file_bytes
                if ref.size is not None and 0 <= ref.size < cap:
                    cap = ref.size  # never more than the index declared
                sha = self.http.download(ref.url, path, max_bytes=cap)
            elif ref.sha256:
                sha = ref.sha256.lower()  # lockfile-only: verify the attestation for this digest
            else:
                raise CouldNotCheckError(f"{ref.filename}: neither a file nor a URL to fetch")
        except SafePipError as exc:
            return Prepared(ref, None, None, None, error=exc.message)
        except OSError as exc:
            return Prepared(ref, None, None, None, error=f"cannot read {ref.filename}: {exc}")
        try:
            provenance = self.fetch_provenance(ref)
        except SafePipError as exc:
            return Prepared(ref, path, sha, None, error=exc.message)
        except Exception as exc:  # fail closed
            return Prepared(ref, path, sha, None, error=f"{type(exc).__name__}: {exc}")
        return Prepared(ref, path, sha, provenance)

    def verify_prepared(self, prep: Prepared) -> VerificationResult:
        ref = prep.ref
        if prep.error is not None or prep.sha256 is None:
            return VerificationResult(
                filename=ref.filename,
                sha256=prep.sha256 or (ref.sha256 or ""),
                status=VerifyStatus.ERROR,
                reason=f"could not check: {prep.error}",
                reason_code="could-not-check",
            )
        if ref.sha256 and ref.sha256.lower() != prep.sha256:
            return VerificationResult(
                filename=ref.filename,
                sha256=prep.sha256,
                status=VerifyStatus.INVALID,
                reason=(
                    f"the file's sha256 {prep.sha256[:16]}... differs from the hash the index "
                    f"or lockfile declared ({ref.sha256[:16]}...)"
                ),
                reason_code="hash-mismatch",
            )
        if prep.provenance is None:
            mirror = self._mirror_without_provenance(ref)
            if mirror is not None:
                return VerificationResult(
                    filename=ref.filename,
                    sha256=prep.sha256,
                    status=VerifyStatus.UNSIGNED,
                    reason=mirror,
                    reason_code=NO_PROVENANCE_SERVED,
                )
            return VerificationResult(
                filename=ref.filename,
                sha256=prep.sha256,
                status=VerifyStatus.UNSIGNED,
                reason=self._unsigned_reason(ref),
                reason_code="no-provenance",
            )
        return self.verify_provenance(ref.filename, prep.sha256, prep.provenance)

    def _mirror_without_provenance(self, ref: FileRef) -> str | None:
        """Why "no provenance" says nothing here, or None: the file's index serves no PEP 740
        provenance at all (a mirror that drops it: no ``provenance`` key on its page, API
        version below 1.3), and no provenance index that does serve it was asked."""
        if ref.index_serves_provenance is not False:
            return None
        where = clean(ref.index or "the file's index")
        prov = self.provenance_index
        if ref.index and _is_pypi(ref.index):
            pass  # a page at PyPI's address without provenance keys: a mirror behind its name
        elif (
            prov is not None and prov not in self._serves_none and not _same_index(prov, ref.index)
        ):
            return None  # a provenance index that serves provenance was asked and has none
        elif prov is not None and not _same_index(prov, ref.index):
            where = f"{where} nor the provenance index {clean(prov)}"
        return (
            f"this index serves no provenance: {where} lists no PEP 740 provenance for any "
            f"file of {ref.project} (a mirror that drops it), so whether {ref.filename} is "
            "attested cannot be told here; see --provenance-index"
        )

    def _unsigned_reason(self, ref: FileRef) -> str:
        """Where safe-pip looked for provenance and found none (a 404, never an error)."""
        if ref.provenance_url:
            return "the index has no provenance (PEP 740 attestation) for this file"
        if ref.index and _is_pypi(ref.index):
            return "PyPI has no provenance (PEP 740 attestation) for this file"
        if self.provenance_index is not None:
            where = "PyPI" if _is_pypi(self.provenance_index) else clean(self.provenance_index)
            return (
                "the file's index lists no provenance, and the provenance index "
                f"({where}) has none for this file"
            )
        return (
            "the file's index lists no provenance for this file (no other index was asked: "
            "name one with --provenance-index URL, e.g. PyPI behind a PyPI mirror)"
        )

    # -- history ------------------------------------------------------------------------------

    def history_for(
        self, project: str, exclude_version: str | None = None, *, index: str | None = None
    ) -> ProjectHistory:
        """Known-good history of ``project`` as one sequence in publication order: the local
        store's records, and, while nothing attested is recorded here, the provenance of the
        project's most recently published releases on the index (``index``, the index the file
        came from, else the provenance index). The window is the same for every file of the
        project (``exclude_version`` is accepted for older callers and ignored): where the file
        being decided sits in the sequence is its own publication time, not its version."""

        del exclude_version
        name = canonicalize_name(project)
        source = index or self.provenance_index
        key = (name, source, None)
        with self._history_lock:
            cached = self._history_cache.get(key)
            if cached is not None:
                return cached
            # one reader per project: the files of a project decided in parallel wait for it
            reading = self._reading.setdefault(key, threading.Lock())
        with reading:
            with self._history_lock:
                cached = self._history_cache.get(key)
            if cached is not None:
                return cached
            return self._read_history(name, source, key)

    def _read_history(
        self, name: str, source: str | None, key: tuple[str, str | None, str | None]
    ) -> ProjectHistory:
        from safe_pip.policy.history import ProjectHistory

        hist = self.store.project(name) if self.store is not None else ProjectHistory(name, ())
        if not hist.was_attested() and self.index_history:
            # No attested release recorded here (none at all, or only unsigned ones allowed
            # by an exception): the index's releases still count, so a machine that once
            # installed an old unsigned release is no easier to fool.
            hist = hist.with_records(self._index_history(name, source).records)
        with self._history_lock:
            self._history_cache[key] = hist
        return hist

    def forget_cached_histories(self) -> None:
        """Drop every cached history (the policy changed: its index-history-depth and minimum
        release age shape the window read from the index)."""
        with self._history_lock:
            self._history_cache.clear()
            self._pages.clear()

    def forget_cached_history(self, project: str) -> None:
        """Drop what this checker cached of ``project``'s history (after it was recorded, or
        once the store says it changed, or after it could not be read), so the next decision
        reads it again."""
        name = canonicalize_name(project)
        with self._history_lock:
            for key in [k for k in self._history_cache if k[0] == name]:
                del self._history_cache[key]
            # the project's pages (its window) and any provenance that could not be read are
            # read again
            for pkey in [k for k in self._pages if k[1] == name]:
                del self._pages[pkey]
            for rkey in [
                k for k, v in self._record_cache.items() if isinstance(v, CouldNotCheckError)
            ]:
                del self._record_cache[rkey]

    def _index_history(self, name: str, index: str | None) -> ProjectHistory:
        """Verify the provenance of the project's ``index-history-depth`` most recently
        published releases on the index (by the index's upload-time; by version where the
        page gives none), one file per release, each placed in the sequence at its
        attestation's transparency-log time (else its upload-time), plus the anchor: the most
        recent release uploaded longer ago than ``index-history-anchor-age`` (ADR 0012
        "Anchor"), so a burst of new releases cannot push the earlier publisher out.

        A release whose provenance does not verify proves nothing either way and is left
        out; one that cannot be fetched makes the history unreadable (could not check).
        """
        from safe_pip.policy.history import ProjectHistory

        depth = self.policy.defaults.index_history_depth
        if depth <= 0 or index is None:
            return ProjectHistory(name, ())
        page = self._history_page(name, index)
        if page is None:
            return ProjectHistory(name, ())
        from safe_pip.policy.rules import smallest_min_age, too_new_by_upload_time

        by_version: dict[Version, list[FileRef]] = {}
        # a page lists many files per version (wheels per platform): each version string is
        # parsed, and its smallest minimum age found, once
        versions: dict[str, tuple[Version | None, tuple[timedelta, str]]] = {}
        for f in page.files:
            known = versions.get(f.version)
            if known is None:
                age = smallest_min_age(self.policy, f.project, f.version)
                known = versions[f.version] = (_version(f.version), age)
            v, age = known
            # Yanked releases count: they were still published by their publisher, and
            # yanking the attested ones must not wipe the pattern a new publisher breaks.
            # Files the index's upload-time already shows too new to install are not read
            # (never verified, as everywhere else): they join the window once old enough.
            if (
                v is None
                or too_new_by_upload_time(f, self.policy, self.now, min_age=age) is not None
            ):
                continue
            by_version.setdefault(v, []).append(f)
        recent = _most_recent(by_version, depth)
        anchor_age = self.policy.defaults.index_history_anchor_age
        anchor = _anchor(by_version, self.now - anchor_age) if anchor_age > timedelta(0) else None
        if anchor is not None:
            version, old_files = anchor
            # ADR 0012 "Anchor": the window also holds the most recent release uploaded before
            # the anchor age, read from its files uploaded then (a file added to that release
            # later, e.g. by whoever took the project over, is not what anchors it)
            by_version[version] = old_files
            if version not in recent:
                recent.append(version)
        picks = [(str(v), by_version[v]) for v in recent]
        return ProjectHistory(name, self._read_releases(name, picks, index))

    def _read_releases(
        self, name: str, releases: Sequence[tuple[str, Sequence[FileRef]]], index: str
    ) -> tuple[HistoryRecord, ...]:
        """The history records of earlier releases: ONE provenance read per release (its
        publisher is what counts; a file the index lists with provenance first, the one it
        says was uploaded first among those, then a wheel), the releases read in parallel.
        Order is kept; a release whose provenance does not verify is left out; the first
        release that cannot be read raises (could not check). A release is attested when any
        of its files is: an unsigned file added to an attested release later (a stolen upload
        token) must not make it read as unsigned. And a release is read through its EARLIEST
        upload: a publisher who took the project over and added a signed wheel whose name
        sorts first (``py2.py3``) to each earlier release must not make those releases read
        as theirs (the window would then be one continuous new publisher). The index sets
        upload-time; an uploader cannot back-date it. A file without one comes last."""

        def preference(f: FileRef) -> tuple[bool, datetime, bool, str]:
            uploaded = _upload_time(f) or _NO_UPLOAD_TIME
            return (not f.provenance_url, uploaded, not f.filename.endswith(".whl"), f.filename)

        picks = [
            (version, sorted(files, key=preference)[0]) for version, files in releases if files
        ]

        def read(pick: tuple[str, FileRef]) -> HistoryRecord | None:
            return self._history_record(name, pick[0], pick[1], index)

        if len(picks) <= 1:
            results = [read(p) for p in picks]
        else:
            with ThreadPoolExecutor(max_workers=min(len(picks), HISTORY_READERS)) as pool:
                results = list(pool.map(read, picks))
        return tuple(r for r in results if r is not None)

    def _history_page(self, name: str, index: str) -> ProjectPage | None:
        """The project's page on ``index``, read once per run; None when the index has no
        such project. Any other failure raises CouldNotCheckError: a history that could not
        be read must not turn into "first use" (fail closed)."""
        from safe_pip.net import ProjectNotFound

        try:
            return self.project_page(index, name)  # the same read as every other use
        except ProjectNotFound:
            return None
        except StaleIndexError:
            raise  # T21: a stale page is no history either
        except Exception as exc:
            raise _history_unreadable(name, index, exc) from None

    def _history_record(
        self, name: str, version: str, f: FileRef, index: str
    ) -> HistoryRecord | None:
        """What an earlier release's provenance proves (verified once per run and file).

        None when that provenance does not verify (an old broken attestation proves nothing
        either way). Raises CouldNotCheckError when it cannot be fetched: unreadable history
        is never treated as "no history"."""
        from safe_pip.policy.history import HistoryRecord

        if not f.sha256:
            return None
        key = (index, f.filename, f.sha256.lower())
        with self._history_lock:
            if key in self._record_cache:
                cached = self._record_cache[key]
                if isinstance(cached, CouldNotCheckError):
                    raise cached
                return cached
        from safe_pip.policy.rules import publication_time

        record: HistoryRecord | CouldNotCheckError | None = None
        try:
            prov = self.fetch_provenance(f)
            identity = None
            build = None
            ok = True
            res = VerificationResult(f.filename, f.sha256.lower(), VerifyStatus.UNSIGNED, "")
            if prov is not None:
                res = self.verify_provenance(f.filename, f.sha256.lower(), prov)
                ok = res.verified
                identity = res.identity
                build = res.build
            if ok:
                when, where = publication_time(f, res)
                record = HistoryRecord(
                    project=name,
                    version=version,
                    filename=f.filename,
                    sha256=f.sha256.lower(),
                    identity=identity,
                    seen_at=self.now,
                    index=index,
                    source="index",
                    build=build,
                    published_at=when,
                    published_from="log" if where == "log" else ("index" if when else None),
                )
        except Exception as exc:
            record = _history_unreadable(name, index, exc, f.filename)
        with self._history_lock:
            self._record_cache[key] = record
        if isinstance(record, CouldNotCheckError):
            raise record
        return record

    # -- deciding -----------------------------------------------------------------------------

    def decide(self, ref: FileRef, result: VerificationResult) -> Verdict:
        from safe_pip.policy.rules import decide

        try:
            if result.status is VerifyStatus.ERROR:
                history = self._empty_history(ref.project)
            else:
                history = self.history_for(ref.project, index=ref.index)
            verdict = decide(ref, result, self.policy, history, self.now)
            if result.reason_code == NO_PROVENANCE_SERVED and verdict.action is Action.REFUSE:
                # not "unsigned": nothing here can tell whether it is signed
                verdict = _could_not_check(
                    ref, result, result.reason, "provenance source", _MIRROR_FIX
                )
        except CouldNotCheckError as exc:
            verdict = _could_not_check(ref, result, exc.message, "index history", exc.fix or "")
        except SafePipError:
            raise
        except Exception as exc:  # fail closed
            reason = f"could not decide: {type(exc).__name__}: {exc}"
            verdict = _could_not_check(ref, result, reason, "internal", "")
        return apply_project_status(ref, replace(verdict, verification=result))

    def _empty_history(self, project: str) -> ProjectHistory:
        from safe_pip.policy.history import ProjectHistory

        return ProjectHistory(canonicalize_name(project), ())

    def check(
        self,
        refs: Sequence[FileRef],
        *,
        download_dir: Path | None = None,
        progress: Progress | None = None,
    ) -> list[Verdict]:
        """Verdicts for ``refs`` (same order). Fetching and verification run in parallel."""
        total = len(refs)
        done = 0
        lock = threading.Lock()

        def one(ref: FileRef) -> Verdict:
            nonlocal done
            if _status(ref) == QUARANTINED:  # refused whatever it says: not even downloaded
                verdict = quarantined_verdict(ref, ref.sha256 or "")
            else:
                prep = self.prepare(ref, download_dir)
                result = self.verify_prepared(prep)
                verdict = self.decide(ref, result)
            if progress is not None:
                with lock:
                    done += 1
                    progress(done, total, ref.filename)
            return verdict

        from safe_pip.policy.provenance_state import merge_release_states

        if total <= 1 or self.jobs == 1:
            return self.one_decision(merge_release_states([one(r) for r in refs]), refs)
        with ThreadPoolExecutor(max_workers=min(self.jobs, total)) as pool:
            return self.one_decision(merge_release_states(list(pool.map(one, refs))), refs)

    def one_decision(self, verdicts: list[Verdict], refs: Sequence[FileRef]) -> list[Verdict]:
        """Verdicts decided together, settled as one window of each project's sequence
        (:func:`safe_pip.policy.rules.one_decision`): the histories are those decide() used
        (cached); a project whose history cannot be read was refused already."""
        from safe_pip.policy.rules import one_decision

        histories: dict[str, ProjectHistory] = {}
        # only projects with a file allowed from history can change (the history is cached)
        wanted = {
            canonicalize_name(v.project)
            for v in verdicts
            if v.allowed and v.code in _HISTORY_DECIDED
        }
        for ref in refs:
            name = canonicalize_name(ref.project)
            if name in histories or name not in wanted:
                continue
            try:
                histories[name] = self.history_for(name, index=ref.index)
            except SafePipError:
                continue
        return one_decision(verdicts, histories, self.policy, self.now)

    def record(self, verdicts: Iterable[Verdict], *, index: str | None = None) -> None:
        """Remember allowed files in the history (verified identities and allowed unsigned).

        Only plain ALLOW verdicts are remembered (a warned publisher change keeps warning, as
        :func:`safe_pip.policy.rules.history_records_for` says), and ALLOW verdicts that only
        the project's archived / deprecated status turned into WARN (:func:`recordable`). Each
        project is recorded with
        a compare-and-set (:meth:`HistoryStore.update`): a first-use trust decided against an
        empty history is not recorded when another run recorded a different publisher for the
        project in the meantime (threat T20); that raises RefusedError after the other
        projects are recorded."""
        if self.store is None:
            return
        from safe_pip.errors import RefusedError
        from safe_pip.policy.rules import one_first_use_publisher

        groups: dict[str, list[Verdict]] = {}
        # the one-publisher rule again, for callers that decided file by file (serve)
        for v in one_first_use_publisher(list(verdicts)):
            if recordable(v) and v.sha256:
                groups.setdefault(canonicalize_name(v.project), []).append(v)
        clashes: list[str] = []
        for name, group in groups.items():
            records = [_record_of(v, name, index, self.now) for v in group]

            def cas(
                history: ProjectHistory,
                group: list[Verdict] = group,
                records: list[HistoryRecord] = records,
            ) -> tuple[str | None, list[HistoryRecord]]:
                clash = _raced_first_use(history, group, records)
                return (clash, []) if clash else (None, records)

            clash = self.store.update(name, cas)
            self.forget_cached_history(name)
            if clash:
                clashes.append(clash)
        if clashes:
            raise RefusedError(
                "the history changed while this run was deciding: " + "; ".join(clashes),
                fix="run again: the publisher recorded first is now the known one",
            )


# -- PEP 792 project status (threat T25) -----------------------------------------------------

QUARANTINED = "quarantined"
#: Statuses that turn an allowed file into a warning (PEP 792: installers MAY warn).
WARN_STATUSES = frozenset({"archived", "deprecated"})
#: Codes of verdicts the policy allowed outright (a WARN from the policy itself carries a
#: refused-* code: a softened publisher change or attestation downgrade).
_ALLOWED_CODES = frozenset(
    {
        ReasonCode.VERIFIED_ALLOWLISTED,
        ReasonCode.VERIFIED_FIRST_USE,
        ReasonCode.VERIFIED_KNOWN,
        ReasonCode.UNSIGNED_ALLOWED,
    }
)


def _status(ref: FileRef) -> str | None:
    status = (ref.project_status or "").strip().lower()
    return status if status and status != "active" else None


def _status_text(ref: FileRef) -> str:
    where = f" on {ref.index}" if ref.index else ""
    text = f"the index{where} marks {ref.project} as {_status(ref)} (PEP 792)"
    if ref.project_status_reason:
        text += f": {ref.project_status_reason}"
    return text


def quarantined_verdict(ref: FileRef, sha256: str) -> Verdict:
    """The refusal of a file of a quarantined project, whatever its attestation says."""
    return Verdict(
        project=ref.project,
        version=ref.version,
        filename=ref.filename,
        sha256=sha256,
        action=Action.REFUSE,
        code=ReasonCode.REFUSED_QUARANTINED,
        reason=f"{_status_text(ref)}; a quarantined project is considered unsafe (e.g. "
        "malware) and its files are refused whatever their attestation says",
        rule="index project-status",
        fix=f"there is no override for a quarantined project: remove {ref.project} from what "
        "you install, or run again once the index lifts the quarantine",
        project_status=QUARANTINED,
        project_status_reason=ref.project_status_reason,
    )


def apply_project_status(ref: FileRef, verdict: Verdict) -> Verdict:
    """``verdict`` adjusted for the project's PEP 792 status on the index (threat T25).

    quarantined: refused (refused-quarantined), whatever the attestation says. archived /
    deprecated: an ALLOW becomes WARN, the status and its reason appended to the reason (a WARN
    or REFUSE stays what it is, the status noted). Any other status, known or not, is decided
    like active and noted in the reason."""
    status = _status(ref)
    if status is None:
        return verdict
    if status == QUARANTINED:
        return replace(
            quarantined_verdict(ref, verdict.sha256),
            identity=verdict.identity,
            verification=verdict.verification,
        )
    if status in WARN_STATUSES:
        note = _status_text(ref)
        if status == "deprecated":
            note += "; it may have been superseded by another project"
        else:
            note += "; it expects no further releases"
    else:
        note = f"{_status_text(ref)}, a status safe-pip does not know: decided as active"
    action = verdict.action
    if action is Action.ALLOW and status in WARN_STATUSES:
        action = Action.WARN
    return replace(
        verdict,
        action=action,
        reason=f"{verdict.reason}; {note}",
        project_status=status,
        project_status_reason=ref.project_status_reason,
    )


def recordable(v: Verdict) -> bool:
    """Whether a verdict may go into the known-good history: a plain ALLOW, or an ALLOW that
    only the project's archived / deprecated status turned into WARN (the file verified and the
    policy allowed it; the warning is about the project's future, not about this file, and it
    is repeated on every run because the status is read from the page each time), or one that
    only notes a build-context change (recorded, so the new build becomes the history)."""
    if v.action is Action.ALLOW:
        return True
    return (
        v.action is Action.WARN
        and v.code in _ALLOWED_CODES
        and (v.project_status in WARN_STATUSES or bool(v.build_changes))
    )


def _record_of(v: Verdict, name: str, index: str | None, now: datetime) -> HistoryRecord:
    """The history record of an allowed verdict (:func:`safe_pip.policy.rules.record_of`)."""
    from safe_pip.policy.rules import record_of

    return replace(record_of(v, now, index), project=name)


#: Verdicts that depend on the history they were decided against (an allowlisted file does
#: not: its [[package]] rule decided).
_HISTORY_DECIDED = frozenset({ReasonCode.VERIFIED_FIRST_USE, ReasonCode.VERIFIED_KNOWN})


def _raced_first_use(
    history: ProjectHistory, group: Sequence[Verdict], records: Sequence[HistoryRecord]
) -> str | None:
    """Why recording ``group`` (as ``records``, same order) into the stored ``history`` (read
    inside the write transaction) would put a publisher change into the sequence, or None.

    A first-use or known verdict was decided against a history with one publisher; if the
    stored history now says otherwise (another run recorded another publisher meanwhile),
    recording it would trust a second publisher: refused, nothing of the project recorded."""
    from safe_pip.policy.rules import sequence_change

    if not history.was_attested():
        return None
    for v, rec in zip(group, records, strict=True):
        if v.code not in _HISTORY_DECIDED or v.identity is None:
            continue
        found = sequence_change((*history.records, rec), (rec,))
        if found is not None:
            return (
                f"{v.filename} was allowed as signed by {v.identity.describe()}, but the "
                f"history of {history.project} now says otherwise (at {found.where()}: "
                f"{found.change.detail}); nothing of {history.project} was recorded by this run"
            )
    return None


def _could_not_check(
    ref: FileRef, result: VerificationResult, reason: str, rule: str, fix: str
) -> Verdict:
    """A refusal because the decision itself could not be made (never an allow)."""
    return Verdict(
        project=ref.project,
        version=ref.version,
        filename=ref.filename,
        sha256=result.sha256,
        action=Action.REFUSE,
        code=ReasonCode.COULD_NOT_CHECK,
        reason=reason,
        rule=rule,
        identity=result.identity,
        fix=fix,
    )


# sorts after every real upload-time (a file whose index gives none is read last)
_NO_UPLOAD_TIME = datetime.max.replace(tzinfo=timezone.utc)


def _history_unreadable(
    name: str, index: str, exc: BaseException, filename: str | None = None
) -> CouldNotCheckError:
    from safe_pip.net import OfflineError

    what = f"the provenance of {filename}" if filename else "its project page"
    if isinstance(exc, OfflineError):
        return CouldNotCheckError(
            f"{name}'s index history (the publishers of its earlier releases on {index}) is "
            f"not on this machine, and --offline allows no network to read {what}",
            fix="pass --no-index-history to decide from this machine's history alone, import a "
            "baseline (`safe-pip history import FILE`), or run without --offline",
        )
    detail = exc.message if isinstance(exc, SafePipError) else f"{type(exc).__name__}: {exc}"
    return CouldNotCheckError(
        f"could not read {name}'s earlier releases on {index} ({what}) to check its "
        f"publisher history: {detail}",
        fix="retry when the index answers; or, to decide on first use without the index's "
        "history, pass --no-index-history (or set index-history-depth = 0)",
    )


def _most_recent(by_version: dict[Version, list[FileRef]], depth: int) -> list[Version]:
    """The ``depth`` most recently published releases: by the earliest upload-time of each
    release's files where every release has one, else (a page without upload-times, e.g. PEP
    503 HTML) by version."""
    times: dict[Version, datetime] = {}
    for v, files in by_version.items():
        stamps = [t for t in (_upload_time(f) for f in files) if t is not None]
        if stamps:
            times[v] = min(stamps)
    if len(times) == len(by_version):
        return sorted(by_version, key=lambda v: (times[v], v), reverse=True)[:depth]
    return sorted(by_version, reverse=True)[:depth]


def _anchor(
    by_version: dict[Version, list[FileRef]], before: datetime
) -> tuple[Version, list[FileRef]] | None:
    """The index-history window's anchor (ADR 0012 "Anchor"): the most recently published
    release whose files uploaded before ``before`` (by the index's upload-time) include one
    listed with provenance, else the most recently published such release at all, with those
    files only. None when no release was uploaded before then; a release whose files carry
    no upload-time (a PEP 503 page) cannot be anchored."""
    old: dict[Version, tuple[datetime, list[FileRef]]] = {}
    for v, files in by_version.items():
        dated = [(t, f) for f, t in ((f, _upload_time(f)) for f in files) if t is not None]
        kept = [f for t, f in dated if t < before]
        if kept:
            old[v] = (min(t for t, _ in dated), kept)
    if not old:
        return None
    signed = [v for v, (_, files) in old.items() if any(f.provenance_url for f in files)]
    pool = signed or list(old)
    best = max(pool, key=lambda v: (old[v][0], v))
    return best, old[best][1]


def _upload_time(f: FileRef) -> datetime | None:
    if not f.upload_time:
        return None
    try:
        when = datetime.fromisoformat(f.upload_time.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _version(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _local_source(ref: FileRef, provenance_index: str | None) -> bool:
    """Whether ``ref``'s provenance would be read from this machine (file:// URLs only)."""
    if ref.provenance_url:
        return ref.provenance_url.startswith("file:")
    index = ref.index if ref.index and _is_pypi(ref.index) else provenance_index
    return bool(index and index.startswith("file:"))


def _same_index(a: str | None, b: str | None) -> bool:
    return bool(a and b and a.rstrip("/") == b.rstrip("/"))


def _is_pypi(url: str) -> bool:
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    return host in ("pypi.org", "test.pypi.org", "files.pythonhosted.org")


def default_jobs() -> int:
    """Worker threads: the work is mostly waiting on the network (verification itself is ~1 ms
    a file), so several per core."""
    return min(32, (os.cpu_count() or 2) * 8)
