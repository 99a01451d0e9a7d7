"""The history database: creation, idempotent recording, compare-and-set, refusing corrupt /
truncated / foreign / insecure files without touching them, forget audit, export/import."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from safe_pip.errors import ConfigError, StoreError
from safe_pip.models import PublisherIdentity
from safe_pip.policy.history import HistoryRecord, ProjectHistory
from safe_pip.store import base as dbmod
from safe_pip.store.base import HistoryStore, NewPublishersError, parse_export
from safe_pip.store.sqlite import APPLICATION_ID, SQLiteHistoryStore, default_db_path

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
A = PublisherIdentity(
    kind="GitHub",
    repository="acme/widget",
    workflow="release.yml",
    repository_id="100",
    repository_owner_id="10",
    ref="refs/tags/v1.0",
)
B = PublisherIdentity(kind="GitHub", repository="evil/widget", workflow="release.yml")


def rec(
    version: str,
    ident: PublisherIdentity | None = A,
    *,
    project: str = "widget",
    source: str = "local",
    minutes: int = 0,
) -> HistoryRecord:
    sha = hashlib.sha256(f"{project}-{version}".encode()).hexdigest()
    return HistoryRecord(
        project=project,
        version=version,
        filename=f"{project}-{version}-py3-none-any.whl",
        sha256=sha,
        identity=ident,
        seen_at=T0 + timedelta(minutes=minutes),
        index="https://pypi.org/simple/",
        source=source,  # type: ignore[arg-type]
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "history.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[HistoryStore]:
    s = SQLiteHistoryStore.open(db_path)
    yield s
    s.close()


def snapshot(path: Path) -> tuple[bytes, int, list[str]]:
    """The file's bytes and mtime, and the other files beside it. SQLite's read-only open of a
    WAL database may add an empty ``-wal`` and a ``-shm`` index beside it; those are ignored
    (after checking the ``-wal`` holds nothing), the database file itself must not change."""
    others = []
    for name in sorted(os.listdir(path.parent)):
        if name in (path.name + "-wal", path.name + "-shm"):
            if name.endswith("-wal"):
                assert (path.parent / name).stat().st_size == 0
            continue
        others.append(name)
    return path.read_bytes(), path.stat().st_mtime_ns, others


# ------------------------------------------------------------------ creating and recording


def test_create_sets_wal_ids_and_modes(db_path: Path, store: HistoryStore) -> None:
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == dbmod.SCHEMA_VERSION
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta["schema_version"] == str(dbmod.SCHEMA_VERSION)
    finally:
        conn.close()
    if os.name == "posix":
        assert db_path.stat().st_mode & 0o777 == 0o600
        assert db_path.parent.stat().st_mode & 0o777 == 0o700
    assert not [n for n in os.listdir(db_path.parent) if n.endswith(".new")]


def test_default_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SAFE_PIP_HOME", str(tmp_path / "h"))
    assert default_db_path() == tmp_path / "h" / "history.sqlite3"
    monkeypatch.delenv("SAFE_PIP_HOME")
    assert default_db_path().name == "history.sqlite3"
    assert "safe-pip" in str(default_db_path())
    monkeypatch.setenv("SAFE_PIP_HOME", str(tmp_path / "h2"))
    with SQLiteHistoryStore.open() as s:
        assert s.exists
        assert s.path == tmp_path / "h2" / "history.sqlite3"


def test_record_is_idempotent_and_canonical(store: HistoryStore) -> None:
    store.record([rec("1.0"), rec("1.0")])
    store.record([rec("1.0", minutes=5)])
    store.record([rec("2.0", project="Widget")])
    h = store.project("WIDGET")
    assert h.project == "widget"
    assert [r.version for r in h.records] == ["1.0", "2.0"]
    assert h.records[0].identity == A  # certificate facts survive the round trip
    assert h.records[0].seen_at == T0  # the first sighting is kept
    store.record([])


def test_same_file_other_identity_is_a_second_record(store: HistoryStore) -> None:
    store.record([rec("1.0", A), rec("1.0", B), rec("1.0", None)])
    assert len(store.project("widget").records) == 3


def test_index_record_becomes_local(store: HistoryStore) -> None:
    store.record([rec("1.0", source="index")])
    assert store.project("widget").records[0].source == "index"
    store.record([rec("1.0", source="index")])
    assert store.project("widget").records[0].source == "index"
    store.record([rec("1.0", source="local")])
    (only,) = store.project("widget").records
    assert only.source == "local"


def test_projects_summary(store: HistoryStore) -> None:
    store.record([rec("1.0"), rec("1.1", None, minutes=3), rec("1", project="other")])
    summary = {p.project: p for p in store.projects()}
    assert summary["widget"].records == 2
    assert summary["widget"].attested == 1
    assert summary["widget"].identities == 1
    assert summary["widget"].last_seen == T0 + timedelta(minutes=3)
    assert summary["other"].records == 1


def test_readonly(db_path: Path) -> None:
    s = SQLiteHistoryStore.open(db_path, readonly=True)
    assert not s.exists
    assert s.project("x") == ProjectHistory.empty("x")
    assert s.projects() == []
    assert s.export()["records"] == []
    with pytest.raises(StoreError, match="read-only"):
        s.record([rec("1")])
    assert not db_path.exists()  # a read-only look never creates the database
    with SQLiteHistoryStore.open(db_path) as w:
        w.record([rec("1")])
    with SQLiteHistoryStore.open(db_path, readonly=True) as r:
        assert len(r.project("widget").records) == 1
        with pytest.raises(StoreError, match="read-only"):
            r.forget("widget", reason="x")


# ------------------------------------------------------------------ compare-and-set


def test_update_is_compare_and_set(store: HistoryStore) -> None:
    def first_use(history: ProjectHistory) -> tuple[str, list[HistoryRecord]]:
        if not history.was_attested():
            return "first", [rec("1.0")]
        return "known", []

    assert store.update("widget", first_use) == "first"
    assert store.update("Widget", first_use) == "known"
    assert len(store.project("widget").records) == 1


def test_update_rolls_back_on_error(store: HistoryStore) -> None:
    def boom(history: ProjectHistory) -> tuple[None, list[HistoryRecord]]:
        raise RuntimeError("decide failed")

    with pytest.raises(RuntimeError):
        store.update("widget", boom)
    assert store.project("widget").is_empty

    with pytest.raises(ValueError, match="cannot record"):
        store.update("widget", lambda h: (None, [rec("1", project="other")]))
    assert store.project("other").is_empty
    store.record([rec("1")])  # the connection is usable afterwards


def test_busy_database_is_a_store_error(
    db_path: Path, store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dbmod, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with SQLiteHistoryStore.open(db_path) as other, pytest.raises(StoreError, match="busy"):
            other.record([rec("1")])
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# ------------------------------------------------------------------ refusing bad files


def _foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE records (x)")
    conn.commit()
    conn.close()


def _wrong_app_id(path: Path) -> None:
    SQLiteHistoryStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.commit()
    conn.close()


def _newer_schema(path: Path) -> None:
    SQLiteHistoryStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()


def _ours_without_tables(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.commit()
    conn.close()


def _populated(path: Path) -> None:
    with SQLiteHistoryStore.open(path) as s:
        s.record([rec(f"{i}.0", minutes=i) for i in range(300)])


def _truncated(path: Path) -> None:
    _populated(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _truncated_to_page(path: Path) -> None:
    _populated(path)
    data = path.read_bytes()
    path.write_bytes(data[:4096])


def _page_garbage(path: Path) -> None:
    _populated(path)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page * 2 : page * 3] = b"\xa5" * page
    path.write_bytes(bytes(data))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _text(path: Path) -> None:
    path.write_text('{"not": "sqlite"}\n')


def _header_only(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00")


BAD_FILES: list[tuple[str, Callable[[Path], None], str]] = [
    ("empty", _empty, "empty"),
    ("garbage", _garbage, "not a SQLite database"),
    ("text", _text, "not a SQLite database"),
    ("header-only", _header_only, "not a SQLite database"),
    ("foreign-sqlite", _foreign_sqlite, "not a safe-pip history"),
    ("wrong-application-id", _wrong_app_id, "not a safe-pip history"),
    ("newer-schema", _newer_schema, "newer"),
    ("missing-tables", _ours_without_tables, "lacks table"),
    ("truncated-half", _truncated, "truncated|corrupt|malformed"),
    ("truncated-first-page", _truncated_to_page, "truncated|corrupt|malformed"),
    ("garbage-page", _page_garbage, "corrupt|malformed"),
]


@pytest.mark.parametrize(
    ("make", "fragment"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES]
)
@pytest.mark.parametrize("readonly", [False, True], ids=["rw", "ro"])
def test_bad_database_is_refused_and_untouched(
    db_path: Path, make: Callable[[Path], None], fragment: str, readonly: bool
) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    make(db_path)
    os.chmod(db_path, 0o600)
    before = snapshot(db_path)
    with pytest.raises(StoreError, match=fragment) as info:
        SQLiteHistoryStore.open(db_path, readonly=readonly)
    assert str(db_path) in str(info.value)
    assert info.value.exit_code == 3
    assert info.value.fix
    assert snapshot(db_path) == before  # never reset, never recreated, never written


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_writable_by_others_is_refused(db_path: Path, mode: int) -> None:
    SQLiteHistoryStore.open(db_path).close()
    os.chmod(db_path, mode)
    with pytest.raises(StoreError, match="writable by group or others"):
        SQLiteHistoryStore.open(db_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_is_refused(db_path: Path) -> None:
    SQLiteHistoryStore.open(db_path).close()
    os.chmod(db_path, 0)
    try:
        with pytest.raises(StoreError, match="cannot read"):
            SQLiteHistoryStore.open(db_path)
    finally:
        os.chmod(db_path, 0o600)


def test_directory_instead_of_file(db_path: Path) -> None:
    db_path.mkdir(parents=True)
    with pytest.raises(StoreError, match="not a regular file"):
        SQLiteHistoryStore.open(db_path)


def test_malformed_row_is_a_store_error(db_path: Path) -> None:
    with SQLiteHistoryStore.open(db_path) as s:
        s.record([rec("1")])
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE records SET identity = '{\"kind\": 5}'")
    conn.commit()
    conn.close()
    with SQLiteHistoryStore.open(db_path) as s, pytest.raises(StoreError, match="malformed record"):
        s.project("widget")


def test_killed_writer_leaves_a_readable_store(db_path: Path) -> None:
    """kill -9 in the middle of a write transaction: the store opens, the write is gone."""
    SQLiteHistoryStore.open(db_path).close()
    script = f"""
import sys, time
from datetime import datetime, timezone
sys.path[:0] = {sys.path!r}
from safe_pip.store import HistoryStore
from safe_pip.store.sqlite import SQLiteHistoryStore
from safe_pip.policy.history import HistoryRecord
from pathlib import Path
s = SQLiteHistoryStore.open(Path({str(db_path)!r}))
def decide(history):
    s._db().execute("INSERT INTO records (project, version, filename, sha256, identity_key, "
                    "identity, seen_at, idx, source) VALUES ('widget', '9', 'f', 'ab', '', NULL, "
                    "'2026-01-01T00:00:00+00:00', NULL, 'local')")
    print("in-transaction", flush=True)
    time.sleep(60)
    return None, []
s.update("widget", decide)
"""  # noqa: S608 - a test script, not a query
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "in-transaction"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    start = time.monotonic()
    with SQLiteHistoryStore.open(db_path) as s:
        assert s.project("widget").is_empty
        s.record([rec("1")])  # not locked by the dead writer
        assert len(s.project("widget").records) == 1
    assert time.monotonic() - start < 10


# ------------------------------------------------------------------ forget, export, import


def test_forget_is_logged(store: HistoryStore) -> None:
    store.record([rec("1"), rec("2", minutes=1), rec("1", project="keep")])
    with pytest.raises(ConfigError, match="reason"):
        store.forget("widget", reason="  ")
    assert store.forget("Widget", reason="repo moved to new org (checked)") == 2
    assert store.project("widget").is_empty
    assert len(store.project("keep").records) == 1
    (entry,) = store.audit_log("widget")
    assert entry.action == "forget"
    assert entry.count == 2
    assert entry.reason == "repo moved to new org (checked)"
    assert [r["version"] for r in entry.detail] == ["1", "2"]  # what was removed is kept
    assert store.forget("absent", reason="nothing") == 0
    assert len(store.audit_log()) == 2


def test_export_import_round_trip(tmp_path: Path, store: HistoryStore) -> None:
    records = [rec("1.0"), rec("1.1", B, minutes=1), rec("0.9", None, minutes=2, source="index")]
    store.record(records)
    store.record([rec("3", project="other")])
    data = json.loads(json.dumps(store.export()))
    assert data["format"] == "safe-pip-history"
    assert data["version"] == 1
    assert len(data["records"]) == 4

    with SQLiteHistoryStore.open(tmp_path / "other" / "history.sqlite3") as fresh:
        # widget's history changes publisher (A's 1.0, then B's 1.1): a change made on the
        # machine it was exported from, decided again here (ADR 0012: a sequence)
        with pytest.raises(NewPublishersError) as info:
            fresh.import_(data)
        assert [(p.identity, p.known) for p in info.value.publishers] == [(B, (A,))]
        assert fresh.export()["records"] == []
        first = fresh.import_(data, accept_new_publishers=True)
        assert (first.added, first.total) == (4, 4)
        assert [p.identity for p in first.new_publishers] == [B]
        assert fresh.import_(data).added == 0  # idempotent
        for name in ("widget", "other"):
            assert fresh.project(name) == store.project(name)
        (entry,) = [a for a in fresh.audit_log() if a.count == 4 and a.action == "import"]
        assert entry.action == "import"
        exported_again = fresh.export()
    assert exported_again["records"] == data["records"]


def test_import_refuses_a_new_publisher_atomically(tmp_path: Path, store: HistoryStore) -> None:
    from safe_pip.errors import EXIT_REFUSED

    store.record([rec("1.0")])
    with SQLiteHistoryStore.open(tmp_path / "src" / "history.sqlite3") as src:
        src.record([rec("0.1", project="fresh"), rec("2.0", B)])
        data = src.export()
    before = (store.export()["records"], len(store.audit_log()))
    with pytest.raises(NewPublishersError) as info:
        store.import_(data)
    assert info.value.exit_code == EXIT_REFUSED
    assert [(p.project, p.identity) for p in info.value.publishers] == [("widget", B)]
    assert (store.export()["records"], len(store.audit_log())) == before  # not even "fresh"
    result = store.import_(data, accept_new_publishers=True)
    assert result.added == 2
    assert [p.identity for p in result.new_publishers] == [B]
    assert [a.action for a in store.audit_log("widget")] == ["import-new-publisher"]


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.update(format="other"), "not a safe-pip history export"),
        (lambda d: d.update(version=2), "version 2 is not supported"),
        (lambda d: d.update(records={}), "must be a list"),
        (lambda d: d["records"].append("x"), r"records\[2\] must be an object"),
        (lambda d: d["records"][0].update(extra=1), "unknown keys"),
        (lambda d: d["records"][0].update(sha256="xyz"), "not a hex sha256"),
        (lambda d: d["records"][0].update(project=""), "'project' must be a non-empty string"),
        (lambda d: d["records"][0].update(seen_at="yesterday"), "not an ISO 8601"),
        (lambda d: d["records"][0].update(source="cloud"), "source"),
        (lambda d: d["records"][0].update(identity={"kind": "github"}), "identity"),
        (lambda d: d["records"][0].update(identity="GitHub"), "identity must be an object"),
        (lambda d: d["records"][0].update(index=5), "index"),
    ],
)
def test_import_validates_everything_first(
    store: HistoryStore, mutate: Callable[[dict[str, object]], None], fragment: str
) -> None:
    with SQLiteHistoryStore.open(store.path.parent / "src.sqlite3") as src:
        src.record([rec("1")])
        data = src.export()
    data["records"].insert(0, dict(data["records"][0], version="0"))
    mutate(data)
    with pytest.raises(ConfigError, match=fragment):
        store.import_(data)
    assert store.project("widget").is_empty  # all or nothing
    with pytest.raises(ConfigError):
        parse_export(data)
