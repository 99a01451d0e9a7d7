"""Eight processes share one history database (docs/threat-model.md T20): recording the same
identity gives one record and all succeed; with two conflicting identities exactly one is trusted
first and every process with the other one sees a publisher change -- never both."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from safe_pip.models import FileRef, PublisherIdentity, VerificationResult, VerifyStatus
from safe_pip.policy.file import Policy
from safe_pip.policy.history import HistoryRecord, ProjectHistory
from safe_pip.policy.rules import decide, history_records_for
from safe_pip.store import open_history
from safe_pip.store.sqlite import SQLiteHistoryStore

PROCS = 8
SHA = "ab" * 32
NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)
# the log time of the hand-made verified results: a month before NOW (older than the minimum
# release age, which is not what these tests are about)
SIGNED = int(NOW.timestamp()) - 30 * 86400
IDENTITIES = {
    "A": PublisherIdentity(kind="GitHub", repository="acme/widget", workflow="release.yml"),
    "B": PublisherIdentity(kind="GitHub", repository="evil/widget", workflow="release.yml"),
}


def _ctx() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _tofu_worker(path: str, who: str, barrier: Any, out: Any) -> None:
    try:
        identity = IDENTITIES[who]
        ref = FileRef("widget", "1.0", "widget-1.0-py3-none-any.whl", sha256=SHA)
        result = VerificationResult(
            ref.filename,
            SHA,
            VerifyStatus.VERIFIED,
            "ok",
            identity=identity,
            integrated_time=SIGNED,
        )
        store = open_history(path)  # a file path, or a postgresql:// URL (test_store_contract)
        barrier.wait(timeout=60)

        def step(history: ProjectHistory) -> tuple[str, tuple[HistoryRecord, ...]]:
            verdict = decide(ref, result, Policy.default(), history, NOW)
            return verdict.code.value, history_records_for(ref, result, verdict, NOW)

        code = store.update("widget", step)
        store.close()
        out.put((who, code))
    except Exception as exc:  # report, never hang the parent
        out.put((who, f"error: {type(exc).__name__}: {exc}"))


def _record_worker(path: str, n: int, barrier: Any, out: Any) -> None:
    try:
        store = SQLiteHistoryStore.open(Path(path))
        barrier.wait(timeout=60)
        for i in range(40):
            # half the versions are shared by all workers, half are the worker's own
            version = f"{i}.0" if i % 2 == 0 else f"{i}.{n}"
            who = "A" if n % 2 == 0 else "B"
            store.record(
                [
                    HistoryRecord(
                        "gadget",
                        version,
                        f"gadget-{version}.whl",
                        SHA,
                        IDENTITIES[who],
                        NOW,
                        None,
                        "local",
                    )
                ]
            )
        store.close()
        out.put((n, "ok"))
    except Exception as exc:
        out.put((n, f"error: {type(exc).__name__}: {exc}"))


def _run(target: Any, args_for: list[tuple[Any, ...]]) -> list[tuple[Any, str]]:
    ctx = _ctx()
    barrier = ctx.Barrier(len(args_for))
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, barrier, out)) for a in args_for]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def _integrity(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


@pytest.mark.parametrize("fresh", [True, False], ids=["creating", "existing"])
def test_same_identity_from_eight_processes(tmp_path: Path, fresh: bool) -> None:
    path = tmp_path / "history.sqlite3"
    if not fresh:
        SQLiteHistoryStore.open(path).close()
    results = _run(_tofu_worker, [(str(path), "A")] * PROCS)
    codes = Counter(code for _, code in results)
    assert codes == {"verified-first-use": 1, "verified-known": PROCS - 1}, codes
    with SQLiteHistoryStore.open(path) as store:
        (record,) = store.project("widget").records
        assert record.identity == IDENTITIES["A"]
    _integrity(path)


@pytest.mark.parametrize("fresh", [True, False], ids=["creating", "existing"])
def test_conflicting_identities_exactly_one_wins(tmp_path: Path, fresh: bool) -> None:
    path = tmp_path / "history.sqlite3"
    if not fresh:
        SQLiteHistoryStore.open(path).close()
    whos = ["A", "B"] * (PROCS // 2)
    results = _run(_tofu_worker, [(str(path), w) for w in whos])
    assert not [c for _, c in results if c.startswith("error")], results
    first = [who for who, code in results if code == "verified-first-use"]
    assert len(first) == 1, results
    winner = first[0]
    for who, code in results:
        if who == winner:
            assert code in ("verified-first-use", "verified-known")
        else:
            assert code == "refused-publisher-change"
    with SQLiteHistoryStore.open(path) as store:
        history = store.project("widget")
        assert {r.identity for r in history.records} == {IDENTITIES[winner]}
        assert len(history.records) == 1
    _integrity(path)


def test_concurrent_records_are_all_kept(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    results = _run(_record_worker, [(str(path), n) for n in range(PROCS)])
    assert all(status == "ok" for _, status in results), results
    expected = set()
    for n in range(PROCS):
        for i in range(40):
            version = f"{i}.0" if i % 2 == 0 else f"{i}.{n}"
            expected.add((version, "A" if n % 2 == 0 else "B"))
    by_repo = {v.repository: k for k, v in IDENTITIES.items()}
    with SQLiteHistoryStore.open(path) as store:
        records = store.project("gadget").records
        seen = {(r.version, by_repo[r.identity.repository if r.identity else ""]) for r in records}
    assert seen == expected
    assert len(records) == len(expected)
    _integrity(path)


def test_threads_sharing_one_store(tmp_path: Path) -> None:
    """check.py verifies in parallel threads over one HistoryStore: reads and compare-and-set
    writes from many threads must not interleave inside each other's transactions."""
    from concurrent.futures import ThreadPoolExecutor

    store = SQLiteHistoryStore.open(tmp_path / "history.sqlite3")

    def one(i: int) -> str:
        who = "A" if i % 2 == 0 else "B"
        project = f"p{i % 4}"
        ref = FileRef(project, "1.0", f"{project}-1.0.whl", sha256=SHA)
        result = VerificationResult(
            ref.filename,
            SHA,
            VerifyStatus.VERIFIED,
            "ok",
            identity=IDENTITIES[who],
            integrated_time=SIGNED,
        )

        def step(history: ProjectHistory) -> tuple[str, tuple[HistoryRecord, ...]]:
            verdict = decide(ref, result, Policy.default(), history, NOW)
            return verdict.code.value, history_records_for(ref, result, verdict, NOW)

        store.project(project)
        return store.update(project, step)

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(one, range(64)))
        for p in range(4):
            assert len({r.identity for r in store.project(f"p{p}").records}) == 1
        assert Counter(codes)["verified-first-use"] == 4
    finally:
        store.close()
