"""Index pages kept between runs, so a repeat run asks the index with a conditional request.

Every run still asks the index for every page it needs: a page kept here only changes HOW it
asks. With a kept page that carried an ``ETag`` (or ``Last-Modified``), the request sends
``If-None-Match`` (``If-Modified-Since``); a ``304 Not Modified`` answer reuses the kept page
in its parsed form (parsing a large page's tens of thousands of file entries is most of a
repeat run's time, docs/adr/0014); a 200 replaces it. A 200 whose body is byte-for-byte the
kept one (same sha256, URL, content type and serial header) reuses the parsed form too, for
indexes that send no validators. Nothing about a verdict is kept: the page is what the index
said, and the history, policy, clock and the page's PEP 792 status decide every run again.

One file per page under ``$SAFE_PIP_HOME/cache/pages/`` (else the user cache directory),
named by a sha256 over the schema, the index URL and the page URL (indexes never share an
entry). The file is a one-line JSON header (the URLs, validators, the body's sha256, the
payload's sha256 and length, a digest of the parsing code and limits) and the parsed page as
JSON. An entry is ignored (the page is fetched unconditionally) when it cannot be read, is too
large, is of another schema, names another index, page or key, was written by other parsing
code or limits, is truncated or corrupted (the payload's sha256 differs) or does not read back
as a page, or when another user owns or could write it or its directory. A 304 is used only
when the request was conditional on a kept entry, from the same final URL, with the same
validator (an ``ETag``, ``Last-Modified`` or ``X-PyPI-Last-Serial`` it carries must equal the
kept one); any other 304 is answered by asking again without condition.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safe_pip import __version__
from safe_pip.models import FileRef

if TYPE_CHECKING:
    from safe_pip.net.session import Limits, Response
    from safe_pip.net.simple import ProjectPage

SCHEMA = "safe-pip-page/1"
#: a kept page is at most this many times the page cap (the parsed form repeats the URLs)
_ENTRY_FACTOR = 3
_HEADER_CAP = 64 * 1024


def cache_dir(home: str | None) -> Path:
    if home:
        return Path(home) / "cache" / "pages"
    import platformdirs

    return Path(platformdirs.user_cache_dir("safe-pip")) / "pages"


def _uid() -> int | None:
    """This process's user (None where the system has none: Windows)."""
    return os.getuid() if hasattr(os, "getuid") else None


def private(st: os.stat_result) -> bool:
    """Owned by this user and writable by no one else (what a run reads back must be its own:
    another user could have written anything there)."""
    uid = _uid()
    owner = uid is None or st.st_uid == uid
    return owner and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_CODE: str | None = None


def _parser_code(limits: Limits) -> str:
    """A digest of what turns a page body into a :class:`ProjectPage`: safe-pip's version,
    packaging's (file names), the source of the page parser, this module and the models, and
    the limits the parse enforces. A parser that changed parses every page again."""
    global _CODE
    if _CODE is None:
        from importlib import metadata

        import safe_pip.models as models
        import safe_pip.net.simple as simple

        h = hashlib.sha256(__version__.encode())
        try:
            h.update(f"\0packaging={metadata.version('packaging')}".encode())
        except metadata.PackageNotFoundError:
            h.update(b"\0packaging=?")
        for module in (simple.__file__, __file__, models.__file__):
            path = Path(module or "?")
            try:
                h.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
            except OSError:
                h.update(b"\0" + path.name.encode() + b"\0?")
        _CODE = h.hexdigest()
    return _sha(f"{_CODE}\0{limits!r}".encode())


def _validator(value: str | None) -> str | None:
    """A header value kept as a validator: printable ASCII, bounded; None otherwise."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 1024 or not value.isascii() or not value.isprintable():
        return None
    return value


@dataclass(frozen=True)
class Kept:
    """A kept page: its validators and its parsed form (decoded only when used)."""

    index_url: str
    url: str
    final_url: str
    etag: str | None
    last_modified: str | None
    content_type: str
    serial_header: str
    body_sha256: str
    payload_sha256: str
    payload: bytes = field(repr=False)

    def conditions(self) -> dict[str, str]:
        """The headers of a conditional request for this page ({} when it has no validator)."""
        out: dict[str, str] = {}
        if self.etag is not None:
            out["If-None-Match"] = self.etag
        if self.last_modified is not None:
            out["If-Modified-Since"] = self.last_modified
        return out


def _key(index_url: str, url: str) -> str:
    return _sha(json.dumps([SCHEMA, index_url, url]).encode())


def _serial_header(resp: Response) -> str:
    return resp.headers.get("X-PyPI-Last-Serial", "").strip()[:40]


class PageCache:
    """Parsed index pages by (index URL, page URL), with their HTTP validators."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self.root = root
        self.limits = limits

    # -- reading -------------------------------------------------------------------------------

    def get(self, index_url: str, url: str) -> Kept | None:
        """The kept page for ``url`` on ``index_url``, or None (see the module's rules)."""
        key = _key(index_url, url)
        cap = self.limits.max_page_bytes * _ENTRY_FACTOR + _HEADER_CAP
        try:
            with (self.root / f"{key}.page").open("rb") as fh:
                if not private(os.fstat(fh.fileno())) or not private(os.stat(self.root)):
                    return None  # another user could have written it: fetch it again
                raw = fh.read(cap + 1)
        except OSError:
            return None
        if len(raw) > cap:
            return None
        line, sep, payload = raw.partition(b"\n")
        if not sep or len(line) > _HEADER_CAP:
            return None
        try:
            head = json.loads(line)
        except (ValueError, RecursionError):
            return None
        if not isinstance(head, dict):
            return None
        want = {
            "schema": SCHEMA,
            "key": key,
            "index": index_url,
            "url": url,
            "code": _parser_code(self.limits),
            "payload_bytes": len(payload),
        }
        if any(head.get(k) != v for k, v in want.items()):
            return None
        strings = ("final_url", "content_type", "serial_header", "body_sha256", "payload_sha256")
        optional = ("etag", "last_modified")
        if not all(isinstance(head.get(k), str) for k in strings) or not all(
            head.get(k) is None or isinstance(head.get(k), str) for k in optional
        ):
            return None
        return Kept(
            index_url=index_url,
            url=url,
            final_url=head["final_url"],
            etag=head["etag"],
            last_modified=head["last_modified"],
            content_type=head["content_type"],
            serial_header=head["serial_header"],
            body_sha256=head["body_sha256"],
            payload_sha256=head["payload_sha256"],
            payload=payload,
        )

    def revalidated(self, kept: Kept | None, resp: Response, name: str) -> ProjectPage | None:
        """The kept page a 304 ``resp`` confirms, or None when it confirms nothing: no page was
        kept (the request was not conditional), the answer came from another URL or names
        another validator (ETag, Last-Modified, serial) than the kept one, or the kept page
        does not read back."""
        if kept is None or not kept.conditions() or resp.status != 304:
            return None
        if resp.url != kept.final_url:
            return None
        etag = resp.headers.get("ETag")
        if kept.etag is not None and (etag is None or etag.strip() != kept.etag):
            return None  # If-None-Match was sent: the 304 must name the tag it confirms
        if kept.etag is None and etag is not None:
            return None
        modified = resp.headers.get("Last-Modified")
        if modified is not None and modified.strip() != (kept.last_modified or ""):
            return None
        serial = _serial_header(resp)
        if serial and serial != kept.serial_header:
            return None
        return self.page(kept, name)

    def unchanged(self, kept: Kept | None, resp: Response, name: str) -> ProjectPage | None:
        """The kept page when the 200 ``resp`` carries exactly the kept body (same sha256, URL,
        content type and serial header), else None. The new validators are kept."""
        if (
            kept is None
            or resp.status != 200
            or resp.url != kept.final_url
            or resp.headers.get("Content-Type", "") != kept.content_type
            or _serial_header(resp) != kept.serial_header
            or _sha(resp.body) != kept.body_sha256
        ):
            return None
        page = self.page(kept, name)
        if page is None:
            return None
        etag, modified = (
            _validator(resp.headers.get("ETag")),
            _validator(resp.headers.get("Last-Modified")),
        )
        if (etag, modified) != (kept.etag, kept.last_modified):
            self._write(kept.index_url, kept.url, resp, kept.payload)
        return page

    def page(self, kept: Kept, name: str) -> ProjectPage | None:
        """The kept parsed page, or None when the payload is not exactly what was written."""
        if _sha(kept.payload) != kept.payload_sha256:
            return None  # truncated or corrupted
        try:
            return _decode(json.loads(kept.payload), name, kept.index_url)
        except (ValueError, TypeError, KeyError, RecursionError):
            return None

    # -- writing -------------------------------------------------------------------------------

    def put(self, index_url: str, url: str, resp: Response, page: ProjectPage) -> None:
        """Keep ``page``, parsed from the 200 ``resp`` for ``url``; failures are ignored. A
        response marked ``Cache-Control: no-store`` is not kept."""
        directives = resp.headers.get("Cache-Control", "").lower().replace(" ", "").split(",")
        if resp.status != 200 or "no-store" in directives:
            return
        payload = json.dumps(_encode(page), separators=(",", ":")).encode()
        self._write(index_url, url, resp, payload)

    def _write(self, index_url: str, url: str, resp: Response, payload: bytes) -> None:
        key = _key(index_url, url)
        head = {
            "schema": SCHEMA,
            "key": key,
            "index": index_url,
            "url": url,
            "code": _parser_code(self.limits),
            "final_url": resp.url,
            "etag": _validator(resp.headers.get("ETag")),
            "last_modified": _validator(resp.headers.get("Last-Modified")),
            "content_type": resp.headers.get("Content-Type", ""),
            "serial_header": _serial_header(resp),
            "body_sha256": _sha(resp.body),
            "payload_sha256": _sha(payload),
            "payload_bytes": len(payload),
        }
        line = json.dumps(head, separators=(",", ":")).encode()
        if len(line) > _HEADER_CAP:
            return
        with contextlib.suppress(OSError):
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".page.", suffix=".tmp", dir=self.root)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(line + b"\n" + payload)
                os.replace(tmp, self.root / f"{key}.page")
            finally:
                Path(tmp).unlink(missing_ok=True)


# -- the parsed form -------------------------------------------------------------------------


def _encode(page: ProjectPage) -> dict[str, Any]:
    return {
        "name": page.name,
        "url": page.url,
        "versions": list(page.versions),
        "last_serial": page.last_serial,
        "api_version": page.api_version,
        "status": page.status,
        "status_reason": page.status_reason,
        "serves": page.serves_provenance,
        "files": [
            [
                f.version,
                f.filename,
                f.url,
                f.sha256,
                f.provenance_url,
                f.yanked,
                f.upload_time,
                f.size,
            ]
            for f in page.files
        ],
    }


def _opt_str(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError("not a string")


def _decode(doc: Any, name: str, index_url: str) -> ProjectPage | None:
    """The page :func:`_encode` wrote for project ``name`` on ``index_url``; None (or a
    TypeError / ValueError / KeyError) for anything else."""
    from safe_pip.net.simple import ProjectPage

    if not isinstance(doc, dict) or doc["name"] != name or not isinstance(doc["url"], str):
        return None
    versions, rows, serial = doc["versions"], doc["files"], doc["last_serial"]
    if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
        return None
    if serial is not None and type(serial) is not int:
        return None
    status, reason = _opt_str(doc["status"]), _opt_str(doc["status_reason"])
    serves = doc["serves"]
    if serves is not None and type(serves) is not bool:
        return None
    if not isinstance(rows, list):
        return None
    # Every file shares the page's fields: each FileRef starts as a copy of one built by the
    # dataclass (every field and default), and takes its own fields from its row. Building
    # tens of thousands through the frozen dataclass's __init__ was most of a reused page's
    # cost; the parser-code digest covers models.py, so a changed FileRef reads no old entry.
    template = FileRef(
        project=name,
        version="",
        filename="",
        index=index_url,
        project_status=status,
        project_status_reason=reason,
        index_serves_provenance=serves,
    ).__dict__
    new = object.__new__
    files = []
    for row in rows:
        version, filename, url, sha256, provenance, yanked, uploaded, size = row
        if not (
            type(version) is str
            and type(filename) is str
            and type(url) is str
            and (sha256 is None or type(sha256) is str)
            and (provenance is None or type(provenance) is str)
            and (type(yanked) is bool or type(yanked) is str)
            and (uploaded is None or type(uploaded) is str)
            and (size is None or type(size) is int)
        ):
            return None
        ref = new(FileRef)
        fields = ref.__dict__
        fields.update(template)
        fields["version"] = version
        fields["filename"] = filename
        fields["url"] = url
        fields["sha256"] = sha256
        fields["provenance_url"] = provenance
        fields["yanked"] = yanked
        fields["upload_time"] = uploaded
        fields["size"] = size
        files.append(ref)
    return ProjectPage(
        name,
        tuple(files),
        tuple(versions),
        serial,
        doc["url"],
        _opt_str(doc["api_version"]),
        status,
        reason,
        serves,
    )
