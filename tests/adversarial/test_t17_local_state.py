"""T17: the local history database is corrupt, truncated, locked, world-writable, or replaced
by an older copy; the policy file changes while a run is going on. safe-pip never resets the
history, never treats a broken one as empty (that would re-trust whoever publishes next), and
never claims success it could not record."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from adversarial.conftest import Env, db_path, db_snapshot
from safe_pip.store import sqlite as store_db
from support.sigstore_ca import GitHubIdentity


def _populated(env: Env) -> Path:
    env.pub.wheel("alpha", "1.0")
    run = env.inspect("alpha==1.0", "--record")
    assert run.code == 0, run.text
    path = db_path()
    assert path.is_file()
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _evil_release(env: Env) -> None:
    env.pub.wheel("alpha", "1.1", identity=GitHubIdentity(repository="evil/alpha"))


@pytest.mark.parametrize(
    "damage", ["garbage", "truncated", "zeroed-header", "empty", "foreign", "newer-schema"]
)
def test_damaged_history_is_an_error_and_is_left_alone(env: Env, damage: str) -> None:
    path = _populated(env)
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "zeroed-header":
        path.write_bytes(b"\0" * 100 + data[100:])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "newer-schema":  # healthy, but written by a future safe-pip
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
    else:  # a valid SQLite database that is not ours
        path.unlink()
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE t (x)")
        conn.close()
    before = _digest(path)
    _evil_release(env)  # what a reset-to-empty history would let through as "first use"

    for target in ("alpha==1.1", "alpha==1.0"):
        run = env.inspect(target, "--record", "--no-index-history")
        assert run.code == 3, run.text
        assert "history.sqlite3" in run.err
        assert any(w in run.err for w in ("never resets", "not changed", "upgrade safe-pip"))
        assert "Traceback" not in run.text
    # read-only commands refuse too: a broken history is not an empty one
    run = env.inspect("alpha==1.1", "--no-index-history")
    assert run.code == 3, run.text
    assert _digest(path) == before


def test_world_writable_history_is_refused(env: Env) -> None:
    path = _populated(env)
    records = db_snapshot()
    os.chmod(path, 0o666)  # noqa: S103 - the attack
    _evil_release(env)
    run = env.inspect("alpha==1.1", "--record", "--no-index-history")
    assert run.code == 3, run.text
    assert "writable by group or others" in run.err
    assert "chmod go-w" in run.err
    assert stat.S_IMODE(path.stat().st_mode) == 0o666  # not silently "fixed" either
    os.chmod(path, 0o600)
    assert db_snapshot() == records


def test_history_that_is_a_symlink_elsewhere_is_checked_as_its_target(env: Env) -> None:
    path = _populated(env)
    elsewhere = env.workdir / "elsewhere.sqlite3"
    shutil.move(path, elsewhere)
    os.chmod(elsewhere, 0o646)  # noqa: S103 - the attack
    path.symlink_to(elsewhere)
    run = env.inspect("alpha==1.0", "--record")
    assert run.code == 3, run.text
    assert "writable by group or others" in run.err


def test_locked_history_is_busy_not_success(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holds the write lock past the busy timeout: the run says 'could not
    check' (exit 3) instead of reporting a verdict it did not record."""
    path = _populated(env)
    records = db_snapshot()
    env.pub.wheel("alpha", "1.1")
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_S", 0.3)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        run = env.inspect("alpha==1.1", "--record")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert run.code == 3, run.text
    assert "busy" in run.err
    assert db_snapshot() == records


def test_rollback_to_an_older_copy(env: Env) -> None:
    """Replaced by an older copy of itself (e.g. a restored backup or CI cache), the history is
    a valid database: safe-pip cannot tell (no external anchor). What still holds:

    - the index's earlier releases are read as history on first sight, so a publisher change
      against them is still refused;
    - a [[package]] rule in a reviewed policy file is not part of the history at all.
    What does NOT hold: with index history off (or an index that hides earlier releases), the
    rolled-back project is "first use" again. docs/threat-model.md says so."""
    env.pub.wheel("beta", "1.0")  # something to have in the old copy
    run = env.inspect("beta==1.0", "--record")
    assert run.code == 0, run.text
    old_copy = env.workdir / "old.sqlite3"
    shutil.copy2(db_path(), old_copy)
    _populated(env)  # now alpha 1.0 (acme) is recorded too
    _evil_release(env)
    shutil.copy2(old_copy, db_path())  # roll back: alpha was never seen
    for suffix in ("-wal", "-shm"):
        Path(f"{db_path()}{suffix}").unlink(missing_ok=True)

    # detected: index history shows alpha 1.0 was published by acme/alpha
    run = env.inspect("alpha==1.1", "--record", "--json")
    assert run.code == 1, run.text
    assert run.json()[0]["code"] == "refused-publisher-change"

    # detected: a committed policy rule does not depend on the history
    policy = env.workdir / "safe-pip.toml"
    policy.write_text(
        '[[package]]\nname = "alpha"\npublishers = [\n'
        '  { kind = "GitHub", repository = "acme/alpha", workflow = "release.yml" },\n]\n'
    )
    run = env.inspect("alpha==1.1", "--record", "--json", "--no-index-history")
    assert run.code == 1, run.text
    assert run.json()[0]["code"] == "refused-unexpected-publisher"
    policy.unlink()

    # NOT detected: no policy rule, no index history -> first use again
    run = env.inspect("alpha==1.1", "--json", "--no-index-history")
    assert run.code == 0, run.text
    assert run.json()[0]["code"] == "verified-first-use"


def test_deleted_history_is_first_use_but_index_history_still_applies(env: Env) -> None:
    path = _populated(env)
    _evil_release(env)
    path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    run = env.inspect("alpha==1.1", "--record", "--json")
    assert run.code == 1, run.text
    assert run.json()[0]["code"] == "refused-publisher-change"
    assert db_snapshot() == []


def test_policy_file_changed_mid_run(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy is read once, at the start: a policy rewritten (here: to allow evil/alpha,
    then to garbage) while files are being decided does not change this run's verdicts, and
    the next run reads the new file (and rejects garbage with a path:line error, exit 2)."""
    from safe_pip.check import Checker

    env.pub.wheel("alpha", "1.0", identity=GitHubIdentity(repository="evil/alpha"))
    env.pub.sdist("alpha", "1.0", identity=GitHubIdentity(repository="evil/alpha"))
    policy = env.workdir / "safe-pip.toml"
    policy.write_text(
        '[[package]]\nname = "alpha"\npublishers = [\n'
        '  { kind = "GitHub", repository = "acme/alpha", workflow = "release.yml" },\n]\n'
    )
    original = Checker.decide
    calls = 0
    lock = threading.Lock()  # files are decided in parallel: keep the rewrites in order

    def decide_and_rewrite(self: Checker, *args: object, **kw: object) -> object:
        nonlocal calls
        with lock:
            calls += 1
            if calls == 1:
                policy.write_text(
                    '[[package]]\nname = "alpha"\npublishers = [\n'
                    '  { kind = "GitHub", repository = "evil/alpha", workflow = "release.yml" },'
                    "\n]\n"
                )
            elif calls == 2:
                policy.write_text("[[package]\nname = ")
        return original(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Checker, "decide", decide_and_rewrite)
    run = env.inspect("alpha==1.0", "--record", "--json", "--no-index-history")
    assert calls == 2
    assert run.code == 1, run.text
    assert {d["code"] for d in run.json()} == {"refused-unexpected-publisher"}
    assert db_snapshot() == []
    monkeypatch.setattr(Checker, "decide", original)
    run = env.inspect("alpha==1.0", "--record", "--no-index-history")
    assert run.code == 2, run.text
    assert "safe-pip.toml:1" in run.err
