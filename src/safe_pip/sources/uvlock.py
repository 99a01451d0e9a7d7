"""``uv.lock``: ``[[package]]`` tables with ``source``, ``sdist`` and ``wheels``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def parse_uv_lock(text: str, path: Path) -> Lock:
    lines, tables = package_tables(load_toml(text, path), text, path)
    packages: list[LockedPackage] = []
    for t in tables:
        raw, name, header, span = t.raw, t.name, t.header, t.span
        version = raw.get("version")
        source = raw.get("source") or {}
        if not isinstance(source, dict):
            raise ConfigError(f"{path}:{header}: {name}: 'source' must be a table")
        local = next((k for k in ("editable", "virtual") if k in source), None)
        if local is not None:
            # the project itself / workspace members: nothing from an index to verify
            where = source.get(local)
            packages.append(
                LockedPackage(
                    name=name,
                    version=version if isinstance(version, str) else "",
                    line=header,
                    unsupported=f"{'an editable' if local == 'editable' else 'a virtual'} "
                    f"source ({local} = {where!s})",
                    local_source=True,
                    position=t.position,
                )
            )
            continue
        index = source.get("registry")
        unsupported: str | None = None
        if not isinstance(index, str):
            index = None
            kinds = ", ".join(sorted(source)) or "no source"
            unsupported = f"a non-registry source ({kinds})"
        if not isinstance(version, str):
            raise ConfigError(f"{path}:{header}: {name}: [[package]] without a version")
        entries: list[tuple[FileKind, Any]] = []
        if raw.get("sdist") is not None:
            entries.append(("sdist", raw["sdist"]))
        wheels = raw.get("wheels", [])
        if not isinstance(wheels, list):
            raise ConfigError(f"{path}:{header}: {name}: 'wheels' must be an array")
        entries += [("wheel", w) for w in wheels]
        listed: list[tuple[FileKind, str, object, object]] = []
        for kind, entry in entries:
            if not isinstance(entry, dict):
                raise ConfigError(f"{path}:{header}: {name}: a {kind} entry is not a table")
            url = entry.get("url")
            filename = entry.get("filename")
            if not isinstance(filename, str):
                filename = filename_from_url(url) if isinstance(url, str) else None
            if not filename:
                raise ConfigError(f"{path}:{header}: {name}: a {kind} entry has no url")
            listed.append((kind, filename, entry.get("hash"), url))
        packages.append(
            index_release(
                name=name,
                version=version,
                header=header,
                index=index,
                unsupported=unsupported,
                position=t.position,
                entries=listed,
                lines=lines,
                span=span,
                find_by="sha256",
            )
        )
    return Lock(path=path, format="uv", packages=tuple(packages))
