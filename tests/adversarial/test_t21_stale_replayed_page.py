"""T21: a stale or replayed index page (freeze / rollback of the listing).

Detected: the highest ``_last-serial`` each index served for each project is kept in the
history database (``serials`` table, schema 2) and in memory
(``safe_pip.store.serials.SerialGuard``).
A page with a lower serial is "could not check": ``inspect``, ``install`` and ``verify`` exit 3
with nothing recorded or installed, ``serve`` answers 503 and logs "stale". Equal, higher and
missing serials pass. A replayed page cannot inject either way: its files are still verified one
by one, so an old listing whose hash no longer matches the bytes is refused.
Limits (docs/threat-model.md): pages without a serial; a freeze older than this machine's first
read; read-only runs compare but do not record."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from adversarial.conftest import Env, Run, db_path, db_snapshot
from safe_pip.check import Checker
from safe_pip.errors import StaleIndexError, StoreError
from safe_pip.models import Action
from safe_pip.policy.file import Policy
from safe_pip.provenance.trust import TrustConfig
from safe_pip.serve.server import EventLog, ServeError, VerifyingIndex
from safe_pip.store.base import SCHEMA_VERSION
from safe_pip.store.sqlite import APPLICATION_ID, SQLiteHistoryStore
from support.index_server import Fault, IndexServer
from support.publish import Publisher
from verify_helpers import requirements_text

JSON_T = "application/vnd.pypi.simple.v1+json"


def _index(env: Env, log: EventLog) -> VerifyingIndex:
    checker = Checker(
        trust=TrustConfig(mode="custom", path=env.trust_root),
        policy=Policy.default(),
        store=None,
        provenance_index=env.server.index_url,
    )
    return VerifyingIndex(checker, env.server.index_url, log=log)


def test_serve_refuses_a_serial_going_backwards(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    log = EventLog(quiet=True, keep=True)
    index = _index(env, log)
    try:
        env.server.serials["alpha"] = 100
        index.project("alpha")
        env.server.serials["alpha"] = 90  # a replayed / stale mirror page
        with pytest.raises(ServeError) as info:
            index.project("alpha")
    finally:
        index.close()
    assert info.value.status == 503
    assert "older than serial 100" in info.value.reason
    [stale] = [e for e in log.events if e["event"] == "stale"]
    assert stale["serial"] == 90
    assert stale["previous_serial"] == 100


def test_replayed_page_with_old_hash_cannot_inject(env: Env) -> None:
    """The page from before a file was replaced is replayed: its listed sha256 and provenance
    bind the old bytes, the index serves new ones. Refused as an invalid attestation."""
    env.pub.wheel("alpha", "1.0")
    old_page = env.server.project_json("alpha")
    env.pub.wheel("alpha", "1.0", signed=False, files={"alpha/__init__.py": "EVIL = 1\n"})
    env.server.faults["/simple/alpha/"] = Fault(body=old_page, content_type=JSON_T)

    run = env.inspect("alpha==1.0", "--record", "--json", "--no-index-history")

    assert run.code == 1, run.text
    [doc] = run.json()
    assert doc["code"] == "refused-invalid-attestation"
    assert db_snapshot() == []


def test_replayed_page_verdicts_in_serve(env: Env) -> None:
    """serve decides a page by the listed sha256 (the attestation binds it) and serves only
    bytes that hash to it (hash-before-send, tests/test_serve.py): the replayed listing can
    only point at the old, attested bytes."""
    env.pub.wheel("alpha", "1.0")
    old_page = json.loads(env.server.project_json("alpha"))
    env.pub.wheel("alpha", "1.0", signed=False, files={"alpha/__init__.py": "EVIL = 1\n"})
    env.server.faults["/simple/alpha/"] = Fault(
        body=json.dumps(old_page).encode(), content_type=JSON_T
    )
    index = _index(env, EventLog(quiet=True, keep=True))
    try:
        view = index.project("alpha")
    finally:
        index.close()
    [entry] = view.entries
    old_sha = old_page["files"][0]["hashes"]["sha256"]
    assert entry.verdict.sha256 == old_sha
    assert entry.verdict.action is Action.ALLOW  # allowed for the old bytes only


# -- persisted serials: one-shot runs (install, inspect, verify) and serve across restarts ------


def _last_serial(env: Env, project: str = "alpha") -> int | None:
    with SQLiteHistoryStore.open(db_path(), readonly=True) as store:
        return store.last_serial(env.server.index_url, project)


def _stale(run: Run) -> None:
    assert run.code == 3, run.text
    assert "older than serial 100 seen before" in run.text
    assert "stale mirror or replayed page" in run.text
    assert "safe-pip history forget-serials alpha" in run.text  # the fix


def test_inspect_refuses_a_page_older_than_one_recorded(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.serials["alpha"] = 100
    assert env.inspect("alpha==1.0", "--record").code == 0
    assert _last_serial(env) == 100
    before = db_snapshot()

    env.server.serials["alpha"] = 90  # a stale mirror / replayed page, in a later run
    _stale(env.inspect("alpha==1.0"))  # read-only: checked against the recorded serial
    _stale(env.inspect("alpha==1.0", "--record"))

    assert db_snapshot() == before  # nothing recorded
    assert _last_serial(env) == 100


def test_equal_or_higher_serial_is_fine_and_recorded(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.serials["alpha"] = 100
    assert env.inspect("alpha==1.0", "--record").code == 0
    assert env.inspect("alpha==1.0").code == 0  # the same page again
    env.server.serials["alpha"] = 110
    assert env.inspect("alpha==1.0").code == 0  # read-only: checked, not recorded
    assert _last_serial(env) == 100
    assert env.inspect("alpha==1.0", "--record").code == 0
    assert _last_serial(env) == 110
    env.server.serials["alpha"] = 100
    run = env.inspect("alpha==1.0")
    assert run.code == 3, run.text
    assert "older than serial 110" in run.text


def test_a_page_without_serial_is_not_checked(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.serials["alpha"] = 100
    assert env.inspect("alpha==1.0", "--record").code == 0
    page = json.loads(env.server.project_json("alpha"))
    del page["meta"]["_last-serial"]
    env.server.faults["/simple/alpha/"] = Fault(
        body=json.dumps(page).encode(), content_type=JSON_T, headers={"X-PyPI-Last-Serial": ""}
    )
    run = env.inspect("alpha==1.0", "--record")
    assert run.code == 0, run.text
    assert _last_serial(env) == 100


def test_serials_are_per_index_and_project(env: Env, tmp_path: Path) -> None:
    env.pub.wheel("alpha", "1.0")
    env.pub.wheel("beta", "1.0")
    env.server.serials.update(alpha=100, beta=5)
    assert env.inspect("alpha==1.0", "--record").code == 0
    assert env.inspect("beta==1.0", "--record").code == 0
    env.server.serials["alpha"] = 90
    assert env.inspect("beta==1.0").code == 0  # beta's serial did not go back
    with IndexServer(tmp_path / "other") as other:  # another index: its own serials
        Publisher(env.pub.sigstore, other, tmp_path / "other-build").wheel("alpha", "1.0")
        other.serials["alpha"] = 1
        run = env.cli(
            "inspect", "alpha==1.0", "--trust-root", str(env.trust_root), "-i", other.index_url
        )
        assert run.code == 0, run.text


def test_forget_serials_after_a_legitimate_reset(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.serials["alpha"] = 100
    assert env.inspect("alpha==1.0", "--record").code == 0
    env.server.serials["alpha"] = 3  # the index was rebuilt
    _stale(env.inspect("alpha==1.0"))

    home = str(db_path().parent)
    run = env.cli("history", "forget-serials", "alpha", "--home", home)
    assert run.code == 2  # --reason is required
    run = env.cli(
        "history",
        "forget-serials",
        "alpha",
        "--index",
        env.server.index_url.rstrip("/"),  # the same index, spelled without the slash
        "--reason",
        "mirror rebuilt (checked)",
        "--home",
        home,
    )
    assert run.code == 0, run.text
    assert "forgot 1 recorded serial" in run.text
    assert env.inspect("alpha==1.0", "--record").code == 0
    assert _last_serial(env) == 3
    with SQLiteHistoryStore.open(db_path(), readonly=True) as store:
        [entry] = [a for a in store.audit_log("alpha") if a.action == "forget-serials"]
    assert entry.reason == "mirror rebuilt (checked)"
    assert entry.detail["serials"][0]["serial"] == 100


def test_verify_refuses_a_page_older_than_one_recorded(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.serials["alpha"] = 100
    assert env.inspect("alpha==1.0", "--record").code == 0
    lock = env.workdir / "requirements.txt"
    lock.write_text(requirements_text(env.server, ["alpha"]))
    argv = ["verify", str(lock), "--trust-root", str(env.trust_root), "--no-cache"]
    ok = env.cli(*argv)
    assert ok.code == 0, ok.text
    before = db_snapshot()

    env.server.serials["alpha"] = 90
    run = env.cli(*argv)
    _stale(run)
    assert db_snapshot() == before


def test_index_history_page_older_than_recorded_is_could_not_check(env: Env) -> None:
    """The page read for the publisher history of a project seen for the first time."""
    env.pub.wheel("alpha", "1.0")
    env.pub.wheel("alpha", "2.0")
    env.server.serials["alpha"] = 100
    with SQLiteHistoryStore.open(db_path()) as store:
        store.raise_serial(env.server.index_url, "alpha", 100)
    env.server.serials["alpha"] = 90
    with SQLiteHistoryStore.open(db_path(), readonly=True) as store:
        checker = Checker(
            trust=TrustConfig(mode="custom", path=env.trust_root),
            policy=Policy.default(),
            store=store,
            provenance_index=env.server.index_url,
        )
        with pytest.raises(StaleIndexError, match="older than serial 100"):
            checker.history_for("alpha", exclude_version="2.0", index=env.server.index_url)


@pytest.mark.slow
def test_install_refuses_a_page_older_than_one_recorded(env: Env, tmp_path: Path) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.serials["alpha"] = 100

    def install(target: Path) -> Run:
        target.mkdir()
        return env.cli("install", "alpha", "--target", str(target), *env.args())

    first = install(tmp_path / "first")
    assert first.code == 0, first.text
    assert _last_serial(env) == 100
    before = db_snapshot()

    env.server.serials["alpha"] = 90
    run = install(tmp_path / "second")
    _stale(run)
    assert list((tmp_path / "second").iterdir()) == []  # nothing installed
    assert db_snapshot() == before  # nothing recorded

    env.server.serials["alpha"] = 100
    again = install(tmp_path / "third")
    assert again.code == 0, again.text


def test_serve_refuses_a_page_older_than_one_recorded_by_an_earlier_run(env: Env) -> None:
    """serve uses the persistent store: a restarted server (or one started after an install)
    knows the serial an earlier run saw, and records what it sees for later runs."""
    env.pub.wheel("alpha", "1.0")
    env.server.serials["alpha"] = 100

    def serve_once() -> None:
        with SQLiteHistoryStore.open(db_path()) as store:
            checker = Checker(
                trust=TrustConfig(mode="custom", path=env.trust_root),
                policy=Policy.default(),
                store=store,
                provenance_index=env.server.index_url,
            )
            index = VerifyingIndex(checker, env.server.index_url, log=log)
            try:
                index.project("alpha")
            finally:
                index.close()

    log = EventLog(quiet=True, keep=True)
    serve_once()
    assert _last_serial(env) == 100
    env.server.serials["alpha"] = 90
    with pytest.raises(ServeError) as info:
        serve_once()  # a new server: the serial came from the store
    assert info.value.status == 503
    assert "older than serial 100" in info.value.reason
    [stale] = [e for e in log.events if e["event"] == "stale"]
    assert (stale["serial"], stale["previous_serial"]) == (90, 100)
    _stale(env.inspect("alpha==1.0"))  # and a one-shot run knows what serve saw


# -- the history store: schema 1 -> 2 migration, compare-and-set ------------------------------

SCHEMA_1 = Path(__file__).parent.parent / "data" / "history-schema-1.sql"


def _schema_1_db(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(SCHEMA_1.read_text())
    finally:
        conn.close()
    path.chmod(0o600)


def test_schema_1_database_is_migrated_and_keeps_its_records(env: Env) -> None:
    path = db_path()
    _schema_1_db(path)

    with SQLiteHistoryStore.open(path, readonly=True) as store:  # read-only: used as it is
        assert store.schema_version == 1
        [rec] = store.project("alpha").records
        assert store.last_serial(env.server.index_url, "alpha") is None
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()

    # a writing run migrates it, then records the serial it sees
    env.server.serials["beta"] = 100
    env.pub.wheel("beta", "1.0")
    assert env.inspect("beta==1.0", "--record").code == 0
    with SQLiteHistoryStore.open(path, readonly=True) as store:
        assert store.schema_version == SCHEMA_VERSION == 4
        assert store.project("alpha").records == (rec,)
        assert store.last_serial(env.server.index_url, "beta") == 100
        assert [a.action for a in store.audit_log()] == ["forget", "migrate"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
    assert dict(conn.execute("SELECT key, value FROM meta"))["schema_version"] == "4"
    conn.close()
    env.server.serials["beta"] = 99
    assert env.inspect("beta==1.0").code == 3


def test_newer_schema_is_still_refused(env: Env) -> None:
    path = db_path()
    SQLiteHistoryStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        SQLiteHistoryStore.open(path)
    env.pub.wheel("alpha", "1.0")
    run = env.inspect("alpha==1.0", "--record")
    assert run.code == 3, run.text
    assert "newer" in run.text


def test_raise_serial_is_a_compare_and_set_between_runs(env: Env) -> None:
    path = db_path()
    with SQLiteHistoryStore.open(path) as a, SQLiteHistoryStore.open(path) as b:
        assert a.raise_serial("https://x.example/simple", "Alpha", 100) is None
        assert b.raise_serial("https://x.example/simple/", "alpha", 90) == 100  # not written
        assert b.raise_serial("https://user:pw@X.example/simple/?t=1", "alpha", 120) is None
        assert a.last_serial("https://x.example/simple/", "ALPHA") == 120
        assert [(i, p, s) for i, p, s, _ in a.serials()] == [
            ("https://x.example/simple/", "alpha", 120)
        ]
