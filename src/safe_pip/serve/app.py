"""The verifying index as a WSGI application object (PEP 3333).

:class:`ServeApp` answers HTTP for a :class:`~safe_pip.serve.server.VerifyingIndex`; any WSGI
server can run it (``safe-pip serve`` runs it on waitress, see :mod:`safe_pip.serve.runner`):

- ``GET /simple/``: the projects this server has served so far (PEP 503 / PEP 691).
- ``GET /simple/<project>/``: the verified project page, HTML or JSON by ``Accept`` (PyPI's
  rules); non-normalized names and a missing slash get a 301, as on PyPI.
- ``GET /files/<project>/<sha256>/<filename>``: the file, only once its bytes hash to the
  attested sha256 (502 otherwise); 403 with the reason when policy refused it.
- ``GET /files/<project>/<sha256>/<wheel>.metadata`` (only with ``core_metadata``, as
  ``safe-pip install``'s resolving index): the verified wheel's METADATA, or a stand-in
  naming only project and version for a refused wheel (the wheel itself stays a 403).
- ``GET /provenance/<project>/<sha256>/<filename>``: the PEP 740 provenance that verified.
- ``GET /-/healthz`` (alive), ``/-/readyz`` (upstream and history reachable, not draining),
  ``/-/metrics`` (Prometheus text format).

Every error answer is ``text/plain`` with the reason (also in the HTTP reason phrase, which pip
and uv print), never any bytes of an unverified file. Each client request is logged as one
``request`` line (method, path, status, time, and for a project page how many files were
allowed and refused, by reason code).
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, quote, unquote

from packaging.utils import canonicalize_name

from safe_pip.models import ReasonCode
from safe_pip.serve import pages
from safe_pip.serve.metrics import Metrics
from safe_pip.serve.server import Entry, ProjectView, ServeError, VerifyingIndex

StartResponse = Callable[..., Any]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PHRASE_BAD = re.compile(r"[^\x20-\x7e]")
_CHUNK = 256 * 1024
_META = ".whl.metadata"
READY_CACHE_SECONDS = 5.0


def _phrase(text: str, limit: int = 200) -> str:
    """An HTTP reason phrase: printable ASCII only, one line, bounded."""
    s = _PHRASE_BAD.sub("?", text.replace("\r", " ").replace("\n", " "))
    return s if len(s) <= limit else s[: limit - 3] + "..."


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    ctype: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    phrase: str | None = None
    file: IO[bytes] | None = None  # a verified file to stream instead of ``body``
    length: int | None = None
    summary: str = ""  # extra words for the request's log line
    route: str = "other"  # the metrics label (set from the path)


class ServeApp:
    """A WSGI application answering for ``index``.

    ``draining`` (set by the server on shutdown) makes ``/-/readyz`` answer 503 and every other
    request 503 with ``Connection: close``, so a load balancer moves clients elsewhere while
    in-flight requests finish.
    """

    def __init__(self, index: VerifyingIndex, *, metrics: Metrics | None = None) -> None:
        self.index = index
        self.metrics = metrics or Metrics()
        index.observer = self.metrics
        self.draining = False
        self._lock = threading.Lock()
        self.in_flight = 0
        self._ready: tuple[float, list[str]] | None = None

    # -- WSGI -----------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = _request_path(environ)
        client = str(environ.get("REMOTE_ADDR") or "-")
        with self._lock:
            self.in_flight += 1
        self.metrics.in_flight.inc()
        reply: _Reply | None = None
        try:
            reply = self._answer(environ, method, path, client)
            reply.route = route_label(path)
            return self._start(environ, start_response, reply, head=method == "HEAD")
        finally:
            with self._lock:
                self.in_flight -= 1
            self.metrics.in_flight.dec()
            if reply is not None:
                self._finish(method, path, client, reply, time.monotonic() - started)

    def _answer(self, environ: dict[str, Any], method: str, path: str, client: str) -> _Reply:
        try:
            if method not in ("GET", "HEAD"):
                raise ServeError(405, f"method {method} not allowed")
            if self.draining and not path.startswith("/-/"):
                # (the server closes the connection after it; Connection is hop-by-hop)
                return _error(ServeError(503, "server is shutting down", fix="retry"))
            return self._route(environ, path, method == "HEAD", client)
        except ServeError as err:
            reply = _error(err)
            if err.status == 405:
                reply.headers["Allow"] = "GET, HEAD"
            return reply
        except Exception as exc:  # fail closed: an internal error never sends file bytes
            self.index.log.emit("internal", f"{path}: {type(exc).__name__}: {exc}", path=path)
            return _error(ServeError(500, f"internal error ({type(exc).__name__}: {exc})"))

    def _start(
        self, environ: dict[str, Any], start_response: StartResponse, r: _Reply, *, head: bool
    ) -> Iterable[bytes]:
        phrase = r.phrase or _default_phrase(r.status)
        headers = [("Content-Type", r.ctype)]
        length = r.length if r.length is not None else len(r.body)
        headers.append(("Content-Length", str(length)))
        headers.extend(r.headers.items())
        start_response(f"{r.status} {phrase}", headers)
        if r.file is None:
            return [] if head else [r.body]
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None:
            return wrapper(r.file, _CHUNK)  # type: ignore[no-any-return]
        return _chunks(r.file)

    def _finish(self, method: str, path: str, client: str, r: _Reply, seconds: float) -> None:
        m = self.metrics
        m.requests.labels(route=r.route, status=str(r.status)).inc()
        m.request_seconds.labels(route=r.route).observe(seconds)
        if r.route == "file" and r.status == 200 and method == "GET" and r.length:
            m.bytes_served.inc(r.length)
        if r.route in ("healthz", "readyz", "metrics"):
            return  # probes and scrapes are not client requests worth a line each
        text = f"{method} {path} -> {r.status} in {seconds * 1000:.0f} ms from {client}"
        if r.summary:
            text += f" ({r.summary})"
        elif r.status >= 400:
            text += f" ({r.phrase or _default_phrase(r.status)})"
        self.index.log.emit(
            "request",
            text,
            method=method,
            path=path,
            status=r.status,
            client=client,
            seconds=round(seconds, 4),
            summary=r.summary or None,
        )

    # -- routes ---------------------------------------------------------------------------------

    def _route(self, environ: dict[str, Any], path: str, head: bool, client: str) -> _Reply:
        query = parse_qs(str(environ.get("QUERY_STRING") or ""))
        fmt = query.get("format", [None])[0]
        if fmt is not None:
            fmt = fmt.replace(" ", "+")  # an unescaped "+" in the query decodes as a space
        accept = environ.get("HTTP_ACCEPT")
        parts = [unquote(p) for p in path.split("/")]
        if path == "/":
            body = (
                b"safe-pip serve: a verifying package index.\n"
                b"Point your installer at /simple/ (pip --index-url, uv --index-url).\n"
            )
            return _Reply(200, body)
        if path == "/-/healthz":
            return _Reply(200, b"ok\n", route="healthz", headers={"Cache-Control": "no-store"})
        if path == "/-/readyz":
            return self._readyz()
        if path == "/-/metrics":
            body, ctype = self.metrics.render()
            return _Reply(200, body, ctype, route="metrics", headers={"Cache-Control": "no-store"})
        if path == "/simple":
            return _redirect("/simple/")
        if path == "/simple/":
            return self._root(accept, fmt)
        if len(parts) >= 3 and parts[1] == "simple":
            name = parts[2]
            trailing = len(parts) == 4 and parts[3] == ""
            if len(parts) > 4 or (len(parts) == 4 and not trailing) or not name:
                raise ServeError(404, "not found")
            norm = canonicalize_name(name)
            if name != norm or not trailing:
                return _redirect(f"/simple/{quote(norm, safe='')}/")
            return self._project(norm, accept, fmt)
        if len(parts) == 5 and parts[1] in ("files", "provenance"):
            project, sha, filename = parts[2], parts[3].lower(), parts[4]
            if not _SHA256.match(sha) or not filename or "/" in filename:
                raise ServeError(404, "not found")
            if parts[1] == "provenance":
                return self._provenance(
                    self.index.lookup(project, sha, filename).provenance, filename
                )
            meta = self.index.core_metadata and filename.endswith(_META)
            wanted = filename[: -len(".metadata")] if meta else filename
            try:
                entry = self.index.lookup(project, sha, wanted)
                return (
                    self._metadata(entry) if meta else self._file(entry, head=head, client=client)
                )
            except ServeError as err:
                # a file the installer asked for could not be checked: named in the report
                self.index.note_unchecked(project, sha, wanted, err)
                raise
        raise ServeError(404, "not found")

    def _root(self, accept: str | None, fmt: str | None) -> _Reply:
        ctype = pages.negotiate(accept, fmt)
        projects = self.index.seen_projects()
        if pages.wants_json(ctype):
            body, sent = pages.index_json(projects), ctype
        else:
            body, sent = pages.index_html(projects), ctype + "; charset=utf-8"
        return _Reply(200, body, sent, headers={"Vary": "Accept"})

    def _project(self, norm: str, accept: str | None, fmt: str | None) -> _Reply:
        view = self.index.project(norm)
        block = self.index.mode == "block"
        files: list[pages.FileEntry] = []
        listed: set[str] = set()
        # PEP 792: a quarantined project's files are not offered, in either mode (T25).
        for e in () if view.quarantined else view.entries:
            if not e.allowed and (not block or e.verdict.code is ReasonCode.REFUSED_TOO_NEW):
                # filter mode: refused files are left out; too-new files in both modes, so
                # the resolver falls back to an older release the specifiers allow
                continue
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
                    core_metadata=self.index.core_metadata and ref.filename.endswith(".whl"),
                )
            )
        ctype = pages.negotiate(accept, fmt)
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
            sent = ctype
        else:
            body = pages.project_html(
                view.name, files, status=view.status, status_reason=view.status_reason
            )
            sent = ctype + "; charset=utf-8"
        return _Reply(200, body, sent, headers=headers, summary=page_summary(view))

    def _metadata(self, entry: Entry) -> _Reply:
        """``<wheel>.metadata`` (PEP 658): the verified wheel's METADATA, or for a refused wheel
        safe-pip's stand-in (see :meth:`VerifyingIndex.metadata`)."""
        meta = self.index.metadata(entry)
        v = meta.verdict
        summary = (
            f"stand-in for refused {v.filename} [{v.code.value}]"
            if meta.stand_in
            else f"METADATA of verified {v.filename}"
        )
        return _Reply(
            200,
            meta.body,
            "application/octet-stream",
            headers={"Cache-Control": "no-store"},
            summary=summary,
        )

    def _provenance(self, provenance: bytes | None, filename: str) -> _Reply:
        if provenance is None:
            raise ServeError(404, f"no verified provenance for {filename}")
        return _Reply(
            200,
            provenance,
            pages.INTEGRITY_V1,
            headers={"Cache-Control": "max-age=0, must-revalidate"},
        )

    def _file(self, entry: Entry, *, head: bool, client: str) -> _Reply:
        denied = self.index.refusal(entry)
        if denied is not None:
            raise denied
        headers = {"Cache-Control": "max-age=0, must-revalidate"}
        if head:  # no download: the size upstream declared (0 when it declared none)
            return _Reply(
                200,
                b"",
                "application/octet-stream",
                headers=headers,
                length=entry.ref.size,
            )
        path = self.index.fetch(entry)  # raises ServeError (502/503/504) before any byte
        try:
            fh = path.open("rb")
            size = path.stat().st_size
        finally:
            _remove(path)  # the open file stays readable; nothing is left on disk
        self.index.served(entry, client)
        return _Reply(
            200,
            b"",
            "application/octet-stream",
            headers=headers,
            file=fh,
            length=size,
            summary=f"sha256={entry.sha256[:16]}... {size} bytes",
        )

    # -- readiness ------------------------------------------------------------------------------

    def _readyz(self) -> _Reply:
        if self.draining:
            problems = ["shutting down"]
        else:
            now = time.monotonic()
            cached = self._ready
            if cached is not None and now - cached[0] < READY_CACHE_SECONDS:
                problems = cached[1]
            else:
                problems = self.index.readiness()
                self._ready = (now, problems)
        headers = {"Cache-Control": "no-store"}
        if problems:
            body = "".join(f"not ready: {p}\n" for p in problems).encode("utf-8", "replace")
            return _Reply(503, body, headers=headers, route="readyz", phrase="not ready")
        return _Reply(200, b"ready\n", headers=headers)


def route_label(path: str) -> str:
    """The metrics label of a request path (a fixed, small set: never the path itself)."""
    if path in ("/-/healthz", "/-/readyz", "/-/metrics"):
        return path[3:]
    if path in ("/simple", "/simple/"):
        return "root"
    for prefix, label in (
        ("/simple/", "page"),
        ("/files/", "file"),
        ("/provenance/", "provenance"),
    ):
        if path.startswith(prefix):
            return label
    return "other"


def page_summary(view: ProjectView) -> str:
    """``12 files: 10 allowed, 2 refused [refused-sdist x2]`` for a request's log line."""
    entries = () if view.quarantined else view.entries
    allowed = sum(1 for e in entries if e.allowed)
    pending = sum(1 for e in entries if e.pending)  # lazy index: decided when requested
    refused = Counter(e.verdict.code.value for e in entries if not e.allowed and not e.pending)
    text = f"{view.name}: {len(view.entries)} files, {allowed} allowed"
    if pending:
        text += f", {pending} decided when requested"
    if view.quarantined:
        text += f", quarantined upstream ({view.status_reason or 'no reason given'})"
    if refused:
        codes = ", ".join(f"{c} x{n}" for c, n in sorted(refused.items()))
        text += f", {sum(refused.values())} refused [{codes}]"
    return text


def _chunks(fh: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := fh.read(_CHUNK):
            yield chunk
    finally:
        fh.close()


def _request_path(environ: dict[str, Any]) -> str:
    # PATH_INFO is latin-1-decoded bytes (PEP 3333); the routes unquote segments themselves.
    raw = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    if not raw.startswith("/"):
        raw = "/" + raw
    try:
        text = raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        text = raw
    # the routes split on "/" and unquote each segment: re-quote what the server decoded
    return quote(text, safe="/:@!$&'()*+,;=-._~")


def _error(err: ServeError) -> _Reply:
    return _Reply(
        err.status,
        err.body(),
        headers={"Cache-Control": "no-store"},
        phrase=_phrase(err.reason),
    )


def _redirect(location: str) -> _Reply:
    return _Reply(301, b"", headers={"Location": location})


def _default_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _versions(versions: set[str]) -> list[str]:
    from packaging.version import InvalidVersion, Version

    def key(v: str) -> tuple[int, Version | None, str]:
        try:
            return (1, Version(v), v)
        except InvalidVersion:
            return (0, None, v)

    return sorted(versions, key=lambda v: (key(v)[0], key(v)[1] or Version("0"), v))


def _remove(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)
