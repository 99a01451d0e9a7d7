"""serve's production HTTP stack: the WSGI application on waitress, health, readiness and
Prometheus metrics scraped over HTTP, bounded connections, slow clients, graceful shutdown and
one log line per client request."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
from prometheus_client.parser import text_string_to_metric_families

from safe_pip.serve.app import ServeApp
from safe_pip.serve.pages import JSON_V1
from support.index_server import Fault, IndexServer
from support.publish import Publisher
from support.sigstore_ca import TestSigstore
from test_serve import EVIL, Env, get, pinned


@pytest.fixture
def env(sigstore: TestSigstore, trust_root: Path, tmp_path: Path) -> Iterator[Env]:
    with IndexServer(tmp_path / "upstream") as upstream:
        e = Env(trust_root, upstream, Publisher(sigstore, upstream, tmp_path / "build"), tmp_path)
        yield e
        e.log.close()
        if e.checker is not None and e.checker.store is not None:
            e.checker.store.close()


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def test_healthz_readyz_and_metrics_over_http(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    env.pub.wheel("alpha", "2.0", identity=EVIL)
    with env.serve(pinned("alpha"), mode="block") as srv:
        assert get(srv.url + "/-/healthz").status == 200
        ready = get(srv.url + "/-/readyz")
        assert ready.status == 200, ready.body
        doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
        ok, bad = doc["files"]
        page = srv.index_url + "alpha/"
        assert get(urljoin(page, ok["url"])).status == 200
        assert get(urljoin(page, bad["url"])).status == 403
        get(srv.index_url + "alpha/", accept=JSON_V1)  # second read: cache hits
        reply = get(srv.url + "/-/metrics")
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.body.decode()
        assert (
            metric(text, "safe_pip_verdicts_total", verdict="allow", code="verified-allowlisted")
            == 1
        )
        assert (
            metric(
                text,
                "safe_pip_verdicts_total",
                verdict="refuse",
                code="refused-unexpected-publisher",
            )
            == 1
        )
        assert metric(text, "safe_pip_verdict_cache_total", result="hit") >= 2
        assert metric(text, "safe_pip_verdict_cache_total", result="miss") == 2
        size = (env.upstream.root / "alpha" / ok["filename"]).stat().st_size
        assert metric(text, "safe_pip_bytes_served_total") == size
        assert metric(text, "safe_pip_upstream_requests_total", kind="page", outcome="ok") >= 2
        assert metric(text, "safe_pip_upstream_requests_total", kind="file", outcome="ok") == 1
        assert metric(text, "safe_pip_upstream_seconds_count", kind="page") >= 2
        assert metric(text, "safe_pip_requests_total", route="file", status="403") == 1
        assert metric(text, "safe_pip_in_flight_requests") == 1  # the scrape itself

        # upstream errors are counted by the status answered; readiness follows upstream
        env.upstream.faults["/simple/beta/"] = Fault(status=500, body=b"down")
        assert get(srv.index_url + "beta/").status == 502
        text = get(srv.url + "/-/metrics").body.decode()
        assert metric(text, "safe_pip_upstream_errors_total", kind="page", status="502") == 1


def test_readyz_fails_when_upstream_or_history_is_down(env: Env) -> None:
    with env.serve() as srv:
        app = srv.app
        assert isinstance(app, ServeApp)
        env.upstream.faults["/simple/safe-pip-readiness-probe/"] = Fault(status=503)
        app._ready = None
        reply = get(srv.url + "/-/readyz")
        assert reply.status == 503
        assert b"not ready: upstream" in reply.body
        assert b"503" in reply.body
        del env.upstream.faults["/simple/safe-pip-readiness-probe/"]
        app._ready = None
        assert get(srv.url + "/-/readyz").status == 200
        assert env.checker is not None
        assert env.checker.store is not None
        env.checker.store.close()  # the history store goes away
        app._ready = None
        reply = get(srv.url + "/-/readyz")
        assert reply.status == 503
        assert b"not ready: history store" in reply.body
        assert get(srv.url + "/-/healthz").status == 200  # alive all the same


def test_readyz_never_shows_the_upstream_password(env: Env) -> None:
    """/-/readyz answers anyone: an upstream URL's credentials stay out of its body."""
    from safe_pip.serve import start_server
    from test_serve import make_checker

    secret = "s3cr3t-token"
    upstream = env.upstream.index_url.replace("http://", f"http://user:{secret}@", 1)
    env.checker = make_checker(env.trust_root, env.tmp / "home", upstream, None)
    env.upstream.faults["/simple/safe-pip-readiness-probe/"] = Fault(status=503)
    with start_server(env.checker, upstream, mode="block", log=env.log) as srv:
        reply = get(srv.url + "/-/readyz")
    assert reply.status == 503
    assert b"not ready: upstream" in reply.body
    assert secret.encode() not in reply.body


def test_one_log_line_per_client_request(env: Env) -> None:
    for v in ("1.0", "1.1", "1.2"):
        env.pub.wheel("alpha", v)
    env.pub.wheel("alpha", "2.0", identity=EVIL)
    with env.serve(pinned("alpha")) as srv:
        assert get(srv.index_url + "alpha/").status == 200
        assert get(srv.url + "/-/healthz").status == 200
    requests = env.events("request")
    assert len(requests) == 1  # probes are not logged per request
    line = requests[0]
    assert line["status"] == 200
    assert line["path"] == "/simple/alpha/"
    # the line sums up the page's verdicts; per-file events stay in the JSON log
    assert (
        line["summary"] == "alpha: 4 files, 3 allowed, 1 refused [refused-unexpected-publisher x1]"
    )
    assert len(env.events("allow")) == 3


def test_method_not_allowed_and_unknown_routes(env: Env) -> None:
    with env.serve() as srv:
        assert get(srv.index_url, method="POST").status == 405
        assert get(srv.url + "/-/nothing").status == 404


def _idle(url: str, n: int) -> list[socket.socket]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    socks = []
    for i in range(n):
        s = socket.create_connection((host, int(port)), timeout=5)
        if i % 2:
            s.sendall(b"GET /simple/ HTTP/1.1\r\nHost: x\r\n")  # a slow loris: never finishes
        socks.append(s)
    return socks


def test_idle_and_slow_clients_do_not_stop_others(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    with env.serve() as srv:
        socks = _idle(srv.url, 200)  # far more than the 16 worker threads
        try:
            started = time.monotonic()
            for _ in range(5):
                assert get(srv.index_url + "alpha/").status == 200
            # a server whose workers idle clients held would answer none of them (60 s
            # channel timeout); a loaded machine may well take some seconds
            assert time.monotonic() - started < 20
        finally:
            for s in socks:
                s.close()


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll ``condition`` until it holds (a loaded machine may take its time; never a fixed
    sleep that hopes it happened)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s in vain until {what}")
        time.sleep(0.01)


def _refuses_connections(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except ConnectionRefusedError:
        return True
    except OSError:  # reset: it waited in the backlog while the listener closed; ask again
        return False
    return False


def test_graceful_shutdown_finishes_in_flight_download_and_refuses_new(env: Env) -> None:
    whl = env.pub.wheel("alpha", "1.0")
    with env.serve() as srv:
        doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
        file_url = urljoin(srv.index_url + "alpha/", doc["files"][0]["url"])
        # upstream holds the file back: the download stays in flight until the test says
        upstream_path = f"/files/alpha/{whl.name}"
        release = threading.Event()
        env.upstream.faults[upstream_path] = Fault(hold=release)
        result: dict[str, object] = {}

        def download() -> None:
            reply = get(file_url)
            result["status"], result["body"] = reply.status, reply.body

        t = threading.Thread(target=download)
        stopper = threading.Thread(target=srv.stop)
        t.start()
        try:
            # serve is reading the file from upstream: the download is in flight
            _wait_until(lambda: env.upstream.hits(upstream_path) >= 1, "the download started")
            stopper.start()
            _wait_until(lambda: _refuses_connections(srv.url), "serve stopped accepting")
        finally:
            release.set()
        t.join(60)
        stopper.join(60)
        assert result["status"] == 200
        assert result["body"] == whl.read_bytes()


def test_shutdown_waits_no_longer_than_its_timeout(env: Env, tmp_path: Path) -> None:
    from safe_pip.serve import start_server
    from safe_pip.serve.runner import ServerLimits
    from test_serve import make_checker

    env.pub.wheel("alpha", "1.0")
    checker = make_checker(env.trust_root, tmp_path / "h2", env.upstream.index_url)
    release = threading.Event()  # upstream never answers while serve shuts down
    env.upstream.faults["/simple/alpha/"] = Fault(hold=release)
    srv = start_server(
        checker, env.upstream.index_url, limits=ServerLimits(shutdown_timeout=0.5), log=env.log
    )

    def slow_request() -> None:
        with contextlib.suppress(OSError):  # cut off when the drain time is over
            get(srv.index_url + "alpha/")

    t = threading.Thread(target=slow_request, daemon=True)
    t.start()
    try:
        _wait_until(lambda: env.upstream.hits("/simple/alpha/") >= 1, "the request is in flight")
        started = time.monotonic()
        srv.stop()
        elapsed = time.monotonic() - started
    finally:
        release.set()
    # 0.5 s of drain and the close; a stop that waited for the request would take 20 s (its
    # own 10 s waits twice) before the held answer came
    assert elapsed < 8
    assert checker.store is not None
    checker.store.close()


def test_queue_depth_warnings_become_one_line_a_minute() -> None:
    import logging

    from safe_pip.serve.runner import _LogToEvents
    from safe_pip.serve.server import EventLog

    log = EventLog(quiet=True, keep=True)
    handler = _LogToEvents(log)
    logger = logging.getLogger("test-waitress-queue")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for depth in range(1, 500):
            logger.warning("Task queue depth is %d", depth)
        logger.warning("total open connections reached the connection limit")
    finally:
        logger.removeHandler(handler)
    texts = [e for e in log.events if e["event"] == "server"]
    assert len(texts) == 2
