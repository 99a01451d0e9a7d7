"""The index-history window's anchor (ADR 0012 "Anchor"): an attacker who takes a project
over and publishes ``index-history-depth`` or more signed releases in a burst pushes every
release of the earlier publisher out of the window of most recently published releases. The
window also holds the most recent release uploaded longer ago than
``index-history-anchor-age`` (30 days), which the attacker cannot back-date, so the burst is
refused-publisher-change. Genuinely signed lab packages, times relative to now."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from safe_pip.check import Checker
from safe_pip.policy.file import Policy, load_policy
from safe_pip.provenance.trust import TrustConfig
from support.sigstore_ca import GitHubIdentity

from .conftest import Env, db_snapshot
from .test_history_sequence import pylock, verify

ACME = GitHubIdentity(repository="acme/alpha", repository_id="100", repository_owner_id="10")
EVIL = GitHubIdentity(repository="evil/alpha", repository_id="666", repository_owner_id="66")


def _burst(env: Env, first: GitHubIdentity, burst: GitHubIdentity, first_age: int) -> Path:
    """``first``'s alpha 1.0 uploaded ``first_age`` days ago, then six releases 1.1..1.6 by
    ``burst`` a week ago (one hour apart: past the 3-day minimum release age, so only the
    history decides), more than index-history-depth (5). Returns the newest wheel."""
    now = datetime.now(timezone.utc)
    old = now - timedelta(days=first_age)
    env.pub.wheel("alpha", "1.0", identity=first, signed_at=old, uploaded_at=old)
    newest = Path()
    for i in range(1, 7):
        when = now - timedelta(days=7) + timedelta(hours=i)
        newest = env.pub.wheel("alpha", f"1.{i}", identity=burst, signed_at=when, uploaded_at=when)
    return newest


def _policy(env: Env, anchor_age: str | None) -> list[str]:
    if anchor_age is None:
        return []
    path = env.workdir / "safe-pip.toml"
    path.write_text(f'[defaults]\nindex-history-anchor-age = "{anchor_age}"\n', encoding="utf-8")
    return ["--policy", str(path)]


def _lock(env: Env, wheel: Path) -> Path:
    lock = env.workdir / "pylock.toml"
    lock.write_text(pylock(env.server, "alpha", "1.6", [wheel]), encoding="utf-8")
    return lock


@pytest.mark.parametrize(
    ("anchor_age", "code"),
    [(None, "refused-publisher-change"), ("0", "verified-known")],
    ids=["anchor-default-30d", "anchor-off"],
)
def test_a_burst_of_releases_does_not_push_the_earlier_publisher_out(
    env: Env, anchor_age: str | None, code: str
) -> None:
    """acme's 1.0 (60 days ago), then six releases by another publisher: verify of the
    newest is refused-publisher-change (the change found at 1.2, the
    attacker's oldest release in the window); with the anchor turned off
    (``index-history-anchor-age = "0"``) the window holds only the attacker's releases and
    the same file passes (verified-known: a continuous history), so this test exercises the
    anchor."""
    wheel = _burst(env, ACME, EVIL, first_age=60)
    run, files = verify(env, _lock(env, wheel), *_policy(env, anchor_age))
    assert [f["code"] for f in files] == [code], run.out + run.err
    if anchor_age is None:
        assert run.code == 1, run.out + run.err
        reason = str(files[0]["reason"])
        # the first of the attacker's releases in the window (1.1 is the sixth most recent)
        assert "history at alpha 1.2 " in reason, reason
        assert "GitHub acme/alpha @ release.yml before" in reason, reason
    else:
        assert run.code == 0, run.out + run.err
    assert db_snapshot() == []


def test_the_checker_window_holds_the_anchor_read_once(env: Env) -> None:
    """Check level: the window is the five most recent releases plus the anchor (1.0, by
    acme, placed first in the sequence); each release's provenance read once."""
    _burst(env, ACME, EVIL, first_age=60)
    checker = Checker(
        trust=TrustConfig.from_options(trust_root=env.trust_root),
        policy=Policy.default(),
        store=None,
        provenance_index=env.server.index_url,
    )
    reads: list[str] = []
    fetch = checker.fetch_provenance

    def counting(ref):  # type: ignore[no-untyped-def]
        reads.append(ref.filename)
        return fetch(ref)

    checker.fetch_provenance = counting  # type: ignore[method-assign]
    hist = checker.history_for("alpha", index=env.server.index_url)
    got = sorted((r.version, r.identity.repository if r.identity else None) for r in hist.records)
    assert got == [("1.0", "acme/alpha")] + [(f"1.{i}", "evil/alpha") for i in range(2, 7)]
    assert len(reads) == 6, reads  # one provenance read per release
    assert len(set(reads)) == 6, reads


def test_a_publisher_change_two_months_ago_is_not_refused(env: Env) -> None:
    """A legitimate move: acme's 1.0 60 days ago, the project's new home's 2.0 40 days ago,
    and only the new home's releases since: the anchor is the new home's 2.0, so the newest
    passes (the anchor does not resurrect a change older than itself)."""
    now = datetime.now(timezone.utc)
    for version, ident, age in (("1.0", ACME, 60), ("2.0", EVIL, 40)):
        when = now - timedelta(days=age)
        env.pub.wheel("alpha", version, identity=ident, signed_at=when, uploaded_at=when)
    newest = Path()
    for i in range(1, 7):
        when = now - timedelta(days=7) + timedelta(hours=i)
        newest = env.pub.wheel("alpha", f"2.{i}", identity=EVIL, signed_at=when, uploaded_at=when)
    lock = env.workdir / "pylock.toml"
    lock.write_text(pylock(env.server, "alpha", "2.6", [newest]), encoding="utf-8")
    run, files = verify(env, lock)
    assert run.code == 0, run.out + run.err
    assert [f["code"] for f in files] == ["verified-known"], run.out + run.err


def test_the_anchor_age_is_a_policy_default(tmp_path: Path) -> None:
    """``index-history-anchor-age`` parses like ``min-release-age``; a bad value names the
    key."""
    assert Policy.default().defaults.index_history_anchor_age == timedelta(days=30)
    path = tmp_path / "safe-pip.toml"
    path.write_text('[defaults]\nindex-history-anchor-age = "90d"\n', encoding="utf-8")
    assert load_policy(path).defaults.index_history_anchor_age == timedelta(days=90)
    path.write_text("[defaults]\nindex-history-anchor-age = 0\n", encoding="utf-8")
    assert load_policy(path).defaults.index_history_anchor_age == timedelta(0)
    from safe_pip.errors import ConfigError

    path.write_text('[defaults]\nindex-history-anchor-age = "30"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="index-history-anchor-age"):
        load_policy(path)


@pytest.mark.slow
def test_the_real_cli_verify_refuses_the_burst(env: Env) -> None:
    """End to end: the installed ``safe-pip verify`` as a subprocess refuses the burst's
    newest file (exit 1, refused-publisher-change)."""
    wheel = _burst(env, ACME, EVIL, first_age=60)
    lock = _lock(env, wheel)
    child = {k: v for k, v in os.environ.items() if not k.startswith("SAFE_PIP_")}
    child["SAFE_PIP_HOME"] = str(env.workdir / "home")
    child["NO_PROXY"] = "127.0.0.1"
    argv = ["verify", str(lock), "--trust-root", str(env.trust_root), "--format", "json"]
    proc = subprocess.run(
        [sys.executable, "-m", "safe_pip", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=env.workdir,
        env=child,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert '"refused-publisher-change"' in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("anchor_age", [None, "0"], ids=["anchor-default-30d", "anchor-off"])
def test_signed_wheels_added_to_earlier_releases_do_not_take_them_over(
    env: Env, anchor_age: str | None
) -> None:
    """A young project (every release within the anchor age, so no anchor helps): acme's
    1.0-1.3 (20-17 days ago). Whoever takes it over adds a wheel signed by their own
    publisher to each of them, named to sort first (``py2.py3-none-any``), and publishes 1.4.
    Each earlier release is read through its earliest upload (acme's), so 1.4 is a change
    (refused-publisher-change). Read through the first file by name, the window was the
    attacker's five times over: verified-known, exit 0."""
    now = datetime.now(timezone.utc)
    for i in range(4):
        when = now - timedelta(days=20 - i)
        env.pub.wheel("alpha", f"1.{i}", identity=ACME, signed_at=when, uploaded_at=when)
    takeover = now - timedelta(days=7)
    for i in range(4):
        env.pub.wheel(
            "alpha",
            f"1.{i}",
            identity=EVIL,
            signed_at=takeover,
            uploaded_at=takeover,
            tag="py2.py3-none-any",
        )
    wheel = env.pub.wheel("alpha", "1.4", identity=EVIL, signed_at=takeover, uploaded_at=takeover)
    lock = env.workdir / "pylock.toml"
    lock.write_text(pylock(env.server, "alpha", "1.4", [wheel]), encoding="utf-8")
    run, files = verify(env, lock, *_policy(env, anchor_age))
    assert [f["code"] for f in files] == ["refused-publisher-change"], run.out + run.err
    assert run.code == 1, run.out + run.err
    assert "GitHub acme/alpha" in str(files[0]["reason"]), files[0]["reason"]


def test_allow_learn_withholds_the_burst(env: Env) -> None:
    """``allow learn`` writes a project with one publisher straight into the policy. Its own
    listing reads the releases before the one in use by version, but what it writes is
    checked against the checker's history, the anchor included: the burst is a contradiction,
    withheld (exit 1), and the attacker's publisher is not written."""
    _burst(env, ACME, EVIL, first_age=60)
    req = env.workdir / "requirements.txt"
    req.write_text("alpha==1.6\n", encoding="utf-8")
    policy = env.workdir / "learned.toml"
    run = env.cli("allow", "learn", "-r", str(req), *env.args(), "--policy", str(policy))
    assert run.code == 1, run.text
    assert "contradicts history alpha" in run.err, run.err
    assert not policy.exists() or "evil/alpha" not in policy.read_text(encoding="utf-8")
