"""The serve face (``safe-pip serve``): the verifying index as an application object + its server.
May import check, options and the rooms below them.

Library use (``safe-pip install`` builds sdists through it, so build dependencies are verified
by the same checker)::

    from safe_pip.serve import start_server

    with start_server(checker, "https://pypi.org/simple/", mode="block") as srv:
        run(["python", "-m", "pip", "install", "--index-url", srv.index_url, ...])

``start_server`` binds (127.0.0.1, an ephemeral port by default), serves (the WSGI application
:class:`safe_pip.serve.app.ServeApp` on waitress) in a daemon thread and
returns a :class:`RunningServer`; ``stop()`` (or leaving the ``with`` block) shuts it down and
removes its temporary files. It never closes the checker or its history store: the caller owns
them.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING

from safe_pip.serve.server import (
    DEFAULT_PAGE_TTL,
    MODES,
    Entry,
    EventLog,
    Mode,
    ProjectView,
    ServeError,
    VerifyingIndex,
)

if TYPE_CHECKING:
    from pathlib import Path

    from safe_pip.check import Checker
    from safe_pip.serve.runner import ServerLimits, WaitressServer

PYPI_SIMPLE = "https://pypi.org/simple/"

__all__ = [
    "DEFAULT_PAGE_TTL",
    "MODES",
    "PYPI_SIMPLE",
    "Entry",
    "EventLog",
    "Mode",
    "ProjectView",
    "RunningServer",
    "ServeError",
    "VerifyingIndex",
    "start_server",
]


class RunningServer:
    """A verifying index serving in a background thread.

    ``url`` is the server's base URL (``http://127.0.0.1:PORT``), ``index_url`` the simple index
    (``<url>/simple/``) to give an installer; ``index`` is the :class:`VerifyingIndex` (its
    ``log`` holds the event log), ``app`` the WSGI application, ``server`` the waitress server.
    """

    def __init__(self, server: WaitressServer, index: VerifyingIndex) -> None:
        self.server = server
        self.app = server.app
        self.index = index
        self.url = server.url
        self.index_url = self.url + "/simple/"
        self._thread = threading.Thread(
            target=server.serve_forever, name="safe-pip-serve", daemon=True
        )
        self._stopped = False

    def _start(self) -> RunningServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting requests, let those in flight finish (at most the server's
        ``shutdown_timeout``), close the sockets and remove temporary files. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join(timeout=10)
        else:
            self.server._close()
        self.index.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def make_server(
    index: VerifyingIndex,
    host: str = "127.0.0.1",
    port: int = 0,
    limits: ServerLimits | None = None,
) -> WaitressServer:
    """Bind (raises OSError when the address is taken) without serving yet."""
    from safe_pip.serve.app import ServeApp
    from safe_pip.serve.runner import WaitressServer

    return WaitressServer(ServeApp(index), host, port, limits)


def start_server(
    checker: Checker,
    upstream: str = PYPI_SIMPLE,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    mode: Mode = "filter",
    log: EventLog | None = None,
    jobs: int | None = None,
    page_ttl: float = DEFAULT_PAGE_TTL,
    limits: ServerLimits | None = None,
    lazy: bool = False,
    record: bool = True,
    file_cache: Path | None = None,
    core_metadata: bool = False,
    read_ahead: bool = False,
    watch_policy: bool = True,
) -> RunningServer:
    """Start a verifying index for ``upstream`` using ``checker`` (its trust root, policy and
    history) and return it, already serving. Use as a context manager, or call ``stop()``.

    ``mode="filter"`` leaves refused files out of pages (the installer picks an allowed
    version); ``mode="block"`` lists them and answers 403 with the reason, so installs fail
    loudly. A file link is answered from a cached verdict only while its project's upstream page
    was read less than ``page_ttl`` seconds ago and listed it; otherwise the page is read again
    (a file upstream removes, or a project it quarantines, stops being served within
    ``page_ttl``). ``lazy``: pages list files undecided and a file is verified when first
    requested (``safe-pip install`` resolves through a lazy block-mode index, so only the
    files pip picks are verified). ``record``: a served file's verdict is recorded in the
    history before its bytes are sent (``safe-pip install`` turns it off: its index only
    feeds pip's resolution, and install records what it installs itself). ``file_cache``: a
    directory of verified files by sha256, served again only when their bytes still hash to
    the attested digest. ``core_metadata``: pages advertise PEP 658 metadata for wheels,
    answered from the verified bytes (a stand-in for a refused wheel, whose file stays a 403);
    ``read_ahead``: the pages of the dependencies a served METADATA names are read ahead, in
    parallel. ``watch_policy``: the policy file the checker's policy came from is
    read again when it changes, and every cached verdict decided again under it (a run
    that should keep the policy it started with, like ``safe-pip install``, turns it off).
    Raises
    :class:`safe_pip.errors.ConfigError` for a bad upstream URL and OSError when the address
    cannot be bound.
    """
    index = VerifyingIndex(
        checker,
        upstream,
        mode=mode,
        log=log,
        jobs=jobs,
        page_ttl=page_ttl,
        lazy=lazy,
        record=record,
        file_cache=file_cache,
        core_metadata=core_metadata,
        read_ahead=read_ahead,
        watch_policy=watch_policy,
    )
    try:
        server = make_server(index, host, port, limits)
    except BaseException:
        index.close()
        raise
    return RunningServer(server, index)._start()
