"""``--write-identities``: fill a pylock.toml's ``attestation-identities`` from the publishers
a run verified; every other byte of the file is left as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safe_pip.errors import ConfigError
from safe_pip.lock.outcome import FileOutcome, LockReport, lock_identity_table
from safe_pip.lock.provenance_cache import atomic_write


def identities_to_write(report: LockReport) -> dict[int, list[dict[str, str]]]:
    """For each pylock package (by position) without identities whose every file verified and
    was allowed: the distinct identity tables seen, first seen first."""
    by_pkg: dict[int, list[FileOutcome]] = {}
    for o in report.outcomes:
        by_pkg.setdefault(o.package.position, []).append(o)
    out: dict[int, list[dict[str, str]]] = {}
    for pkg in report.lock.packages:
        if pkg.identities is not None or pkg.unsupported is not None:
            continue
        items = by_pkg.get(pkg.position, [])
        if not items or len(items) != len(pkg.files):
            continue
        if any(
            o.status not in ("ok", "warn") or not o.verified or o.identity is None for o in items
        ):
            continue
        tables: list[dict[str, str]] = []
        for o in items:
            assert o.identity is not None
            table = lock_identity_table(o.identity)
            if table not in tables:
                tables.append(table)
        out[pkg.position] = tables
    return out


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def insert_identities(text: str, identities: dict[int, list[dict[str, str]]]) -> str:
    """``text`` with ``[[packages.attestation-identities]]`` tables appended to the given
    packages; every other byte is left as it was. Raises ConfigError when the layout is not one
    this can edit safely (checked by re-parsing)."""
    from safe_pip.sources.model import array_table_spans
    from safe_pip.sources.pylock import load_toml

    if not identities:
        return text
    nl = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    before = load_toml(text, Path("pylock.toml"))
    packages = before.get("packages", [])
    spans = array_table_spans(lines, "packages")
    if len(spans) != len(packages):
        raise ConfigError(
            "cannot add attestation-identities: the lock's [[packages]] tables could not be "
            "located line by line (inline tables?)",
            fix="write the packages as [[packages]] tables",
        )
    inserts: dict[int, str] = {}
    for pos, tables in identities.items():
        start, end = spans[pos]
        last = end - 1
        # trailing blank and comment lines belong to what follows (e.g. the next entry)
        while last > start and (not lines[last].strip() or lines[last].lstrip().startswith("#")):
            last -= 1
        block = "".join(
            nl
            + "[[packages.attestation-identities]]"
            + nl
            + "".join(f"{k} = {_toml_str(v)}{nl}" for k, v in table.items())
            for table in tables
        )
        if not lines[last].endswith(("\n", "\r")):
            block = nl + block  # the package ends the file without a final newline
        inserts[last] = block
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if i in inserts:
            out.append(inserts[i])
    new_text = "".join(out)
    after = load_toml(new_text, Path("pylock.toml"))
    expected = json.loads(json.dumps(before, default=str))
    for pos, tables in identities.items():
        expected["packages"][pos]["attestation-identities"] = tables
    if json.loads(json.dumps(after, default=str)) != expected:
        raise ConfigError(
            "cannot add attestation-identities safely to this lock's layout (the edited file "
            "would not parse to the same data)"
        )
    return new_text


def write_identities(path: Path, report: LockReport) -> list[str]:
    """Fill attestation-identities in the pylock at ``path``; return the packages written."""
    todo = identities_to_write(report)
    if not todo:
        return []
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    new_text = insert_identities(text, todo)
    mode = path.stat().st_mode & 0o7777
    atomic_write(path, new_text.encode("utf-8"))
    os.chmod(path, mode)
    names = {p.position: p.name for p in report.lock.packages}
    return [names[pos] for pos in sorted(todo)]
