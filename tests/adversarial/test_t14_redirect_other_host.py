"""T14: the index redirects a page, a file or a provenance request to another host (here: a
decoy index on another loopback origin). safe-pip refuses the redirect and never contacts the
decoy; the run is "could not check" (exit 3) and nothing is recorded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adversarial.conftest import Env, db_snapshot
from support.index_server import Fault, IndexServer


@pytest.fixture
def decoy(env: Env) -> Iterator[IndexServer]:
    with IndexServer(env.workdir / "decoy") as server:
        yield server


@pytest.mark.parametrize("what", ["page", "file", "provenance"])
def test_redirect_to_another_host_is_refused(env: Env, decoy: IndexServer, what: str) -> None:
    wheel = env.pub.wheel("alpha", "1.0")
    decoy.add_file(wheel, project="alpha")
    path = {
        "page": "/simple/alpha/",
        "file": f"/files/alpha/{wheel.name}",
        "provenance": f"/provenance/alpha/{wheel.name}",
    }[what]
    env.server.faults[path] = Fault(redirect=decoy.url + path)

    run = env.inspect("alpha==1.0", "--record", "--json")

    assert run.code == 3, run.text
    assert "redirect" in run.text
    assert decoy.requests_log == []
    if what != "page":  # the page itself failed: no verdicts, an error message only
        [doc] = run.json()
        assert doc["code"] == "could-not-check"
        assert doc["allowed"] is False
    assert db_snapshot() == []


def test_redirect_to_plain_http_elsewhere_is_refused(env: Env) -> None:
    """An http redirect off loopback (127.0.0.2 would be 'another host' too) is refused before
    any connection is attempted."""
    env.pub.wheel("alpha", "1.0")
    env.server.faults["/simple/alpha/"] = Fault(redirect="http://example.invalid/simple/alpha/")

    run = env.inspect("alpha==1.0", "--record")

    assert run.code == 3, run.text
    assert "redirect" in run.err
    assert db_snapshot() == []


def test_redirect_loop_is_bounded(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.faults["/simple/alpha/"] = Fault(redirect=env.server.url + "/simple/alpha/")

    run = env.inspect("alpha==1.0", "--record")

    assert run.code == 3, run.text
    assert "redirects" in run.err
    assert env.server.hits("/simple/alpha/") <= 7
    assert db_snapshot() == []
