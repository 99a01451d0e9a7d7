"""T21: a stale or replayed index page (freeze / rollback of the listing).

Detected: ``safe-pip serve`` remembers each project's ``_last-serial`` for its lifetime and
logs a page older than one already seen ("stale" event). A replayed page cannot inject: its
files are still verified one by one, so an old listing whose hash no longer matches the bytes,
or whose provenance was removed, is refused.
Not detected (documented in docs/threat-model.md): serials are not persisted, so ``install``,
``inspect`` and ``verify`` (one-shot runs) cannot tell a frozen page from a current one."""

from __future__ import annotations

import json

import pytest

from adversarial.conftest import Env, db_snapshot
from safe_pip.check import Checker
from safe_pip.models import Action
from safe_pip.policy.file import Policy
from safe_pip.serve.server import EventLog, ServeError, VerifyingIndex
from safe_pip.verify.trust import TrustConfig
from support.index_server import Fault

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
