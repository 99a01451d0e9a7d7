"""Release age: how long a file has been public, and whether that is long enough. Pure.

Most malicious releases since 2024 were live for hours before the index removed them (LiteLLM
1.82.7/1.82.8 about 2.5 h, telnyx about 3.7 h, Lightning 2.6.2/2.6.3 under a day, TanStack
within minutes of each other). A minimum release age lets the ecosystem find them first.

The age of a file is measured from a time the index cannot move:

* an attested file: the transparency log's integrated time (Rekor v1, covered by the log's
  signed entry timestamp) or an RFC 3161 timestamp authority's time (Rekor v2 entries carry no
  integrated time), both verified with the trust root. The index's ``upload-time`` is ignored
  for attested files, so a backdated ``upload-time`` does not help;
* an unsigned file: the index's ``upload-time`` (PEP 691), labelled *index-asserted*: the index
  (or a mirror) could backdate it, which is one more reason to prefer attested files;
* neither: "age unknown", decided by ``on-unknown-release-age`` (``"error"`` by default).

The default minimum is :data:`DEFAULT_MIN_RELEASE_AGE` (3 days): every incident above was found
and removed well within it, a release published on a Friday evening is still covered on Monday
morning, and an urgent fix can be taken at once with ``--min-release-age 0`` for one run or a
per-package ``min-release-age``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

#: The built-in minimum release age (see the module docstring for the reasoning).
DEFAULT_MIN_RELEASE_AGE = timedelta(days=3)
#: ``index-history-anchor-age`` (ADR 0012 "Anchor"): the index-history window also holds the
#: most recent release uploaded longer ago than this
DEFAULT_INDEX_HISTORY_ANCHOR_AGE = timedelta(days=30)
#: Longer than this is surely a typo (a year).
MAX_MIN_RELEASE_AGE = timedelta(days=366)

TimeSource = Literal["transparency-log", "timestamp-authority", "index-asserted"]

_DURATION = re.compile(r"^\s*([0-9]{1,6})\s*([dh]?)\s*$")


def parse_duration(text: str) -> timedelta:
    """``"3d"``, ``"36h"`` or ``"0"`` as a timedelta. ValueError on anything else."""
    m = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(
            f'{text!r} is not a release age: write a number of days or hours, e.g. "3d" or '
            '"36h" ("0" turns the rule off)'
        )
    number, unit = int(m.group(1)), m.group(2)
    if not unit and number != 0:
        raise ValueError(f'{text!r} needs a unit: "{number}d" (days) or "{number}h" (hours)')
    value = timedelta(days=number) if unit == "d" else timedelta(hours=number)
    if value > MAX_MIN_RELEASE_AGE:
        raise ValueError(f"{text!r} is longer than a year")
    return value


def format_duration(value: timedelta) -> str:
    """The inverse of :func:`parse_duration` (days when whole, else hours)."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0"
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    hours = seconds / 3600
    return f"{int(hours)}h" if hours == int(hours) else f"{hours:.1f}h"


def parse_upload_time(text: str | None) -> datetime | None:
    """A PEP 691 ``upload-time`` (ISO 8601, ``Z`` or an offset) as an aware UTC datetime;
    None when missing or unreadable (then the age is unknown, never "old")."""
    if not text or not isinstance(text, str):
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # PEP 691 requires UTC with Z; an offset-less time is not trusted
    return parsed.astimezone(timezone.utc)


def fmt_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class ReleaseTime:
    """When a file became public, and who says so."""

    time: datetime | None
    source: TimeSource | None

    @property
    def known(self) -> bool:
        return self.time is not None

    def describe(self) -> str:
        if self.time is None:
            return "unknown"
        label = {
            "transparency-log": "transparency log time",
            "timestamp-authority": "RFC 3161 timestamp",
            "index-asserted": "index upload-time, index-asserted",
        }.get(self.source or "", self.source or "")
        return f"{fmt_time(self.time)} ({label})"


def attested_release_time(integrated_time: int | None, tsa_time: int | None) -> ReleaseTime:
    """The release time of a verified attestation: the later of the log's integrated time and
    the timestamp authority's time (both verified; the later one is the conservative age)."""
    times = [
        (t, src)
        for t, src in (
            (integrated_time, "transparency-log"),
            (tsa_time, "timestamp-authority"),
        )
        if t is not None and t > 0
    ]
    if not times:
        return ReleaseTime(None, None)
    when, source = max(times, key=lambda p: p[0])
    src: TimeSource = "transparency-log" if source == "transparency-log" else "timestamp-authority"
    return ReleaseTime(datetime.fromtimestamp(when, tz=timezone.utc), src)


def unsigned_release_time(upload_time: str | None) -> ReleaseTime:
    when = parse_upload_time(upload_time)
    return ReleaseTime(when, "index-asserted" if when is not None else None)


@dataclass(frozen=True)
class AgeCheck:
    """The outcome of the release-age rule for one file."""

    release: ReleaseTime
    min_age: timedelta
    rule: str  # which setting gave min_age, e.g. "defaults.min-release-age"
    acceptable_from: datetime | None  # None when the age is unknown
    too_new: bool
    unknown: bool

    @property
    def applies(self) -> bool:
        return self.min_age > timedelta(0)


def check_age(release: ReleaseTime, min_age: timedelta, rule: str, now: datetime) -> AgeCheck:
    """Whether ``release`` is at least ``min_age`` old at ``now`` (the caller's clock)."""
    if release.time is None:
        return AgeCheck(release, min_age, rule, None, False, min_age > timedelta(0))
    acceptable = release.time + min_age
    now_utc = now if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)
    return AgeCheck(release, min_age, rule, acceptable, now_utc < acceptable, False)
