"""The shared :class:`safe_pip.check.Checker` for lock runs: provenance from saved evidence,
the digest cache or bundles that verified before; the index-history reads kept for an evidence
bundle."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from safe_pip.check import Checker
from safe_pip.lock.evidence import Evidence
from safe_pip.lock.provenance_cache import ProvenanceCache
from safe_pip.models import FileRef

if TYPE_CHECKING:
    from safe_pip.lock.verified_cache import VerifiedBundles
    from safe_pip.net import ProjectPage
    from safe_pip.policy.history import HistoryRecord, ProjectHistory


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
        self.verified = verified  # (Checker.verify_provenance uses it)
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
