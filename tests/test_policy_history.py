"""The pure history model: normalisation, identities, watermark and merging."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from safe_pip.models import PublisherIdentity
from safe_pip.policy.history import HistoryRecord, ProjectHistory, identity_key

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
A = PublisherIdentity(kind="GitHub", repository="acme/w", workflow="r.yml", repository_id="1")
A_UPPER = PublisherIdentity(kind="GitHub", repository="ACME/W", workflow="r.yml", repository_id="1")
A_NEW_ID = PublisherIdentity(
    kind="GitHub", repository="acme/w", workflow="r.yml", repository_id="2"
)
B = PublisherIdentity(kind="GitHub", repository="acme/w", workflow="other.yml")


def rec(
    version: str, ident: PublisherIdentity | None, minutes: int = 0, **kw: object
) -> HistoryRecord:
    return HistoryRecord(
        project=str(kw.get("project", "W")),
        version=version,
        filename=f"w-{version}.whl",
        sha256="AB" * 32,
        identity=ident,
        seen_at=T0 + timedelta(minutes=minutes),
        index=None,
        source="index" if kw.get("index") else "local",
    )


def test_record_normalises() -> None:
    r = rec("1.0", A, project="Foo_Bar")
    assert r.project == "foo-bar"
    assert r.sha256 == "ab" * 32
    naive = HistoryRecord("x", "1", "x.whl", "a" * 64, None, datetime(2026, 1, 1))
    assert naive.seen_at.tzinfo is timezone.utc
    with pytest.raises(ValueError, match="source"):
        HistoryRecord("x", "1", "x.whl", "a" * 64, None, T0, None, "elsewhere")  # type: ignore[arg-type]


def test_history_rejects_other_projects() -> None:
    with pytest.raises(ValueError, match="history of"):
        ProjectHistory("w", (rec("1", A, project="other"),))


def test_identities_and_watermark() -> None:
    h = ProjectHistory(
        "w",
        (
            rec("2.0", A_UPPER, 3),
            rec("0.9", None, 0),
            rec("1.0", A, 1),
            rec("1.5", B, 2),
            rec("3.0", A_NEW_ID, 4),
        ),
    )
    assert [r.version for r in h.records] == ["0.9", "1.0", "1.5", "2.0", "3.0"]  # by time
    assert h.was_attested()
    # A and A_UPPER are the same publisher (GitHub names are case-insensitive); A_NEW_ID has
    # the same names but other ids, so it is listed separately.
    assert h.attested_identities() == (A, B, A_NEW_ID)
    assert identity_key(A) == identity_key(A_UPPER) == identity_key(A_NEW_ID)
    assert len(h.records_for(A)) == 3
    first = h.first_attested()
    assert first is not None
    assert first.version == "1.0"
    assert h.attested_versions() == ("1.0", "1.5", "2.0", "3.0")
    assert [r.version for r in h.unsigned_records()] == ["0.9"]
    latest = h.latest()
    assert latest is not None
    assert latest.version == "3.0"
    assert h.sources() == frozenset({"local"})


def test_empty_and_unsigned_only() -> None:
    h = ProjectHistory.empty("W")
    assert h.project == "w"
    assert h.is_empty
    assert not h.was_attested()
    assert h.first_attested() is None
    assert h.latest() is None
    only_unsigned = h.with_records([rec("1", None)])
    assert not only_unsigned.was_attested()
    assert only_unsigned.attested_identities() == ()


def test_with_records_deduplicates() -> None:
    h = ProjectHistory("w", (rec("1", A),))
    merged = h.with_records([rec("1", A, 5), rec("2", A, 6, index=True)])
    assert [r.version for r in merged.records] == ["1", "2"]
    assert merged.sources() == frozenset({"local", "index"})


def test_to_json() -> None:
    doc = rec("1", A).to_json()
    assert doc["identity"] == A.to_json()
    assert doc["seen_at"] == "2026-01-01T00:00:00+00:00"
    assert rec("1", None).to_json()["identity"] is None
