"""The files ``safe-pip inspect`` checks: one local wheel or sdist, or every file of one release
(``NAME==VERSION``) on an index."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from safe_pip.errors import ConfigError

if TYPE_CHECKING:
    from safe_pip.models import FileRef
    from safe_pip.net import Http
    from safe_pip.store.serials import SerialGuard


def parse_dist_filename(filename: str) -> tuple[str, str]:
    """(normalized name, normalized version) of a wheel or sdist filename; ValueError if not."""
    if filename.endswith(".whl"):
        try:
            name, version, _build, _tags = parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            raise ValueError(str(exc)) from exc
        return str(name), str(version)
    if filename.endswith((".tar.gz", ".zip")):
        try:
            sname, sversion = parse_sdist_filename(filename)
        except InvalidSdistFilename as exc:
            raise ValueError(str(exc)) from exc
        return str(sname), str(sversion)
    raise ValueError(f"{filename!r} is neither a wheel nor an sdist filename")


def local_ref(path: Path, provenance: str | None, index_url: str) -> FileRef:
    """A local wheel or sdist, named as its file name says (its provenance: ``provenance``, else
    looked up on ``index_url``)."""
    from safe_pip.models import FileRef

    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        name, version = parse_dist_filename(path.name)
    except ValueError as exc:
        raise ConfigError(f"{path.name}: {exc}") from exc
    return FileRef(
        project=name,
        version=version,
        filename=path.name,
        local_path=str(path),
        index=None if provenance else index_url,
    )


def release_refs(target: str, index_url: str, http: Http, serials: SerialGuard) -> list[FileRef]:
    """Every file of the release ``target`` (``NAME==VERSION``) on ``index_url``; a quarantined
    project (PEP 792) gives one placeholder the checker refuses without fetching anything."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    from safe_pip.net import SimpleIndex

    try:
        req = Requirement(target)
    except InvalidRequirement as exc:
        raise ConfigError(f"{target!r} is neither a file nor NAME==VERSION: {exc}") from exc
    specs = list(req.specifier)
    if len(specs) != 1 or specs[0].operator not in ("==", "==="):
        raise ConfigError(f"{target!r}: give an exact version, as NAME==VERSION")
    try:
        wanted = Version(specs[0].version)
    except InvalidVersion as exc:
        raise ConfigError(f"{target!r}: {exc}") from exc
    page = SimpleIndex(http, index_url).project(req.name)
    serials.observe_page(index_url, page)  # a stale / replayed page: exit 3 (T21)
    refs = []
    for f in page.files:
        try:
            if Version(f.version) == wanted:
                refs.append(f)
        except InvalidVersion:
            continue
    if not refs and (page.status or "").strip().lower() == "quarantined":
        # PEP 792: the index offers no files of a quarantined project; say so (the checker
        # refuses this placeholder without fetching anything, threat T25)
        from safe_pip.models import FileRef

        return [
            FileRef(
                project=page.name,
                version=str(wanted),
                filename="(no files offered)",
                index=index_url,
                project_status=page.status,
                project_status_reason=page.status_reason,
            )
        ]
    if not refs:
        raise ConfigError(f"{req.name} {wanted} has no files on {index_url}")
    return refs
