"""Issue 3's "done when", end to end: real signatures from the test Sigstore instance, a real
loopback index, ``safe-pip inspect`` applying the policy file and the history database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from safe_pip.cli import main
from safe_pip.store.sqlite import SQLiteHistoryStore
from support.index_server import IndexServer
from support.publish import Publisher
from support.sigstore_ca import GitHubIdentity, TestSigstore

ACME = GitHubIdentity(repository="acme/alpha", workflow="release.yml")
EVIL = GitHubIdentity(
    repository="evil/alpha", workflow="release.yml", repository_id="6660", repository_owner_id="666"
)
RENAMED = GitHubIdentity(repository="acme/alpha-ng", workflow="release.yml")  # same ids as ACME
RECREATED = GitHubIdentity(repository="acme/alpha", workflow="release.yml", repository_id="9999")


@pytest.fixture
def index(sigstore: TestSigstore, workdir: Path) -> Iterator[tuple[IndexServer, Publisher]]:
    with IndexServer(workdir / "index") as server:
        yield server, Publisher(sigstore, server, workdir / "build")


def inspect(
    capsys: pytest.CaptureFixture[str],
    trust_root: Path,
    server: IndexServer,
    target: str,
    *extra: str,
) -> tuple[int, list[dict[str, object]]]:
    code = main(
        [
            "inspect",
            target,
            "--trust-root",
            str(trust_root),
            "-i",
            server.index_url,
            "--json",
            *extra,
        ]
    )
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_allowlisted_and_unlisted_publishers(
    index: tuple[IndexServer, Publisher],
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, pub = index
    pub.wheel("alpha", "1.0", identity=ACME)
    pub.wheel("alpha", "2.0", identity=EVIL)
    assert main(["allow", "add", "alpha", "--publisher", "github:acme/alpha@release.yml"]) == 0
    capsys.readouterr()
    code, [doc] = inspect(capsys, trust_root, server, "alpha==1.0")
    assert (code, doc["code"]) == (0, "verified-allowlisted")
    assert str(doc["rule"]).startswith("safe-pip.toml:")
    code, [doc] = inspect(capsys, trust_root, server, "alpha==2.0")
    assert (code, doc["code"]) == (1, "refused-unexpected-publisher")
    assert "safe-pip allow add alpha --publisher github:evil/alpha@release.yml" in str(doc["fix"])


def test_first_use_recorded_then_publisher_change(
    index: tuple[IndexServer, Publisher],
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, pub = index
    pub.wheel("alpha", "1.0", identity=ACME)
    pub.wheel("alpha", "1.1", identity=EVIL)
    code, [doc] = inspect(
        capsys, trust_root, server, "alpha==1.0", "--record", "--no-index-history"
    )
    assert (code, doc["code"]) == (0, "verified-first-use")
    with SQLiteHistoryStore.open(readonly=True) as store:
        (record,) = store.project("alpha").records
        assert record.identity is not None
        assert record.identity.repository == "acme/alpha"
        assert record.identity.repository_id == ACME.repository_id
    code, [doc] = inspect(capsys, trust_root, server, "alpha==1.1", "--record")
    assert (code, doc["code"]) == (1, "refused-publisher-change")
    assert "evil/alpha" in str(doc["reason"])
    # "warn": allowed, reported
    (workdir / "safe-pip.toml").write_text('[defaults]\non-publisher-change = "warn"\n')
    code, [doc] = inspect(capsys, trust_root, server, "alpha==1.1")
    assert (code, doc["code"], doc["verdict"]) == (0, "refused-publisher-change", "warn")


def test_rename_and_recreation_are_told_apart(
    index: tuple[IndexServer, Publisher], trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, pub = index
    pub.wheel("alpha", "1.0", identity=ACME)
    pub.wheel("alpha", "2.0", identity=RENAMED)
    pub.wheel("alpha", "3.0", identity=RECREATED)
    inspect(capsys, trust_root, server, "alpha==1.0", "--record", "--no-index-history")
    code, [doc] = inspect(capsys, trust_root, server, "alpha==2.0")
    assert (code, doc["code"]) == (1, "refused-publisher-change")
    assert "renamed to acme/alpha-ng" in str(doc["reason"])
    code, [doc] = inspect(capsys, trust_root, server, "alpha==3.0")
    assert (code, doc["code"]) == (1, "refused-publisher-change")
    assert "re-created" in str(doc["reason"])
    assert (
        "safe-pip allow add alpha --publisher github:acme/alpha@release.yml --repository-id"
        in str(doc["fix"])
    )


def test_downgrade_caught_on_first_sight_from_index_history(
    index: tuple[IndexServer, Publisher], trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, pub = index
    pub.wheel("alpha", "1.0", identity=ACME)
    pub.wheel("alpha", "1.1", identity=ACME)
    pub.wheel("alpha", "1.2", signed=False)
    with SQLiteHistoryStore.open(readonly=True) as store:
        assert store.project("alpha").is_empty  # nothing local: first sight
    code, [doc] = inspect(capsys, trust_root, server, "alpha==1.2")
    assert (code, doc["code"]) == (1, "refused-attestation-downgrade")
    assert "read from the index" in str(doc["reason"])
    # A different publisher on first sight is caught the same way.
    pub.wheel("alpha", "1.3", identity=EVIL)
    code, [doc] = inspect(capsys, trust_root, server, "alpha==1.3")
    assert (code, doc["code"]) == (1, "refused-publisher-change")


def test_unsigned_exception_exact_versions_and_expiry(
    index: tuple[IndexServer, Publisher],
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, pub = index
    pub.wheel("six", "1.16.0", signed=False)
    pub.wheel("six", "1.17.0", signed=False)
    future = (date.today() + timedelta(days=30)).isoformat()
    assert (
        main(
            [
                "allow",
                "unsigned",
                "six",
                "--versions",
                "==1.16.0",
                "--reason",
                "no attestations",
                "--expires",
                future,
            ]
        )
        == 0
    )
    capsys.readouterr()
    code, [doc] = inspect(capsys, trust_root, server, "six==1.16.0")
    assert (code, doc["code"]) == (0, "unsigned-allowed")
    code, [doc] = inspect(capsys, trust_root, server, "six==1.17.0")
    assert (code, doc["code"]) == (1, "refused-unsigned")
    assert "covers ==1.16.0, not 1.17.0" in str(doc["reason"])
    past = (date.today() - timedelta(days=1)).isoformat()
    policy = workdir / "safe-pip.toml"
    policy.write_text(policy.read_text().replace(future, past))
    code, [doc] = inspect(capsys, trust_root, server, "six==1.16.0")
    assert (code, doc["code"]) == (1, "refused-unsigned")
    assert f"expired on {past}" in str(doc["reason"])
