"""Shared fixtures: the test Sigstore instance, its trust root, isolation from the machine's
pip configuration and from the user's safe-pip state, and proof that tests stay offline.

No test may reach anything but loopback. In this process, ``socket.getaddrinfo`` and
``socket.connect`` refuse every other address and the attempt fails the test; subprocesses
(pip, uv, safe-pip) get a dead proxy for every non-loopback host.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from support.postgres import PostgresServer, find_bindir
from support.sigstore_ca import TestSigstore

# Property tests draw the same examples on every run (seeded from each test): CI runs once, and
# a rare example that fails must fail here first, not flake there. Nor does the machine's load
# decide: no per-example deadline, no "data generation too slow" health check. Loaded before any
# test module is imported, so @settings on a test inherits it.
settings.register_profile(
    "safe-pip-deterministic",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("safe-pip-deterministic")

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}
_attempts: list[str] = []
_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str) or host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_loopback(host):
        _attempts.append(f"getaddrinfo({host!r})")
        raise socket.gaierror(socket.EAI_NONAME, f"tests are offline: {host!r} refused")
    return _real_getaddrinfo(host, *args, **kwargs)


_DEAD_PROXY_PORT = 9  # discard: nothing listens; proxied requests to the outside end here


def _target_ok(sock: socket.socket, address: Any) -> bool:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return True
    if isinstance(address, tuple) and len(address) > 1 and address[1] == _DEAD_PROXY_PORT:
        return False  # a request for a non-loopback host, sent to the dead proxy
    return _is_loopback(address[0] if isinstance(address, tuple) else address)


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if not _target_ok(self, address):
        _attempts.append(f"connect({address!r})")
        raise ConnectionRefusedError(f"tests are offline: {address!r} refused")
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if not _target_ok(self, address):
        _attempts.append(f"connect_ex({address!r})")
        return 111  # ECONNREFUSED
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refuse, record and fail any non-loopback network use by the test."""
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    dead_proxy = f"http://127.0.0.1:{_DEAD_PROXY_PORT}"
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(var, dead_proxy)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost,::1")
    del _attempts[:]
    yield
    attempts, _attempts[:] = list(_attempts), []
    if attempts:
        pytest.fail(f"test tried to reach the network: {', '.join(attempts[:5])}")


@pytest.fixture(autouse=True)
def _isolate_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the machine's pip config or the user's safe-pip home/policy."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("PIP_NO_INPUT", "1")
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONSTRAINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SAFE_PIP_HOME", str(tmp_path_factory.mktemp("safe-pip-home")))
    monkeypatch.delenv("SAFE_PIP_POLICY", raising=False)
    monkeypatch.delenv("SAFE_PIP_TRUST_ROOT", raising=False)
    monkeypatch.delenv("SAFE_PIP_HISTORY", raising=False)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (unix socket in a temporary directory).
    Skipped only outside CI when the server binaries are missing; .ci/run installs them."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries not found (initdb, pg_ctl); see .ci/run")
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    server = PostgresServer(bindir).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sigstore() -> TestSigstore:
    """One test Sigstore instance (CA, CT log, transparency log) for the session."""
    return TestSigstore()


@pytest.fixture(scope="session")
def trust_root(sigstore: TestSigstore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The instance's trusted_root.json on disk (what --trust-root takes)."""
    return sigstore.write_trusted_root(tmp_path_factory.mktemp("trust") / "trusted_root.json")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary current directory (so no stray safe-pip.toml is picked up)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
