"""What a verify run found: one outcome per locked file (or entry), per lock, per run; the
lock-level problem codes; the options of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from safe_pip.errors import EXIT_COULD_NOT_CHECK, EXIT_OK, EXIT_REFUSED
from safe_pip.models import PublisherIdentity, Verdict
from safe_pip.sources.model import Lock, LockedPackage

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

    @property
    def file(self) -> Path:
        """The file ``line`` is a line of: the lock, or the file nested in it (-r / -c) that
        names the entry."""
        return self.package.source or self.lock

    def to_json(self) -> dict[str, Any]:
        res = self.verdict.verification if self.verdict else None
        return {
            "lock": str(self.lock),
            "file": str(self.file),
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
