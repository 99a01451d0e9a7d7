"""PEP 751 ``pylock.toml`` through :mod:`packaging.pylock` (validation is packaging's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from safe_pip.errors import ConfigError
from safe_pip.models import PublisherIdentity
from safe_pip.sources.model import (
    Lock,
    LockedFile,
    LockedPackage,
    array_table_spans,
    filename_from_url,
    find_line,
    normalize_sha256,
)

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]


def load_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return cast("dict[str, Any]", tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def parse_pylock(text: str, path: Path) -> Lock:
    from packaging.pylock import Pylock, PylockUnsupportedVersionError, PylockValidationError

    data = load_toml(text, path)
    try:
        lock = Pylock.from_dict(data)
    except PylockUnsupportedVersionError as exc:
        raise ConfigError(f"{path}: {exc}", fix="safe-pip reads lock-version 1.x") from exc
    except PylockValidationError as exc:
        raise ConfigError(f"{path}: not a valid pylock.toml: {exc}") from exc

    lines = text.splitlines(keepends=True)
    spans = array_table_spans(lines, "packages")
    packages: list[LockedPackage] = []
    for i, pkg in enumerate(lock.packages):
        span = spans[i] if i < len(spans) and len(spans) == len(lock.packages) else None
        header = span[0] + 1 if span else 1
        version = str(pkg.version) if pkg.version is not None else ""
        identities = _identities(pkg.attestation_identities, path, pkg.name, header)
        unsupported: str | None = None
        if pkg.vcs is not None:
            unsupported = "a VCS checkout"
        elif pkg.directory is not None:
            unsupported = "a local directory"
        elif pkg.archive is not None:
            unsupported = "an archive outside any index"
        files: list[LockedFile] = []
        if pkg.sdist is not None:
            files.append(_file(pkg.sdist, "sdist", lines, span, header, path, pkg.name))
        for wheel in pkg.wheels or ():
            files.append(_file(wheel, "wheel", lines, span, header, path, pkg.name))
        if not files and unsupported is None:
            unsupported = "an entry that names no wheel or sdist"
        packages.append(
            LockedPackage(
                name=str(pkg.name),
                version=version,
                line=header,
                index=pkg.index,
                files=tuple(files),
                identities=identities,
                unsupported=unsupported,
                position=i,
                marker=str(pkg.marker) if pkg.marker is not None else None,
            )
        )
    created_by = data.get("created-by")
    return Lock(
        path=path,
        format="pylock",
        packages=tuple(packages),
        generator="uv" if created_by == "uv" else None,
    )


def _identities(raw: Any, path: Path, name: str, line: int) -> tuple[PublisherIdentity, ...] | None:
    if raw is None:
        return None
    out = []
    for table in raw:
        try:
            out.append(PublisherIdentity.from_table(dict(table)))
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{path}:{line}: package {name}: bad attestation-identities entry: {exc}"
            ) from exc
    return tuple(out)


def _file(
    entry: Any,
    kind: str,
    lines: list[str],
    span: tuple[int, int] | None,
    header: int,
    path: Path,
    project: str,
) -> LockedFile:
    url: str | None = entry.url
    filename: str | None = entry.name
    if not filename and url:
        filename = filename_from_url(url)
    if not filename and entry.path:
        filename = Path(entry.path).name
    if not filename:
        raise ConfigError(f"{path}:{header}: package {project}: a {kind} has no name or url")
    hashes = dict(entry.hashes or {})
    sha = normalize_sha256(hashes.get("sha256"))
    # An installer (uv) accepts the file when ANY listed hash matches; PEP 740 attests sha256
    # only, so another algorithm makes the file unverifiable (lock.locate: unverifiable-hash).
    others = tuple(sorted(str(k) for k in hashes if k != "sha256"))
    line = None
    if span is not None:
        line = find_line(lines, span, sha) or find_line(lines, span, filename)
    return LockedFile(
        filename=filename,
        kind="wheel" if kind == "wheel" else "sdist",
        sha256=sha,
        url=url,
        line=line or header,
        other_hashes=others,
    )
