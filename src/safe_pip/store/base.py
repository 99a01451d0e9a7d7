"""The history interface both backends share: :class:`HistoryStore` and the SQL behind it.

Every query, the compare-and-set of a first-use decision (:meth:`HistoryStore.update`), the audit
log, index serials, export / import run here on a :class:`Connection`; the schema
(:data:`SCHEMA_SQL`, :data:`MIGRATIONS`, :data:`EXPECTED_COLUMNS`) is written once, in SQLite's
dialect. The backends only open, create, check and migrate: :mod:`safe_pip.store.sqlite` (a
file) and :mod:`safe_pip.store.postgres` (a server, which translates the SQL).

Rules (docs/threat-model.md T17, T20, T21; docs/adr/0001-tofu-history.md):

* Every write runs inside ``BEGIN IMMEDIATE`` (PostgreSQL: plus one advisory lock), so
  concurrent runs serialise instead of interleaving. :meth:`HistoryStore.update` is the
  compare-and-set a trust-on-first-use decision needs: read the project's history, decide, and
  record, all in one write transaction.
* Besides the records, the store keeps the highest index serial (``_last-serial``) seen per
  (index, project), so a stale or replayed index page is noticed across runs (threat T21;
  :class:`safe_pip.store.serials.SerialGuard`). Schema 2 added that table.
* History is a sequence (docs/policy.md): each record keeps its publication time
  (``published_at``) and where that time came from (``published_from``: ``log``, the
  transparency log's integrated time of its attestation; ``index``, the index's upload-time),
  so a project's releases are read back in publication order. Schema 3 added both columns;
  records written before have none and are placed at ``seen_at``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from packaging.utils import canonicalize_name

from safe_pip.errors import ConfigError, RefusedError, StoreError
from safe_pip.models import BuildContext, PublisherIdentity
from safe_pip.policy.history import HistoryRecord, ProjectHistory

T = TypeVar("T")


class Cursor(Protocol):
    """What the store reads from a cursor (sqlite3's, or the PostgreSQL adapter's)."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The connection API the store's SQL runs on: ``sqlite3.Connection`` in autocommit mode
    (explicit BEGIN/COMMIT), or :class:`safe_pip.store.postgres.PgConnection`."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...
    def close(self) -> None: ...


ENV_HOME = "SAFE_PIP_HOME"
SCHEMA_VERSION = 4
#: The largest serial SQLite can store (a signed 64-bit INTEGER).
MAX_SERIAL = 2**63 - 1
EXPORT_FORMAT = "safe-pip-history"
EXPORT_VERSION = 1
BUSY_TIMEOUT_S = 30.0

_SERIALS_TABLE = """
CREATE TABLE serials (
    idx      TEXT NOT NULL,              -- the index URL, see index_key()
    project  TEXT NOT NULL,              -- canonicalized name
    serial   INTEGER NOT NULL,           -- the highest _last-serial seen (threat T21)
    seen_at  TEXT NOT NULL,              -- ISO 8601, UTC: when it was first seen
    PRIMARY KEY (idx, project)
)"""

SCHEMA_SQL = (
    """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE records (
    id           INTEGER PRIMARY KEY,
    project      TEXT NOT NULL,
    version      TEXT NOT NULL,
    filename     TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    identity_key TEXT NOT NULL,          -- canonical JSON of the identity, '' when unsigned
    identity     TEXT,                   -- the same JSON, NULL when unsigned
    seen_at      TEXT NOT NULL,          -- ISO 8601, UTC
    idx          TEXT,                   -- the index URL
    source       TEXT NOT NULL CHECK (source IN ('local', 'index')),
    published_at TEXT,                   -- ISO 8601, UTC: publication time, NULL when unknown
    published_from TEXT,                 -- 'log' (integrated time) | 'index' (upload-time)
    build        TEXT,                   -- JSON: the certificate's build claims, NULL if none
    UNIQUE (project, version, filename, sha256, identity_key)
);
CREATE INDEX records_project ON records (project);
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    action  TEXT NOT NULL,
    project TEXT,
    count   INTEGER NOT NULL,
    reason  TEXT NOT NULL,
    detail  TEXT NOT NULL                -- JSON: e.g. the records a forget removed
);
"""
    + _SERIALS_TABLE
    + ";\n"
)

#: Statements that take a database from schema N to N + 1 (run in one write transaction).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (_SERIALS_TABLE,),
    2: (
        "ALTER TABLE records ADD COLUMN published_at TEXT",
        "ALTER TABLE records ADD COLUMN published_from TEXT",
    ),
    3: ("ALTER TABLE records ADD COLUMN build TEXT",),
}
EXPECTED_COLUMNS = {
    "meta": {"key", "value"},
    "records": {
        "id",
        "project",
        "version",
        "filename",
        "sha256",
        "identity_key",
        "identity",
        "seen_at",
        "idx",
        "source",
        "published_at",
        "published_from",
        "build",
    },
    "audit": {"id", "at", "action", "project", "count", "reason", "detail"},
    "serials": {"idx", "project", "serial", "seen_at"},
}
#: The schema version that introduced each table (the others exist since version 1).
TABLE_SINCE = {"serials": 2}
_SELECT_RECORDS = (
    "SELECT project, version, filename, sha256, identity, seen_at, idx, source, published_at, "
    "published_from, build FROM records"
)
_SELECT_RECORDS_V3 = (
    "SELECT project, version, filename, sha256, identity, seen_at, idx, source, published_at, "
    "published_from, NULL FROM records"
)
_SELECT_RECORDS_V2 = (
    "SELECT project, version, filename, sha256, identity, seen_at, idx, source, NULL, NULL, "
    "NULL FROM records"
)
#: Columns added to an existing table after version 1: (table, column) -> schema version.
COLUMN_SINCE = {
    ("records", "published_at"): 3,
    ("records", "published_from"): 3,
    ("records", "build"): 4,
}


def index_key(url: str) -> str:
    """How an index URL is stored next to its serials: no credentials, query or fragment,
    lower-case scheme and host, one trailing slash (``-i URL`` and ``-i URL/`` are the same
    index)."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return url.strip()
    if ":" in host:
        host = f"[{host}]"
    if port is not None:
        host = f"{host}:{port}"
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme.lower(), host, path, "", ""))


def default_home(env: Mapping[str, str] | None = None) -> Path:
    """``$SAFE_PIP_HOME``, else the per-user data directory (platformdirs, as pip does)."""
    env = os.environ if env is None else env
    home = env.get(ENV_HOME)
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("safe-pip", appauthor=False))


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _build_json(build: BuildContext | None) -> str | None:
    """The canonical JSON of build claims (NULL when there are none)."""
    if build is None or build.empty:
        return None
    return json.dumps(build.to_json(), sort_keys=True, separators=(",", ":"))


def _identity_json(identity: PublisherIdentity | None) -> str:
    return json.dumps(identity.to_json(), sort_keys=True, separators=(",", ":")) if identity else ""


@dataclass(frozen=True)
class ProjectSummary:
    project: str
    records: int
    attested: int
    identities: int
    last_seen: datetime


@dataclass(frozen=True)
class NewPublisher:
    """A publisher an import would add for ``project`` beside the ``known`` ones."""

    project: str
    identity: PublisherIdentity
    known: tuple[PublisherIdentity, ...]  # the publisher established before it
    records: int  # how many of the imported records name it
    at: str = ""  # the first imported record where the publisher changes to it

    def describe(self) -> str:
        at = f" from {self.at}" if self.at else ""
        return (
            f"{self.project}: {_describe_with_ids(self.identity)}{at} (known here: "
            + ", ".join(_describe_with_ids(k) for k in self.known)
            + f" before it; {self.records} record(s))"
        )


def _describe_with_ids(identity: PublisherIdentity) -> str:
    ids = ", ".join(
        f"{k.replace('_', ' ')} {getattr(identity, k)}"
        for k in ("repository_id", "repository_owner_id")
        if getattr(identity, k)
    )
    return identity.describe() + (f" ({ids})" if ids else "")


@dataclass(frozen=True)
class ImportResult:
    added: int  # records that were new
    total: int  # records in the document
    new_publishers: tuple[NewPublisher, ...] = ()  # accepted (``accept_new_publishers``)


class NewPublishersError(RefusedError):
    """An import would add publishers beside the known ones; nothing was imported (exit 1)."""

    def __init__(self, publishers: tuple[NewPublisher, ...], *, source: str = "") -> None:
        # one line (error text is made inert, so a newline would print as \\n)
        listed = " ".join(f"[{i}] {p.describe()}" for i, p in enumerate(publishers, 1))
        where = f"{source}: " if source else ""
        super().__init__(
            f"{where}the import would change the publisher of a project's history "
            f"{len(publishers)} time(s) (each record is compared with the publisher before it "
            f"in publication order), so nothing was imported: {listed}",
            fix="if each is legitimate (check with the project), import again with "
            "--accept-new-publishers (logged); otherwise remove those records from the file",
        )
        self.publishers = publishers


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    action: str
    project: str | None
    count: int
    reason: str
    detail: Any


class HistoryStore:
    """The history on one :class:`Connection`, whichever database is behind it. A backend opens
    it (:func:`safe_pip.store.open_history` picks one); use as a context manager or call
    :meth:`close`."""

    #: how messages name the database (a file path, or a redacted PostgreSQL URL)
    location: str

    def __init__(
        self,
        path: Path,
        conn: Connection | None,
        *,
        readonly: bool,
        schema_version: int = SCHEMA_VERSION,
    ) -> None:
        self.path = path
        self.location = str(path)
        self._conn = conn
        self.readonly = readonly
        #: The schema of the open file (older than SCHEMA_VERSION only when opened read-only).
        self.schema_version = schema_version
        # One connection, shared by the threads of a run (check.py verifies in parallel):
        # calls are serialised so a reader never lands inside another thread's transaction.
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def exists(self) -> bool:
        return self._conn is not None

    # ------------------------------------------------------------------ plumbing
    def _db(self) -> Connection:
        if self._conn is None:
            raise StoreError(f"{self.location}: history database is closed or does not exist")
        return self._conn

    def _writable(self) -> Connection:
        if self.readonly:
            raise StoreError(f"{self.location}: history database was opened read-only")
        return self._db()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._lock:
            yield from self._write_locked()

    def _write_locked(self) -> Iterator[Connection]:
        conn = self._writable()
        try:
            conn.execute("BEGIN IMMEDIATE")  # PostgreSQL: BEGIN + the store's write lock
        except sqlite3.OperationalError as exc:
            raise store_error(
                self.location, exc, "could not start a write transaction on"
            ) from None
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise store_error(self.location, exc, "could not commit to") from None

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._conn is None:
                return []
            try:
                return list(self._conn.execute(sql, params))
            except sqlite3.Error as exc:
                raise store_error(self.location, exc, "could not read") from None

    def ping(self) -> None:
        """Raise StoreError unless the database answers a trivial query (readiness probes)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ reading
    def project(self, name: str) -> ProjectHistory:
        """Every record for ``name`` (any spelling; compared canonicalized)."""
        canon = canonicalize_name(name)
        with self._lock:
            if self._conn is None:
                return ProjectHistory.empty(canon)
            return self._project(self._conn, canon)

    def fingerprint(self, name: str) -> str:
        """A digest of every stored column of every record of ``name``: equal digests, same
        history. ``serve`` compares it on every file request (a history change by another run
        or replica drops its cached verdicts), so the rows are hashed as read, without
        building records (about 10x cheaper than ``project(name)`` for a long history)."""
        import hashlib

        canon = canonicalize_name(name)
        h = hashlib.sha256(canon.encode() + b"\0")
        with self._lock:
            if self._conn is None:
                return h.hexdigest()
            try:
                for row in self._conn.execute(
                    self._select() + " WHERE project = ? ORDER BY id", (canon,)
                ):
                    h.update(repr(tuple(row)).encode() + b"\n")
            except sqlite3.Error as exc:
                raise store_error(self.location, exc, "could not read") from None
        return h.hexdigest()

    def _project(self, conn: Connection, canon: str) -> ProjectHistory:
        try:
            rows = list(
                conn.execute(
                    self._select() + " WHERE project = ? ORDER BY seen_at, id",
                    (canon,),
                )
            )
        except sqlite3.Error as exc:
            raise store_error(self.location, exc, "could not read") from None
        return ProjectHistory(canon, tuple(self._row_record(r) for r in rows))

    def _select(self) -> str:
        """``SELECT <every record column> FROM records`` for the open file's schema."""
        if self.schema_version >= 4:
            return _SELECT_RECORDS
        if self.schema_version == 3:
            return _SELECT_RECORDS_V3  # an older file opened read-only
        return _SELECT_RECORDS_V2

    def _row_record(self, row: tuple[Any, ...]) -> HistoryRecord:
        project, version, filename, sha256, identity, seen_at, idx, source, pub, pub_from, b = row
        try:
            ident = PublisherIdentity.from_table(json.loads(identity)) if identity else None
            build = BuildContext.from_json(json.loads(b)) if b else None
            return HistoryRecord(
                project=project,
                version=version,
                filename=filename,
                sha256=sha256,
                identity=ident,
                seen_at=datetime.fromisoformat(seen_at),
                index=idx,
                source=source,
                published_at=datetime.fromisoformat(pub) if pub else None,
                published_from=pub_from,
                build=build,
            )
        except (ValueError, TypeError) as exc:
            raise StoreError(
                f"{self.location}: history database holds a malformed record for {project!r} "
                f"({exc}); it was not changed",
                fix="inspect it, or move it aside and re-import a reviewed export",
            ) from None

    def projects(self) -> list[ProjectSummary]:
        rows = self._read(
            "SELECT project, COUNT(*), COUNT(identity), "
            "COUNT(DISTINCT NULLIF(identity_key, '')), MAX(seen_at) "
            "FROM records GROUP BY project ORDER BY project"
        )
        return [
            ProjectSummary(p, int(n), int(a or 0), int(i), datetime.fromisoformat(last))
            for p, n, a, i, last in rows
        ]

    def audit_log(self, name: str | None = None) -> list[AuditEntry]:
        if name is None:
            rows = self._read(
                "SELECT at, action, project, count, reason, detail FROM audit ORDER BY id"
            )
        else:
            rows = self._read(
                "SELECT at, action, project, count, reason, detail FROM audit "
                "WHERE project = ? ORDER BY id",
                (canonicalize_name(name),),
            )
        return [
            AuditEntry(
                datetime.fromisoformat(at), action, project, int(count), reason, json.loads(detail)
            )
            for at, action, project, count, reason, detail in rows
        ]

    # ------------------------------------------------------------------ writing
    @staticmethod
    def _insert(conn: Connection, records: Iterable[HistoryRecord]) -> int:
        added = 0
        for rec in records:
            ident = _identity_json(rec.identity)
            key = (rec.project, rec.version, rec.filename, rec.sha256, ident)
            pub = rec.published_at.isoformat() if rec.published_at else None
            build = _build_json(rec.build)
            cur = conn.execute(
                "INSERT OR IGNORE INTO records (project, version, filename, sha256, "
                "identity_key, identity, seen_at, idx, source, published_at, published_from, "
                "build) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *key,
                    ident or None,
                    rec.seen_at.isoformat(),
                    rec.index,
                    rec.source,
                    pub,
                    rec.published_from,
                    build,
                ),
            )
            if cur.rowcount > 0:
                added += 1
                continue
            if pub is not None:  # a publication time learnt later fills a gap, never rewrites
                conn.execute(
                    "UPDATE records SET published_at = ?, published_from = ? WHERE project = ? "
                    "AND version = ? AND filename = ? AND sha256 = ? AND identity_key = ? "
                    "AND published_at IS NULL",
                    (pub, rec.published_from, *key),
                )
            if build is not None:  # build claims learnt later fill a gap, never rewrite
                conn.execute(
                    "UPDATE records SET build = ? WHERE project = ? AND version = ? "
                    "AND filename = ? AND sha256 = ? AND identity_key = ? AND build IS NULL",
                    (build, *key),
                )
            if rec.source == "local":  # seen by this machine itself now
                conn.execute(
                    "UPDATE records SET source = 'local' WHERE project = ? AND version = ? "
                    "AND filename = ? AND sha256 = ? AND identity_key = ? AND source <> 'local'",
                    key,
                )
        return added

    def record(self, records: Iterable[HistoryRecord]) -> None:
        """Store ``records`` in one transaction. Recording the same (project, version,
        filename, sha256, identity) again changes nothing (an index-read record becomes
        ``local`` when this machine sees the file itself)."""
        recs = list(records)
        if not recs:
            return
        with self._write() as conn:
            self._insert(conn, recs)

    def update(
        self,
        name: str,
        decide: Callable[[ProjectHistory], tuple[T, Iterable[HistoryRecord]]],
    ) -> T:
        """Compare-and-set: inside one ``BEGIN IMMEDIATE`` transaction, read ``name``'s history,
        call ``decide(history)`` and store the records it returns. Two concurrent runs therefore
        never both trust different first publishers: the second sees the first's record."""
        canon = canonicalize_name(name)
        with self._write() as conn:
            history = self._project(conn, canon)
            result, records = decide(history)
            recs = list(records)
            for rec in recs:
                if rec.project != canon:
                    raise ValueError(f"update({canon!r}) cannot record {rec.project!r}")
            self._insert(conn, recs)
        return result

    def forget(self, name: str, *, reason: str) -> int:
        """Delete every record of ``name``; logged in the audit table with the removed records
        and ``reason`` (required). Returns how many records were removed."""
        if not reason or not reason.strip():
            raise ConfigError("history forget needs --reason: forgetting a project is logged")
        canon = canonicalize_name(name)
        with self._write() as conn:
            history = self._project(conn, canon)
            conn.execute("DELETE FROM records WHERE project = ?", (canon,))
            conn.execute(
                "INSERT INTO audit (at, action, project, count, reason, detail) "
                "VALUES (?, 'forget', ?, ?, ?, ?)",
                (
                    now(),
                    canon,
                    len(history.records),
                    reason.strip(),
                    json.dumps([r.to_json() for r in history.records], sort_keys=True),
                ),
            )
        return len(history.records)

    def audit(
        self, action: str, project: str | None, *, reason: str, detail: Any, count: int = 1
    ) -> None:
        """Append one entry to the audit log (e.g. a reviewed allowlist proposal)."""
        if not reason or not reason.strip():
            raise ConfigError(f"{action} needs a reason: it is logged")
        with self._write() as conn:
            conn.execute(
                "INSERT INTO audit (at, action, project, count, reason, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    now(),
                    action,
                    canonicalize_name(project) if project else None,
                    count,
                    reason.strip(),
                    json.dumps(detail, sort_keys=True),
                ),
            )

    # ------------------------------------------------------------------ index serials (T21)
    def _has_serials(self) -> bool:
        return self.schema_version >= TABLE_SINCE["serials"]

    def last_serial(self, index: str, project: str) -> int | None:
        """The highest serial recorded for ``project`` on ``index`` (None: never recorded)."""
        if not self._has_serials():
            return None
        rows = self._read(
            "SELECT serial FROM serials WHERE idx = ? AND project = ?",
            (index_key(index), canonicalize_name(project)),
        )
        return int(rows[0][0]) if rows else None

    def raise_serial(self, index: str, project: str, serial: int) -> int | None:
        """Record ``serial`` as the highest seen for ``project`` on ``index``, in one write
        transaction. Returns the recorded serial when it is higher (then nothing is written:
        the page is older than one seen before), else None."""
        if not 0 <= serial <= MAX_SERIAL:
            raise ValueError(f"serial {serial} out of range")
        key = (index_key(index), canonicalize_name(project))
        with self._write() as conn:
            row = conn.execute(
                "SELECT serial FROM serials WHERE idx = ? AND project = ?", key
            ).fetchone()
            if row is not None and int(row[0]) > serial:
                return int(row[0])
            if row is None:
                conn.execute(
                    "INSERT INTO serials (idx, project, serial, seen_at) VALUES (?, ?, ?, ?)",
                    (*key, serial, now()),
                )
            elif int(row[0]) < serial:
                conn.execute(
                    "UPDATE serials SET serial = ?, seen_at = ? WHERE idx = ? AND project = ?",
                    (serial, now(), *key),
                )
        return None

    def serials(self) -> list[tuple[str, str, int, datetime]]:
        """Every recorded (index, project, serial, seen_at)."""
        if not self._has_serials():
            return []
        rows = self._read("SELECT idx, project, serial, seen_at FROM serials ORDER BY idx, project")
        return [(i, p, int(s), datetime.fromisoformat(t)) for i, p, s, t in rows]

    def forget_serials(
        self, *, index: str | None = None, project: str | None = None, reason: str
    ) -> int:
        """Delete the recorded serials of ``project`` and/or ``index`` (all of them when both
        are None), for an index that was legitimately reset. Logged in the audit table with the
        removed serials and ``reason`` (required). Returns how many were removed."""
        if not reason or not reason.strip():
            raise ConfigError("history forget-serials needs --reason: it is logged")
        idx = index_key(index) if index is not None else None
        canon = canonicalize_name(project) if project is not None else None
        with self._write() as conn:
            if not self._has_serials():
                return 0
            removed = [
                {"index": i, "project": p, "serial": s}
                for i, p, s in conn.execute(
                    "SELECT idx, project, serial FROM serials WHERE (?1 IS NULL OR idx = ?1) "
                    "AND (?2 IS NULL OR project = ?2) ORDER BY idx, project",
                    (idx, canon),
                )
            ]
            conn.execute(
                "DELETE FROM serials WHERE (?1 IS NULL OR idx = ?1) "
                "AND (?2 IS NULL OR project = ?2)",
                (idx, canon),
            )
            conn.execute(
                "INSERT INTO audit (at, action, project, count, reason, detail) "
                "VALUES (?, 'forget-serials', ?, ?, ?, ?)",
                (
                    now(),
                    canon,
                    len(removed),
                    reason.strip(),
                    json.dumps({"index": idx, "serials": removed}),
                ),
            )
        return len(removed)

    # ------------------------------------------------------------------ export / import
    def export(self) -> dict[str, Any]:
        """Every record as versioned JSON (the audit log stays local)."""
        rows = self._read(self._select() + " ORDER BY project, seen_at, id")
        return {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "exported_at": now(),
            "records": [self._row_record(r).to_json() for r in rows],
        }

    def import_(
        self,
        data: Mapping[str, Any],
        *,
        reason: str = "import",
        accept_new_publishers: bool = False,
    ) -> ImportResult:
        """Add the records of an :meth:`export` document (validated first; all or nothing).
        Logged in the audit table.

        An import must not slip a publisher change into a project's history: imported
        records count as seen here (``source`` as exported, so a reviewed baseline works with
        ``trust-on-first-use = false``), so such a record would make that publisher the
        established one from its place in the sequence on ("verified-known"). Each imported
        record is compared with the publisher just before it in publication order
        (:meth:`_new_publishers`), never with the set of publishers known here. Unless
        ``accept_new_publishers`` is set, :class:`NewPublishersError` (exit 1) names them and
        nothing is written. When accepted, each project that got a new publisher has its own
        audit entry (``import-new-publisher``), so ``history show NAME`` tells where it came
        from. A project with no attested history here is seeded from the file (that is what a
        baseline is for), but a change within its imported records is listed too. The check
        and the write share one transaction."""
        records = parse_export(data)
        with self._write() as conn:
            new = self._new_publishers(conn, records)
            if new and not accept_new_publishers:
                raise NewPublishersError(new)
            added = self._insert(conn, records)
            conn.execute(
                "INSERT INTO audit (at, action, project, count, reason, detail) "
                "VALUES (?, 'import', NULL, ?, ?, ?)",
                (
                    now(),
                    added,
                    reason,
                    json.dumps(
                        {
                            "records": len(records),
                            "new_publishers": [
                                {"project": n.project, "identity": n.identity.to_json()}
                                for n in new
                            ],
                        }
                    ),
                ),
            )
            by_project: dict[str, list[NewPublisher]] = {}
            for n in new:
                by_project.setdefault(n.project, []).append(n)
            for project, items in by_project.items():
                conn.execute(
                    "INSERT INTO audit (at, action, project, count, reason, detail) "
                    "VALUES (?, 'import-new-publisher', ?, ?, ?, ?)",
                    (
                        now(),
                        project,
                        sum(n.records for n in items),
                        f"{reason} (--accept-new-publishers): "
                        + "; ".join(n.identity.describe() for n in items),
                        json.dumps([n.identity.to_json() for n in items]),
                    ),
                )
        return ImportResult(added=added, total=len(records), new_publishers=new)

    def _new_publishers(
        self, conn: Connection, records: list[HistoryRecord]
    ) -> tuple[NewPublisher, ...]:
        """The publisher changes ``records`` would bring into the project's history here
        (ADR 0012: a sequence, not a set). The project's attested records are taken as the
        import would leave them (new records added; a record already here turned ``local``,
        and a missing publication time filled in, as :meth:`_insert` does) and walked in
        publication order; each point where the publisher is not
        :func:`~safe_pip.policy.rules.continuous` with the one before it, and that the
        history here does not have already (the same record, with the same source), is new:
        an imported record of a publisher known elsewhere in the sequence (acme, then newco
        accepted here, then an imported acme), one of a re-created repository under a known
        name, a record read from the index (a refused change) turned into a local, accepted
        one, or a record moved in the sequence by a publication time the import supplies."""
        from dataclasses import replace

        from safe_pip.policy.history import identity_key
        from safe_pip.policy.rules import (
            SequenceChange,
            _merge_ids,
            classify_change,
            continuous,
        )

        def changes(
            recs: Iterable[HistoryRecord],
        ) -> dict[tuple[object, ...], tuple[HistoryRecord, PublisherIdentity]]:
            """(record, source) -> (record, publisher before it), at each change."""
            out: dict[tuple[object, ...], tuple[HistoryRecord, PublisherIdentity]] = {}
            current: PublisherIdentity | None = None
            for rec in sorted(recs, key=HistoryRecord.order_key):
                seen = rec.identity
                assert seen is not None
                if current is None:
                    current = seen
                elif continuous(seen, current):
                    current = _merge_ids(current, seen)
                else:
                    out[(rec.dedup_key(), rec.source)] = (rec, current)
                    current = seen
            return out

        incoming: dict[str, list[HistoryRecord]] = {}
        for rec in records:
            if rec.identity is not None:
                incoming.setdefault(rec.project, []).append(rec)
        out: list[NewPublisher] = []
        for project in sorted(incoming):
            here = self._project(conn, project).attested_records()
            after = {r.dedup_key(): r for r in here}
            for rec in incoming[project]:
                have = after.get(rec.dedup_key())
                if have is None:
                    after[rec.dedup_key()] = rec
                    continue
                if rec.source == "local":
                    have = replace(have, source="local")
                if have.published_at is None and rec.published_at is not None:
                    have = replace(
                        have, published_at=rec.published_at, published_from=rec.published_from
                    )
                after[rec.dedup_key()] = have
            before = changes(here)

            def which(ident: PublisherIdentity) -> tuple[object, ...]:
                return (identity_key(ident), ident.repository_id, ident.repository_owner_id)

            found: dict[tuple[object, ...], tuple[PublisherIdentity, str, PublisherIdentity]] = {}
            for key, (rec, prior) in changes(after.values()).items():
                if key in before:
                    continue
                seen = rec.identity
                assert seen is not None
                change = classify_change(seen, [prior])
                assert change is not None
                where = SequenceChange(rec, prior, change).where()
                found.setdefault(which(seen), (seen, where, prior))
            for ident_key, (ident, where, prior) in found.items():
                named = {
                    r.dedup_key()
                    for r in incoming[project]
                    if r.identity is not None and which(r.identity) == ident_key
                }
                out.append(NewPublisher(project, ident, (prior,), len(named), where))
        return tuple(out)


def parse_export(data: Mapping[str, Any]) -> list[HistoryRecord]:
    """Validate an export document; :class:`ConfigError` names the first bad record."""
    if not isinstance(data, Mapping) or data.get("format") != EXPORT_FORMAT:
        raise ConfigError(f'not a safe-pip history export (expected "format": "{EXPORT_FORMAT}")')
    version = data.get("version")
    if version != EXPORT_VERSION:
        raise ConfigError(
            f"history export version {version!r} is not supported (this safe-pip reads "
            f"version {EXPORT_VERSION})"
        )
    raw = data.get("records")
    if not isinstance(raw, list):
        raise ConfigError('history export: "records" must be a list')
    from safe_pip.policy.file import IdentityError, validate_identity_table

    out: list[HistoryRecord] = []
    allowed = {
        "project",
        "version",
        "filename",
        "sha256",
        "identity",
        "seen_at",
        "index",
        "source",
        "published_at",
        "published_from",
        "build",
    }
    for i, item in enumerate(raw):
        where = f"history export: records[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be an object")
        unknown = set(item) - allowed
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
        for key in ("project", "version", "filename", "sha256", "seen_at"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise ConfigError(f"{where}: {key!r} must be a non-empty string")
        sha = item["sha256"].lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ConfigError(f"{where}: sha256 {item['sha256']!r} is not a hex sha256 digest")
        ident_raw = item.get("identity")
        identity: PublisherIdentity | None = None
        if ident_raw is not None:
            if not isinstance(ident_raw, dict):
                raise ConfigError(f"{where}: identity must be an object or null")
            table = {
                k: v
                for k, v in ident_raw.items()
                if k not in ("ref", "issuer", "environment_source")
            }
            try:
                validate_identity_table(table)
                identity = PublisherIdentity.from_table(ident_raw)
            except (IdentityError, ValueError) as exc:
                raise ConfigError(f"{where}: identity: {exc}") from None
        try:
            seen_at = datetime.fromisoformat(item["seen_at"])
        except ValueError:
            raise ConfigError(
                f"{where}: seen_at {item['seen_at']!r} is not an ISO 8601 time"
            ) from None
        source = item.get("source", "index")
        if source not in ("local", "index"):
            raise ConfigError(f'{where}: source must be "local" or "index"')
        index = item.get("index")
        if index is not None and not isinstance(index, str):
            raise ConfigError(f"{where}: index must be a string or null")
        published_at: datetime | None = None
        published_from = item.get("published_from")
        if item.get("published_at") is not None:
            try:
                published_at = datetime.fromisoformat(str(item["published_at"]))
            except ValueError:
                raise ConfigError(
                    f"{where}: published_at {item['published_at']!r} is not an ISO 8601 time"
                ) from None
            if published_from not in ("log", "index"):
                raise ConfigError(f'{where}: published_from must be "log" or "index"')
        build_raw = item.get("build")
        build = BuildContext.from_json(build_raw)
        if build_raw is not None and (
            build is None or build.to_json() != build_raw or identity is None
        ):
            raise ConfigError(
                f"{where}: build must be null or an object of build claims "
                f"({', '.join(BuildContext.KEYS)}) of an attested record"
            )
        out.append(
            HistoryRecord(
                project=item["project"],
                version=item["version"],
                filename=item["filename"],
                sha256=sha,
                identity=identity,
                seen_at=seen_at,
                index=index,
                source=source,
                published_at=published_at,
                published_from=published_from if published_at is not None else None,
                build=build,
            )
        )
    return out


# ---------------------------------------------------------------------- errors


def store_error(path: object, exc: BaseException, what: str) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreError(
            f"{path}: history database is busy ({text}) after {BUSY_TIMEOUT_S:.0f}s",
            fix="another safe-pip run holds it; retry when it finishes",
        )
    return StoreError(
        f"{path}: {what} the history database ({text}); it was not changed",
        fix="inspect or restore it; safe-pip never resets it on its own",
    )
