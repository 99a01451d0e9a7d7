"""Two ``safe-pip serve`` processes on one PostgreSQL history (a team's replicas): a first use
through one is the expected publisher for the other, and a concurrent first-use race across the
two records one publisher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest

from safe_pip.serve.pages import JSON_V1
from safe_pip.store import open_history
from support.index_server import IndexServer
from support.postgres import PostgresServer
from support.publish import Publisher
from support.sigstore_ca import TestSigstore
from test_serve import EVIL, Reply, get

pytestmark = pytest.mark.slow


class Replica:
    def __init__(self, upstream: IndexServer, history: str, trust_root: Path, tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAFE_PIP_")}
        env["SAFE_PIP_HOME"] = str(tmp / "home")
        env["SAFE_PIP_HISTORY"] = history  # as a team would set it for the service
        env["NO_PROXY"] = "127.0.0.1"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "safe_pip",
                "serve",
                "--port",
                "0",
                "--upstream",
                upstream.index_url,
                "--provenance-index",
                upstream.index_url,
                "--trust-root",
                str(trust_root),
                "--no-index-history",  # only the shared history tells the replicas apart
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise AssertionError(line + self.proc.communicate(timeout=10)[1])
        self.index_url = line.split("listening on ", 1)[1].strip()

    def file(self, name: str) -> Reply:
        page = self.index_url + "alpha/"
        doc = get(page, accept=JSON_V1).json()
        (entry,) = [f for f in doc["files"] if f["filename"] == name]
        return get(urljoin(page, entry["url"]))

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return err


@pytest.fixture
def two(
    postgres: PostgresServer, sigstore: TestSigstore, trust_root: Path, tmp_path: Path
) -> Iterator[tuple[str, IndexServer, IndexServer, Publisher, Publisher]]:
    with IndexServer(tmp_path / "up-a") as up_a, IndexServer(tmp_path / "up-b") as up_b:
        yield (
            postgres.new_database(),
            up_a,
            up_b,
            Publisher(sigstore, up_a, tmp_path / "build-a"),
            Publisher(sigstore, up_b, tmp_path / "build-b"),
        )


def test_first_use_through_one_replica_is_the_expected_publisher_for_the_other(
    two: tuple[str, IndexServer, IndexServer, Publisher, Publisher],
    trust_root: Path,
    tmp_path: Path,
) -> None:
    url, up_a, up_b, pub_a, pub_b = two
    good = pub_a.wheel("alpha", "1.0")
    bad = pub_b.wheel("alpha", "2.0", identity=EVIL)
    a = Replica(up_a, url, trust_root, tmp_path / "a")
    b = Replica(up_b, url, trust_root, tmp_path / "b")
    try:
        assert a.file(good.name).status == 200  # first use: acme/alpha is recorded
        refused = b.file(bad.name)
        assert refused.status == 403
        assert "refused-publisher-change" in refused.reason
    finally:
        a.stop()
        b.stop()
    with open_history(url, readonly=True) as store:
        assert {r.identity.repository for r in store.project("alpha").records if r.identity} == {
            "acme/alpha"
        }


def test_concurrent_first_use_across_two_replicas_records_one_publisher(
    two: tuple[str, IndexServer, IndexServer, Publisher, Publisher],
    trust_root: Path,
    tmp_path: Path,
) -> None:
    url, up_a, up_b, pub_a, pub_b = two
    name_a = pub_a.wheel("alpha", "1.0").name
    name_b = pub_b.wheel("alpha", "1.0", identity=EVIL).name
    a = Replica(up_a, url, trust_root, tmp_path / "a")
    b = Replica(up_b, url, trust_root, tmp_path / "b")
    answers: dict[str, int] = {}
    barrier = threading.Barrier(2)

    def fetch(key: str, replica: Replica, name: str) -> None:
        barrier.wait(timeout=30)
        answers[key] = replica.file(name).status

    try:
        threads = [
            threading.Thread(target=fetch, args=("a", a, name_a)),
            threading.Thread(target=fetch, args=("b", b, name_b)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        # the replica that recorded first serves its file; the other refuses its own, since
        # serve records before it sends (a publisher change now, whichever read came first)
        assert sorted(answers.values()) == [200, 403], answers
    finally:
        a.stop()
        b.stop()
    with open_history(url, readonly=True) as store:
        publishers = {r.identity for r in store.project("alpha").records}
    assert len(publishers) == 1, publishers
