"""The suite proves it is offline: non-loopback network use is refused and fails the test."""

from __future__ import annotations

import os
import socket

import pytest

import conftest


def test_non_loopback_names_and_addresses_are_refused() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("pypi.org", 443)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(ConnectionRefusedError):
            sock.connect(("198.51.100.7", 443))  # TEST-NET-2: never actually contacted
    finally:
        sock.close()
    assert len(conftest._attempts) == 2
    conftest._attempts.clear()  # this test made the attempts on purpose


def test_loopback_is_allowed_and_subprocesses_get_a_dead_proxy() -> None:
    assert socket.getaddrinfo("127.0.0.1", 80)
    assert socket.getaddrinfo("localhost", 80)
    assert os.environ["HTTPS_PROXY"].startswith("http://127.0.0.1:")
    assert "127.0.0.1" in os.environ["NO_PROXY"]
