"""T13: hostile sizes and speeds. Huge and endless bodies, gzip bombs, a slow drip, deeply
nested and giant JSON, thousands of files on one page, a dist longer than its declared size,
thousands of attestation bundles. Every case ends in bounded time and memory with a clear
"could not check" error (exit 3), never a traceback, never an allow, nothing recorded."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import pytest

from adversarial.conftest import Env, db_snapshot
from safe_pip.check import Checker
from safe_pip.models import Action, ReasonCode
from safe_pip.net import (
    DeadlineExceeded,
    Http,
    Limits,
    MalformedResponse,
    ResponseTooLarge,
    SimpleIndex,
)
from safe_pip.policy.file import Policy
from safe_pip.provenance.trust import TrustConfig
from support.index_server import Fault

MiB = 1 << 20
JSON_PAGE = "application/vnd.pypi.simple.v1+json"


def _assert_refused_unrecorded(run_code: int, text: str, needle: str) -> None:
    assert run_code == 3, text
    assert needle in text
    assert "Traceback" not in text
    assert db_snapshot() == []


# -- through the CLI (default limits) -------------------------------------------------------


def test_endless_provenance_is_cut_at_the_cap(env: Env) -> None:
    wheel = env.pub.wheel("alpha", "1.0")
    env.server.faults[f"/provenance/alpha/{wheel.name}"] = Fault(endless=True)
    start = time.monotonic()
    run = env.inspect("alpha==1.0", "--record", "--json", "--no-index-history")
    assert time.monotonic() - start < 20
    _assert_refused_unrecorded(run.code, run.text, "limit")
    [doc] = run.json()
    assert doc["code"] == "could-not-check"


def test_gzip_bomb_provenance_is_capped_decoded(env: Env) -> None:
    wheel = env.pub.wheel("alpha", "1.0")
    env.server.faults[f"/provenance/alpha/{wheel.name}"] = Fault(
        gzip_bomb=64 * MiB, content_type="application/json"
    )
    run = env.inspect("alpha==1.0", "--record", "--json", "--no-index-history")
    _assert_refused_unrecorded(run.code, run.text, "once decompressed")


def test_gzip_bomb_page_is_capped_decoded(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.faults["/simple/alpha/"] = Fault(gzip_bomb=128 * MiB, content_type=JSON_PAGE)
    run = env.inspect("alpha==1.0", "--record")
    _assert_refused_unrecorded(run.code, run.text, "once decompressed")


def test_giant_page_is_refused(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    body = b'{"meta": {"api-version": "1.1"}, "name": "alpha", "files": [], "x": "'
    body += b"a" * (21 * MiB) + b'"}'
    env.server.faults["/simple/alpha/"] = Fault(body=body, content_type=JSON_PAGE)
    run = env.inspect("alpha==1.0", "--record")
    _assert_refused_unrecorded(run.code, run.text, "limit")


@pytest.mark.parametrize("where", ["page", "provenance"])
def test_deeply_nested_json_is_malformed_not_a_crash(env: Env, where: str) -> None:
    wheel = env.pub.wheel("alpha", "1.0")
    bomb = b"[" * 100_000 + b"]" * 100_000
    if where == "page":
        env.server.faults["/simple/alpha/"] = Fault(body=bomb, content_type=JSON_PAGE)
    else:
        env.server.faults[f"/provenance/alpha/{wheel.name}"] = Fault(
            body=bomb, content_type="application/json"
        )
    run = env.inspect("alpha==1.0", "--record", "--no-index-history")
    _assert_refused_unrecorded(run.code, run.text, "nested")
    assert "internal error" not in run.text


def test_moderately_nested_json_over_depth_limit(env: Env) -> None:
    wheel = env.pub.wheel("alpha", "1.0")
    deep: object = []
    for _ in range(200):
        deep = [deep]
    body = json.dumps({"version": 1, "attestation_bundles": deep}).encode()
    env.server.faults[f"/provenance/alpha/{wheel.name}"] = Fault(
        body=body, content_type="application/json"
    )
    run = env.inspect("alpha==1.0", "--record", "--no-index-history")
    _assert_refused_unrecorded(run.code, run.text, "nested deeper than 64")


def test_thousands_of_attestation_bundles_are_refused(env: Env) -> None:
    wheel = env.pub.wheel("alpha", "1.0")
    real = json.loads((env.server.root / "alpha" / (wheel.name + ".provenance")).read_text())
    real["attestation_bundles"] = real["attestation_bundles"] * 10_000
    env.server.faults[f"/provenance/alpha/{wheel.name}"] = Fault(
        body=json.dumps(real).encode(),
        content_type="application/json",
    )
    start = time.monotonic()
    run = env.inspect("alpha==1.0", "--record", "--no-index-history")
    assert time.monotonic() - start < 20
    # either over the byte cap or over the bundle count cap: both are ResponseTooLarge
    _assert_refused_unrecorded(run.code, run.text, "limit")


def test_many_bundles_under_the_byte_cap_are_refused_by_count(env: Env) -> None:
    wheel = env.pub.wheel("alpha", "1.0")
    doc = {"version": 1, "attestation_bundles": [{"publisher": {}, "attestations": []}] * 5000}
    env.server.faults[f"/provenance/alpha/{wheel.name}"] = Fault(
        body=json.dumps(doc).encode(), content_type="application/json"
    )
    run = env.inspect("alpha==1.0", "--record", "--no-index-history")
    _assert_refused_unrecorded(run.code, run.text, "attestation bundles, over the limit")


def test_thousands_of_files_on_one_page_stay_fast(env: Env) -> None:
    """5000 file entries (other versions) on alpha's page: parsing is linear and bounded;
    only the requested version's file is fetched and verified."""
    wheel = env.pub.wheel("alpha", "1.0")
    page = json.loads(env.server.project_json("alpha"))
    real = page["files"][0]
    for i in range(5000):
        fake = dict(real)
        fake["filename"] = f"alpha-0.{i}-py3-none-any.whl"
        fake["url"] = env.server.file_url("alpha", fake["filename"])
        fake["provenance"] = None
        page["files"].append(fake)
    page.pop("versions", None)
    env.server.faults["/simple/alpha/"] = Fault(
        body=json.dumps(page).encode(), content_type=JSON_PAGE
    )
    start = time.monotonic()
    run = env.inspect("alpha==1.0", "--json", "--no-index-history")
    assert time.monotonic() - start < 10
    assert run.code == 0, run.text
    assert [d["filename"] for d in run.json()] == [wheel.name]
    assert env.server.requests_log.count(f"/files/alpha/{wheel.name}") == 1


def test_dist_longer_than_its_declared_size_is_aborted(env: Env) -> None:
    wheel = env.pub.wheel("alpha", "1.0")
    env.server.faults[f"/files/alpha/{wheel.name}"] = Fault(
        body=wheel.read_bytes() + b"\0" * (4 * MiB)
    )
    run = env.inspect("alpha==1.0", "--record", "--json", "--no-index-history")
    _assert_refused_unrecorded(run.code, run.text, "limit")


# -- through the library (small limits, so slow attacks finish fast) --------------------------


def _checker(trust_root: Path, limits: Limits, index_url: str) -> Checker:
    return Checker(
        trust=TrustConfig(mode="custom", path=trust_root),
        policy=Policy.default(),
        store=None,
        http=Http(limits),
        provenance_index=index_url,
        index_history=False,
    )


def test_slow_drip_hits_the_total_deadline(env: Env) -> None:
    """One byte every 50 ms never trips the inter-byte timeout; the total deadline does."""
    env.pub.wheel("alpha", "1.0")
    env.server.faults["/simple/alpha/"] = Fault(drip=0.05)
    http = Http(Limits(read_timeout=1.0, total_deadline=1.5, retries=0))
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="deadline"):
        SimpleIndex(http, env.server.index_url).project("alpha")
    # the dripped page takes half a minute; the deadline cuts it (the rest: a loaded machine)
    assert time.monotonic() - start < 1.5 + 5


def test_slow_drip_provenance_is_could_not_check(env: Env) -> None:
    wheel = env.pub.wheel("alpha", "1.0")
    env.server.faults[f"/provenance/alpha/{wheel.name}"] = Fault(drip=0.05)
    limits = Limits(read_timeout=1.0, total_deadline=1.0, retries=0)
    checker = _checker(env.trust_root, limits, env.server.index_url)
    page = SimpleIndex(checker.http, env.server.index_url).project("alpha")
    start = time.monotonic()
    [verdict] = checker.check(list(page.files), download_dir=env.workdir / "dl")
    # the dripped provenance takes minutes; the deadline cuts it (the rest: a loaded machine)
    assert time.monotonic() - start < 1.0 + 5
    assert verdict.action is Action.REFUSE
    assert verdict.code is ReasonCode.COULD_NOT_CHECK
    assert "deadline" in verdict.reason


def test_silent_server_hits_the_read_timeout(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.faults["/simple/alpha/"] = Fault(delay=60)  # never answers in time
    http = Http(Limits(read_timeout=0.5, total_deadline=5.0, retries=0))
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        SimpleIndex(http, env.server.index_url).project("alpha")
    assert time.monotonic() - start < 4.0  # the read timeout (0.5 s), before the total deadline


def test_endless_page_memory_is_bounded(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.faults["/simple/alpha/"] = Fault(endless=True)
    cap = 4 * MiB
    http = Http(Limits(max_page_bytes=cap, retries=0))
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge):
            SimpleIndex(http, env.server.index_url).project("alpha")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * cap, f"peak {peak} bytes for a {cap}-byte cap"


def test_gzip_bomb_memory_is_bounded(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.faults["/simple/alpha/"] = Fault(gzip_bomb=256 * MiB, content_type=JSON_PAGE)
    cap = 2 * MiB
    http = Http(Limits(max_page_bytes=cap, retries=0))
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge, match="decompressed"):
            SimpleIndex(http, env.server.index_url).project("alpha")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * cap + 2 * MiB, f"peak {peak} bytes for a {cap}-byte cap"


def test_too_many_files_on_a_page_is_refused(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    page = json.loads(env.server.project_json("alpha"))
    page["files"] = page["files"] * 2000
    page.pop("versions", None)
    env.server.faults["/simple/alpha/"] = Fault(
        body=json.dumps(page).encode(), content_type=JSON_PAGE
    )
    http = Http(Limits(max_files_per_page=1000))
    with pytest.raises(ResponseTooLarge, match="over the limit of 1000"):
        SimpleIndex(http, env.server.index_url).project("alpha")


def test_nested_json_is_malformed_in_library(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.faults["/simple/alpha/"] = Fault(
        body=b"[" * 50_000 + b"]" * 50_000, content_type=JSON_PAGE
    )
    with pytest.raises(MalformedResponse):
        SimpleIndex(Http(), env.server.index_url).project("alpha")
