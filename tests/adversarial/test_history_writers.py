"""History writers check a new publisher against the SEQUENCE, not a set (hardening r2).

``history import`` used to ask "is this publisher known here at all?". A project whose
maintainers moved (acme -> newco, accepted here) has both publishers "known"; an imported
record of acme published after newco then slipped in unflagged and, being a stored local
record, became the established publisher again: the abandoned (or hijacked) old repository's
next release was ``verified-known``. Genuinely signed lab packages, the real CLI.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone

from safe_pip.models import PublisherIdentity
from safe_pip.policy.history import HistoryRecord
from safe_pip.store.sqlite import SQLiteHistoryStore
from support.sigstore_ca import GitHubIdentity

from .conftest import Env, db_path

T0 = 1_780_000_000  # 2026-05-28
DAY = 86_400
ACME = PublisherIdentity(kind="GitHub", repository="acme/alpha", workflow="release.yml")
NEWCO = PublisherIdentity(kind="GitHub", repository="newco/alpha", workflow="release.yml")


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _rec(version: str, identity: PublisherIdentity, when: int) -> HistoryRecord:
    return HistoryRecord(
        project="alpha",
        version=version,
        filename=f"alpha-{version}-py3-none-any.whl",
        sha256=(version.replace(".", "") * 64)[:64].ljust(64, "0"),
        identity=identity,
        seen_at=_at(when),
        source="local",
        published_at=_at(when),
        published_from="log",
    )


def test_import_that_interleaves_a_publisher_back_is_refused(env: Env) -> None:
    # this machine: acme published 1.0, then the project moved to newco (accepted here)
    with SQLiteHistoryStore.open(db_path()) as store:
        store.record([_rec("1.0", ACME, T0), _rec("2.0", NEWCO, T0 + 10 * DAY)])
    # the old repository publishes 3.1 (hijacked after the move)
    env.pub.wheel(
        "alpha", "3.1", identity=GitHubIdentity(repository="acme/alpha"), published=T0 + 30 * DAY
    )
    run = env.inspect("alpha==3.1")
    assert run.code == 1, run.text
    assert "refused-publisher-change" in run.text

    # a "baseline" that puts acme back after newco: acme is "known" here (1.0), newco too
    doc = {
        "format": "safe-pip-history",
        "version": 1,
        "records": [_rec("3.0", ACME, T0 + 20 * DAY).to_json()],
    }
    baseline = env.workdir / "baseline.json"
    baseline.write_text(json.dumps(doc))
    run = env.cli("history", "import", str(baseline))
    assert run.code == 1, run.text
    assert "nothing was imported" in run.err
    assert "alpha 3.0" in run.err  # where it changes
    assert "newco/alpha" in run.err  # and the publisher before it
    assert "--accept-new-publishers" in run.err
    with SQLiteHistoryStore.open(db_path(), readonly=True) as store:
        assert sorted(r.version for r in store.project("alpha").records) == ["1.0", "2.0"]

    # so the hijacked repository's release is still refused
    run = env.inspect("alpha==3.1")
    assert run.code == 1, run.text
    assert "refused-publisher-change" in run.text


def test_import_that_turns_a_refused_index_record_into_a_local_one_is_refused(env: Env) -> None:
    """An index-read record of another publisher is a change (refused). An import naming the
    same record with ``source = "local"`` would turn it into a record this machine allowed
    (an accepted decision): the attacker's publisher established, with "0 new records"
    imported and no publisher listed (the set check saw nothing new)."""
    evil = PublisherIdentity(kind="GitHub", repository="evil/alpha", workflow="release.yml")
    window = replace(_rec("1.1", evil, T0 + DAY), source="index", index=env.server.index_url)
    with SQLiteHistoryStore.open(db_path()) as store:
        store.record([_rec("1.0", ACME, T0), window])
    env.pub.wheel(
        "alpha", "1.2", identity=GitHubIdentity(repository="evil/alpha"), published=T0 + 2 * DAY
    )
    assert "refused-publisher-change" in env.inspect("alpha==1.2", "--no-index-history").text

    doc = {
        "format": "safe-pip-history",
        "version": 1,
        "records": [replace(window, source="local").to_json()],
    }
    baseline = env.workdir / "baseline.json"
    baseline.write_text(json.dumps(doc))
    run = env.cli("history", "import", str(baseline))
    assert run.code == 1, run.text
    assert "evil/alpha" in run.err
    assert "alpha 1.1" in run.err
    with SQLiteHistoryStore.open(db_path(), readonly=True) as store:
        assert [r.source for r in store.project("alpha").records] == ["local", "index"]
    run = env.inspect("alpha==1.2", "--no-index-history")
    assert run.code == 1, run.text
    assert "refused-publisher-change" in run.text


def test_import_that_moves_a_record_by_its_publication_time_is_refused(env: Env) -> None:
    """Older records carry no publication time (placed when first seen). An import that
    fills one in moves the record in the sequence: here acme's 1.0 after newco's 2.0, which
    would make acme the established publisher again."""
    old_acme = replace(_rec("1.0", ACME, T0), published_at=None, published_from=None)
    with SQLiteHistoryStore.open(db_path()) as store:
        store.record([old_acme, _rec("2.0", NEWCO, T0 + 10 * DAY)])
    moved = replace(old_acme, published_at=_at(T0 + 20 * DAY), published_from="log")
    doc = {"format": "safe-pip-history", "version": 1, "records": [moved.to_json()]}
    baseline = env.workdir / "baseline.json"
    baseline.write_text(json.dumps(doc))
    run = env.cli("history", "import", str(baseline))
    assert run.code == 1, run.text
    assert "acme/alpha" in run.err
    with SQLiteHistoryStore.open(db_path(), readonly=True) as store:
        assert all(r.published_at != _at(T0 + 20 * DAY) for r in store.project("alpha").records)
