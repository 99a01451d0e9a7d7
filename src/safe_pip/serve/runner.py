"""Runs the :class:`~safe_pip.serve.app.ServeApp` WSGI application on waitress (ADR 0010).

waitress reads requests and writes responses on one asynchronous loop and hands only complete
requests to a fixed pool of worker threads, so idle or slow clients hold a socket, never a
worker; verified files go out as ``wsgi.file_wrapper`` buffers sent by that loop, so a slow
download does not hold a worker either. Bounds (:class:`ServerLimits`): worker threads, open
connections (past it new connections wait in the listen backlog), the time a client may stay
silent, request header and body sizes.

Graceful shutdown (:meth:`WaitressServer.shutdown`): the listening socket is closed (new
connections are refused), requests arriving on open connections get 503, ``/-/readyz`` says
``shutting down``, idle connections are closed, and requests in flight, including file
downloads still being sent, finish, up to ``shutdown_timeout`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from safe_pip.serve.app import ServeApp
from safe_pip.serve.server import EventLog


@dataclass(frozen=True)
class ServerLimits:
    threads: int = 16  # requests answered at once; the rest queue
    connection_limit: int = 1000  # open client connections; more wait in the backlog
    channel_timeout: float = 60.0  # seconds a client may stay silent (or stall a download)
    shutdown_timeout: float = 30.0  # seconds in-flight requests get on shutdown
    backlog: int = 1024
    max_request_header_size: int = 64 * 1024
    max_request_body_size: int = 64 * 1024  # only GET and HEAD are answered


class _LogToEvents(logging.Handler):
    """waitress's own warnings (connection limit reached, socket errors) as ``server`` events.

    waitress warns "Task queue depth is N" each time a request waits for a worker, thousands of
    times a minute under load: that becomes at most one line per ``QUEUE_EVERY`` seconds, with
    the deepest queue seen."""

    QUEUE_EVERY = 60.0

    def __init__(self, log: EventLog) -> None:
        super().__init__(logging.WARNING)
        self.log = log
        self._queue_said = float("-inf")
        self._deepest = 0

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # never let logging break serving
            text = record.getMessage()
            if text.startswith("Task queue depth is"):
                self._deepest = max(self._deepest, int(text.rsplit(" ", 1)[-1]))
                now = time.monotonic()
                if now - self._queue_said < self.QUEUE_EVERY:
                    return
                self._queue_said = now
                text = (
                    f"every worker thread is busy; requests are queueing (up to "
                    f"{self._deepest} waiting). If this persists, raise --threads or add a "
                    "replica"
                )
                self._deepest = 0
            self.log.emit("server", f"waitress: {text}")


class WaitressServer:
    """A bound waitress server for ``app``; :meth:`serve_forever` runs it (blocking) until
    :meth:`shutdown` is called from another thread."""

    def __init__(
        self, app: ServeApp, host: str, port: int, limits: ServerLimits | None = None
    ) -> None:
        from waitress.server import create_server

        self.app = app
        self.limits = lim = limits or ServerLimits()
        self._map: dict[int, Any] = {}
        self._stop = threading.Event()
        self._done = threading.Event()
        self._log_handler = _LogToEvents(app.index.log)
        logger = logging.getLogger("waitress")
        logger.addHandler(self._log_handler)
        logger.propagate = False
        self.server: Any = create_server(
            app,
            map=self._map,
            host=host,
            port=port,
            threads=lim.threads,
            connection_limit=lim.connection_limit,
            channel_timeout=int(max(1, lim.channel_timeout)),
            cleanup_interval=max(1, min(30, int(lim.channel_timeout) // 2 or 1)),
            backlog=lim.backlog,
            max_request_header_size=lim.max_request_header_size,
            max_request_body_size=lim.max_request_body_size,
            asyncore_use_poll=True,  # select() stops at 1024 file descriptors
            ident="safe-pip-serve",
            expose_tracebacks=False,
            log_socket_errors=False,
            clear_untrusted_proxy_headers=True,
        )

    @property
    def url(self) -> str:
        host, port = self.server.effective_host, self.server.effective_port
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}"

    def serve_forever(self) -> None:
        from waitress import wasyncore

        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=0.5, map=self._map, use_poll=True, count=1)
            self._drain()
        finally:
            self._close()
            self._done.set()

    def shutdown(self, timeout: float | None = None) -> None:
        """Ask :meth:`serve_forever` to drain and stop; wait for it (at most the drain time plus
        a little, or ``timeout``)."""
        self._stop.set()
        self._wake()
        self._done.wait(timeout if timeout is not None else self.limits.shutdown_timeout + 10)

    def _wake(self) -> None:
        with contextlib.suppress(OSError, AttributeError, ValueError):
            self.server.pull_trigger()

    def _channels(self) -> list[Any]:
        return list(self.server.active_channels.values())

    def _drain(self) -> None:
        from waitress import wasyncore

        self.app.draining = True
        # Stop accepting: the listening socket leaves the loop and is closed (new connections
        # are refused); the trigger stays, worker threads use it to hand over responses.
        with contextlib.suppress(OSError):
            wasyncore.dispatcher.close(self.server)
        deadline = time.monotonic() + self.limits.shutdown_timeout
        while time.monotonic() < deadline:
            busy = self.app.in_flight > 0
            for ch in self._channels():
                if ch.requests or ch.total_outbufs_len:
                    busy = True
                else:
                    ch.will_close = True  # idle keep-alive connection: close it
            if not busy:
                break
            wasyncore.loop(timeout=0.05, map=self._map, use_poll=True, count=1)
        # one more turn so the closes requested above happen
        wasyncore.loop(timeout=0.05, map=self._map, use_poll=True, count=1)

    def _close(self) -> None:
        from waitress import wasyncore

        try:
            self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
        finally:
            wasyncore.close_all(self._map)
            logging.getLogger("waitress").removeHandler(self._log_handler)
