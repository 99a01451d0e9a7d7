"""A real PEP 503 / PEP 691 / PEP 740 package index on 127.0.0.1, for tests and benchmarks.

Layout on disk (``root``)::

    root/<normalized-project>/<filename>              the distribution file
    root/<normalized-project>/<filename>.provenance   optional PEP 740 provenance JSON
    root/<normalized-project>/<filename>.yanked       optional: present = yanked, text = reason

Routes (PyPI's semantics, so pip, uv and safe-pip all talk to it unchanged):

- ``GET /simple/`` and ``GET /simple/<project>/``: PEP 691 JSON
  (``application/vnd.pypi.simple.v1+json``) or PEP 503 HTML, chosen from the ``Accept`` header's
  q-values the way PyPI does (HTML when nothing matches or on ties with ``*/*``). Non-normalized
  project names (and a missing trailing slash) get a 301 to the normalized URL.
- ``GET /files/<project>/<filename>``: the bytes.
- ``GET /provenance/<project>/<filename>``: the provenance JSON, 404 if none.
- ``GET /integrity/<project>/<version>/<filename>/provenance``: PyPI's Integrity API
  (``provenance_mode`` "url" or "integrity"; always 404 in mode "none").

``provenance_mode`` decides what the simple pages advertise: "url" puts the provenance URL in the
``provenance`` key / ``data-provenance`` attribute when a ``.provenance`` file exists; "integrity"
and "none" leave it null (as a PEP 740-unaware mirror would).

``faults`` maps a request path (no query string; ``"*"`` matches every path) to a :class:`Fault`
that replaces or distorts the normal response, for hardening tests. ``requests_log`` lists every
requested path in arrival order.

``project_status`` gives projects a PEP 792 status (a quarantined project's pages list no files
unless ``list_quarantined_files`` is set); ``serials`` overrides ``_last-serial``.

``tls=make_tls_files(dir)`` serves https with a throwaway CA (trust it with ``SSL_CERT_FILE``).
Only the standard library (and ``cryptography`` for TLS certificates); no socket is opened
anywhere but 127.0.0.1.
"""

from __future__ import annotations

import base64
import email.parser
import hashlib
import html
import io
import json
import re
import shutil
import ssl
import sys
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import Message
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

ProvenanceMode = Literal["url", "integrity", "none"]

JSON_V1 = "application/vnd.pypi.simple.v1+json"
#: How long ago lab files were uploaded unless a test sets ``IndexServer.upload_times``:
#: older than safe-pip's default minimum release age (3 days), like the signing time of the
#: test Sigstore (tests/support/sigstore_ca.LAB_SIGNING_AGE). Release-age tests choose times.
LAB_RELEASE_AGE = timedelta(days=30)

HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
INTEGRITY_V1 = "application/vnd.pypi.integrity.v1+json"
# PyPI's offers in its order of preference on equal q-values (warehouse/api/simple.py): HTML
# first, so `*/*` and no Accept give HTML; an Accept that matches nothing also gets HTML.
_OFFERS = (TEXT_HTML, HTML_V1, JSON_V1)
# The Integrity API offers JSON only and answers 406 otherwise (warehouse/api/integrity.py).
_INTEGRITY_OFFERS = (INTEGRITY_V1, "application/json")
_SIDECARS = (".provenance", ".yanked")


@dataclass
class Fault:
    """How to distort the response for one path. Unset fields keep the normal behaviour.

    - ``status``: replace the status code (the normal body is kept unless ``body`` is set).
    - ``body``: replace the body (Content-Length follows it unless ``content_length`` is set).
    - ``headers``: extra / replacement response headers.
    - ``content_type``: replace the Content-Type.
    - ``delay``: seconds to sleep before sending the status line.
    - ``hold``: wait until this event is set (at most a minute) before sending the status line:
      a response that stays in flight exactly as long as a test needs, whatever the load.
    - ``drip``: seconds to sleep between body bytes (slow loris); Content-Length is honest.
    - ``endless``: stream zero bytes forever (no Content-Length) until the client goes away.
    - ``redirect``: send ``status`` (default 302) with this Location and an empty body.
    - ``gzip_bomb``: body is gzip of this many zero bytes, sent with Content-Encoding: gzip.
    - ``content_length``: lie about the length (e.g. larger than the body: a truncated reply).
    - ``times``: apply only to the first N matching requests, then behave normally.
    - ``hits``: how many requests this fault has answered (read it in tests).
    """

    status: int | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0
    hold: threading.Event | None = None
    drip: float | None = None
    endless: bool = False
    redirect: str | None = None
    gzip_bomb: int | None = None
    content_length: int | None = None
    times: int | None = None
    hits: int = 0


@dataclass(frozen=True)
class _Dist:
    project: str  # normalized
    version: str
    filename: str
    path: Path

    @property
    def provenance_path(self) -> Path:
        return self.path.with_name(self.path.name + ".provenance")

    @property
    def yanked_path(self) -> Path:
        return self.path.with_name(self.path.name + ".yanked")


def parse_dist_filename(filename: str) -> tuple[str, str] | None:
    """(normalized project, version) of a wheel or sdist filename, or None if it won't parse."""
    try:
        if filename.endswith(".whl"):
            name, ver, _build, _tags = parse_wheel_filename(filename)
            return str(name), str(ver)
        if filename.endswith((".tar.gz", ".zip")):
            name, ver = parse_sdist_filename(filename)
            return str(name), str(ver)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return None


def _gzip_zeros(size: int) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31 = gzip container
    block = bytes(1 << 20)
    out = io.BytesIO()
    left = size
    while left > 0:
        n = min(left, len(block))
        out.write(comp.compress(block[:n]))
        left -= n
    out.write(comp.flush())
    return out.getvalue()


_BOMBS: dict[int, bytes] = {}
_BOMBS_LOCK = threading.Lock()


def gzip_bomb(size: int) -> bytes:
    """gzip of ``size`` zero bytes (cached: a 1 GiB bomb is about 1 MiB and takes a moment)."""
    with _BOMBS_LOCK:
        if size not in _BOMBS:
            _BOMBS[size] = _gzip_zeros(size)
        return _BOMBS[size]


def _parse_accept(header: str | None) -> list[tuple[str, float, int]]:
    """(media range, q, position) for each entry of an Accept header."""
    if not header:
        return [("*/*", 1.0, 0)]
    out: list[tuple[str, float, int]] = []
    for pos, part in enumerate(header.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        if not media:
            continue
        q = 1.0
        for param in pieces[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value.strip())))
                except ValueError:
                    q = 0.0
        out.append((media, q, pos))
    return out


def _media_matches(media_range: str, offer: str) -> int:
    """Specificity of the match (3 exact, 2 type/*, 1 */*), 0 for no match."""
    if media_range == offer:
        return 3
    rtype, _, rsub = media_range.partition("/")
    otype, _, _osub = offer.partition("/")
    if rtype == "*" and rsub == "*":
        return 1
    if rtype == otype and rsub == "*":
        return 2
    return 0


def _best_offer(accept: str | None, offers: tuple[str, ...]) -> str | None:
    """The first offer with the highest q (webob's ``acceptable_offers`` order), or None."""
    ranges = _parse_accept(accept)
    best: tuple[float, int] | None = None
    chosen: str | None = None
    for idx, offer in enumerate(offers):
        # The most specific matching range decides this offer's q (RFC 9110 12.5.1).
        spec, q = 0, 0.0
        for media, mq, _pos in ranges:
            s = _media_matches(media, offer)
            if s > spec:
                spec, q = s, mq
        if spec == 0 or q <= 0.0:
            continue
        key = (q, -idx)
        if best is None or key > best:
            best, chosen = key, offer
    return chosen


def negotiate(accept: str | None) -> str:
    """The simple-page content type PyPI serves for this Accept header (HTML when none match)."""
    return _best_offer(accept, _OFFERS) or TEXT_HTML


def _version_key(v: str) -> tuple[int, Version, str]:
    try:
        return (0, Version(v), "")
    except InvalidVersion:
        return (1, Version("0"), v)


def _requires_python(path: Path) -> str | None:
    """Requires-Python from a wheel's METADATA, if the file is a readable wheel."""
    if not path.name.endswith(".whl"):
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                parts = info.filename.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    text = zf.read(info).decode("utf-8", "replace")
                    msg = email.parser.Parser().parsestr(text, headersonly=True)
                    value = msg.get("Requires-Python")
                    return str(value) if value else None
    except (zipfile.BadZipFile, zlib.error, OSError, KeyError):
        return None
    return None


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it (PEM files)."""

    ca: Path  # what a client trusts (SSL_CERT_FILE / REQUESTS_CA_BUNDLE)
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Mint a CA and a 127.0.0.1 / localhost server certificate into ``directory``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "safe-pip test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up mid-request (what hardening tests do on purpose) are not errors.

    A listen backlog of 128, not socketserver's 5: more parallel connections than that made
    the kernel drop SYNs (TcpExtListenOverflows), and each dropped one stalled its client 1 s
    until the SYN was sent again. Real index servers (nginx: 511) do not stall like this."""

    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class IndexServer:
    """A PEP 691/503/740 index on 127.0.0.1 serving ``root``. Use as a context manager."""

    def __init__(
        self,
        root: Path,
        *,
        provenance_mode: ProvenanceMode = "url",
        latency: float = 0.0,
        relative_urls: bool = False,
        tls: TlsFiles | None = None,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.provenance_mode: ProvenanceMode = provenance_mode
        self.latency = latency
        #: Use relative file/provenance URLs in pages (PEP 503 allows them; PyPI uses absolute).
        self.relative_urls = relative_urls
        #: Serve https with this certificate (see :func:`make_tls_files`).
        self.tls = tls
        self.faults: dict[str, Fault] = {}
        self.requests_log: list[str] = []
        #: Per-project ``_last-serial`` overrides (e.g. to serve a stale serial in T21 tests).
        self.serials: dict[str, int] = {}
        #: PEP 792 project status per normalized project: (status, reason or None). Pages then
        #: carry it (JSON ``project-status`` with api-version 1.4, HTML meta tags); a
        #: "quarantined" project's pages list no files, as PEP 792 requires of an index, unless
        #: ``list_quarantined_files`` is set (a broken index, T25 tests).
        self.project_status: dict[str, tuple[str, str | None]] = {}
        self.list_quarantined_files = False
        #: PEP 700 ``upload-time`` per filename (an aware datetime). Files not listed here are
        #: shown as uploaded ``default_upload_age`` before their mtime: lab releases are old
        #: enough for safe-pip's default minimum release age unless a test says otherwise.
        self.upload_times: dict[str, datetime] = {}
        self.default_upload_age = LAB_RELEASE_AGE
        #: Project pages carry an ``ETag`` (a digest of the representation) and a
        #: ``Last-Modified`` (when that representation was first served; a later change gets a
        #: later second), and a matching ``If-None-Match`` (else ``If-Modified-Since``) is
        #: answered 304 without a body, as PyPI does. Off: neither header, never a 304.
        self.validators = True
        #: (path, status) of every project-page answer, to see the 304s
        self.page_answers: list[tuple[str, int]] = []
        self._modified: dict[tuple[str, str], tuple[str, int]] = {}
        #: PEP 658/714 core metadata per wheel filename: pages advertise it (JSON
        #: ``core-metadata`` and ``dist-info-metadata`` with its sha256, HTML
        #: ``data-core-metadata`` / ``data-dist-info-metadata``) and ``<file URL>.metadata``
        #: answers these bytes, whatever the wheel itself holds (an index that lies about it).
        self.core_metadata: dict[str, bytes] = {}
        self._serial = 0
        self._lock = threading.Lock()
        self._digests: dict[tuple[str, int, int], tuple[int, str]] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.index_url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> IndexServer:
        if self._httpd is not None:
            return self
        handler = _make_handler(self)
        httpd = _QuietServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        scheme = "http"
        if self.tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls.cert, self.tls.key)
            # Handshake in the handler thread, so a silent client cannot stall the accept loop.
            httpd.socket = ctx.wrap_socket(
                httpd.socket, server_side=True, do_handshake_on_connect=False
            )
            scheme = "https"
        self._httpd = httpd
        port = httpd.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.index_url = self.url + "/simple/"
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> IndexServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- content -----------------------------------------------------------------------------

    def add_file(
        self,
        path: Path,
        *,
        project: str | None = None,
        provenance: bytes | None = None,
        yanked: str | bool = False,
    ) -> Path:
        """Copy a dist into the index (and its provenance beside it). Returns the stored path."""
        path = Path(path)
        parsed = parse_dist_filename(path.name)
        if project is None:
            if parsed is None:
                raise ValueError(f"cannot tell the project of {path.name!r}; pass project=")
            project = parsed[0]
        norm = canonicalize_name(project)
        dest_dir = self.root / norm
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / path.name
        if path.resolve() != dest.resolve():
            shutil.copyfile(path, dest)
        prov = dest.with_name(dest.name + ".provenance")
        if provenance is not None:
            prov.write_bytes(provenance)
        ypath = dest.with_name(dest.name + ".yanked")
        if yanked is not False:
            ypath.write_text("" if yanked is True else str(yanked), encoding="utf-8")
        elif ypath.exists():
            ypath.unlink()
        with self._lock:
            self._serial += 1
        return dest

    def set_provenance(self, project: str, filename: str, provenance: bytes | None) -> None:
        """Replace (or with None remove) the provenance stored for a file."""
        prov = self.root / canonicalize_name(project) / (filename + ".provenance")
        if provenance is None:
            prov.unlink(missing_ok=True)
        else:
            prov.write_bytes(provenance)
        with self._lock:
            self._serial += 1

    def file_url(self, project: str, filename: str) -> str:
        return f"{self.url}/files/{canonicalize_name(project)}/{quote(filename)}"

    def provenance_url(self, project: str, filename: str) -> str:
        return f"{self.url}/provenance/{canonicalize_name(project)}/{quote(filename)}"

    def integrity_url(self, project: str, version: str, filename: str) -> str:
        return (
            f"{self.url}/integrity/{canonicalize_name(project)}/{quote(version)}/"
            f"{quote(filename)}/provenance"
        )

    def hits(self, path: str) -> int:
        """How many times ``path`` (no query string) has been requested."""
        with self._lock:
            return sum(1 for p in self.requests_log if p == path)

    def projects(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and canonicalize_name(p.name) == p.name
        )

    def dists(self, project: str) -> list[_Dist]:
        d = self.root / project
        if not d.is_dir():
            return []
        out = []
        for f in sorted(d.iterdir()):
            if not f.is_file() or f.name.endswith(_SIDECARS):
                continue
            parsed = parse_dist_filename(f.name)
            version = parsed[1] if parsed else ""
            out.append(_Dist(project, version, f.name, f))
        return out

    def last_serial(self, project: str) -> int:
        with self._lock:
            return self.serials.get(project, self._serial)

    # -- page rendering ----------------------------------------------------------------------

    def _urls(self, dist: _Dist) -> tuple[str, str | None]:
        if self.relative_urls:
            file_url = f"../../files/{dist.project}/{quote(dist.filename)}"
            prov_url = f"../../provenance/{dist.project}/{quote(dist.filename)}"
        else:
            file_url = self.file_url(dist.project, dist.filename)
            prov_url = self.provenance_url(dist.project, dist.filename)
        advertise = self.provenance_mode == "url" and dist.provenance_path.is_file()
        return file_url, (prov_url if advertise else None)

    def _file_entries(self, project: str) -> list[dict[str, object]]:
        entries: list[dict[str, object]] = []
        status = self.project_status.get(project)
        if status is not None and status[0] == "quarantined" and not self.list_quarantined_files:
            return entries
        for dist in self.dists(project):
            size, digest = self._digest(dist.path)
            file_url, prov_url = self._urls(dist)
            yanked: bool | str = False
            if dist.yanked_path.is_file():
                reason = dist.yanked_path.read_text(encoding="utf-8").strip()
                yanked = reason or True
            mtime = self.upload_times.get(dist.filename) or (
                datetime.fromtimestamp(dist.path.stat().st_mtime, tz=timezone.utc)
                - self.default_upload_age
            )
            entries.append(
                {
                    "filename": dist.filename,
                    "url": file_url,
                    "hashes": {"sha256": digest},
                    "requires-python": _requires_python(dist.path),
                    "yanked": yanked,
                    "size": size,
                    "upload-time": mtime.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "provenance": prov_url,
                    "_version": dist.version,
                }
            )
            meta = self.core_metadata.get(dist.filename)
            if meta is not None:
                meta_hash: dict[str, str] = {"sha256": hashlib.sha256(meta).hexdigest()}
                entries[-1]["core-metadata"] = meta_hash
                entries[-1]["dist-info-metadata"] = meta_hash
        return entries

    def _digest(self, path: Path) -> tuple[int, str]:
        """(size, sha256) of a stored file, cached by (path, size, mtime)."""
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._digests.get(key)
        if hit is None:
            h = hashlib.sha256()
            with path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            hit = (st.st_size, h.hexdigest())
            with self._lock:
                self._digests[key] = hit
        return hit

    def project_json(self, project: str) -> bytes:
        files = self._file_entries(project)
        versions = sorted({str(f.pop("_version")) for f in files} - {""})
        versions.sort(key=_version_key)
        status = self.project_status.get(project)
        page: dict[str, object] = {
            "meta": {
                "api-version": "1.4" if status else "1.1",
                "_last-serial": self.last_serial(project),
            },
            "name": project,
            "versions": versions,
            "files": files,
        }
        if status is not None:
            obj = {"status": status[0]}
            if status[1] is not None:
                obj["reason"] = status[1]
            page["project-status"] = obj
        return json.dumps(page, indent=1).encode()

    def project_html(self, project: str) -> bytes:
        lines = [
            "<!DOCTYPE html>",
            "<html>",
            "  <head>",
            '    <meta name="pypi:repository-version" content="1.1">',
            f"    <title>Links for {html.escape(project)}</title>",
        ]
        status = self.project_status.get(project)
        if status is not None:
            lines[3] = '    <meta name="pypi:repository-version" content="1.4">'
            lines.append(
                f'    <meta name="pypi:project-status" content="{html.escape(status[0])}">'
            )
            if status[1] is not None:
                lines.append(
                    '    <meta name="pypi:project-status-reason" '
                    f'content="{html.escape(status[1])}">'
                )
        lines += [
            "  </head>",
            "  <body>",
            f"    <h1>Links for {html.escape(project)}</h1>",
        ]
        for f in self._file_entries(project):
            hashes = f["hashes"]
            assert isinstance(hashes, dict)
            href = f"{f['url']}#sha256={hashes['sha256']}"
            attrs = [f'href="{html.escape(href)}"']
            rp = f.get("requires-python")
            if rp:
                attrs.append(f'data-requires-python="{html.escape(str(rp))}"')
            y = f.get("yanked")
            if y is True:
                attrs.append('data-yanked=""')
            elif y:
                attrs.append(f'data-yanked="{html.escape(str(y))}"')
            prov = f.get("provenance")
            if prov:
                attrs.append(f'data-provenance="{html.escape(str(prov))}"')
            meta = f.get("core-metadata")
            if isinstance(meta, dict):
                value = html.escape(f"sha256={meta['sha256']}")
                attrs.append(f'data-core-metadata="{value}" data-dist-info-metadata="{value}"')
            lines.append(f"    <a {' '.join(attrs)}>{html.escape(str(f['filename']))}</a><br />")
        lines += ["  </body>", "</html>", ""]
        return "\n".join(lines).encode()

    def index_json(self) -> bytes:
        page = {
            "meta": {"api-version": "1.1", "_last-serial": self._serial},
            "projects": [{"name": p} for p in self.projects()],
        }
        return json.dumps(page).encode()

    def index_html(self) -> bytes:
        links = [f'    <a href="/simple/{p}/">{html.escape(p)}</a><br />' for p in self.projects()]
        return "\n".join(
            [
                "<!DOCTYPE html>",
                "<html>",
                '  <head><meta name="pypi:repository-version" content="1.1">'
                "<title>Simple index</title></head>",
                "  <body>",
                *links,
                "  </body>",
                "</html>",
                "",
            ]
        ).encode()

    def page_validators(self, path: str, reply: _Reply) -> tuple[str, str]:
        """(ETag, Last-Modified) of a page representation: the tag is a digest of the body and
        content type; the date is when this body was first served at ``path`` (a changed body
        is dated at least a second after the one before, so the two never share a date)."""
        digest = hashlib.sha256(reply.content_type.encode() + b"\0" + reply.body).hexdigest()
        etag = f'"{digest[:32]}"'
        with self._lock:
            key = (path, reply.content_type)
            seen = self._modified.get(key)
            if seen is None or seen[0] != etag:
                stamp = int(time.time())
                if seen is not None:
                    stamp = max(stamp, seen[1] + 1)
                seen = self._modified[key] = (etag, stamp)
        return etag, formatdate(seen[1], usegmt=True)

    def _log(self, path: str) -> None:
        with self._lock:
            self.requests_log.append(path)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            fault = self.faults.get(path) or self.faults.get("*")
            if fault is None:
                return None
            if fault.times is not None and fault.hits >= fault.times:
                return None
            fault.hits += 1
            return fault


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def _route(server: IndexServer, raw_path: str, accept: str | None) -> _Reply:
    path = urlsplit(raw_path).path
    parts = [unquote(p) for p in path.split("/")]
    # parts[0] is "" (leading slash)
    if path == "/simple":
        return _Reply(301, headers={"Location": "/simple/"})
    if path == "/simple/":
        ctype = negotiate(accept)
        if "json" in ctype:
            return _Reply(200, server.index_json(), ctype, {"Vary": "Accept"})
        return _Reply(200, server.index_html(), ctype + "; charset=utf-8", {"Vary": "Accept"})
    if len(parts) >= 3 and parts[1] == "simple":
        name = parts[2]
        norm = canonicalize_name(name)
        trailing = len(parts) == 4 and parts[3] == ""
        if len(parts) > 4 or (len(parts) == 4 and not trailing):
            return _Reply(404, b"Not Found\n")
        if name != norm or not trailing:
            return _Reply(301, headers={"Location": f"/simple/{quote(norm)}/"})
        if not (server.root / norm).is_dir():
            return _Reply(404, b"Not Found\n")
        ctype = negotiate(accept)
        headers = {"Vary": "Accept", "X-PyPI-Last-Serial": str(server.last_serial(norm))}
        if "json" in ctype:
            return _Reply(200, server.project_json(norm), ctype, headers)
        return _Reply(200, server.project_html(norm), ctype + "; charset=utf-8", headers)
    if len(parts) == 4 and parts[1] in ("files", "provenance"):
        project, filename = parts[2], parts[3]
        if parts[1] == "files" and filename.endswith(".metadata"):
            meta = server.core_metadata.get(filename[: -len(".metadata")])
            if meta is not None:
                return _Reply(200, meta, "application/octet-stream")
        if "/" in filename or filename.startswith(".") or filename.endswith(_SIDECARS):
            return _Reply(404, b"Not Found\n")
        fpath = server.root / canonicalize_name(project) / filename
        if parts[1] == "files":
            if not fpath.is_file():
                return _Reply(404, b"Not Found\n")
            return _Reply(200, fpath.read_bytes(), "application/octet-stream")
        prov = fpath.with_name(filename + ".provenance")
        if not fpath.is_file() or not prov.is_file():
            return _Reply(404, b'{"message": "no provenance"}', "application/json")
        return _Reply(200, prov.read_bytes(), "application/json")
    if len(parts) == 6 and parts[1] == "integrity" and parts[5] == "provenance":
        project, version, filename = canonicalize_name(parts[2]), parts[3], parts[4]
        not_found = _Reply(
            404,
            json.dumps({"message": f"No provenance available for {filename}"}).encode(),
            "application/json",
        )
        ictype = _best_offer(accept, _INTEGRITY_OFFERS)
        if ictype is None:
            return _Reply(406, b'{"message": "Request not acceptable"}', "application/json")
        if server.provenance_mode == "none" or "/" in filename or filename.startswith("."):
            return not_found
        fpath = server.root / project / filename
        prov = fpath.with_name(filename + ".provenance")
        parsed = parse_dist_filename(filename)
        if not fpath.is_file() or not prov.is_file() or parsed is None:
            return not_found
        try:
            version = str(Version(version))
        except InvalidVersion:
            return not_found
        if parsed[0] != project or parsed[1] != version:
            return not_found
        return _Reply(200, prov.read_bytes(), ictype, {"Vary": "Accept"})
    return _Reply(404, b"Not Found\n")


def _conditional(server: IndexServer, path: str, reply: _Reply, headers: Message) -> _Reply:
    """A project page's answer with its validators, or 304 when the request's condition holds
    (RFC 9110 13.1: If-None-Match decides when sent, else If-Modified-Since)."""
    if not server.validators:
        return reply
    etag, modified = server.page_validators(path, reply)
    reply.headers.update({"ETag": etag, "Last-Modified": modified})
    not_modified = False
    none_match = headers.get("If-None-Match")
    since = headers.get("If-Modified-Since")
    if none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in none_match.split(",")]
        not_modified = etag in tags or "*" in tags
    elif since is not None:
        try:
            not_modified = parsedate_to_datetime(since) >= parsedate_to_datetime(modified)
        except (TypeError, ValueError):
            not_modified = False
    with server._lock:
        server.page_answers.append((path, 304 if not_modified else 200))
    if not not_modified:
        return reply
    keep = ("ETag", "Last-Modified", "Vary", "X-PyPI-Last-Serial")
    return _Reply(304, b"", reply.content_type, {k: reply.headers[k] for k in keep})


def _make_handler(server: IndexServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Keep-alive replies written in pieces would otherwise wait ~40 ms for a delayed ACK
        # (Nagle): real indexes don't, and benchmarks against this server must not either.
        disable_nagle_algorithm = True
        server_version = "safe-pip-test-index/1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._serve(head=False)

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def _serve(self, *, head: bool) -> None:
            path = urlsplit(self.path).path
            server._log(path)
            if server.latency:
                time.sleep(server.latency)
            reply = _route(server, self.path, self.headers.get("Accept"))
            if reply.status == 200 and "X-PyPI-Last-Serial" in reply.headers:
                reply = _conditional(server, path, reply, self.headers)
            fault = server._take_fault(path)
            try:
                if fault is None:
                    self._send(reply, head=head)
                else:
                    self._send_fault(reply, fault, head=head)
            except OSError:  # the client went away (broken pipe, reset, timeout)
                self.close_connection = True

        def _send(self, reply: _Reply, *, head: bool) -> None:
            self.send_response(reply.status)
            if reply.status != 304:  # a 304 has no body and describes none
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(reply.body)

        def _send_fault(self, reply: _Reply, fault: Fault, *, head: bool) -> None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.hold is not None:
                fault.hold.wait(60)
            if fault.redirect is not None:
                self.send_response(fault.status or 302)
                self.send_header("Location", fault.redirect)
                self.send_header("Content-Length", "0")
                for k, v in fault.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                return
            status = fault.status if fault.status is not None else reply.status
            ctype = fault.content_type or reply.content_type
            body = reply.body if fault.body is None else fault.body
            headers = dict(reply.headers)
            if fault.gzip_bomb is not None:
                body = gzip_bomb(fault.gzip_bomb)
                headers["Content-Encoding"] = "gzip"
            headers.update(fault.headers)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            if fault.endless:
                self.send_header("Connection", "close")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.close_connection = True
                if head:
                    return
                chunk = b"0" * 65536
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    self.wfile.write(chunk)
                return
            length = len(body) if fault.content_length is None else fault.content_length
            self.send_header("Content-Length", str(length))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if head:
                return
            if fault.drip is not None:
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(fault.drip)
            else:
                self.wfile.write(body)
            if fault.content_length is not None and fault.content_length != len(body):
                self.close_connection = True

    return Handler


def _record(files: dict[str, bytes]) -> bytes:
    lines = []
    for name, data in files.items():
        digest = hashlib.sha256(data).digest()
        b64 = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        lines.append(f"{name},sha256={b64},{len(data)}")
    return "".join(line + "\n" for line in lines).encode()


def write_minimal_wheel(
    directory: Path,
    name: str,
    version: str = "1.0",
    *,
    requires_python: str | None = None,
    payload: bytes = b"",
) -> Path:
    """Write the smallest valid pure-Python wheel pip will install (``<name>/__init__.py``).

    For the index server's own tests; richer builders live in ``tests/support/packages.py``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    dist = re.sub(r"[-_.]+", "_", name).lower()
    module = dist
    info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if requires_python:
        metadata += f"Requires-Python: {requires_python}\n"
    files = {
        f"{module}/__init__.py": b"VALUE = %r\n" % payload
        + b"__version__ = '"
        + version.encode()
        + b"'\n",
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: safe-pip-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record_name = f"{info}/RECORD"
    record = _record(files) + f"{record_name},,\n".encode()
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for fname, data in files.items():
            zi = zipfile.ZipInfo(fname, date_time=(2024, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
        zi = zipfile.ZipInfo(record_name, date_time=(2024, 1, 1, 0, 0, 0))
        zf.writestr(zi, record)
    return path
