"""History writers check a new publisher against the SEQUENCE, not a set (hardening r2).

``history import`` used to ask "is this publisher known here at all?". A project whose
maintainers moved (acme -> newco, accepted here) has both publishers "known"; an imported
record of acme published after newco then slipped in unflagged and, being a stored local
record, became the established publisher again: the abandoned (or hijacked) old repository's
next release was ``verified-known``. Genuinely signed lab packages, the real CLI.
"""

from __future__ import annotations

import json
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
