"""Verdicts as the faces print them: one verdict's lines, the refusal table, the summary, JSON.

Every string that came from an index, a lockfile or a certificate is passed through
:func:`safe_pip.text.clean` before it reaches a terminal or a CI log."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from safe_pip.models import Action, Verdict
from safe_pip.text import clean, clean_json

if TYPE_CHECKING:
    from safe_pip.output.terminal import Style


def dump_json(doc: Any, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    json.dump(clean_json(doc), stream, indent=2, sort_keys=False)
    stream.write("\n")


_MARK = {Action.ALLOW: "ok", Action.WARN: "WARN", Action.REFUSE: "REFUSED"}


def verdict_lines(v: Verdict, *, verbose: bool = True) -> list[str]:
    """A human-readable block for one verdict."""
    lines = [
        f"{_MARK[v.action]:8} {clean(v.project)} {clean(v.version)}  {clean(v.filename)}",
        f"         verdict:  {v.code.value}  (rule: {clean(v.rule)})",
        f"         reason:   {clean(v.reason, limit=600)}",
    ]
    if v.identity is not None:
        lines.append(f"         identity: {clean(v.identity.describe())}")
    if v.expected:
        lines.append("         expected: " + "; ".join(clean(e.describe()) for e in v.expected))
    if v.provenance_state:
        lines.append(f"         provenance: {provenance_label(v.provenance_state)} (PyPI's terms)")
    if v.min_release_age is not None:
        lines.append(f"         released: {release_line(v)}")
    res = v.verification
    if verbose and res is not None and res.verified:
        if res.predicate_types:
            lines.append(f"         predicate: {', '.join(clean(p) for p in res.predicate_types)}")
        if res.tlog_index is not None:
            kind = f" ({clean(res.tlog_kind)})" if res.tlog_kind else ""
            lines.append(
                f"         tlog:     index {res.tlog_index}{kind}, integrated time "
                f"{_fmt_time(res.integrated_time)}"
            )
        if res.tsa_time is not None:
            lines.append(f"         timestamp: {_fmt_time(res.tsa_time)} (RFC 3161)")
        if res.build is not None:
            b = res.build
            parts = [
                f"{label} {clean(value, limit=120)}"
                for label, value in (
                    ("ref", b.source_ref),
                    ("commit", b.source_commit),
                    ("trigger", b.trigger),
                    ("runner", b.runner_environment),
                    ("run", b.run_invocation),
                )
                if value
            ]
            lines.append("         build:    " + ", ".join(parts))
    for change in v.build_changes:
        lines.append(f"         changed:  {clean(change.describe(), limit=400)}")
    if verbose and v.sha256:
        lines.append(f"         sha256:   {clean(v.sha256)}")
    if v.action is Action.REFUSE and v.fix:
        lines.append(f"         to allow: {clean(v.fix, limit=600)}")
    return lines


def provenance_label(state: str | None) -> str:
    """``full provenance``, ``lost provenance``... (PyPI's wording); ``unknown`` for None."""
    return f"{state} provenance" if state else "unknown"


_TIME_SOURCE = {
    "transparency-log": "transparency log",
    "timestamp-authority": "RFC 3161 timestamp",
    "index-asserted": "index upload-time, index-asserted",
}


def release_line(v: Verdict) -> str:
    """When the file was published, by whose clock, and the minimum age that applied."""
    from datetime import datetime

    def fmt(text: str | None) -> str:
        if not text:
            return "?"
        try:
            return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M UTC")
        except ValueError:
            return clean(text)

    if v.release_time:
        src = _TIME_SOURCE.get(v.release_time_source or "", clean(v.release_time_source or "?"))
        text = f"{fmt(v.release_time)} ({src})"
    else:
        text = "unknown (no attestation and no upload-time)"
    age = v.min_release_age or "0"
    if age != "0":
        text += f"; minimum release age {clean(age)}"
        if v.acceptable_from:
            text += f", acceptable from {fmt(v.acceptable_from)}"
    return text


def _fmt_time(epoch: int | None) -> str:
    if epoch is None:
        return "?"
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def refusal_table(verdicts: Sequence[Verdict], style: Style | None = None) -> str:
    """The refused (and warned) files, as ``install`` prints them: one block per project and
    release (each reason once, the files it applies to, one fix per release), fitted to the
    terminal width of stderr, then the summary line."""
    from safe_pip.output.grouped import render_rows, row_of, summary_line, verdict_counts
    from safe_pip.output.terminal import Style as _Style

    style = style or _Style.for_stream(sys.stderr)
    out = ["safe-pip: refused or warned, per project and release:"]
    from dataclasses import replace

    inner = replace(style, width=max(0, style.width - 2))
    out += ["  " + line for line in render_rows([row_of(v) for v in verdicts], inner)]
    out.append(summary_line(verdict_counts(verdicts), style))
    return "\n".join(out)


def summary(verdicts: Sequence[Verdict]) -> str:
    """verified / unsigned but allowed / warned / refused / could not check."""
    from safe_pip.output.grouped import verdict_counts

    return verdict_counts(verdicts).line()
