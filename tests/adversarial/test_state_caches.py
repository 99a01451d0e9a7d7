"""Caches that must not outlive the fact they cached (hardening round r2).

Each test drives real signed lab packages through the real verifier (test trust root) and
checks that an "allowed" kept in a cache stops being served or reused once what allowed it
stopped being true: an ``[[unsigned]]`` exception that expired, a history another process
forgot, a yank or quarantine the index published after a verified run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from safe_pip.policy.file import parse_policy
from support.index_server import IndexServer
from support.publish import Publisher
from support.sigstore_ca import GitHubIdentity, TestSigstore
from test_serve import Env as ServeEnv
from test_serve import file_url, get
from verify_helpers import pylock_text

from .conftest import Env, Run

DAY = timedelta(days=1)
T_ACME = 1_780_000_000  # 2026-05-28, in the past of every test run


@pytest.fixture
def serve_env(sigstore: TestSigstore, trust_root: Path, tmp_path: Path) -> Iterator[ServeEnv]:
    with IndexServer(tmp_path / "upstream") as upstream:
        e = ServeEnv(
            trust_root, upstream, Publisher(sigstore, upstream, tmp_path / "build"), tmp_path
        )
        try:
            yield e
        finally:
            e.log.close()
            if e.checker is not None and e.checker.store is not None:
                e.checker.store.close()


def test_serve_stops_serving_an_unsigned_file_once_its_exception_expired(
    serve_env: ServeEnv,
) -> None:
    """An unsigned file allowed by an ``[[unsigned]]`` exception with ``expires`` is served
    until that date only: the cached allowed verdict is decided again once it has passed
    (before: the cached "allowed" was served for as long as the server ran)."""
    env = serve_env
    stored = env.pub.wheel("alpha", "1.0", signed=False)
    sha = hashlib.sha256(stored.read_bytes()).hexdigest()
    policy = parse_policy(
        "[defaults]\nrequire-attestation = true\n\n"
        f'[[unsigned]]\nname = "alpha"\nversions = "==1.0"\nsha256 = ["{sha}"]\n'
        'reason = "vendored build, reviewed"\nexpires = 2030-01-02\n'
    )
    before = datetime(2030, 1, 1, 12, tzinfo=timezone.utc)
    with env.serve(policy, mode="block") as srv:
        assert env.checker is not None
        env.checker.now = before
        url = file_url(srv, "alpha")
        assert get(url).status == 200
        assert get(url).status == 200  # cached
        env.checker.now = before + DAY  # 2030-01-02 12:00: the exception expired at 00:00
        r = get(url)  # the page is fresh (page_ttl 60 s): the cached verdict is not
        assert r.status == 403, (r.status, r.reason)
        assert "refused-unsigned" in r.reason
        assert "expired on 2030-01-02" in r.body.decode()


def test_serve_records_again_after_another_process_forgot_the_project(
    serve_env: ServeEnv,
) -> None:
    """serve remembers which files it recorded, to write each once. That memory is about the
    history, so it goes when the project's history changes: after ``history forget`` (another
    process) the next served file is recorded again before its bytes go out (before: it was
    served unrecorded, leaving the history empty for the next first-use decision)."""
    from safe_pip.store.sqlite import SQLiteHistoryStore

    env = serve_env
    env.pub.wheel("alpha", "1.0")
    with env.serve(mode="block") as srv:
        url = file_url(srv, "alpha")
        assert get(url).status == 200
        db = env.tmp / "home" / "history.sqlite3"
        with SQLiteHistoryStore.open(db) as other:
            assert [r.filename for r in other.project("alpha").records] == [
                "alpha-1.0-py3-none-any.whl"
            ]
            assert other.forget("alpha", reason="re-established by the release team") == 1
        assert get(url).status == 200
        with SQLiteHistoryStore.open(db, readonly=True) as other:
            assert [r.filename for r in other.project("alpha").records] == [
                "alpha-1.0-py3-none-any.whl"
            ]


def _verify_lock(env: Env, lock: Path) -> Run:
    return env.cli("verify", str(lock), "--trust-root", str(env.trust_root))


def test_verify_sees_a_quarantine_published_after_a_passing_run(env: Env) -> None:
    """``safe-pip verify`` of an unchanged lock, policy and history must still see what the
    index says now: a project quarantined (PEP 792) after a run that passed is refused by
    the next run the same day (before: that day's passing report was re-printed, exit 0,
    without reading the index)."""
    env.pub.wheel("alpha", "1.0")
    lock = env.workdir / "pylock.toml"
    lock.write_text(pylock_text(env.server, ["alpha"]))
    first = _verify_lock(env, lock)
    assert first.code == 0, first.text
    env.server.project_status["alpha"] = ("quarantined", "malware found")
    again = _verify_lock(env, lock)
    assert again.code == 1, again.text
    assert "refused-quarantined" in again.text
    assert "malware found" in again.text


def test_verify_sees_a_publisher_change_published_after_a_passing_run(env: Env) -> None:
    """The same for the index's window of the project's history: a release by another
    publisher uploaded after a run that passed makes the next run refuse the locked file (a
    change in the window, ADR 0012), and the cache of verified bundles does not hide it."""
    env.pub.wheel("alpha", "1.0", published=T_ACME)
    lock = env.workdir / "pylock.toml"
    lock.write_text(pylock_text(env.server, ["alpha"]))
    assert _verify_lock(env, lock).code == 0
    env.pub.wheel(
        "alpha", "1.1", identity=GitHubIdentity(repository="evil/alpha"), published=T_ACME + 86_400
    )
    again = _verify_lock(env, lock)
    assert again.code == 1, again.text
    assert "refused-publisher-change" in again.text


def test_serve_reads_an_edited_policy_file_and_drops_what_it_no_longer_allows(
    serve_env: ServeEnv, tmp_path: Path
) -> None:
    """The policy file is a fact every cached verdict depends on: once it is edited (acme's
    publisher removed after a compromise), a file it allowed is no longer served, without a
    restart (before: served from the cache until the service was restarted). A policy that
    no longer loads is a 503 for everything, never the old policy's verdicts."""
    from safe_pip.policy.file import load_policy

    env = serve_env
    env.pub.wheel("alpha", "1.0")
    policy_file = tmp_path / "safe-pip.toml"
    policy_file.write_text(
        '[[package]]\nname = "alpha"\npublishers = [{ kind = "GitHub", repository = '
        '"acme/alpha", workflow = "release.yml" }]\n'
    )
    with env.serve(load_policy(policy_file), mode="block") as srv:
        url = file_url(srv, "alpha")
        assert get(url).status == 200
        policy_file.write_text(
            '[[package]]\nname = "alpha"\npublishers = [{ kind = "GitHub", repository = '
            '"newco/alpha", workflow = "release.yml" }]\n'
        )
        r = get(url)  # within page_ttl: the cached verdict would have answered
        assert r.status == 403, (r.status, r.reason)
        assert "refused-unexpected-publisher" in r.reason
        assert env.events("policy")
        policy_file.chmod(0o666)
        r = get(url)
        assert r.status == 503, (r.status, r.reason)
        assert "writable by anyone on this machine" in r.body.decode()
        policy_file.chmod(0o644)
        policy_file.write_text('[defaults]\nrequire-attestation = "yes"\n')
        for target in (url, srv.index_url + "alpha/"):
            r = get(target)
            assert r.status == 503, (r.status, r.reason)
            assert "changed and does not load" in r.body.decode()
            assert f"safe-pip allow list --policy {policy_file}" in r.body.decode()
        policy_file.write_text(
            '[[package]]\nname = "alpha"\npublishers = [{ kind = "GitHub", repository = '
            '"acme/alpha", workflow = "release.yml" }]\n'
        )
        assert get(url).status == 200
