"""``poetry.lock`` and ``pdm.lock``: ``[[package]]`` tables whose ``files`` array names every
file of the release (every platform's wheel and the sdist) with its hash.

poetry.lock (Poetry 1.x-2.x)::

    [[package]]
    name = "certifi"
    version = "2026.10.19.post1"
    files = [{file = "certifi-...-py3-none-any.whl", hash = "sha256:..."}]
    [package.source]            # absent: PyPI
    type = "legacy"             # an index; "git", "directory", "file", "url": no provenance
    url = "https://pypi.org/simple"

pdm.lock (lock_version 4.x)::

    [[package]]
    name = "certifi"
    version = "2026.10.19.post1"
    files = [{file = "certifi-...whl", hash = "sha256:..."}]   # or {url = ..., hash = ...}

A pdm.lock records no index URL (it is in pyproject.toml's ``[[tool.pdm.source]]``): its
packages are looked up on ``--index-url``, else PyPI. Entries that are not index releases
(PDM ``path``/``url``/``git``/``editable``; Poetry sources other than ``legacy``/``pypi``) are
reported as unsupported sources, never skipped silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from safe_pip.errors import ConfigError
from safe_pip.sources.model import (
    FileKind,
    Lock,
    LockedPackage,
    filename_from_url,
    index_release,
    package_tables,
)
from safe_pip.sources.pylock import load_toml

Flavour = Literal["poetry", "pdm"]

#: Poetry source types that are package indexes ("legacy" is any PEP 503 simple index).
_POETRY_INDEX_SOURCES = frozenset({"legacy", "pypi"})
#: PDM keys that make an entry something other than an index release.
_PDM_NON_INDEX = ("path", "url", "git", "hg", "svn", "bzr", "editable")


def parse_poetry_lock(text: str, path: Path) -> Lock:
    return _parse(text, path, "poetry")


def parse_pdm_lock(text: str, path: Path) -> Lock:
    return _parse(text, path, "pdm")


def _source(raw: dict[str, Any], flavour: Flavour, where: str) -> tuple[str | None, str | None]:
    """(index URL or None for the default, why it is not an index release or None)."""
    name = raw.get("name")
    if flavour == "poetry":
        source = raw.get("source")
        if source is None:
            return None, None  # PyPI
        if not isinstance(source, dict):
            raise ConfigError(f"{where}: {name}: 'source' must be a table")
        kind = source.get("type")
        if kind in _POETRY_INDEX_SOURCES:
            url = source.get("url")
            return (url if isinstance(url, str) and url else None), None
        return None, f"a Poetry source of type {kind!r}"
    present = [k for k in _PDM_NON_INDEX if raw.get(k) not in (None, False)]
    if present:
        return None, "a non-index source (" + ", ".join(present) + ")"
    return None, None


def _parse(text: str, path: Path, flavour: Flavour) -> Lock:
    lines, tables = package_tables(load_toml(text, path), text, path)
    packages: list[LockedPackage] = []
    for t in tables:
        raw, name, header, span, where = t.raw, t.name, t.header, t.span, t.where
        version = raw.get("version")
        if not isinstance(version, str) or not version:
            raise ConfigError(f"{where}: {name}: [[package]] without a version")
        index, unsupported = _source(raw, flavour, where)
        raw_files = raw.get("files", [])
        if not isinstance(raw_files, list):
            raise ConfigError(f"{where}: {name}: 'files' must be an array")
        entries: list[tuple[FileKind, str, object, object]] = []
        for entry in raw_files:
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: {name}: a 'files' entry is not a table")
            filename = entry.get("file")
            url = entry.get("url")
            if not isinstance(filename, str) or not filename:
                filename = filename_from_url(url) if isinstance(url, str) else None
            if not filename:
                raise ConfigError(f"{where}: {name}: a 'files' entry names no file or url")
            kind: FileKind = "wheel" if filename.endswith(".whl") else "sdist"
            entries.append((kind, filename, entry.get("hash"), url))
        packages.append(
            index_release(
                name=name,
                version=version,
                header=header,
                index=index,
                unsupported=unsupported,
                position=t.position,
                entries=entries,
                lines=lines,
                span=span,
            )
        )
    return Lock(path=path, format=flavour, packages=tuple(packages))
