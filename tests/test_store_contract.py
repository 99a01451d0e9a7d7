"""The history contract, run against both implementations: the SQLite file and a real
PostgreSQL server (started by the suite). Same records, same compare-and-set across processes,
same audit log and serials, same export/import, same schema rules (a foreign, damaged or newer
schema stops the run; an older one is migrated and logged); PostgreSQL unreachable is "could
not check"."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from safe_pip.errors import EXIT_COULD_NOT_CHECK, ConfigError, StoreError
from safe_pip.models import PublisherIdentity
from safe_pip.policy.history import HistoryRecord
from safe_pip.store import HistoryStore, open_history
from safe_pip.store.base import NewPublishersError
from support.postgres import PostgresServer
from test_store_concurrency import IDENTITIES, _tofu_worker

SHA = "ab" * 32
NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)
A, B = IDENTITIES["A"], IDENTITIES["B"]


class Backend:
    """One empty history location and raw SQL access to it (to tamper with the schema)."""

    def __init__(self, kind: str, location: str, path: Path | None = None) -> None:
        self.kind = kind
        self.location = location
        self.path = path

    def open(self, *, readonly: bool = False) -> HistoryStore:
        return open_history(self.location, readonly=readonly)

    def raw(self, *statements: str) -> None:
        if self.kind == "sqlite":
            assert self.path is not None
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                for s in statements:
                    conn.execute(s)
            finally:
                conn.close()
        else:
            import psycopg

            with psycopg.connect(self.location, autocommit=True) as pg:
                pg.execute("SET search_path TO safe_pip")
                for s in statements:
                    pg.execute(s.encode())

    def set_schema_version(self, version: int) -> None:
        statements = [f"UPDATE meta SET value = '{version:d}' WHERE key = 'schema_version'"]  # noqa: S608
        if self.kind == "sqlite":
            statements.append(f"PRAGMA user_version = {version}")
        self.raw(*statements)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        path = tmp_path / "home" / "history.sqlite3"
        return Backend("sqlite", str(path), path)
    server: PostgresServer = request.getfixturevalue("postgres")
    return Backend("postgresql", server.new_database())


def rec(version: str, identity: PublisherIdentity | None = A, **kw: Any) -> HistoryRecord:
    return HistoryRecord(
        "widget", version, f"widget-{version}-py3-none-any.whl", SHA, identity, NOW, **kw
    )


@pytest.fixture
def store(backend: Backend) -> Iterator[HistoryStore]:
    s = backend.open()
    yield s
    s.close()


def test_records_round_trip_and_are_idempotent(store: HistoryStore) -> None:
    assert store.project("widget").records == ()
    store.record([rec("1.0", index="https://pypi.org/simple/", source="index"), rec("1.1", None)])
    store.record([rec("1.0", index="https://pypi.org/simple/", source="index")])
    history = store.project("Widget")  # any spelling
    assert [r.version for r in history.records] == ["1.0", "1.1"]
    first = history.records[0]
    assert first.identity == A
    assert first.source == "index"
    assert first.seen_at == NOW
    assert history.records[1].identity is None
    # seen by this machine itself: the index-read record becomes local, nothing is added
    store.record([rec("1.0", index="https://pypi.org/simple/")])
    assert [r.source for r in store.project("widget").records] == ["local", "local"]
    (summary,) = store.projects()
    assert (summary.project, summary.records, summary.attested, summary.identities) == (
        "widget",
        2,
        1,
        1,
    )


def test_fingerprint_changes_with_every_change_of_the_history(store: HistoryStore) -> None:
    """serve's cheap "did this project's history change?" (read on every file request):
    another record, a record turned local, a forget, all change it; nothing else does."""
    empty = store.fingerprint("widget")
    store.record([rec("1.0", index="https://pypi.org/simple/", source="index")])
    index_read = store.fingerprint("Widget")  # any spelling
    assert index_read != empty
    store.record([rec("1.0", index="https://pypi.org/simple/", source="index")])  # idempotent
    assert store.fingerprint("widget") == index_read
    store.record([rec("1.0", index="https://pypi.org/simple/")])  # seen here: now local
    local = store.fingerprint("widget")
    assert local not in (empty, index_read)
    store.record([rec("1.1", B)])
    assert store.fingerprint("widget") != local
    assert store.forget("widget", reason="moved to a new org (checked)") == 2
    assert store.fingerprint("widget") == empty


def test_forget_is_logged_in_the_audit_log(store: HistoryStore) -> None:
    store.record([rec("1.0")])
    with pytest.raises(ConfigError):
        store.forget("widget", reason=" ")
    assert store.forget("widget", reason="moved to a new org (checked)") == 1
    assert store.project("widget").records == ()
    (entry,) = store.audit_log("widget")
    assert entry.action == "forget"
    assert entry.count == 1
    assert entry.reason == "moved to a new org (checked)"
    assert entry.detail[0]["version"] == "1.0"


def test_review_decisions_are_logged_in_the_audit_log(store: HistoryStore) -> None:
    with pytest.raises(ConfigError):
        store.audit("review-accept", "Widget", reason="", detail={})
    store.audit("review-accept", "Widget", reason="reviewed", detail={"kind": "unsigned-project"})
    (entry,) = store.audit_log("widget")
    assert (entry.action, entry.project, entry.reason) == ("review-accept", "widget", "reviewed")
    assert entry.detail == {"kind": "unsigned-project"}


def test_serials(store: HistoryStore) -> None:
    idx = "https://user:secret@mirror.example/simple/?x=1"
    assert store.last_serial(idx, "widget") is None
    assert store.raise_serial(idx, "widget", 10) is None
    assert store.raise_serial(idx, "widget", 12) is None
    assert store.raise_serial(idx, "widget", 11) == 12  # older page: refused, nothing written
    assert store.last_serial("https://mirror.example/simple/", "Widget") == 12
    assert store.raise_serial(idx, "widget", 2**63 - 1) is None  # 64-bit serials
    assert [(p, s) for _, p, s, _ in store.serials()] == [("widget", 2**63 - 1)]
    assert store.forget_serials(project="widget", reason="mirror rebuilt") == 1
    assert store.serials() == []
    assert store.audit_log()[-1].action == "forget-serials"


def test_export_import_and_new_publishers_refused(backend: Backend, tmp_path: Path) -> None:
    with backend.open() as s:
        s.record([rec("1.0"), rec("1.1", None)])
        doc = s.export()
    other = open_history(str(tmp_path / "other" / "history.sqlite3"))
    try:
        result = other.import_(doc, reason="baseline")
        assert result.added == 2
        assert [r.version for r in other.project("widget").records] == ["1.0", "1.1"]
    finally:
        other.close()
    with backend.open() as s:
        evil = {**doc, "records": [r.to_json() for r in [rec("2.0", B)]]}
        with pytest.raises(NewPublishersError):
            s.import_(evil, reason="shared baseline")
        assert len(s.project("widget").records) == 2  # nothing written
        res = s.import_(evil, reason="reviewed", accept_new_publishers=True)
        assert res.added == 1
        assert [e.action for e in s.audit_log()][-2:] == ["import", "import-new-publisher"]


def test_readonly(backend: Backend) -> None:
    with backend.open(readonly=True) as s:  # nothing there yet: an empty history
        assert s.project("widget").records == ()
        with pytest.raises(StoreError):
            s.record([rec("1.0")])
    with backend.open() as s:
        s.record([rec("1.0")])
    with backend.open(readonly=True) as s:
        assert len(s.project("widget").records) == 1
        with pytest.raises(StoreError):
            s.record([rec("1.1")])


# -- compare-and-set across processes ----------------------------------------------------------


def test_first_use_race_across_processes_records_one_publisher(backend: Backend) -> None:
    methods = multiprocessing.get_all_start_methods()
    ctx: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    whos = ["A", "B", "A", "B"]
    barrier = ctx.Barrier(len(whos))
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_tofu_worker, args=(backend.location, w, barrier, out)) for w in whos
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert not [c for _, c in results if c.startswith("error")], results
    first = [who for who, code in results if code == "verified-first-use"]
    assert len(first) == 1, results
    losers = Counter(code for who, code in results if who != first[0])
    assert losers == {"refused-publisher-change": 2}, results
    with backend.open() as s:
        assert {r.identity for r in s.project("widget").records} == {A if first[0] == "A" else B}


# -- schema: versions, migrations, foreign and damaged -----------------------------------------


def test_older_schema_is_migrated_and_logged(backend: Backend) -> None:
    backend.open().close()
    backend.raw("DROP TABLE serials")  # schema 2 added it
    backend.raw("ALTER TABLE records DROP COLUMN published_at")  # schema 3 added these
    backend.raw("ALTER TABLE records DROP COLUMN published_from")
    backend.raw("ALTER TABLE records DROP COLUMN build")  # schema 4 added it
    backend.set_schema_version(1)
    with backend.open(readonly=True) as s:  # read-only: used as it is
        assert s.schema_version == 1
        assert s.serials() == []
    with backend.open() as s:
        from safe_pip.store.base import SCHEMA_VERSION

        assert s.schema_version == SCHEMA_VERSION
        assert s.raise_serial("https://pypi.org/simple/", "widget", 5) is None
        (entry,) = [e for e in s.audit_log() if e.action == "migrate"]
        assert entry.detail == {"from": 1, "to": SCHEMA_VERSION}


def test_newer_schema_is_refused(backend: Backend) -> None:
    backend.open().close()
    backend.set_schema_version(99)
    with pytest.raises(StoreError, match="newer"):
        backend.open()


def test_damaged_schema_stops_the_run_and_is_not_reset(backend: Backend) -> None:
    with backend.open() as s:
        s.record([rec("1.0")])
    backend.raw("DROP TABLE audit")
    with pytest.raises(StoreError, match="audit"):
        backend.open()
    backend.raw("CREATE TABLE audit (id INTEGER)")  # still not ours: never "repaired"
    with pytest.raises(StoreError):
        backend.open()


def test_foreign_database_is_refused(backend: Backend) -> None:
    backend.open().close()
    if backend.kind == "sqlite":
        assert backend.path is not None
        backend.path.unlink()
        for suffix in ("-wal", "-shm"):
            Path(str(backend.path) + suffix).unlink(missing_ok=True)
        conn = sqlite3.connect(backend.path)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        conn.close()
    else:
        backend.raw("DELETE FROM meta WHERE key = 'application'")
    with pytest.raises(StoreError, match="not a safe-pip history"):
        backend.open()


# -- PostgreSQL only -------------------------------------------------------------------------


def test_unreachable_postgres_is_could_not_check(tmp_path: Path) -> None:
    url = f"postgresql://nobody@/none?host={tmp_path}&port=1"
    with pytest.raises(StoreError) as info:
        open_history(url)
    assert info.value.exit_code == EXIT_COULD_NOT_CHECK
    assert "could not connect" in info.value.message
    assert "SAFE_PIP_HISTORY" in (info.value.fix or "")


def test_postgres_url_password_is_not_shown(tmp_path: Path) -> None:
    url = f"postgresql://user:hunter2@/none?host={tmp_path}&port=1"
    with pytest.raises(StoreError) as info:
        open_history(url)
    assert "hunter2" not in info.value.message


def test_other_tables_in_the_database_are_left_alone(postgres: PostgresServer) -> None:
    import psycopg

    url = postgres.new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.records (x int)")
        conn.execute("INSERT INTO public.records VALUES (1)")
    with open_history(url) as s:
        s.record([rec("1.0")])
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT x FROM public.records").fetchone()
        assert row == (1,)


def test_postgres_connection_dropped_by_the_server_is_reopened(postgres: PostgresServer) -> None:
    """A replica outlives a database restart or a killed session: the next statement outside
    a transaction reconnects; nothing is read from a half-done transaction."""
    url = postgres.new_database()
    with open_history(url) as s:
        s.record([rec("1.0")])
        dbname = urlsplit(url).path.lstrip("/")
        before = getattr(s, "_conn")._raw.info.backend_pid  # noqa: B009 - private on purpose
        postgres.admin_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
            dbname=dbname,
        )
        assert [r.version for r in s.project("widget").records] == ["1.0"]
        assert getattr(s, "_conn")._raw.info.backend_pid != before  # noqa: B009 - a new session
        s.record([rec("1.1")])
        s.ping()
    with open_history(url) as s:
        assert len(s.project("widget").records) == 2
