"""The one place safe-pip talks HTTP: timeouts, size caps, retries, redirect and host rules.

Every request:

- streams (``stream=True``) and counts *decoded* bytes against a cap while reading, so neither a
  huge body nor a gzip bomb is ever held in memory (threat T13);
- has a connect timeout, an inter-byte read timeout and a total deadline checked between reads,
  so a server dripping one byte a second is cut off at the deadline;
- follows redirects itself (``allow_redirects=False``), at most ``max_redirects``, only to https
  (or same-origin plain http on loopback, for test servers), never https -> http, never to
  another host except PyPI's own pypi.org -> files.pythonhosted.org pair (threat T14);
- retries only idempotent GETs on connection failures and 5xx answers;
- verifies TLS always (``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` honoured).

Failures raise :class:`safe_pip.errors.NetworkError` subclasses ("could not check", exit 3).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, cast
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit
from urllib.request import url2pathname

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from safe_pip import __version__
from safe_pip.errors import ConfigError, NetworkError

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

_CHUNK = 64 * KiB
_ERROR_BODY_CAP = 64 * KiB  # how much of a non-2xx body we keep (for messages)
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# requests drops proxy keys whose value is None: loopback never goes through a proxy.
_NO_PROXY = cast("dict[str, str]", {"http": None, "https": None, "all": None})

#: The PyPI sites and the hosts that belong to each. A redirect may cross from the first host to
#: the second (pypi.org -> files.pythonhosted.org), never anywhere else.
PYPI_SITES: dict[str, tuple[str, str]] = {
    "pypi.org": ("pypi.org", "files.pythonhosted.org"),
    "test.pypi.org": ("test.pypi.org", "test-files.pythonhosted.org"),
}


@dataclass(frozen=True)
class Limits:
    """Ceilings for every request. Sizes count decoded bytes."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # longest silence between two reads
    total_deadline: float = 120.0  # per request, redirects, retries and body included
    download_deadline: float = 1800.0  # the same, for dist downloads (big wheels, slow links)
    max_page_bytes: int = 20 * MiB
    max_provenance_bytes: int = 2 * MiB
    max_file_bytes: int = 2 * GiB
    max_files_per_page: int = 100_000
    retries: int = 2  # extra attempts, only on connection errors / 5xx
    retry_backoff: float = 0.25  # seconds, doubled each retry
    max_redirects: int = 5
    max_json_depth: int = 64
    max_provenance_entries: int = 32  # attestation bundles per provenance, attestations per bundle


# -- errors ------------------------------------------------------------------------------------


class ResponseTooLarge(NetworkError):
    """The body (after decoding) went past its cap."""


class DeadlineExceeded(NetworkError):
    """The server was too slow: timeout or total deadline."""


class UnexpectedRedirect(NetworkError):
    """A redirect to another host, to plain http, or too many of them."""


class MalformedResponse(NetworkError):
    """The body is not what the protocol says it must be (bad JSON, bad page, wrong type)."""


class ConnectionFailed(NetworkError):
    """Could not connect, or the connection broke (retried before it is raised)."""


class InsecureURL(NetworkError):
    """A URL safe-pip refuses to fetch (plain http off loopback, unknown scheme)."""


class HashMismatch(NetworkError):
    """A downloaded file's sha256 differs from what the index (or lock) said."""


class OfflineError(NetworkError):
    """A request that --offline forbids: nothing was sent (no socket was opened)."""


class HttpStatusError(NetworkError):
    """The server answered with a status the caller cannot accept."""

    def __init__(self, message: str, *, status: int, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.status = status


# -- URLs --------------------------------------------------------------------------------------


def redact(url: str) -> str:
    """The URL without any password (for messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def pypi_site(host: str | None) -> str | None:
    """ "pypi.org" / "test.pypi.org" when ``host`` belongs to that PyPI, else None."""
    for site, hosts in PYPI_SITES.items():
        if host in hosts:
            return site
    return None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port)


def same_origin(a: str, b: str) -> bool:
    return _origin(a) == _origin(b)


def check_url(url: str) -> None:
    """Refuse URLs safe-pip will not fetch: https anywhere, plain http only on loopback."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InsecureURL(f"refusing to fetch {redact(url)!r}: not a valid URL ({exc})") from None
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return
    if parts.scheme == "http":
        raise InsecureURL(
            f"refusing to fetch {redact(url)}: plain http (only https is allowed off loopback)",
            fix="use the index's https:// URL",
        )
    raise InsecureURL(f"refusing to fetch {redact(url)!r}: unsupported URL scheme")


def check_redirect(src: str, dst: str) -> None:
    """Raise :class:`UnexpectedRedirect` unless following ``src`` -> ``dst`` is safe."""
    s, d = urlsplit(src), urlsplit(dst)
    where = f"{redact(src)} redirected to {redact(dst)}"
    if s.scheme == "https" and d.scheme != "https":
        raise UnexpectedRedirect(f"{where}: https -> {d.scheme or '?'} downgrade refused")
    if d.scheme == "http":
        if not (is_loopback(d.hostname) and same_origin(src, dst)):
            raise UnexpectedRedirect(f"{where}: plain-http redirects are followed only same-origin")
        return
    if d.scheme != "https" or not d.hostname:
        raise UnexpectedRedirect(f"{where}: not an https URL")
    src_host, dst_host = (s.hostname or "").lower(), d.hostname.lower()
    if src_host == dst_host:
        return
    site = PYPI_SITES.get(src_host)
    if site is not None and dst_host == site[1]:
        return
    raise UnexpectedRedirect(
        f"{where}: redirect to another host refused",
        fix="point safe-pip at the host that serves the content directly",
    )


def _file_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(f"file URL {url!r} names a remote host; only local paths are supported")
    return Path(url2pathname(unquote(parts.path)))


def _ca_bundle() -> str | bool:
    """What ``verify=`` gets: a CA bundle from the environment (as requests and OpenSSL read
    them), else True (certifi). Never False."""
    for var in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        value = os.environ.get(var)
        if value:
            if not os.path.exists(value):
                raise ConfigError(
                    f"{var}={value} does not exist",
                    fix=f"point {var} at a PEM CA bundle, or unset it",
                )
            return value
    return True


# -- JSON --------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes, *, what: str, max_depth: int = 64) -> Any:
    """Parse JSON that has already been size-capped; raise :class:`MalformedResponse` on
    invalid, NaN/Infinity-bearing or too deeply nested documents."""
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise MalformedResponse(f"{what}: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"{what}: not valid JSON ({exc})") from None
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            raise MalformedResponse(f"{what}: JSON nested deeper than {max_depth} levels")
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return data


# -- responses ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """A fully read (and capped) response."""

    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes = field(repr=False)
    url: str  # the final URL, after redirects

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def content_type(self) -> str:
        """The media type, lower-cased, without parameters ("" when absent)."""
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def json(self, *, what: str, max_depth: int = 64) -> Any:
        return parse_json(self.body, what=what, max_depth=max_depth)


class _Retry(Exception):
    """Internal: a 5xx answer worth another attempt."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


# -- the client --------------------------------------------------------------------------------


class _Session(requests.Session):
    """A ``requests.Session`` that reads the environment's proxy and CA settings once per
    origin, not once per request. requests scans the whole environment twice per request
    (``get_environ_proxies``), about a quarter of the CPU of a small page read; the result
    depends only on the URL's scheme, host and port and on the environment, which does not
    change during a run (a session lives for one run)."""

    def __init__(self) -> None:
        super().__init__()
        self._env_settings: dict[tuple[object, ...], Any] = {}

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        text = url.decode() if isinstance(url, bytes) else str(url or "")
        parts = urlsplit(text)
        frozen = None if proxies is None else tuple(sorted(dict(proxies).items()))
        key = (parts.scheme.lower(), parts.netloc.lower(), frozen, stream, verify, cert)
        settings = self._env_settings.get(key)
        if settings is None:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._env_settings[key] = settings
        return {**settings, "proxies": dict(settings["proxies"])}  # a copy: callers may change it


class Http:
    """One policy for every GET. Thread-safe: each thread gets its own ``requests.Session``."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        user_agent: str | None = None,
        offline: bool = False,
    ) -> None:
        self.limits = limits or Limits()
        #: --offline: every request that would leave this process is refused before a socket
        #: is opened (OfflineError); only file:// URLs are read.
        self.offline = offline
        self.user_agent = user_agent or f"safe-pip/{__version__}"
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Http:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for s in sessions:
            s.close()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = _Session()
            adapter = HTTPAdapter(pool_connections=8, pool_maxsize=16, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            session.headers["User-Agent"] = self.user_agent
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    # -- public API ----------------------------------------------------------------------------

    def get_bytes(
        self,
        url: str,
        *,
        max_bytes: int,
        accept: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """GET ``url`` and return the whole (decoded) body, at most ``max_bytes`` of it.
        ``headers`` are sent as well (a conditional request's ``If-None-Match``, ...).

        Any status is returned (callers decide what 404, 403 or 304 means) after retries of
        5xx. Raises :class:`NetworkError` subclasses for everything that is not an HTTP answer.
        """
        if url.startswith("file:"):
            return self._get_file(url, max_bytes=max_bytes)
        buf = bytearray()

        def reset() -> None:
            buf.clear()

        sent = dict(headers or {})
        if accept:
            sent["Accept"] = accept
        deadline = time.monotonic() + self.limits.total_deadline
        return self._fetch(
            url,
            headers=sent,
            max_bytes=max_bytes,
            deadline=deadline,
            decode=True,
            sink=buf.extend,
            reset=reset,
            body=lambda: bytes(buf),
        )

    def download(
        self,
        url: str,
        dest: Path,
        *,
        max_bytes: int,
        expected_sha256: str | None = None,
    ) -> str:
        """Stream ``url`` into ``dest`` (atomically) and return the sha256 of the bytes received.

        The bytes are taken as sent (``Accept-Encoding: identity``, no decoding), as pip does.
        Anything but a 2xx, a body over ``max_bytes`` or a sha256 other than
        ``expected_sha256`` raises :class:`NetworkError`; a partial file never remains.
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                digest = self._download_to(url, out, max_bytes=max_bytes)
            if expected_sha256 is not None and digest != expected_sha256.lower():
                raise HashMismatch(
                    f"{dest.name} from {redact(url)} has sha256 {digest}, "
                    f"but the index said {expected_sha256.lower()}",
                    fix="the file changed on the index or in transit; do not install it",
                )
            os.replace(tmp, dest)
            return digest
        finally:
            tmp.unlink(missing_ok=True)

    # -- internals -----------------------------------------------------------------------------

    def _download_to(self, url: str, out: BinaryIO, *, max_bytes: int) -> str:
        state = {"h": hashlib.sha256()}

        def sink(chunk: bytes) -> None:
            state["h"].update(chunk)
            out.write(chunk)

        def reset() -> None:
            out.seek(0)
            out.truncate()
            state["h"] = hashlib.sha256()

        if url.startswith("file:"):
            path = _file_path(url)
            try:
                with path.open("rb") as fh:
                    total = 0
                    while chunk := fh.read(MiB):
                        total += len(chunk)
                        if total > max_bytes:
                            raise ResponseTooLarge(f"{path} is larger than {max_bytes} bytes")
                        sink(chunk)
            except FileNotFoundError:
                raise HttpStatusError(f"{path} does not exist", status=404) from None
            except OSError as exc:
                raise NetworkError(f"could not read {path}: {exc.strerror or exc}") from None
            return state["h"].hexdigest()

        limits = self.limits
        deadline = time.monotonic() + max(limits.total_deadline, limits.download_deadline)
        resp = self._fetch(
            url,
            headers={"Accept-Encoding": "identity"},
            max_bytes=max_bytes,
            deadline=deadline,
            decode=False,
            sink=sink,
            reset=reset,
            body=lambda: b"",
        )
        if not resp.ok:
            raise HttpStatusError(
                f"downloading {redact(url)} failed: HTTP {resp.status}", status=resp.status
            )
        return state["h"].hexdigest()

    def _get_file(self, url: str, *, max_bytes: int) -> Response:
        path = _file_path(url)
        try:
            with path.open("rb") as fh:
                data = fh.read(max_bytes + 1)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return Response(404, {}, b"", url)
        except OSError as exc:
            raise NetworkError(f"could not read {path}: {exc.strerror or exc}") from None
        if len(data) > max_bytes:
            raise ResponseTooLarge(f"{path} is larger than {max_bytes} bytes")
        return Response(200, {}, data, url)

    def _fetch(
        self,
        url: str,
        *,
        headers: dict[str, str],
        max_bytes: int,
        deadline: float,
        decode: bool,
        sink: Callable[[bytes], None],
        reset: Callable[[], None],
        body: Callable[[], bytes],
    ) -> Response:
        limits = self.limits
        attempt = 0
        while True:
            try:
                return self._attempt(url, headers, max_bytes, deadline, decode, sink, body)
            except (ConnectionFailed, _Retry) as exc:
                reset()
                attempt += 1
                pause = limits.retry_backoff * (2 ** (attempt - 1))
                if attempt > limits.retries or time.monotonic() + pause >= deadline:
                    if isinstance(exc, _Retry):
                        return exc.response
                    raise
                time.sleep(pause)

    def _attempt(
        self,
        url: str,
        headers: dict[str, str],
        max_bytes: int,
        deadline: float,
        decode: bool,
        sink: Callable[[bytes], None],
        body: Callable[[], bytes],
    ) -> Response:
        resp, final = self._open(url, headers, deadline)
        try:
            status = resp.status_code
            if 200 <= status < 300:
                self._stream(resp, final, max_bytes, deadline, decode, sink)
                data = body()
            else:
                # Keep a little of an error body for messages; never read all of it.
                err = bytearray()
                with contextlib.suppress(NetworkError):
                    self._stream(resp, final, _ERROR_BODY_CAP, deadline, decode, err.extend)
                data = bytes(err)
            out = Response(status, resp.headers, data, final)
        finally:
            resp.close()
        if status >= 500:
            raise _Retry(out)
        return out

    def _open(
        self, url: str, headers: dict[str, str], deadline: float
    ) -> tuple[requests.Response, str]:
        """Send the GET, following safe redirects; the returned response's body is unread."""
        if self.offline:
            raise OfflineError(
                f"{redact(url)} was not fetched: --offline allows no network access",
                fix="run without --offline, or give safe-pip what it needs locally "
                "(--evidence DIR saved by `safe-pip verify --save-evidence DIR`, a file:// index)",
            )
        for _ in range(self.limits.max_redirects + 1):
            check_url(url)
            resp = self._send(url, headers, deadline)
            if resp.status_code not in _REDIRECT_STATUSES:
                return resp, url
            location = resp.headers.get("Location")
            resp.close()
            if not location:
                raise MalformedResponse(
                    f"{redact(url)} answered HTTP {resp.status_code} without a Location"
                )
            target = urljoin(url, location)
            check_redirect(url, target)
            url = target
        raise UnexpectedRedirect(
            f"{redact(url)}: more than {self.limits.max_redirects} redirects",
        )

    def _send(self, url: str, headers: dict[str, str], deadline: float) -> requests.Response:
        limits = self.limits
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded(
                f"{redact(url)}: no answer within {limits.total_deadline:g}s (total deadline)"
            )
        host = urlsplit(url).hostname
        try:
            return self._session().get(
                url,
                headers=headers,
                stream=True,
                allow_redirects=False,
                timeout=(
                    min(limits.connect_timeout, remaining),
                    min(limits.read_timeout, remaining),
                ),
                verify=_ca_bundle(),
                proxies=dict(_NO_PROXY) if is_loopback(host) else None,
            )
        except requests.exceptions.SSLError as exc:
            raise NetworkError(
                f"TLS verification failed for {host}: {_short(exc)}",
                fix="check the system clock and SSL_CERT_FILE / REQUESTS_CA_BUNDLE",
            ) from None
        except requests.exceptions.ConnectTimeout:
            raise ConnectionFailed(
                f"{redact(url)}: could not connect within {limits.connect_timeout:g}s"
            ) from None
        except requests.exceptions.ReadTimeout:
            raise DeadlineExceeded(
                f"{redact(url)}: no answer within {min(limits.read_timeout, remaining):g}s"
            ) from None
        except requests.exceptions.ConnectionError as exc:
            raise ConnectionFailed(f"{redact(url)}: connection failed ({_short(exc)})") from None
        except requests.exceptions.RequestException as exc:
            raise NetworkError(f"{redact(url)}: request failed ({_short(exc)})") from None

    def _stream(
        self,
        resp: requests.Response,
        url: str,
        cap: int,
        deadline: float,
        decode: bool,
        sink: Callable[[bytes], None],
    ) -> None:
        """Feed the body to ``sink`` chunk by chunk, enforcing ``cap`` and ``deadline``."""
        limits = self.limits
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap and (encoding == "identity" or not decode):
            raise ResponseTooLarge(
                f"{redact(url)}: response is {int(declared)} bytes, over the {cap}-byte limit"
            )
        raw = resp.raw
        total = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(
                    f"{redact(url)}: body not received within the deadline "
                    f"({total} bytes so far); the server is too slow"
                )
            _set_read_timeout(raw, min(limits.read_timeout, remaining))
            try:
                chunk = raw.read1(_CHUNK, decode_content=decode)
            except urllib3.exceptions.ReadTimeoutError:
                if time.monotonic() >= deadline:
                    raise DeadlineExceeded(
                        f"{redact(url)}: body not received within the deadline "
                        f"({total} bytes so far)"
                    ) from None
                raise DeadlineExceeded(
                    f"{redact(url)}: server went silent for {limits.read_timeout:g}s"
                ) from None
            except urllib3.exceptions.DecodeError as exc:
                raise MalformedResponse(
                    f"{redact(url)}: could not decode {encoding} body ({_short(exc)})"
                ) from None
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.SSLError) as exc:
                raise ConnectionFailed(
                    f"{redact(url)}: connection broke after {total} bytes ({_short(exc)})"
                ) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise NetworkError(f"{redact(url)}: reading failed ({_short(exc)})") from None
            if not chunk:
                return
            total += len(chunk)
            if total > cap:
                raise ResponseTooLarge(
                    f"{redact(url)}: response is over the {cap}-byte limit"
                    + (" once decompressed" if decode and encoding != "identity" else "")
                )
            sink(chunk)


def _set_read_timeout(raw: Any, seconds: float) -> None:
    """Shorten the socket timeout so a stalled read cannot outlive the deadline (best effort:
    urllib3 keeps the socket on ``raw.connection.sock``)."""
    try:
        sock = raw.connection.sock
        if sock is not None:
            sock.settimeout(max(seconds, 0.001))
    except (AttributeError, OSError):
        pass


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
_INCOMPLETE = re.compile(r"IncompleteRead\(\d+ bytes read, \d+ more expected\)")


def _short(exc: BaseException) -> str:
    """One line about an exception: the root cause, not requests' and urllib3's nesting."""
    text = " ".join((str(exc) or type(exc).__name__).split())
    for pattern in (_ERRNO, _INCOMPLETE):
        m = pattern.search(text)
        if m:
            return (m.group(1) if m.groups() else m.group(0)).strip().rstrip(",")
    return text if len(text) <= 200 else text[:197] + "..."
