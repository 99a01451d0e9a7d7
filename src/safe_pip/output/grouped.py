"""Results grouped per project and release, with one fix per release.

A real lock has releases with dozens of wheels (one per platform and Python), which all get the
same verdict for the same reason. Printing a block and a fix per wheel buries the one decision a
person has to make, so the text formats show one block per release: its status, each distinct
reason once (with the files it applies to), and the release's fixes merged into as few commands
as possible (``allow unsigned`` fixes of one release become one command listing every sha256).

Every format also shares :func:`counts`: verified, unsigned but allowed, allowed with
warnings, refused and could not check, so a summary never calls an unsigned file "verified".
"""

from __future__ import annotations

import re
import shlex
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from packaging.utils import canonicalize_name

from safe_pip.models import Action, PublisherIdentity, ReasonCode, Verdict
from safe_pip.output.terminal import DEFAULT_WIDTH, Style
from safe_pip.text import clean

Category = Literal["verified", "unsigned", "warn", "refused", "error"]

#: Worst first: a release shows its worst file's status.
_RANK: dict[Category, int] = {"error": 0, "refused": 1, "warn": 2, "unsigned": 3, "verified": 4}
_MARK: dict[Category, tuple[str, tuple[str, ...]]] = {
    "error": ("ERROR", ("red", "bold")),
    "refused": ("REFUSED", ("red", "bold")),
    "warn": ("WARN", ("yellow", "bold")),
    "unsigned": ("unsigned", ("cyan",)),
    "verified": ("ok", ("green",)),
}
_HEX64 = re.compile(r"\b[0-9a-fA-F]{64}\b")


@dataclass(frozen=True)
class Row:
    """One file's result, whatever face produced it."""

    project: str
    version: str
    filename: str
    category: Category
    code: str
    reason: str
    fix: str = ""
    identity: PublisherIdentity | None = None
    expected: tuple[PublisherIdentity, ...] = ()
    where: str = ""  # e.g. "pylock.toml:12"
    #: further facts shown under the reason: provenance state, release age, build changes
    details: tuple[str, ...] = ()


def verdict_details(v: Verdict) -> tuple[str, ...]:
    """``provenance: full provenance``, ``released: ...``, ``build context changed: ...``."""
    from safe_pip.output.render import provenance_label, release_line

    out = []
    if v.provenance_state:
        out.append(f"provenance: {provenance_label(v.provenance_state)}")
    if v.min_release_age is not None:
        out.append(f"released: {release_line(v)}")
    out += [f"build context changed: {c.describe()}" for c in v.build_changes]
    return tuple(out)


def category_of(v: Verdict) -> Category:
    if v.action is Action.REFUSE:
        return "error" if v.code is ReasonCode.COULD_NOT_CHECK else "refused"
    if v.action is Action.WARN:
        return "warn"
    res = v.verification
    return "verified" if res is not None and res.verified else "unsigned"


def row_of(v: Verdict) -> Row:
    return Row(
        project=v.project,
        version=v.version,
        filename=v.filename,
        category=category_of(v),
        code=v.code.value,
        reason=v.reason,
        fix=v.fix if v.action is Action.REFUSE else "",
        identity=v.identity,
        expected=v.expected,
        details=verdict_details(v),
    )


@dataclass(frozen=True)
class Counts:
    files: int = 0
    verified: int = 0
    unsigned_allowed: int = 0
    warned: int = 0
    refused: int = 0
    could_not_check: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "files": self.files,
            "verified": self.verified,
            "unsigned_allowed": self.unsigned_allowed,
            "warned": self.warned,
            "refused": self.refused,
            "could_not_check": self.could_not_check,
        }

    def line(self) -> str:
        return summary_line(self, Style())


def counts(categories: Iterable[Category]) -> Counts:
    cats = list(categories)
    return Counts(
        files=len(cats),
        verified=cats.count("verified"),
        unsigned_allowed=cats.count("unsigned"),
        warned=cats.count("warn"),
        refused=cats.count("refused"),
        could_not_check=cats.count("error"),
    )


def verdict_counts(verdicts: Iterable[Verdict]) -> Counts:
    return counts(category_of(v) for v in verdicts)


# -- fixes -------------------------------------------------------------------------------------


def merge_fixes(fixes: Iterable[str]) -> list[str]:
    """The distinct fixes of one release, ``safe-pip`` commands that differ only in their
    ``--sha256`` values merged into one command listing every digest (``--sha256`` takes
    several). Anything else is kept as written, once."""
    order: list[tuple[str, ...] | str] = []
    merged: dict[tuple[str, ...] | str, tuple[list[str], int, list[str]]] = {}
    for fix in fixes:
        if not fix:
            continue
        try:
            argv = shlex.split(fix)
        except ValueError:
            argv = []
        if not argv or argv[0] != "safe-pip":
            if fix not in merged:
                order.append(fix)
                merged[fix] = ([fix], -1, [])
            continue
        rest: list[str] = []
        hashes: list[str] = []
        pos = -1
        i = 0
        while i < len(argv):
            if argv[i] == "--sha256":
                pos = len(rest) if pos < 0 else pos
                i += 1
                while i < len(argv) and not argv[i].startswith("-"):
                    hashes.append(argv[i])
                    i += 1
                continue
            rest.append(argv[i])
            i += 1
        argv_key = tuple(rest)
        if argv_key not in merged:
            order.append(argv_key)
            merged[argv_key] = (rest, pos, [])
        known = merged[argv_key][2]
        known.extend(h for h in hashes if h not in known)
    out: list[str] = []
    for key in order:
        rest, pos, hashes = merged[key]
        if isinstance(key, str):
            out.append(key)
            continue
        argv = list(rest)
        if hashes:
            argv[pos:pos] = ["--sha256", *hashes]
        out.append(shlex.join(argv))
    return out


# -- text --------------------------------------------------------------------------------------


def _releases(rows: Sequence[Row]) -> list[list[Row]]:
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((str(canonicalize_name(r.project)), r.version), []).append(r)
    return sorted(groups.values(), key=lambda g: str(canonicalize_name(g[0].project)))


def _files_line(names: Sequence[str], width: int, indent: str) -> str:
    """``files: a.whl, b.whl (+N more)`` within ``width`` (at least one name)."""
    width = width or DEFAULT_WIDTH
    head = f"{indent}files: "
    shown: list[str] = []
    for i, name in enumerate(names):
        more = len(names) - i - 1
        tail = f" (+{more} more)" if more else ""
        candidate = ", ".join([*shown, clean(name, limit=120)])
        if shown and len(head) + len(candidate) + len(tail) > width:
            return head + ", ".join(shown) + f" (+{len(names) - len(shown)} more)"
        shown.append(clean(name, limit=120))
    return head + ", ".join(shown)


def _wrap(label: str, text: str, width: int, indent: str) -> list[str]:
    if width <= 0:
        return [f"{indent}{label}{text}"]
    return textwrap.wrap(
        text,
        width=max(40, width),
        initial_indent=f"{indent}{label}",
        subsequent_indent=indent + "  ",
        break_long_words=True,
        break_on_hyphens=False,
    ) or [f"{indent}{label}"]


def release_block(group: Sequence[Row], style: Style, *, verbose: bool = False) -> list[str]:
    worst = min((r.category for r in group), key=lambda c: _RANK[c])
    first = group[0]
    mark, paint = _MARK[worst]
    n = len(group)
    where = f"  {clean(first.where)}" if first.where else ""
    files = f"{n} files" if n != 1 else clean(first.filename, limit=120)
    head = (
        f"{style.paint(f'{mark:8}', *paint)} "
        f"{style.paint(clean(first.project, limit=80), 'bold')} {clean(first.version, limit=40)}"
        f"  {files}{where}"
    )
    lines = [head]
    if worst in ("verified", "unsigned") and not verbose:
        return lines
    # one paragraph per distinct (category, code, reason) in the release
    by_reason: dict[tuple[Category, str, str], list[Row]] = {}
    for r in group:
        norm = (
            _HEX64.sub("<sha256>", r.reason.replace(r.filename, "<file>"))
            if r.filename
            else r.reason
        )
        by_reason.setdefault((r.category, r.code, norm), []).append(r)
    indent = "    "
    for (cat, code, norm), rows in sorted(by_reason.items(), key=lambda kv: _RANK[kv[0][0]]):
        text = rows[0].reason if len(rows) == 1 else norm.replace("<file>", "each file")
        label = f"{code}: "
        paint_code = _MARK[cat][1] if cat in ("error", "refused", "warn") else ()
        wrapped = _wrap(label, clean(text, limit=1500), style.width, indent)
        wrapped[0] = wrapped[0].replace(label, style.paint(code, *paint_code) + ": ", 1)
        lines += wrapped
        if n > 1 and (len(rows) != n or len(by_reason) > 1):
            lines.append(_files_line([r.filename for r in rows], style.width, indent + "  "))
        seen = rows[0].identity
        if seen is not None and cat != "verified":
            lines += _wrap(
                "identity seen: ", clean(seen.describe_with_ids()), style.width, indent + "  "
            )
        if rows[0].expected and cat != "verified":
            expected = "; ".join(clean(e.describe_with_ids()) for e in rows[0].expected)
            lines += _wrap("expected: ", expected, style.width, indent + "  ")
        if cat != "verified" or verbose:
            for detail in rows[0].details:
                lines += _wrap("", clean(detail, limit=600), style.width, indent + "  ")
    if n > 1 and len(by_reason) == 1:
        lines.append(_files_line([r.filename for r in group], style.width, indent))
    for fix in merge_fixes(r.fix for r in group if r.category in ("refused", "error")):
        if fix.startswith("safe-pip "):
            # never wrapped: a command is copied and run as printed
            lines.append(f"{indent}{style.paint('fix:', 'bold')} {clean(fix, limit=20000)}")
        else:
            wrapped = _wrap("fix: ", clean(fix, limit=1500), style.width, indent)
            wrapped[0] = wrapped[0].replace("fix:", style.paint("fix:", "bold"), 1)
            lines += wrapped
    return lines


def render_rows(
    rows: Sequence[Row],
    style: Style,
    *,
    verbose: bool = False,
    include_ok: bool = False,
) -> list[str]:
    """The grouped text for ``rows``: a block per release that is not plainly fine (all
    releases with ``include_ok`` or ``verbose``)."""
    out: list[str] = []
    for group in _releases(rows):
        fine = all(r.category in ("verified", "unsigned") for r in group)
        if fine and not (include_ok or verbose):
            continue
        out += release_block(group, style, verbose=verbose)
    return out


def summary_line(c: Counts, style: Style) -> str:
    """``N file(s): V verified, U unsigned but allowed, R refused`` (warnings and files that
    could not be checked only when there are some)."""
    parts = [
        style.paint(f"{c.verified} verified", "green") if c.verified else "0 verified",
        f"{c.unsigned_allowed} unsigned but allowed",
    ]
    if c.warned:
        parts.append(style.paint(f"{c.warned} allowed with warnings", "yellow"))
    parts.append(style.paint(f"{c.refused} refused", "red", "bold") if c.refused else "0 refused")
    if c.could_not_check:
        parts.append(style.paint(f"{c.could_not_check} could not be checked", "red"))
    return f"{c.files} file(s): " + ", ".join(parts)
