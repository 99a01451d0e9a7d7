"""Read pip's installation report (``pip install --dry-run --report``, format version "1").

Each ``install`` item becomes a :class:`ReportItem`: the project, the version, where pip would
get it from and the sha256 pip resolved it with. Items pip would build or copy from a local
directory or a VCS checkout cannot be matched to a published file and its provenance: they are
marked ``unverifiable`` and the caller decides (refuse by default).

See https://pip.pypa.io/en/stable/reference/installation-report/ for the format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from safe_pip.errors import ConfigError
from safe_pip.models import FileRef

SourceKind = Literal["wheel", "sdist", "dir", "vcs", "other"]

#: The report format versions this reader understands.
SUPPORTED_VERSIONS = ("1",)


@dataclass(frozen=True)
class ReportItem:
    """One distribution pip would install."""

    name: str  # as the metadata spells it
    version: str
    url: str  # download_info.url (file://, https://, or a VCS URL)
    kind: SourceKind
    filename: str | None  # the dist file's name (wheel / sdist), None for dirs and VCS
    sha256: str | None  # archive_info.hashes.sha256 as pip resolved it
    is_direct: bool = False
    requested: bool = False
    editable: bool = False
    yanked: bool = False

    @property
    def project(self) -> str:
        return canonicalize_name(self.name)

    @property
    def is_local(self) -> bool:
        return self.url.startswith("file:")

    @property
    def local_path(self) -> Path | None:
        if not self.is_local:
            return None
        parts = urlsplit(self.url)
        return Path(url2pathname(unquote(parts.path)))

    @property
    def verifiable(self) -> bool:
        """A published dist file whose provenance can be looked up by (name, version, file)."""
        return self.kind in ("wheel", "sdist")

    @property
    def source(self) -> str:
        """A short human-readable description of where it comes from."""
        if self.kind == "vcs":
            return f"VCS checkout {self.url}"
        if self.kind == "dir":
            return f"local directory {self.local_path or self.url}"
        return self.url

    def to_fileref(
        self,
        *,
        index: str | None = None,
        provenance_url: str | None = None,
        size: int | None = None,
        yanked: bool | str | None = None,
    ) -> FileRef:
        """A FileRef for the checker. ``sha256`` is pip's (what it resolved), so bytes that
        changed since resolution are a hash mismatch; the bytes are always fetched anew."""
        if self.filename is None:
            raise ValueError(f"{self.name} {self.version} is not a dist file ({self.source})")
        return FileRef(
            project=self.name,
            version=self.version,
            filename=self.filename,
            url=_strip_fragment(self.url),
            sha256=self.sha256,
            index=index,
            provenance_url=provenance_url,
            yanked=self.yanked if yanked is None else yanked,
            size=size,
        )


def _strip_fragment(url: str) -> str:
    return url.split("#", 1)[0]


def _dist_kind(filename: str, name: str, version: str) -> SourceKind:
    """ "wheel" / "sdist" when ``filename`` is a dist of (name, version), else "other"."""
    want_name = canonicalize_name(name)
    try:
        want_version: Version | None = Version(version)
    except InvalidVersion:
        want_version = None
    try:
        if filename.endswith(".whl"):
            n, v, _b, _t = parse_wheel_filename(filename)
            kind: SourceKind = "wheel"
        elif filename.endswith((".tar.gz", ".zip")):
            n, v = parse_sdist_filename(filename)
            kind = "sdist"
        else:
            return "other"
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return "other"
    if n != want_name or (want_version is not None and v != want_version):
        return "other"
    return kind


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"pip's installation report is malformed: {what} is missing")
    return value


def parse_item(raw: Any) -> ReportItem:
    if not isinstance(raw, dict):
        raise ConfigError("pip's installation report is malformed: an install item is not a table")
    meta = raw.get("metadata")
    if not isinstance(meta, dict):
        raise ConfigError("pip's installation report is malformed: an item has no metadata")
    name = _str(meta.get("name"), "metadata.name")
    version = _str(meta.get("version"), f"metadata.version of {name}")
    info = raw.get("download_info")
    if not isinstance(info, dict):
        raise ConfigError(f"pip's installation report has no download_info for {name}")
    url = _str(info.get("url"), f"download_info.url of {name}")
    sha256: str | None = None
    editable = False
    if isinstance(info.get("vcs_info"), dict):
        kind: SourceKind = "vcs"
        filename = None
    elif isinstance(info.get("dir_info"), dict):
        kind = "dir"
        filename = None
        editable = bool(info["dir_info"].get("editable", False))
    else:
        archive = info.get("archive_info")
        if isinstance(archive, dict):
            hashes = archive.get("hashes")
            if isinstance(hashes, dict) and isinstance(hashes.get("sha256"), str):
                sha256 = hashes["sha256"].lower()
            elif isinstance(archive.get("hash"), str) and archive["hash"].startswith("sha256="):
                sha256 = archive["hash"].split("=", 1)[1].lower()
        filename = unquote(urlsplit(_strip_fragment(url)).path.rsplit("/", 1)[-1])
        kind = _dist_kind(filename, name, version)
        if kind == "other":
            filename = None
    return ReportItem(
        name=name,
        version=version,
        url=url,
        kind=kind,
        filename=filename,
        sha256=sha256,
        is_direct=bool(raw.get("is_direct", False)),
        requested=bool(raw.get("requested", False)),
        editable=editable,
        yanked=bool(raw.get("is_yanked", False)),
    )


def parse_report(doc: Any) -> list[ReportItem]:
    """The items of a parsed report document. Raises ConfigError on an unknown format."""
    if not isinstance(doc, dict):
        raise ConfigError("pip's installation report is not a JSON object")
    version = doc.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise ConfigError(
            f"pip's installation report has version {version!r}; safe-pip reads version 1",
            fix="upgrade safe-pip, or use a pip that writes report version 1 (pip >= 22.2)",
        )
    items = doc.get("install", [])
    if not isinstance(items, list):
        raise ConfigError("pip's installation report is malformed: 'install' is not a list")
    return [parse_item(raw) for raw in items]


def read_report(path: Path) -> list[ReportItem]:
    """Read and parse a report file pip wrote."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read pip's installation report {path}: {exc}") from exc
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"pip's installation report is not valid JSON: {exc}") from exc
    return parse_report(doc)
