"""``safe-pip serve``: run a verifying package index in front of an upstream index."""

from __future__ import annotations

import argparse
import sys

from safe_pip.cli._common import add_policy_options, add_trust_options
from safe_pip.errors import EXIT_OK, ConfigError

DESCRIPTION = """\
Serve a PEP 503 / PEP 691 simple index backed by an upstream index (default PyPI) that lists
only files whose PEP 740 provenance verifies and whose publisher passes your policy and
known-good history. Point any installer at it:

  pip install --index-url http://127.0.0.1:8740/simple/ PACKAGE
  uv pip install --index-url http://127.0.0.1:8740/simple/ PACKAGE

Every link carries the attested sha256, and each file is hashed before a byte is sent (a
mismatch is HTTP 502, never the bytes). Refused files are listed and answered with HTTP 403
and the reason, which pip and uv print (--mode block, the default), or left out of pages
(--mode filter: the installer then picks an allowed version, and says only "no matching
distribution"). When upstream is down the server answers 502/503/504 with the reason; it never
serves anything it could not verify. Stop it with Ctrl-C or SIGTERM: requests in flight finish
(up to --shutdown-timeout), new ones are refused.

Health and metrics: /-/healthz (alive), /-/readyz (upstream and history reachable),
/-/metrics (Prometheus). Each client request is one log line on stderr (-v: also one line per
file decided and served; --log-json has every event).

Plain HTTP, no authentication: keep the default 127.0.0.1 binding, or put it behind a TLS
reverse proxy when serving a team (see docs/serve.md).
"""

DEFAULT_PORT = 8740


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run a verifying package index (use it with pip/uv --index-url)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, local only)"
    )
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to listen on (default: {DEFAULT_PORT}; 0 picks a free one and prints it)",
    )
    p.add_argument(
        "--upstream",
        metavar="URL",
        default=None,
        help="the simple index to proxy (default: https://pypi.org/simple/)",
    )
    p.add_argument(
        "--provenance-index",
        metavar="URL",
        default=None,
        help="where to look up provenance, by (name, version, filename), for files whose "
        "upstream page lists none, e.g. https://pypi.org/simple/ behind a PyPI mirror that "
        "drops it; also $SAFE_PIP_PROVENANCE_INDEX (default: none, such files are unsigned and "
        "no other index learns the project names)",
    )
    p.add_argument(
        "--mode",
        choices=("filter", "block"),
        default="block",
        help="block: list refused files and answer 403 with the reason, which installers print "
        "(default); filter: leave them out of pages (see docs/adr/0008)",
    )
    p.add_argument(
        "--log-json",
        metavar="FILE",
        help="also append every decision and served file to FILE as JSON lines",
    )
    p.add_argument(
        "--page-ttl",
        metavar="SECONDS",
        type=float,
        default=None,
        help="answer a file link from a cached verdict only while its project's upstream page "
        "was read less than SECONDS ago (default: 60; 0: read the page on every file request). "
        "A file upstream removes, or a project it quarantines, stops being served within it",
    )
    p.add_argument(
        "--jobs", type=int, default=None, help="parallel verifications (default: by CPU count)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no event lines on stderr")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also log one line per file decided and served (default: one line per request)",
    )
    g = p.add_argument_group("server limits")
    g.add_argument(
        "--threads",
        type=int,
        default=16,
        help="requests answered at once (default 16); more wait in a queue",
    )
    g.add_argument(
        "--connection-limit",
        type=int,
        default=1000,
        help="open client connections (default 1000); more wait in the listen backlog",
    )
    g.add_argument(
        "--client-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="close a connection whose client stays silent or stops reading this long (default 60)",
    )
    g.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM/Ctrl-C, time requests in flight get to finish (default 30)",
    )
    add_trust_options(p)
    add_policy_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import signal
    import threading
    from pathlib import Path

    from safe_pip.check import PYPI_SIMPLE
    from safe_pip.cli._common import run_options
    from safe_pip.options import make_checker, open_store
    from safe_pip.serve import EventLog, RunningServer, VerifyingIndex, make_server
    from safe_pip.serve.server import DEFAULT_PAGE_TTL, Mode
    from safe_pip.text import clean

    upstream: str = args.upstream or PYPI_SIMPLE
    # No disclosure by default: files whose upstream page carries no provenance are looked up
    # on another index only when one is named (--provenance-index or
    # $SAFE_PIP_PROVENANCE_INDEX, e.g. PyPI behind a mirror that drops provenance); otherwise
    # the upstream is the provenance index and such files are unsigned.
    from safe_pip.options import named_provenance_index

    provenance_index: str = named_provenance_index(args.provenance_index) or upstream
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: not a port number", fix="use 0..65535")
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    from safe_pip.serve.runner import ServerLimits

    if not 1 <= args.threads <= 1024:
        raise ConfigError(f"--threads {args.threads}: must be 1..1024")
    if not 1 <= args.connection_limit <= 100000:
        raise ConfigError(f"--connection-limit {args.connection_limit}: must be 1..100000")
    for opt, value in (
        ("--client-timeout", args.client_timeout),
        ("--shutdown-timeout", args.shutdown_timeout),
    ):
        if not 0 < value <= 86400:  # also rejects nan
            raise ConfigError(f"{opt} {value}: must be between 0 and 86400 seconds")
    limits = ServerLimits(
        threads=args.threads,
        connection_limit=args.connection_limit,
        channel_timeout=args.client_timeout,
        shutdown_timeout=args.shutdown_timeout,
    )
    mode: Mode = "block" if args.mode == "block" else "filter"
    page_ttl: float = DEFAULT_PAGE_TTL if args.page_ttl is None else args.page_ttl
    if not 0 <= page_ttl <= 86400:  # also rejects nan
        raise ConfigError(
            f"--page-ttl {args.page_ttl}: must be between 0 and 86400 seconds",
            fix="use a short time such as 60 (the default); 0 reads the page on every file request",
        )

    options = run_options(args)
    store = open_store(options)
    log: EventLog | None = None
    index: VerifyingIndex | None = None
    try:
        checker = make_checker(
            options, store=store, provenance_index=provenance_index, jobs=args.jobs
        )
        try:
            log = EventLog(
                json_path=Path(args.log_json) if args.log_json else None,
                quiet=args.quiet,
                verbose=args.verbose,
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot open --log-json {args.log_json}: {exc.strerror or exc}"
            ) from None
        # A bad --provenance-index URL (plain http off loopback, ...) is a start-up error too.
        from safe_pip.net import SimpleIndex

        SimpleIndex(checker.http, provenance_index)
        # Load the trust root now: a bad --trust-root is a start-up error, not a 503 later.
        from safe_pip.provenance.trust import load_verifier

        load_verifier(checker.trust)
        index = VerifyingIndex(
            checker, upstream, mode=mode, log=log, refresh_clock=True, page_ttl=page_ttl
        )
        try:
            httpd = make_server(index, args.host, args.port, limits)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
                fix="pick another --port (0 chooses a free one) or stop what uses it",
            ) from None
        server = RunningServer(httpd, index)
        index = None  # the server owns it now
        stop = threading.Event()

        def on_signal(signum: int, _frame: object) -> None:
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            server._start()
            exposed = "" if _is_loopback(args.host) else " (reachable from other hosts!)"
            print(f"safe-pip serve: listening on {server.index_url}", flush=True)
            print(
                f"safe-pip serve: upstream {clean(upstream)}, provenance index "
                f"{clean(provenance_index)}, mode {mode}{exposed}; {limits.threads} threads, "
                f"up to {limits.connection_limit} connections; Ctrl-C or SIGTERM stops",
                file=sys.stderr,
                flush=True,
            )
            while not stop.wait(0.5):
                pass
            print(
                f"safe-pip serve: stopping (requests in flight get up to "
                f"{limits.shutdown_timeout:g} s)",
                file=sys.stderr,
                flush=True,
            )
        finally:
            server.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        if index is not None:
            index.close()
        if log is not None:
            log.close()
        store.close()
    return EXIT_OK


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
