"""What a lock says, independent of its format."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from safe_pip.models import PublisherIdentity

LockFormat = Literal["pylock", "requirements", "uv"]
FileKind = Literal["wheel", "sdist"]

HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class LockedFile:
    """One distribution file a lock names."""

    filename: str
    kind: FileKind
    sha256: str | None  # lower-case hex, as the lock records it
    url: str | None = None
    line: int | None = None  # 1-based line in the lock where this file (or its package) is
    #: Hash algorithms other than sha256 the lock lists for this file (as written). An
    #: installer accepts the file when ANY listed hash matches, and PEP 740 attests sha256
    #: only, so such a file cannot be verified (lockverify: ``unverifiable-hash``).
    other_hashes: tuple[str, ...] = ()
    #: Set by a reader when the file's name names another project or version than its entry.
    mismatch: str | None = None


@dataclass(frozen=True)
class LockedPackage:
    """One package entry of a lock."""

    name: str
    version: str
    line: int  # 1-based line of the entry's header / requirement
    index: str | None = None  # the simple index the lock says the package comes from
    files: tuple[LockedFile, ...] = ()
    #: Hashes without filenames (requirements files): the files are found on the index.
    hashes: tuple[str, ...] = ()
    #: Requirements files: ``--hash`` algorithms other than sha256 on the requirement.
    other_hashes: tuple[str, ...] = ()
    #: PEP 751 attestation-identities; None when the lock has no such field for the package.
    identities: tuple[PublisherIdentity, ...] | None = None
    #: Set when the entry cannot be verified as an index release (vcs, directory, ...).
    unsupported: str | None = None
    position: int = 0  # the entry's ordinal in the lock (pylock: index into [[packages]])
    marker: str | None = None


@dataclass(frozen=True)
class Lock:
    path: Path
    format: LockFormat
    packages: tuple[LockedPackage, ...]
    index: str | None = None  # a lock-wide default index (requirements -i, uv default)
    extra_indexes: tuple[str, ...] = field(default=())

    @property
    def file_count(self) -> int:
        return sum(len(p.files) + len(p.hashes) for p in self.packages)


def normalize_sha256(value: object) -> str | None:
    if isinstance(value, str) and HEX64.match(value):
        return value.lower()
    return None


def filename_project_version(filename: str) -> tuple[str, str] | None:
    """(normalised project, normalised version) from a wheel or sdist file name, parsed with
    packaging; None when the name does not parse as either."""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )
    from packaging.version import InvalidVersion

    try:
        if filename.endswith(".whl"):
            name, ver, _build, _tags = parse_wheel_filename(filename)
            return str(name), str(ver)
        name, ver = parse_sdist_filename(filename)
        return str(name), str(ver)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None


def name_version_mismatch(project: str, version: str, filename: str) -> str | None:
    """Why ``filename`` is not a file of ``project`` ``version`` (None when it is).

    Names compare canonicalised and versions as PEP 440 versions; an empty ``version`` (a
    pylock entry without one) compares the project only. A file name that does not parse as
    a wheel or sdist name fails: its project and version cannot be confirmed."""
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    parsed = filename_project_version(filename)
    if parsed is None:
        return (
            f"the file name {filename!r} does not parse as a wheel or sdist name, so its project "
            f"and version cannot be checked against the entry {project} {version}".rstrip()
        )
    file_name, file_version = parsed
    if canonicalize_name(project) != file_name:
        return f"the entry is {project}, but the file {filename} is of project {file_name}"
    if not version:
        return None
    try:
        same = Version(version) == Version(file_version)
    except InvalidVersion:
        same = False
    if not same:
        return (
            f"the entry is {project}=={version}, but the file {filename} is version {file_version}"
        )
    return None


def filename_from_url(url: str) -> str:
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


# -- locating lines in TOML text ---------------------------------------------------------------

_HEADER = re.compile(r"^[ \t]*\[\[?[ \t]*([A-Za-z0-9_.\-\"' \t]+?)[ \t]*\]\]?[ \t]*(?:#.*)?$")


def header_name(line: str) -> tuple[str, bool] | None:
    """(dotted table name, is-array) when ``line`` is a TOML table header, else None."""
    m = _HEADER.match(line.rstrip("\r\n"))
    if not m:
        return None
    name = re.sub(r"[ \t]*\.[ \t]*", ".", m.group(1)).replace('"', "").replace("'", "")
    return name, line.lstrip().startswith("[[")


def array_table_spans(lines: list[str], array: str) -> list[tuple[int, int]]:
    """0-based [start, end) line spans of each ``[[array]]`` table, its sub-tables included.

    A span ends at the next ``[[array]]`` header or at a header outside ``array.``.
    Multi-line strings are tracked so a header-looking line inside one is not taken for one.
    """
    spans: list[tuple[int, int]] = []
    start: int | None = None
    in_string: str | None = None
    for i, line in enumerate(lines):
        if in_string is not None:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        for delim in ('"""', "'''"):
            if line.count(delim) % 2 == 1:
                in_string = delim
                break
        if in_string is not None:
            continue
        parsed = header_name(line)
        if parsed is None:
            continue
        name, is_array = parsed
        if name == array and is_array:
            if start is not None:
                spans.append((start, i))
            start = i
        elif not name.startswith(array + ".") and start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(lines)))
    return spans


def find_line(lines: list[str], span: tuple[int, int], needle: str | None) -> int | None:
    """1-based line of the first occurrence of ``needle`` within ``span``."""
    if not needle:
        return None
    for i in range(span[0], span[1]):
        if needle in lines[i]:
            return i + 1
    return None
