"""``verify --save-evidence`` bundles seed a CI run: the index history read online (the earlier
releases' files and provenance) is saved, and a later ``--evidence`` run, with no network,
re-verifies it and decides with it. A lock entry that pins attestation-identities skips the
index history (the lock names the publisher)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safe_pip.cli import main
from support.index_server import IndexServer
from support.packages import sha256_file
from support.publish import Publisher
from support.sigstore_ca import GitHubIdentity, TestSigstore

ACME = GitHubIdentity(repository="acme/flip")
EVIL = GitHubIdentity(repository="evil/flip")


@pytest.fixture
def flip(sigstore: TestSigstore, tmp_path: Path) -> Iterator[IndexServer]:
    """flip 1.0 published by acme/flip, 2.0 by evil/flip (a publisher change)."""
    with IndexServer(tmp_path / "index") as server:
        pub = Publisher(sigstore, server, tmp_path / "build")
        pub.wheel("flip", "1.0", identity=ACME)
        pub.wheel("flip", "2.0", identity=EVIL)
        yield server


def _lock_of_2_0(server: IndexServer, path: Path, pin: str | None = None) -> Path:
    dist = next(d for d in server.dists("flip") if d.version == "2.0")
    lines = [
        'lock-version = "1.0"',
        'created-by = "t"',
        "",
        "[[packages]]",
        'name = "flip"',
        'version = "2.0"',
        f'index = "{server.index_url}"',
        "",
        "[[packages.wheels]]",
        f'name = "{dist.filename}"',
        f'url = "{server.file_url("flip", dist.filename)}"',
        f'hashes = {{ sha256 = "{sha256_file(dist.path)}" }}',
    ]
    if pin:
        lines += ["", "[[packages.attestation-identities]]", 'kind = "GitHub"']
        lines += [f'repository = "{pin}"', 'workflow = "release.yml"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _verify(
    argv: list[str], trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[dict[str, Any]]]:
    capsys.readouterr()
    code = main(["verify", *argv, "--trust-root", str(trust_root), "--format", "json"])
    captured = capsys.readouterr()
    assert captured.out, captured.err
    doc = json.loads(captured.out)
    return code, [f for lock in doc["locks"] for f in lock["files"]]


def test_saved_history_seeds_an_offline_ci_run(
    flip: IndexServer,
    tmp_path: Path,
    trust_root: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lock = _lock_of_2_0(flip, tmp_path / "pylock.toml")
    home = ["--home", str(tmp_path / "home"), "--no-cache"]
    evidence = tmp_path / "evidence"
    code, files = _verify([str(lock), *home, "--save-evidence", str(evidence)], trust_root, capsys)
    assert code == 1  # online: 1.0 by acme/flip, then 2.0 by evil/flip
    assert files[0]["code"] == "refused-publisher-change", files
    manifest = json.loads((evidence / "safe-pip-evidence.json").read_text())
    saved = {e["version"] for e in manifest["history"]["flip"]}
    assert "1.0" in saved  # the earlier release, with its provenance

    def no_network(*_a: object, **_k: object) -> None:
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    # the CI run: no network, and the same refusal (before, an evidence run had no history
    # and trusted evil/flip on first use)
    code, files = _verify([str(lock), *home, "--evidence", str(evidence)], trust_root, capsys)
    assert code == 1
    assert files[0]["code"] == "refused-publisher-change", files
    # a bundle whose history lacks a project cannot decide it: could-not-check, named
    manifest["history"] = {}
    (evidence / "safe-pip-evidence.json").write_text(json.dumps(manifest), encoding="utf-8")
    code, files = _verify([str(lock), *home, "--evidence", str(evidence)], trust_root, capsys)
    assert code == 3
    assert "no index history for flip" in files[0]["reason"]


def test_pinned_identities_skip_the_index_history(
    flip: IndexServer, tmp_path: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = _lock_of_2_0(flip, tmp_path / "pylock.toml", pin="evil/flip")
    old = next(d for d in flip.dists("flip") if d.version == "1.0")
    before = len(flip.requests_log)
    home = ["--home", str(tmp_path / "home"), "--no-cache"]
    code, files = _verify([str(lock), *home], trust_root, capsys)
    assert code == 0, files  # the lock names the publisher; only 2.0's provenance was read
    assert files[0]["rule"] == "pylock attestation-identities"
    assert not any(old.filename in p for p in flip.requests_log[before:])
