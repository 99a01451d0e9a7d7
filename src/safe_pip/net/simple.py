"""A PEP 691 (JSON) / PEP 503 (HTML) simple-index client, PEP 740 ``provenance`` aware.

``SimpleIndex(http, index_url).project(name)`` returns a :class:`ProjectPage` whose files are
:class:`safe_pip.models.FileRef` objects with absolute URLs. JSON is asked for first; an index
that answers HTML (PEP 503, with PEP 592 ``data-yanked`` and PEP 740 ``data-provenance``) is
parsed too. ``file://`` index URLs read a local directory laid out as
``<root>/<project>/<files>`` (an ``index.html`` in the project directory wins when present;
``<file>.provenance`` beside a file is its provenance).
"""

from __future__ import annotations

import html.parser
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from safe_pip.errors import ConfigError
from safe_pip.models import FileRef
from safe_pip.net.session import (
    Http,
    HttpStatusError,
    InsecureURL,
    MalformedResponse,
    Response,
    ResponseTooLarge,
    _file_path,
    check_url,
    redact,
)

if TYPE_CHECKING:
    from safe_pip.net.pagecache import PageCache

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
#: pip's own Accept header: JSON preferred, HTML understood.
SIMPLE_ACCEPT = f"{JSON_V1}, {HTML_V1};q=0.1, text/html;q=0.01"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SIDECARS = (".provenance", ".yanked", ".metadata")


class ProjectNotFound(HttpStatusError):
    """The index has no such project (HTTP 404)."""


@dataclass(frozen=True)
class ProjectPage:
    """One project's simple page, reduced to what safe-pip needs."""

    name: str  # normalized
    files: tuple[FileRef, ...]
    versions: tuple[str, ...]
    last_serial: int | None  # PEP 691 meta._last-serial / X-PyPI-Last-Serial (threat T21)
    url: str  # the page's final URL
    api_version: str | None = None
    #: PEP 792 project status ("active", "archived", "quarantined", "deprecated" or a status
    #: this client does not know), None when the page gives none; its free-text reason.
    status: str | None = None
    status_reason: str | None = None
    #: Whether this index serves PEP 740 provenance at all: True when any file carries a
    #: ``provenance`` key (JSON, even null) / ``data-provenance`` attribute (HTML) or the page
    #: declares API version 1.3 or later (PEP 740); False otherwise, as on mirrors that drop
    #: the key (bandersnatch-style pages at API 1.0-1.1, devpi). None: not an index page.
    serves_provenance: bool | None = None
    _by_filename: dict[str, FileRef] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def file(self, filename: str) -> FileRef | None:
        """The page's file named ``filename`` (a dict built once per page, not a scan)."""
        index = self._by_filename
        if index is None:
            index = {f.filename: f for f in self.files}
            object.__setattr__(self, "_by_filename", index)
        return index.get(filename)

    def for_version(self, version: str) -> tuple[FileRef, ...]:
        """The page's files for one version (compared as PEP 440 versions)."""
        want = _version_key(version)
        return tuple(f for f in self.files if _version_key(f.version) == want)


def _version_key(v: str) -> str:
    try:
        return str(Version(v))
    except InvalidVersion:
        return v


def parse_filename(filename: str) -> tuple[NormalizedName, str] | None:
    """(normalized project, version) of a wheel or sdist filename; None if it does not parse."""
    try:
        if filename.endswith(".whl"):
            name, ver, _build, _tags = parse_wheel_filename(filename)
            return name, str(ver)
        if filename.endswith((".tar.gz", ".zip")):
            name, ver = parse_sdist_filename(filename)
            return name, str(ver)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    return None


def _strip_fragment(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, "")), parts.fragment


def _join(base: str, url: str, what: str) -> str:
    """``url`` resolved against ``base``; MalformedResponse when it is not a URL at all."""
    try:
        joined = urljoin(base, url)
        urlsplit(joined).port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise MalformedResponse(f"{what}: invalid URL {url[:200]!r}") from None
    return joined


def _join_without_fragment(base: str, url: str, what: str) -> str:
    """``_strip_fragment(_join(base, url, what))[0]``, splitting the URL once."""
    try:
        parts = urlsplit(urljoin(base, url))
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise MalformedResponse(f"{what}: invalid URL {url[:200]!r}") from None
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


def _filename_of(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def _check_api_version(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"\d+\.\d+", value):
        raise MalformedResponse(f"{what}: invalid repository API version {value!r}")
    if value.split(".")[0] != "1":
        raise MalformedResponse(
            f"{what}: repository API version {value} is not supported (safe-pip speaks 1.x)"
        )
    return value


#: PEP 792 statuses. An index may send one this client does not know yet: it is kept as given
#: (and reported), and decided like "active" (threat T25, docs/policy.md).
PROJECT_STATUSES = ("active", "archived", "quarantined", "deprecated")
_MAX_STATUS = 100
_MAX_STATUS_REASON = 2000


def _status_value(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedResponse(f"{what}: 'project-status.status' must be a string")
    status = value.strip().lower()[:_MAX_STATUS]
    return status or None


def _reason_value(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedResponse(f"{what}: 'project-status.reason' must be a string")
    return value[:_MAX_STATUS_REASON] or None


def _json_status(data: dict[str, Any], what: str) -> tuple[str | None, str | None]:
    """(status, reason) of a PEP 792 ``project-status`` object (a top-level key of the
    project detail, beside ``meta``)."""
    raw = data.get("project-status")
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        raise MalformedResponse(f"{what}: 'project-status' must be an object")
    status = _status_value(raw.get("status"), what)
    reason = _reason_value(raw.get("reason"), what)
    return status, (reason if status is not None else None)


def _html_status(parser: _AnchorParser, what: str) -> tuple[str | None, str | None]:
    """(status, reason) from the PEP 792 meta tags. Two tags that disagree make the page
    malformed (fail closed: a page cannot be both quarantined and active)."""
    statuses = {_status_value(v, what) for v in parser.project_statuses}
    reasons = {_reason_value(v, what) for v in parser.project_status_reasons}
    if len(statuses) > 1 or len(reasons) > 1:
        raise MalformedResponse(f"{what}: conflicting pypi:project-status meta tags")
    status = statuses.pop() if statuses else None
    reason = reasons.pop() if reasons else None
    return status, (reason if status is not None else None)


@dataclass(frozen=True)
class _PageFields:
    """What every FileRef of a page carries from the page: its PEP 792 status and reason, and
    whether its index serves PEP 740 provenance at all."""

    status: str | None = None
    reason: str | None = None
    serves: bool | None = None


_NO_PAGE_FIELDS = _PageFields()


def _serves_provenance(api_version: str | None, any_key: bool) -> bool:
    """Whether a page's index serves PEP 740 provenance (see ProjectPage.serves_provenance)."""
    if any_key:
        return True
    if api_version is None:
        return False
    major, _, minor = api_version.partition(".")
    return (int(major), int(minor)) >= (1, 3)


def _json_serial(value: object, what: str) -> int | None:
    """PEP 691 ``meta._last-serial`` as the ecosystem writes it: an integer (PyPI), or a string
    of ASCII digits (bandersnatch writes ``str(serial)``), which is that integer. Anything else
    (a bool, a float, a signed or non-digit string) is refused: it is no serial."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    raise MalformedResponse(
        f"{what}: '_last-serial' must be an integer (or a string of digits), not {value!r:.40}"
    )


class SimpleIndex:
    """A simple-repository client for one index URL."""

    def __init__(self, http: Http, index_url: str, *, pages: PageCache | None = None) -> None:
        if not index_url.endswith("/"):
            index_url += "/"
        self.http = http
        self.index_url = index_url
        #: pages kept between runs: :meth:`project` asks with a conditional request
        self.pages = pages
        self._local_root: Path | None = None
        if index_url.startswith("file:"):
            root = _file_path(index_url)
            if not root.is_dir():
                raise ConfigError(
                    f"index {index_url} is not a directory",
                    fix="point --index-url at a directory laid out as <root>/<project>/<files>",
                )
            self._local_root = root
            return
        try:
            check_url(index_url)
        except InsecureURL as exc:
            raise ConfigError(
                f"index URL {redact(index_url)} is not allowed: {exc}",
                fix="use an https:// index URL (plain http is accepted only on 127.0.0.1)",
            ) from None

    def project_url(self, name: str) -> str:
        return urljoin(self.index_url, quote(canonicalize_name(name)) + "/")

    def project(self, name: str) -> ProjectPage:
        """Fetch and parse the project's page. Raises :class:`ProjectNotFound` on 404 and other
        :class:`NetworkError` subclasses when the page cannot be had or trusted.

        With ``pages``, the index is asked every time, conditionally on the kept page when
        there is one: a 304 for it reuses its parsed form, a 200 replaces it, a 304 that
        confirms nothing is asked again without condition (:mod:`safe_pip.net.pagecache`)."""
        if self.pages is None or self._local_root is not None:
            return self.fetch_page(name)[0]
        pages = self.pages
        norm = canonicalize_name(name)
        url = self.project_url(norm)
        kept = pages.get(self.index_url, url)
        conditions = kept.conditions() if kept is not None else {}
        resp = self._get_page(url, conditions)
        if resp.status == 304:
            page = pages.revalidated(kept, resp, norm)
            if page is not None:
                return page
            resp = self._get_page(url, {})  # a 304 that confirms no kept page: ask again
        self._check_status(norm, resp)
        page = pages.unchanged(kept, resp, norm)
        if page is None:
            page = self.parse_page(norm, resp)
            pages.put(self.index_url, url, resp, page)
        return page

    def _get_page(self, url: str, headers: dict[str, str]) -> Response:
        limits = self.http.limits
        return self.http.get_bytes(
            url, max_bytes=limits.max_page_bytes, accept=SIMPLE_ACCEPT, headers=headers
        )

    def _check_status(self, norm: str, resp: Response) -> None:
        if resp.status == 404:
            raise ProjectNotFound(
                f"{norm} was not found on {redact(self.index_url)} (HTTP 404)",
                status=404,
                fix="check the project name and --index-url",
            )
        if resp.status != 200:
            raise HttpStatusError(
                f"index page for {norm} ({redact(resp.url)}): HTTP {resp.status}",
                status=resp.status,
                fix="the index is unavailable or refused the request; retry later",
            )

    def fetch_page(self, name: str) -> tuple[ProjectPage, Response | None]:
        """Like :meth:`project`, also returning the raw (capped) response the page was parsed
        from, for callers that re-serve it (None for ``file://`` indexes)."""
        norm = canonicalize_name(name)
        if self._local_root is not None:
            return self._local_project(norm), None
        resp = self._get_page(self.project_url(norm), {})
        self._check_status(norm, resp)
        return self.parse_page(norm, resp), resp

    def parse_page(self, name: str, resp: Response) -> ProjectPage:
        """Parse a 200 response for project ``name`` as PEP 691 JSON or PEP 503 HTML (by its
        Content-Type). Raises :class:`MalformedResponse` / :class:`ResponseTooLarge`."""
        norm = canonicalize_name(name)
        what = f"index page for {norm} ({redact(resp.url)})"
        ctype = resp.content_type
        if ctype in (JSON_V1, "application/json"):
            return self._parse_json(norm, resp, what)
        if ctype in ("text/html", HTML_V1, ""):
            return self._parse_html(norm, resp, what)
        raise MalformedResponse(f"{what}: unexpected content type {ctype!r}")

    # -- JSON (PEP 691) ------------------------------------------------------------------------

    def _parse_json(self, norm: NormalizedName, resp: Response, what: str) -> ProjectPage:
        limits = self.http.limits
        data = resp.json(what=what, max_depth=limits.max_json_depth)
        if not isinstance(data, dict):
            raise MalformedResponse(f"{what}: expected a JSON object")
        meta = data.get("meta")
        if not isinstance(meta, dict):
            raise MalformedResponse(f"{what}: missing 'meta'")
        api_version = _check_api_version(meta.get("api-version"), what)
        page_name = data.get("name")
        if not isinstance(page_name, str) or canonicalize_name(page_name) != norm:
            raise MalformedResponse(f"{what}: page is for {page_name!r}, not {norm!r}")
        raw_files = data.get("files")
        if not isinstance(raw_files, list):
            raise MalformedResponse(f"{what}: 'files' must be a list")
        if len(raw_files) > limits.max_files_per_page:
            raise ResponseTooLarge(
                f"{what}: {len(raw_files)} files, over the limit of {limits.max_files_per_page}"
            )
        serial = _json_serial(meta.get("_last-serial"), what)
        status, reason = _json_status(data, what)
        serves = _serves_provenance(
            api_version, any(isinstance(e, dict) and "provenance" in e for e in raw_files)
        )
        shared = _PageFields(status, reason, serves)
        files: list[FileRef] = []
        for entry in raw_files:
            ref = self._json_file(norm, entry, resp.url, what, shared)
            if ref is not None:
                files.append(ref)
        versions = data.get("versions")
        if versions is None:
            version_list = _versions_of(files)
        elif isinstance(versions, list) and all(isinstance(v, str) for v in versions):
            version_list = tuple(versions)
        else:
            raise MalformedResponse(f"{what}: 'versions' must be a list of strings")
        if serial is None:
            serial = _header_serial(resp)
        return ProjectPage(
            norm, tuple(files), version_list, serial, resp.url, api_version, status, reason, serves
        )

    def _json_file(
        self, norm: NormalizedName, entry: Any, base: str, what: str, shared: _PageFields
    ) -> FileRef | None:
        if not isinstance(entry, dict):
            raise MalformedResponse(f"{what}: a file entry is not an object")
        filename, url = entry.get("filename"), entry.get("url")
        if not isinstance(filename, str) or not isinstance(url, str):
            raise MalformedResponse(f"{what}: a file entry lacks a string filename/url")
        hashes = entry.get("hashes", {})
        if not isinstance(hashes, dict):
            raise MalformedResponse(f"{what}: {filename}: 'hashes' must be an object")
        yanked = entry.get("yanked", False)
        if isinstance(yanked, str):
            yanked_value: bool | str = yanked or True
        elif isinstance(yanked, bool):
            yanked_value = yanked
        else:
            raise MalformedResponse(f"{what}: {filename}: 'yanked' must be a bool or string")
        provenance = entry.get("provenance")
        if provenance is not None and not isinstance(provenance, str):
            raise MalformedResponse(f"{what}: {filename}: 'provenance' must be a URL or null")
        upload_time = entry.get("upload-time")
        if upload_time is not None and not isinstance(upload_time, str):
            raise MalformedResponse(f"{what}: {filename}: 'upload-time' must be a string")
        size = entry.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise MalformedResponse(f"{what}: {filename}: 'size' must be a non-negative integer")
        return self._make_ref(
            norm,
            what,
            filename=filename,
            url=url,
            base=base,
            sha256=hashes.get("sha256"),
            yanked=yanked_value,
            provenance=provenance,
            upload_time=upload_time,
            size=size,
            shared=shared,
        )

    def _make_ref(
        self,
        norm: NormalizedName,
        what: str,
        *,
        filename: str,
        url: str,
        base: str,
        sha256: object,
        yanked: bool | str,
        provenance: str | None,
        upload_time: str | None,
        size: int | None,
        shared: _PageFields | None = None,
    ) -> FileRef | None:
        parsed = parse_filename(filename)
        if parsed is None or parsed[0] != norm:
            return None  # not a wheel/sdist of this project: pip would ignore it too
        digest = sha256.lower() if isinstance(sha256, str) else None
        if digest is not None and not _SHA256.match(digest):
            digest = None  # the file's real bytes decide anyway
        file_url = _join_without_fragment(base, url, what)
        shared = shared or _NO_PAGE_FIELDS
        return FileRef(
            project=norm,
            version=parsed[1],
            filename=filename,
            url=file_url,
            sha256=digest,
            index=self.index_url,
            provenance_url=_join(base, provenance, what) if provenance else None,
            yanked=yanked,
            upload_time=upload_time,
            size=size,
            project_status=shared.status,
            project_status_reason=shared.reason,
            index_serves_provenance=shared.serves,
        )

    # -- HTML (PEP 503) ------------------------------------------------------------------------

    def _parse_html(self, norm: NormalizedName, resp: Response, what: str) -> ProjectPage:
        limits = self.http.limits
        try:
            text = resp.body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedResponse(f"{what}: page is not UTF-8") from None
        parser = _AnchorParser(limits.max_files_per_page)
        try:
            parser.feed(text)
            parser.close()
        except _TooManyLinks:
            raise ResponseTooLarge(
                f"{what}: more than {limits.max_files_per_page} links on the page"
            ) from None
        api_version = _check_api_version(parser.repository_version, what)
        base = _join(resp.url, parser.base, what) if parser.base else resp.url
        status, reason = _html_status(parser, what)
        serves = _serves_provenance(
            api_version, any("data-provenance" in attrs for attrs in parser.anchors)
        )
        shared = _PageFields(status, reason, serves)
        files: list[FileRef] = []
        for attrs in parser.anchors:
            href = attrs.get("href")
            if not href:
                continue
            absolute = _join(base, href, what)
            _url, fragment = _strip_fragment(absolute)
            sha256 = None
            for part in fragment.split("&"):
                algo, _, value = part.partition("=")
                if algo == "sha256":
                    sha256 = value
            # PEP 592: the attribute's presence means yanked; its value, if any, is the reason.
            yanked: bool | str = False
            if "data-yanked" in attrs:
                yanked = attrs["data-yanked"] or True
            ref = self._make_ref(
                norm,
                what,
                filename=_filename_of(absolute),
                url=absolute,
                base=base,
                sha256=sha256,
                yanked=yanked,
                provenance=attrs.get("data-provenance") or None,
                upload_time=None,
                size=None,
                shared=shared,
            )
            if ref is not None:
                files.append(ref)
        return ProjectPage(
            norm,
            tuple(files),
            _versions_of(files),
            _header_serial(resp),
            resp.url,
            api_version,
            status,
            reason,
            serves,
        )

    # -- file:// -------------------------------------------------------------------------------

    def _local_project(self, norm: NormalizedName) -> ProjectPage:
        root = self._local_root
        assert root is not None
        project_dir = root / norm
        if not project_dir.is_dir():
            matches = [
                p for p in root.iterdir() if p.is_dir() and canonicalize_name(p.name) == norm
            ]
            if not matches:
                raise ProjectNotFound(
                    f"{norm} was not found in {root}", status=404, fix="check the project name"
                )
            project_dir = matches[0]
        page_url = project_dir.resolve().as_uri() + "/"
        index_html = project_dir / "index.html"
        if index_html.is_file():
            resp = self.http.get_bytes(
                index_html.resolve().as_uri(), max_bytes=self.http.limits.max_page_bytes
            )
            resp = Response(resp.status, {}, resp.body, page_url)
            return self._parse_html(norm, resp, f"index page {index_html}")
        files: list[FileRef] = []
        for path in sorted(project_dir.iterdir()):
            if not path.is_file() or path.name.endswith(_SIDECARS):
                continue
            prov = path.with_name(path.name + ".provenance")
            yanked_file = path.with_name(path.name + ".yanked")
            yanked: bool | str = False
            if yanked_file.is_file():
                yanked = yanked_file.read_text(encoding="utf-8", errors="replace").strip() or True
            ref = self._make_ref(
                norm,
                str(project_dir),
                filename=path.name,
                url=path.resolve().as_uri(),
                base=page_url,
                sha256=None,
                yanked=yanked,
                provenance=prov.resolve().as_uri() if prov.is_file() else None,
                upload_time=None,
                size=path.stat().st_size,
            )
            if ref is not None:
                files.append(ref)
            if len(files) > self.http.limits.max_files_per_page:
                raise ResponseTooLarge(f"{project_dir}: too many files")
        return ProjectPage(norm, tuple(files), _versions_of(files), None, page_url, None)


def _versions_of(files: list[FileRef]) -> tuple[str, ...]:
    seen = {f.version for f in files}
    return tuple(sorted(seen, key=Version))


def _header_serial(resp: Response) -> int | None:
    value = resp.headers.get("X-PyPI-Last-Serial", "").strip()
    return int(value) if value.isdigit() else None


class _TooManyLinks(Exception):
    pass


class _AnchorParser(html.parser.HTMLParser):
    """Collects ``<a>`` attributes, ``<base href>`` and the repository-version meta tag."""

    def __init__(self, max_links: int) -> None:
        super().__init__(convert_charrefs=True)
        self.max_links = max_links
        self.anchors: list[dict[str, str | None]] = []
        self.base: str | None = None
        self.repository_version: str | None = None
        #: PEP 792 ``<meta name="pypi:project-status">`` (and ``-reason``) contents, in order
        self.project_statuses: list[str | None] = []
        self.project_status_reasons: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))
            if len(self.anchors) > self.max_links:
                raise _TooManyLinks
        elif tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "meta":
            a = dict(attrs)
            name = a.get("name")
            if name == "pypi:repository-version":
                self.repository_version = a.get("content")
            elif name == "pypi:project-status":
                self.project_statuses.append(a.get("content"))
            elif name == "pypi:project-status-reason":
                self.project_status_reasons.append(a.get("content"))
