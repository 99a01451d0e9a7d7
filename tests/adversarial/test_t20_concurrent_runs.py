"""T20: several safe-pip runs share one history database; a run is killed at any point.

Concurrent runs are forked copies of this process calling the real CLI (``main``) against
the same SafePip home, released together by a barrier. A killed run never leaves a
half-written state: the database reopens (fully validated) with all or none of a run's
records."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from adversarial.conftest import Env, db_path, db_snapshot
from safe_pip.cli import main
from safe_pip.store import HistoryStore
from safe_pip.store.sqlite import SQLiteHistoryStore
from support.index_server import IndexServer
from support.packages import build_wheel
from support.sigstore_ca import GitHubIdentity, provenance_json

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses fork and SIGKILL")

CTX = multiprocessing.get_context("fork")


def _child(argv: Sequence[str], barrier: Any, hook: Callable[[], None] | None = None) -> None:
    devnull = open(os.devnull, "w")  # noqa: SIM115 - the child exits without cleanup
    sys.stdout = sys.stderr = devnull
    if hook is not None:
        hook()
    if barrier is not None:
        barrier.wait(timeout=30)
    os._exit(main(list(argv)))


def _run_parallel(argvs: list[list[str]]) -> list[int]:
    barrier = CTX.Barrier(len(argvs))
    procs = [CTX.Process(target=_child, args=(a, barrier)) for a in argvs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    return [p.exitcode if p.exitcode is not None else -1 for p in procs]


def _reopen() -> HistoryStore:
    """Open the database the way a next run would (full validation)."""
    return SQLiteHistoryStore.open(db_path())


@pytest.mark.parametrize("n", [2, 8])
def test_concurrent_runs_same_publisher(env: Env, n: int) -> None:
    env.pub.wheel("alpha", "1.0")
    env.pub.wheel("beta", "1.0")
    argvs = [
        ["inspect", f"{'alpha' if i % 2 else 'beta'}==1.0", *env.args(), "--record"]
        for i in range(n)
    ]
    codes = _run_parallel(argvs)
    assert codes == [0] * n
    with _reopen() as store:
        records = [r for p in ("alpha", "beta") for r in store.project(p).records]
    assert sorted((r.project, r.filename) for r in records) == [
        ("alpha", "alpha-1.0-py3-none-any.whl"),
        ("beta", "beta-1.0-py3-none-any.whl"),
    ]


@pytest.mark.parametrize("n", [2, 8])
def test_concurrent_first_use_with_conflicting_publishers(env: Env, n: int) -> None:
    """Two indexes serve alpha 1.0, each validly signed by a different repository. Runs
    racing to trust alpha first must never leave both publishers recorded as trusted: the
    history then lets either publish from now on."""
    env.pub.wheel("alpha", "1.0")
    other_dir = env.workdir / "other-build"
    other_dir.mkdir()
    evil = GitHubIdentity(repository="evil/alpha")
    wheel = build_wheel(other_dir, "alpha", "1.0", files={"alpha/evil.py": "x = 1\n"})
    prov = provenance_json([env.pub.sigstore.attest_file(wheel, evil)], evil)
    with IndexServer(env.workdir / "index2") as other:
        other.add_file(wheel, project="alpha", provenance=prov)
        argvs = []
        for i in range(n):
            index = env.server.index_url if i % 2 else other.index_url
            argvs.append(
                [
                    "inspect",
                    "alpha==1.0",
                    "--trust-root",
                    str(env.trust_root),
                    "-i",
                    index,
                    "--record",
                    "--no-index-history",
                ]
            )
        codes = _run_parallel(argvs)
    with _reopen() as store:
        identities = {r.identity.repository for r in store.project("alpha").records if r.identity}
    assert len(identities) == 1, f"both publishers trusted: {identities}, exit codes {codes}"
    assert sorted(set(codes)) in ([0, 1], [0]), codes
    winners = codes.count(0)
    assert 1 <= winners < n or n == 1


def _kill_self_inside_transaction() -> None:
    from safe_pip.store import HistoryStore

    original = HistoryStore._insert

    def insert_then_die(conn: Any, records: Any) -> int:
        recs = list(records)
        original(conn, recs[:1])  # one row written inside the open transaction ...
        os.kill(os.getpid(), signal.SIGKILL)  # ... and the process dies before COMMIT
        return 0

    HistoryStore._insert = staticmethod(insert_then_die)  # type: ignore[method-assign]


def _kill_self_while_creating() -> None:
    import safe_pip.store.sqlite as db

    def link_then_die(src: Any, dst: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    db.os.link = link_then_die  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("hook", "existing"),
    [(_kill_self_inside_transaction, True), (_kill_self_while_creating, False)],
    ids=["mid-transaction", "mid-create"],
)
def test_killed_run_leaves_no_half_written_state(
    env: Env, hook: Callable[[], None], existing: bool
) -> None:
    env.pub.wheel("alpha", "1.0")
    env.pub.sdist("alpha", "1.0")  # two files: a half-written run would keep one
    if existing:
        env.pub.wheel("beta", "1.0")
        assert env.inspect("beta==1.0", "--record").code == 0
    before = db_snapshot()
    proc = CTX.Process(
        target=_child, args=(["inspect", "alpha==1.0", *env.args(), "--record"], None, hook)
    )
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == -signal.SIGKILL
    if existing:
        with _reopen() as store:
            assert store.project("alpha").records == ()
        assert db_snapshot() == before
    else:
        assert not db_path().exists()  # never a half-created database at the real path
    # and the next run works normally
    run = env.inspect("alpha==1.0", "--record")
    assert run.code == 0, run.text
    assert len([r for r in db_snapshot() if r["project"] == "alpha"]) == 2


def test_killed_at_random_points(env: Env) -> None:
    """SIGKILL a recording run at spread-out moments; after each kill the database reopens
    with full validation and holds all or none of the run's two records."""
    env.pub.wheel("alpha", "1.0")
    env.pub.sdist("alpha", "1.0")
    rng = random.Random(740)
    argv = ["inspect", "alpha==1.0", *env.args(), "--record", "--no-index-history"]
    for _ in range(6):
        proc = CTX.Process(target=_child, args=(argv, None))
        proc.start()
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.pid is not None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=30)
        if db_path().exists():
            with _reopen() as store:
                n = len(store.project("alpha").records)
            assert n in (0, 2)
            if n == 2:
                break
