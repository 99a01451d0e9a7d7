"""A loopback server replaying recorded index pages (fixtures/pages) as their servers sent them.

Absolute URLs of the recorded origin (``https://pypi.org``, ``https://files.pythonhosted.org``)
are rewritten to the replay server, so every request stays on 127.0.0.1. Files and provenance
are served from a table given by the test (real files from fixtures/realworld). ``latency``
delays every answer (the benchmark's 20 ms), and each request is counted per path.

Pages carry an ``ETag`` (a digest of the body sent) as PyPI's do, and a request whose
``If-None-Match`` names it is answered ``304 Not Modified`` without a body (``validators=False``
serves neither); ``not_modified`` counts those answers per path.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from support.fixtures import RecordedPage

ORIGINS = ("https://pypi.org", "https://files.pythonhosted.org")


class Replay:
    def __init__(
        self,
        pages: Mapping[str, RecordedPage],
        *,
        files: Mapping[str, bytes] | None = None,
        latency: float = 0.0,
        validators: bool = True,
    ) -> None:
        self.pages = dict(pages)  # normalized project name -> page
        self.files = dict(files or {})  # URL path -> body (dists, provenance)
        self.latency = latency
        self.validators = validators
        self.hits: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def index_url(self) -> str:
        return f"{self.base}/simple/"

    def rewrite(self, body: bytes) -> bytes:
        for origin in ORIGINS:
            body = body.replace(origin.encode(), self.base.encode())
        return body

    def count(self, path: str) -> None:
        with self._lock:
            self.hits[path] += 1

    @contextmanager
    def running(self) -> Iterator[Replay]:
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                replay.count(path)
                if replay.latency:
                    time.sleep(replay.latency)
                status, ctype, body = 404, "text/plain", b""
                etag = None
                parts = path.strip("/").split("/")
                if len(parts) == 2 and parts[0] == "simple" and parts[1] in replay.pages:
                    page = replay.pages[parts[1]]
                    status, ctype, body = 200, page.content_type, replay.rewrite(page.body)
                    ctype = page.headers.get("Content-Type", ctype)
                    if replay.validators:
                        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                elif path in replay.files:
                    status, body = 200, replay.files[path]
                    ctype = "application/json" if "/integrity/" in path else "binary/octet-stream"
                asked = [t.strip() for t in self.headers.get("If-None-Match", "").split(",")]
                if etag is not None and etag in asked:
                    with replay._lock:
                        replay.not_modified[path] += 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if etag is not None:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
