"""What a wheel file says about itself, read before any installer sees it: one check shared by
``safe-pip serve`` (a file request, a PEP 658 ``.metadata`` request) and ``safe-pip install``
(its resolving index and the wheelhouse it installs from).

A wheel is served or installed only when it is a valid wheel of the project and version its file
name (and the index page) claim, and its metadata requires nothing by direct URL:

- ``refused-invalid-wheel``: a file name that is not a wheel of the page's project (``.WHL``
  included: no installer takes it as a wheel), not exactly one top-level ``.dist-info`` (any
  case), one not named for the project, no ``METADATA`` or several, one larger than 4 MiB or not
  UTF-8, not exactly one ``Name`` equal to the project and one ``Version`` equal to the file
  name's. pip skips such a wheel while resolving and quietly takes another version, or installs
  metadata that does not match the name it was chosen by.
- ``refused-direct-url-dependency``: a ``Requires-Dist`` naming a URL (``x @ https://...``), or
  one packaging cannot parse: pip would fetch it (and build an sdist or a source tree) outside
  any index, with no provenance to verify.

Reads the zip only: no code of the wheel runs.
"""

from __future__ import annotations

import email.parser
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from safe_pip.models import Action, ReasonCode, Verdict
from safe_pip.text import clean

__all__ = [
    "MAX_CORE_METADATA_BYTES",
    "check_wheel",
    "direct_url_requirements",
    "direct_url_verdict",
    "invalid_wheel_verdict",
    "is_wheel_name",
    "read_core_metadata",
    "wheel_version",
]

#: The largest METADATA read from a wheel (bytes, decompressed); a wheel's is a few kB.
MAX_CORE_METADATA_BYTES = 4 * 1024 * 1024

# what zipfile raises on a damaged archive: a broken deflate stream is zlib.error, which is
# no OSError (a signed wheel can carry one: its signer made it)
_ZIP_ERRORS = (
    OSError,
    zipfile.BadZipFile,
    zlib.error,
    RuntimeError,
    NotImplementedError,
    EOFError,
)


def is_wheel_name(filename: str) -> bool:
    """Whether ``filename`` claims to be a wheel, in any case (``.whl``, ``.WHL``): such a file
    is served or installed only once :func:`check_wheel` passes (an upper-case suffix never
    does: installers do not take it as a wheel)."""
    return filename.lower().endswith(".whl")


def wheel_version(filename: str, project: str) -> Version:
    """The version of a wheel of ``project`` (a normalized name) named ``filename``. Raises
    ValueError when the name is not a valid wheel file name of that project."""
    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        raise ValueError(f"{filename} is not a valid wheel file name") from None
    if canonicalize_name(name) != project:
        raise ValueError(f"{filename} is not a wheel of {project}")
    return version


def read_core_metadata(path: Path, project: str, version: Version) -> bytes:
    """The bytes of the one ``<name>-<version>.dist-info/METADATA`` of the wheel at ``path``,
    checked the way an installer relies on them: exactly one top-level ``.dist-info``
    directory (counted in any case), named for ``project``; one METADATA entry, at most
    4 MiB, UTF-8; exactly one ``Name`` (``project``) and one ``Version`` (``version``).
    Raises ValueError saying what is wrong."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            infos = sorted(
                {
                    n.split("/", 1)[0]
                    for n in names
                    if n.split("/", 1)[0].lower().endswith(".dist-info")
                }
            )
            if len(infos) != 1:
                raise ValueError(
                    f"it has {len(infos)} top-level .dist-info directories (a wheel has one)"
                )
            info = infos[0]
            if canonicalize_name(info[: -len(".dist-info")].rsplit("-", 1)[0]) != project:
                raise ValueError(f"its metadata directory {info} is not named for {project}")
            member = f"{info}/METADATA"
            if names.count(member) != 1:
                raise ValueError(f"it has {names.count(member)} {member} entries (needs one)")
            with zf.open(member) as fh:
                data = fh.read(MAX_CORE_METADATA_BYTES + 1)
    except _ZIP_ERRORS as exc:
        raise ValueError(f"its metadata cannot be read ({exc})") from None
    if len(data) > MAX_CORE_METADATA_BYTES:
        raise ValueError(f"its {member} is larger than 4 MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"its {member} is not UTF-8") from None
    msg = email.parser.Parser().parsestr(text, headersonly=True)
    names_given = [str(v).strip() for v in msg.get_all("Name") or []]
    if len(names_given) != 1 or canonicalize_name(names_given[0]) != project:
        raise ValueError(f"its METADATA names the project {names_given!r}, not {project!r}")
    versions = [str(v).strip() for v in msg.get_all("Version") or []]
    try:
        same = len(versions) == 1 and Version(versions[0]) == version
    except InvalidVersion:
        same = False
    if not same:
        raise ValueError(f"its METADATA gives the version {versions!r}, not {str(version)!r}")
    return data


def direct_url_requirements(path: Path) -> list[str]:
    """The ``Requires-Dist`` entries of a wheel that name a URL (PEP 508 ``name @ URL``), or
    that packaging cannot parse (pip could not either, and safe-pip cannot tell what they
    name). Every top-level ``*.dist-info/METADATA`` counts, in any case. Raises ValueError
    when the wheel has no readable METADATA."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [
                n
                for n in zf.namelist()
                if n.count("/") == 1 and n.lower().endswith(".dist-info/metadata")
            ]
            if not names:
                raise ValueError(f"{path.name} has no .dist-info/METADATA")
            found: list[str] = []
            for name in names:
                if zf.getinfo(name).file_size > MAX_CORE_METADATA_BYTES:
                    raise ValueError(f"{path.name}: {name} is larger than 4 MiB")
                with zf.open(name) as fh:
                    data = fh.read(MAX_CORE_METADATA_BYTES + 1)
                if len(data) > MAX_CORE_METADATA_BYTES:  # the header may lie about the size
                    raise ValueError(f"{path.name}: {name} is larger than 4 MiB")
                msg = email.parser.BytesParser().parsebytes(data, headersonly=True)
                for value in msg.get_all("Requires-Dist") or []:
                    text = str(value)
                    try:
                        req = Requirement(text)
                    except InvalidRequirement:
                        found.append(text)
                        continue
                    if req.url:
                        found.append(text)
            return found
    except _ZIP_ERRORS as exc:
        raise ValueError(f"cannot read the metadata of {path.name}: {exc}") from None


def check_wheel(
    verdict: Verdict, path: Path, filename: str, project: str
) -> tuple[bytes, Verdict | None]:
    """The one check of a wheel's own metadata, for the file ``filename`` of ``project`` (a
    normalized name) whose bytes are at ``path`` and whose verdict so far is ``verdict``:
    (its METADATA, None) when it passes, else (b"", the refusal it earns:
    ``refused-invalid-wheel`` or ``refused-direct-url-dependency``)."""
    try:
        version = wheel_version(filename, project)
        body = read_core_metadata(path, project, version)
        found = direct_url_requirements(path)
    except ValueError as exc:
        return b"", invalid_wheel_verdict(verdict, str(exc))
    if found:
        return b"", direct_url_verdict(verdict, found)
    return body, None


def invalid_wheel_verdict(verdict: Verdict, why: str) -> Verdict:
    """``verdict`` turned into refused-invalid-wheel: the file is not a valid wheel of the
    project and version its name and the page claim (``why``)."""
    return replace(
        verdict,
        action=Action.REFUSE,
        code=ReasonCode.REFUSED_INVALID_WHEEL,
        reason=(
            f"not a valid wheel of {verdict.project} {verdict.version}: {clean(why, limit=300)};"
            " an installer would skip it and quietly take another version, or install "
            f"metadata that does not match its name (the file itself: {verdict.reason})"
        ),
        rule="wheel metadata",
        fix=(
            f"ask the publisher of {verdict.project} to publish a valid wheel; pin another "
            "version meanwhile"
        ),
    )


def direct_url_verdict(verdict: Verdict, found: Sequence[str]) -> Verdict:
    """``verdict`` turned into refused-direct-url-dependency: the file's metadata requires
    ``found`` (direct URLs), which pip would fetch, and for an sdist or a source tree build,
    with no provenance to verify."""
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return replace(
        verdict,
        action=Action.REFUSE,
        code=ReasonCode.REFUSED_DIRECT_URL_DEPENDENCY,
        reason=(
            f"its metadata requires {found[0]!r}{more}: a direct URL dependency, which pip "
            "would fetch (and, for an sdist or a source tree, build and run) outside any "
            f"index, with no provenance to verify (the file itself: {verdict.reason})"
        ),
        rule="direct URL dependency",
        fix=(
            f"ask the publisher of {verdict.project} to depend on published releases by name; "
            "safe-pip installs nothing whose dependencies bypass the verifying index"
        ),
    )
