"""``--offline`` means no network at all, for every command (as in pip and uv): what needs the
network is taken from local evidence (the history store, the provenance cache, --evidence) or
is could-not-check naming what is missing. These tests make every socket connection and name
look-up fail the test while the offline command runs, loopback included."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from safe_pip.cli import main
from support.fixtures import realworld_dir, recorded_page
from support.replay import Replay
from test_recorded_pages import _pylock, _real_provenance, _sample_files

WHEEL_CASE = "pos-10-sampleproject-4.0.0-wheel"
WHEEL = "sampleproject-4.0.0-py3-none-any.whl"
ATTESTATION = "docs-sampleproject-4.0.0-py3-none-any.whl.attestation.json"


class NoSockets:
    def __init__(self) -> None:
        self.attempts: list[str] = []


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> NoSockets:
    return no_sockets_guard(monkeypatch)


def no_sockets_guard(monkeypatch: pytest.MonkeyPatch) -> NoSockets:
    """Any connect / name look-up is recorded and refused (loopback too)."""
    guard = NoSockets()

    def refuse(what: str) -> Any:
        def inner(*args: Any, **kwargs: Any) -> Any:
            guard.attempts.append(f"{what}{args[1:] if what.startswith('socket.') else args}")
            raise OSError(f"--offline test: {what} attempted")

        return inner

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    return guard


def _json(capsys: pytest.CaptureFixture[str]) -> Any:
    captured = capsys.readouterr()
    assert captured.out, captured.err
    return json.loads(captured.out)


def _verify_files(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for lock in doc["locks"] for f in lock["files"]]


def test_inspect_offline_opens_no_socket(
    no_sockets: NoSockets, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = realworld_dir() / WHEEL_CASE
    argv = ["inspect", str(case / WHEEL), "--provenance", str(case / ATTESTATION)]
    argv += ["--offline", "--home", str(tmp_path), "--json"]
    # first sight, and the index history is not on this machine: could-not-check, saying what
    assert main(argv) == 3
    [doc] = _json(capsys)
    assert doc["code"] == "could-not-check"
    assert "index history" in doc["reason"]
    assert "--offline" in doc["reason"]
    assert "--no-index-history" in doc["fix"]
    # deciding from this machine's history alone: verified with the embedded root
    assert main([*argv, "--no-index-history"]) == 0
    [doc] = _json(capsys)
    assert doc["verified"] is True
    assert no_sockets.attempts == []


def test_inspect_release_offline_is_could_not_check(
    no_sockets: NoSockets, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["inspect", "sampleproject==4.0.0", "--offline", "--home", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 3
    assert "--offline allows no network" in captured.err + captured.out
    assert no_sockets.attempts == []


def test_verify_offline_uses_the_cache_and_names_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    page = recorded_page("pypi-sampleproject-1.4-json")
    home = tmp_path / "home"
    # online once: the provenance cache keeps what verified
    with Replay({"sampleproject": page}, files=_real_provenance()).running() as replay:
        lock = _pylock(tmp_path, replay.index_url, _sample_files(page))
        argv = ["verify", str(lock), "--embedded-root", "--home", str(home), "--format", "json"]
        assert main(argv) == 0
        capsys.readouterr()
    guard = no_sockets_guard(monkeypatch)
    offline = ["verify", str(lock), "--offline", "--home", str(home), "--format", "json"]
    # the provenance is local, the index history is not: could-not-check naming it
    assert main(offline) == 3
    files = _verify_files(_json(capsys))
    assert all(f["status"] == "error" for f in files), files
    assert all("index history" in f["reason"] for f in files), files
    # from this machine's history alone: verified from the cache, no network at all
    assert main([*offline, "--no-index-history"]) == 0
    doc = _json(capsys)
    assert all(f["verified"] for f in _verify_files(doc)), doc
    assert doc["trust_root"] == "Sigstore production (root shipped with sigstore)"
    # without the cache: the provenance is what is missing
    assert main([*offline, "--no-index-history", "--no-cache"]) == 3
    files = _verify_files(_json(capsys))
    assert all("--offline allows no network" in f["reason"] for f in files), files
    assert all("provenance" in f["reason"] for f in files)
    assert guard.attempts == []


def test_verify_offline_requirements_without_evidence_says_what_is_missing(
    no_sockets: NoSockets, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("sampleproject==4.0.0 --hash=sha256:" + "ab" * 32 + "\n", encoding="utf-8")
    code = main(["verify", str(req), "--offline", "--home", str(tmp_path), "--format", "json"])
    assert code == 3
    [f] = _verify_files(_json(capsys))
    assert "pinned by hash only" in f["reason"]
    assert "--evidence" in f["fix"]
    assert no_sockets.attempts == []


def test_summary_says_tuf_refresh_only_when_something_was_verified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "t"\n\n[[packages]]\nname = "x"\nversion = "1"\n'
        'directory = { path = "." }\n',
        encoding="utf-8",
    )
    code = main(["verify", str(lock), "--home", str(tmp_path), "--no-cache"])
    out = capsys.readouterr().out
    assert code == 1
    assert "TUF refresh" not in out
    assert "not loaded: nothing needed verifying" in out


def test_verify_missing_lockfile_says_it_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert "missing.toml does not exist" in err
    assert "cannot tell" not in err
