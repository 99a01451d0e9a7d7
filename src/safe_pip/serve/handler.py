"""HTTP routes of ``safe-pip serve`` (stdlib ``http.server``; one thread per connection).

- ``GET /simple/``: the projects this server has served so far (PEP 503 / PEP 691).
- ``GET /simple/<project>/``: the verified project page, HTML or JSON by ``Accept`` (PyPI's
  rules); non-normalized names and a missing slash get a 301, as on PyPI.
- ``GET /files/<project>/<sha256>/<filename>``: the file, only once its bytes hash to the
  attested sha256 (502 otherwise); 403 with the reason when policy refused it.
- ``GET /provenance/<project>/<sha256>/<filename>``: the PEP 740 provenance that verified.

Every error answer is ``text/plain`` with the reason (also in the HTTP reason phrase, which pip
and uv print), never any bytes of an unverified file.
"""

from __future__ import annotations

import re
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from packaging.utils import canonicalize_name

from safe_pip.serve import pages
from safe_pip.serve.server import ServeError, VerifyingIndex

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PHRASE_BAD = re.compile(r"[^\x20-\x7e]")


def _phrase(text: str, limit: int = 200) -> str:
    """An HTTP reason phrase: printable ASCII only, one line, bounded."""
    s = _PHRASE_BAD.sub("?", text.replace("\r", " ").replace("\n", " "))
    return s if len(s) <= limit else s[: limit - 3] + "..."


class ServeHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that carries its :class:`VerifyingIndex`."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], index: VerifyingIndex) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.index = index
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[0], self.server_address[1]
        if isinstance(host, bytes):
            host = host.decode()
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Replies are written in pieces on kept-alive connections: without TCP_NODELAY each one
    # waits ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    server_version = "safe-pip-serve"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    server: ServeHTTPServer
    timeout = 120  # seconds a client may stay silent (or stall a send) before we hang up

    def log_message(self, format: str, *args: object) -> None:  # the EventLog logs instead
        pass

    @property
    def index(self) -> VerifyingIndex:
        return self.server.index

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    # -- plumbing -------------------------------------------------------------------------------

    def _dispatch(self, *, head: bool) -> None:
        try:
            self._route(head=head)
        except ServeError as err:
            self._error(err, head=head)
        except OSError:  # the client went away or stalled (possibly mid-body): just hang up
            self.close_connection = True
        except Exception as exc:  # fail closed: an internal error never sends file bytes
            self.index.log.emit(
                "internal", f"{self.path}: {type(exc).__name__}: {exc}", path=self.path
            )
            self._error(ServeError(500, f"internal error ({type(exc).__name__}: {exc})"), head=head)

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str,
        *,
        head: bool,
        headers: dict[str, str] | None = None,
        phrase: str | None = None,
    ) -> None:
        self.send_response(status, phrase)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, err: ServeError, *, head: bool) -> None:
        try:
            self._send(
                err.status,
                err.body(),
                "text/plain; charset=utf-8",
                head=head,
                headers={"Cache-Control": "no-store"},
                phrase=_phrase(err.reason),
            )
        except OSError:
            self.close_connection = True

    def _redirect(self, location: str, *, head: bool) -> None:
        self._send(301, b"", "text/plain; charset=utf-8", head=head, headers={"Location": location})

    # -- routes ---------------------------------------------------------------------------------

    def _route(self, *, head: bool) -> None:
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query)
        fmt = query.get("format", [None])[0]
        if fmt is not None:
            fmt = fmt.replace(" ", "+")  # an unescaped "+" in the query decodes as a space
        parts = [unquote(p) for p in path.split("/")]
        if path == "/":
            body = (
                b"safe-pip serve: a verifying package index.\n"
                b"Point your installer at /simple/ (pip --index-url, uv --index-url).\n"
            )
            self._send(200, body, "text/plain; charset=utf-8", head=head)
            return
        if path == "/simple":
            self._redirect("/simple/", head=head)
            return
        if path == "/simple/":
            self._root(fmt, head=head)
            return
        if len(parts) >= 3 and parts[1] == "simple":
            name = parts[2]
            trailing = len(parts) == 4 and parts[3] == ""
            if len(parts) > 4 or (len(parts) == 4 and not trailing) or not name:
                raise ServeError(404, "not found")
            norm = canonicalize_name(name)
            if name != norm or not trailing:
                self._redirect(f"/simple/{quote(norm, safe='')}/", head=head)
                return
            self._project(norm, fmt, head=head)
            return
        if len(parts) == 5 and parts[1] in ("files", "provenance"):
            project, sha, filename = parts[2], parts[3].lower(), parts[4]
            if not _SHA256.match(sha) or not filename or "/" in filename:
                raise ServeError(404, "not found")
            entry = self.index.lookup(project, sha, filename)
            if parts[1] == "provenance":
                self._provenance(entry.provenance, filename, head=head)
            else:
                self._file(entry, head=head)
            return
        raise ServeError(404, "not found")

    def _root(self, fmt: str | None, *, head: bool) -> None:
        ctype = pages.negotiate(self.headers.get("Accept"), fmt)
        projects = self.index.seen_projects()
        if pages.wants_json(ctype):
            body, sent = pages.index_json(projects), ctype
        else:
            body, sent = pages.index_html(projects), ctype + "; charset=utf-8"
        self._send(200, body, sent, head=head, headers={"Vary": "Accept"})

    def _project(self, norm: str, fmt: str | None, *, head: bool) -> None:
        view = self.index.project(norm)
        block = self.index.mode == "block"
        files: list[pages.FileEntry] = []
        listed: set[str] = set()
        # PEP 792: a quarantined project's files are not offered, in either mode (T25).
        for e in () if view.quarantined else view.entries:
            if not e.allowed and not block:
                continue  # filter mode: refused files are left out
            ref = e.ref
            prov = None
            if e.allowed and e.verified and e.provenance is not None:
                prov = pages.relative_to_project_page(
                    pages.provenance_path(view.name, e.sha256, ref.filename)
                )
            listed.add(ref.filename)
            files.append(
                pages.FileEntry(
                    filename=ref.filename,
                    sha256=e.sha256,
                    url=pages.relative_to_project_page(
                        pages.file_path(view.name, e.sha256, ref.filename)
                    ),
                    provenance_url=prov,
                    requires_python=e.requires_python,
                    yanked=ref.yanked,
                    size=ref.size,
                    upload_time=ref.upload_time,
                )
            )
        ctype = pages.negotiate(self.headers.get("Accept"), fmt)
        headers = {"Vary": "Accept", "Cache-Control": "max-age=0, must-revalidate"}
        if view.last_serial is not None:
            headers["X-PyPI-Last-Serial"] = str(view.last_serial)
        if pages.wants_json(ctype):
            versions = _versions({e.ref.version for e in view.entries if e.ref.filename in listed})
            body = pages.project_json(
                view.name,
                files,
                versions,
                view.last_serial,
                status=view.status,
                status_reason=view.status_reason,
            )
            self._send(200, body, ctype, head=head, headers=headers)
        else:
            body = pages.project_html(
                view.name, files, status=view.status, status_reason=view.status_reason
            )
            self._send(200, body, ctype + "; charset=utf-8", head=head, headers=headers)

    def _provenance(self, provenance: bytes | None, filename: str, *, head: bool) -> None:
        if provenance is None:
            raise ServeError(404, f"no verified provenance for {filename}")
        self._send(
            200,
            provenance,
            pages.INTEGRITY_V1,
            head=head,
            headers={"Cache-Control": "max-age=0, must-revalidate"},
        )

    def _file(self, entry: object, *, head: bool) -> None:
        from safe_pip.serve.server import Entry

        assert isinstance(entry, Entry)
        denied = self.index.refusal(entry)
        if denied is not None:
            raise denied
        if head:
            headers = {"Cache-Control": "max-age=0, must-revalidate"}
            if entry.ref.size is not None:
                headers["Content-Length"] = str(entry.ref.size)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            return
        path = self.index.fetch(entry)  # raises ServeError (502/503/504) before any byte
        try:
            self._send_file(path)
        finally:
            _remove(path)
        self.index.served(entry, self.client_address[0])

    def _send_file(self, path: Path) -> None:
        size = path.stat().st_size
        with path.open("rb") as fh:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("Cache-Control", "max-age=0, must-revalidate")
            self.end_headers()
            self.wfile.flush()
            self.connection.sendfile(fh)


def _versions(versions: set[str]) -> list[str]:
    from packaging.version import InvalidVersion, Version

    def key(v: str) -> tuple[int, Version | None, str]:
        try:
            return (1, Version(v), v)
        except InvalidVersion:
            return (0, None, v)

    return sorted(versions, key=lambda v: (key(v)[0], key(v)[1] or Version("0"), v))


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path.parent, ignore_errors=True)
