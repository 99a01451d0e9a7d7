"""Prometheus metrics of ``safe-pip serve`` (served at ``/-/metrics``).

Each :class:`Metrics` has its own registry, so several servers in one process (tests, library
use) never share or clash on counters. The names:

- ``safe_pip_verdicts_total{verdict, code}``: decisions made (not cache hits), by reason code.
- ``safe_pip_verdict_cache_total{result}``: ``hit`` / ``miss`` per file on a page read.
- ``safe_pip_upstream_requests_total{kind, outcome}`` and
  ``safe_pip_upstream_seconds{kind}``: upstream page reads and file downloads (``ok`` /
  ``error``), with their latency.
- ``safe_pip_upstream_errors_total{kind, status}``: upstream failures by the HTTP status we
  answered.
- ``safe_pip_requests_total{route, status}``, ``safe_pip_request_seconds{route}``: client
  requests.
- ``safe_pip_bytes_served_total``: verified file bytes handed to clients.
- ``safe_pip_in_flight_requests``: client requests being answered now.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.verdicts = Counter(
            "safe_pip_verdicts",
            "Files decided, by verdict and reason code",
            ["verdict", "code"],
            registry=r,
        )
        self.cache = Counter(
            "safe_pip_verdict_cache",
            "Verdict cache look-ups on page reads",
            ["result"],
            registry=r,
        )
        self.upstream_requests = Counter(
            "safe_pip_upstream_requests",
            "Upstream page reads and file downloads",
            ["kind", "outcome"],
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "safe_pip_upstream_seconds",
            "Upstream latency",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "safe_pip_upstream_errors",
            "Upstream failures, by the HTTP status answered",
            ["kind", "status"],
            registry=r,
        )
        self.requests = Counter(
            "safe_pip_requests", "Client requests", ["route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "safe_pip_request_seconds",
            "Client request latency",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.bytes_served = Counter(
            "safe_pip_bytes_served", "Verified file bytes handed to clients", registry=r
        )
        self.in_flight = Gauge(
            "safe_pip_in_flight_requests", "Client requests being answered", registry=r
        )

    # -- called by VerifyingIndex (its ``observer``) ---------------------------------------------

    def verdict(self, verdict: str, code: str) -> None:
        self.verdicts.labels(verdict=verdict, code=code).inc()

    def cache_lookups(self, hits: int, misses: int) -> None:
        if hits:
            self.cache.labels(result="hit").inc(hits)
        if misses:
            self.cache.labels(result="miss").inc(misses)

    def upstream(self, kind: str, seconds: float, status: int | None) -> None:
        """One upstream page read or download; ``status`` is the HTTP status we answered
        when it failed (None: it worked)."""
        self.upstream_seconds.labels(kind=kind).observe(seconds)
        self.upstream_requests.labels(kind=kind, outcome="ok" if status is None else "error").inc()
        if status is not None:
            self.upstream_errors.labels(kind=kind, status=str(status)).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
