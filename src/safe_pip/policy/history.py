"""The known-good history of a project, as pure data (no I/O, no clock).

A :class:`HistoryRecord` is one distribution file seen before: which project, version, file and
sha256, who published it (``identity``; ``None`` when it was seen unsigned), when it was
*published* (``published_at``, and where that time comes from: ``published_from`` is ``"log"``
for the transparency log's integrated time of its attestation, ``"index"`` for the index's
upload-time), when this machine saw it (``seen_at``), from which index, and whether this
machine installed/verified it (``source="local"``) or safe-pip read it from the index's
releases on first sight of the project (``source="index"``).

**History is a sequence** (docs/policy.md): :class:`ProjectHistory` keeps its
records in publication order (:meth:`HistoryRecord.order_key`), never version order, so the
decision can walk the project's publishers release by release
(:func:`safe_pip.policy.rules.sequence_change`) instead of pooling them into a set of "known"
publishers. A record without a publication time (written before schema 3, or an unsigned file
whose index gave no upload-time) is placed at the time it was seen, which is never earlier
than its publication. The store (:mod:`safe_pip.store`) persists these records; this
module never touches disk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from safe_pip.models import GITHUB, GITLAB, GOOGLE, BuildContext, PublisherIdentity

Source = Literal["local", "index"]
#: Where a publication time comes from: the transparency log's integrated time of the file's
#: attestation (signed by the log; cannot be back-dated by an uploader), or the index's
#: upload-time (PEP 700; index-asserted).
PublishedFrom = Literal["log", "index"]


#: (kind, key) pairs compared case-insensitively (GitHub and GitLab names and GitHub
#: environment names are case-insensitive on those platforms; so are email addresses).
_CASE_INSENSITIVE = frozenset(
    {
        (GITHUB, "repository"),
        (GITLAB, "repository"),
        (GITHUB, "environment"),
        (GOOGLE, "email"),
    }
)


def identity_key(identity: PublisherIdentity) -> tuple[tuple[str, str], ...]:
    """The identity's PEP 740 table, normalised the way :func:`identity_matches` compares it.

    Two identities with the same key are "the same publisher" by name; the numeric ids
    (``repository_id`` / ``repository_owner_id``) are *not* part of the key, so a re-created
    repository with the same name shares a key with the original and can be told apart by ids.
    """
    table = identity.to_table()
    out: dict[str, str] = {}
    for key, value in table.items():
        out[key] = value.casefold() if (identity.kind, key) in _CASE_INSENSITIVE else value
    return tuple(sorted(out.items()))


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


@dataclass(frozen=True)
class HistoryRecord:
    """One file seen before. ``identity is None`` means the file was seen unsigned."""

    project: str
    version: str
    filename: str
    sha256: str
    identity: PublisherIdentity | None
    seen_at: datetime
    index: str | None = None
    source: Source = "local"
    build: BuildContext | None = None  # the certificate's build claims (attested files)
    published_at: datetime | None = None
    published_from: PublishedFrom | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "project", canonicalize_name(self.project))
        object.__setattr__(self, "sha256", self.sha256.lower())
        object.__setattr__(self, "seen_at", _utc(self.seen_at))
        if self.source not in ("local", "index"):
            raise ValueError(
                f"history record source must be 'local' or 'index', not {self.source!r}"
            )
        if self.published_at is None:
            object.__setattr__(self, "published_from", None)
        else:
            object.__setattr__(self, "published_at", _utc(self.published_at))
            if self.published_from not in ("log", "index"):
                raise ValueError(
                    "history record published_from must be 'log' or 'index', not "
                    f"{self.published_from!r}"
                )

    @property
    def when(self) -> datetime:
        """Its place in the sequence: the publication time, else when it was seen."""
        return self.published_at if self.published_at is not None else self.seen_at

    def order_key(self) -> tuple[datetime, tuple[int, Version | str], str]:
        """Publication order; ties (e.g. index records without upload-time) by version."""
        return (self.when, _version_key(self.version), self.filename)

    @property
    def attested(self) -> bool:
        return self.identity is not None

    def dedup_key(self) -> tuple[str, str, str, str, str]:
        """What makes two records "the same" for idempotent recording."""
        import json

        ident = json.dumps(self.identity.to_json(), sort_keys=True) if self.identity else ""
        return (self.project, self.version, self.filename, self.sha256, ident)

    def to_json(self) -> dict[str, object]:
        return {
            "project": self.project,
            "version": self.version,
            "filename": self.filename,
            "sha256": self.sha256,
            "identity": self.identity.to_json() if self.identity else None,
            "seen_at": self.seen_at.isoformat(),
            "index": self.index,
            "source": self.source,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "published_from": self.published_from,
            "build": self.build.to_json() if self.build else None,
        }


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


@dataclass(frozen=True)
class ProjectHistory:
    """Every record for one project (canonical name), in publication order (oldest first)."""

    project: str
    records: tuple[HistoryRecord, ...] = ()

    def __post_init__(self) -> None:
        name = canonicalize_name(self.project)
        object.__setattr__(self, "project", name)
        for rec in self.records:
            if rec.project != name:
                raise ValueError(f"history record for {rec.project!r} in history of {name!r}")
        ordered = tuple(sorted(self.records, key=HistoryRecord.order_key))
        object.__setattr__(self, "records", ordered)

    @classmethod
    def empty(cls, project: str) -> ProjectHistory:
        return cls(project=project, records=())

    @property
    def is_empty(self) -> bool:
        return not self.records

    def with_records(self, records: Iterable[HistoryRecord]) -> ProjectHistory:
        """A new history with ``records`` added (duplicates by :meth:`HistoryRecord.dedup_key`
        dropped). Used to merge index-read history with local history before deciding."""
        seen = {r.dedup_key() for r in self.records}
        merged = list(self.records)
        for rec in records:
            key = rec.dedup_key()
            if key not in seen:
                seen.add(key)
                merged.append(rec)
        return ProjectHistory(self.project, tuple(merged))

    def attested_records(self) -> tuple[HistoryRecord, ...]:
        return tuple(r for r in self.records if r.identity is not None)

    def unsigned_records(self) -> tuple[HistoryRecord, ...]:
        return tuple(r for r in self.records if r.identity is None)

    def was_attested(self) -> bool:
        """True when any earlier file of this project carried a verified attestation."""
        return any(r.identity is not None for r in self.records)

    def attested_identities(self) -> tuple[PublisherIdentity, ...]:
        """Distinct publishers seen (by :func:`identity_key` and ids), first seen first.

        The returned identities keep the certificate facts (ids) of the first record seen
        with that name-and-ids combination, so a re-created repository appears as its own entry.
        """
        out: list[PublisherIdentity] = []
        keys: set[tuple[object, ...]] = set()
        for rec in self.records:
            ident = rec.identity
            if ident is None:
                continue
            key = (identity_key(ident), ident.repository_id, ident.repository_owner_id)
            if key not in keys:
                keys.add(key)
                out.append(ident)
        return tuple(out)

    def records_for(self, identity: PublisherIdentity) -> tuple[HistoryRecord, ...]:
        """Records whose identity has the same (normalised) table as ``identity``."""
        key = identity_key(identity)
        return tuple(
            r for r in self.records if r.identity is not None and identity_key(r.identity) == key
        )

    def first_attested(self) -> HistoryRecord | None:
        """The attested record with the lowest version: the attested-since watermark."""
        attested = self.attested_records()
        if not attested:
            return None
        return min(attested, key=lambda r: _version_key(r.version))

    def attested_versions(self) -> tuple[str, ...]:
        """Distinct attested versions, lowest first."""
        versions = {r.version for r in self.attested_records()}
        return tuple(sorted(versions, key=_version_key))

    def latest(self) -> HistoryRecord | None:
        return self.records[-1] if self.records else None

    def fingerprint(self) -> str:
        """A digest of every record (and where it came from): equal fingerprints, same history.
        ``serve`` compares it to drop cached verdicts once the project's history changed."""
        import hashlib
        import json

        h = hashlib.sha256()
        for rec in sorted(self.records, key=lambda r: (r.dedup_key(), r.source)):
            h.update(json.dumps([*rec.dedup_key(), rec.source]).encode())
        return h.hexdigest()

    def sources(self) -> frozenset[str]:
        return frozenset(r.source for r in self.records)
