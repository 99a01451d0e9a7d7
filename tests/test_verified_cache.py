"""``safe-pip verify`` keeps only permanent facts between runs: a bundle that verified for a
file (name, sha256) under a trust root. Every run reads the index and the history again and
decides every file again (a quarantine, yank or new release published since the last run is
seen: tests/adversarial/test_state_caches.py); a hit only skips the Sigstore verification."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safe_pip.cli import main
from support.fixtures import recorded_page
from support.replay import Replay
from test_recorded_pages import _pylock, _real_provenance, _sample_files


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def verified_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[tuple[list[str], Path, str, Replay]]:
    """A lock of real PyPI files verified once (exit 0) against the root shipped with
    sigstore; the replayed index keeps answering."""
    page = recorded_page("pypi-sampleproject-1.4-json")
    home = tmp_path / "home"
    with Replay({"sampleproject": page}, files=_real_provenance()).running() as replay:
        lock = _pylock(tmp_path, replay.index_url, _sample_files(page))
        argv = ["verify", str(lock), "--embedded-root", "--home", str(home), "--format", "json"]
        code, out, err = _run(argv, capsys)
        assert code == 0, err
        replay.hits.clear()
        yield argv, home / "cache" / "verified", out, replay


def _no_verifier(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make any Sigstore verification fail loudly; returns the files it was asked for."""
    import safe_pip.provenance.attestation as attestation

    asked: list[str] = []

    def refuse(filename: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(filename)
        raise AssertionError("verified again")

    monkeypatch.setattr(attestation, "verify_provenance", refuse)
    return asked


def test_a_bundle_that_verified_is_not_verified_again_but_the_index_is_read(
    verified_once: tuple[list[str], Path, str, Replay],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv, entries, first, replay = verified_once
    assert sorted(p.name for p in entries.iterdir())  # one entry per verified bundle
    asked = _no_verifier(monkeypatch)
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    assert asked == []
    assert replay.hits  # the index was read again (yank, quarantine, new releases)
    assert json.loads(out)["summary"] == json.loads(first)["summary"]


def test_no_cache_verifies_again(
    verified_once: tuple[list[str], Path, str, Replay],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv, _entries, _first, _replay = verified_once
    asked = _no_verifier(monkeypatch)
    code, _out, _err = _run([*argv, "--no-cache"], capsys)
    assert code != 0  # the (broken) verifier ran: nothing came from the cache
    assert asked


def test_an_entry_others_could_write_or_another_key_is_not_used(
    verified_once: tuple[list[str], Path, str, Replay],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv, entries, _first, _replay = verified_once
    paths = sorted(entries.iterdir())
    asked = _no_verifier(monkeypatch)
    entries.chmod(0o777)  # a directory others can write: its entries could be theirs
    code, _out, _err = _run(argv, capsys)
    assert code != 0
    assert asked
    entries.chmod(0o700)
    asked.clear()
    for p in paths:
        p.chmod(0o666)
    code, _out, _err = _run(argv, capsys)
    assert code != 0
    assert asked
    asked.clear()
    for p in paths:  # an entry moved under another bundle's name
        p.chmod(0o600)
        doc = json.loads(p.read_text())
        doc["key"] = "0" * 64
        p.write_text(json.dumps(doc))
    code, _out, _err = _run(argv, capsys)
    assert code != 0
    assert asked


def test_only_verified_results_are_kept(
    tmp_path: Path, trust_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safe_pip.lock import verified_cache
    from safe_pip.lock.verified_cache import VerifiedBundles
    from safe_pip.models import PublisherIdentity, VerificationResult, VerifyStatus
    from safe_pip.provenance.trust import TrustConfig

    bundles = VerifiedBundles(tmp_path / "v", TrustConfig.from_options(trust_root=trust_root))
    sha = "ab" * 32
    invalid = VerificationResult("x-1-py3-none-any.whl", sha, VerifyStatus.INVALID, "bad")
    bundles.put(b"{}", invalid)
    assert not (tmp_path / "v").exists()
    ok = VerificationResult(
        "x-1-py3-none-any.whl",
        sha,
        VerifyStatus.VERIFIED,
        "ok",
        identity=PublisherIdentity(kind="GitHub", repository="acme/x", workflow="release.yml"),
        integrated_time=1_700_000_000,
    )
    bundles.put(b"{}", ok)
    assert bundles.get("x-1-py3-none-any.whl", sha, b"{}") == ok
    assert bundles.get("x-1-py3-none-any.whl", sha, b"{ }") is None  # other provenance
    assert bundles.get("x-2-py3-none-any.whl", sha, b"{}") is None  # another file
    other = TrustConfig.from_options(offline=True)  # another trust root
    assert VerifiedBundles(tmp_path / "v", other).get("x-1-py3-none-any.whl", sha, b"{}") is None
    assert os.stat(tmp_path / "v").st_mode & 0o077 == 0
    # another verifier (safe-pip's provenance code, sigstore, pypi-attestations) verifies again
    monkeypatch.setattr(verified_cache, "_CODE", "0" * 64)
    assert bundles.get("x-1-py3-none-any.whl", sha, b"{}") is None


def test_a_run_whose_bundles_all_verified_before_does_not_load_sigstore(
    verified_once: tuple[list[str], Path, str, Replay],
) -> None:
    """Start-up: with a root read from a file (here the one shipped with sigstore), the cache
    key digests the file's bytes, so a run whose bundles all verified before never imports
    sigstore's verifier or pypi-attestations (about a third of a warm run's CPU); the index is
    still read and every file decided (the summary is the same)."""
    import subprocess
    import sys

    argv, _entries, first, replay = verified_once
    heavy = ("sigstore.verify", "sigstore.models", "pypi_attestations", "rekor_types")
    code = (
        "import sys\n"
        "from safe_pip.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        f"loaded = sorted(m for m in sys.modules if m.startswith({heavy!r}))\n"
        "print(loaded, file=sys.stderr)\n"
        "sys.exit(rc or (9 if loaded else 0))\n"
    )
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert replay.hits  # the index was read again
    assert json.loads(proc.stdout)["summary"] == json.loads(first)["summary"]


def test_another_root_file_verifies_again(
    verified_once: tuple[list[str], Path, str, Replay],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The key digests the root file's bytes: the same root in other bytes (re-serialised)
    is another key, and the bundles are verified again."""
    from safe_pip.provenance.trust import embedded_trusted_root_path

    argv, _entries, _first, _replay = verified_once
    other = tmp_path / "trusted_root.json"
    other.write_text(json.dumps(json.loads(embedded_trusted_root_path().read_bytes()), indent=3))
    asked = _no_verifier(monkeypatch)
    argv = [a for a in argv if a != "--embedded-root"] + ["--trust-root", str(other)]
    code, _out, _err = _run(argv, capsys)
    assert code != 0
    assert asked


# -- the verified-run cache of whole reports (before ADR 0012) in the same directory ------------


def _old_run_entry(path: Path, key: str) -> Path:
    """What the verified-run cache wrote (json.dump of the stored run), private to this user."""
    doc = {
        "schema": "safe-pip-verified/1",
        "key": key,
        "exit_code": 0,
        "report": "r",
        "summary": "s",
    }
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    return path


def test_a_verify_run_removes_the_old_run_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = recorded_page("pypi-sampleproject-1.4-json")
    home = tmp_path / "home"
    entries = home / "cache" / "verified"
    entries.mkdir(parents=True)
    entries.chmod(0o700)
    old = _old_run_entry(entries / f"{'a' * 64}.json", "a" * 64)
    with Replay({"sampleproject": page}, files=_real_provenance()).running() as replay:
        lock = _pylock(tmp_path, replay.index_url, _sample_files(page))
        argv = ["verify", str(lock), "--embedded-root", "--home", str(home), "--format", "json"]
        code, _out, err = _run(argv, capsys)
    assert code == 0, err
    assert not old.exists()
    assert sorted(entries.glob("*.json"))  # the run's own entries


def test_only_old_run_reports_safe_pip_owns_are_removed(tmp_path: Path, trust_root: Path) -> None:
    from safe_pip.lock.verified_cache import VerifiedBundles, sweep_old_entries
    from safe_pip.models import PublisherIdentity, VerificationResult, VerifyStatus
    from safe_pip.provenance.trust import TrustConfig

    trust = TrustConfig.from_options(trust_root=trust_root)
    root = tmp_path / "v"
    ident = PublisherIdentity(kind="GitHub", repository="acme/x", workflow="release.yml")

    def result(version: str) -> VerificationResult:
        return VerificationResult(
            f"x-{version}-py3-none-any.whl", "ab" * 32, VerifyStatus.VERIFIED, "ok", identity=ident
        )

    VerifiedBundles(root, trust).put(b"{}", result("1"))  # a current entry
    [current] = root.glob("*.json")
    old = _old_run_entry(root / f"{'1' * 64}.json", "1" * 64)
    outside = _old_run_entry(tmp_path / "outside.json", "2" * 64)
    link = root / f"{'2' * 64}.json"
    link.symlink_to(outside)  # named as an entry, pointing out of the directory
    odd = _old_run_entry(root / "notes.json", "3" * 64)  # not named as an entry
    (root / f"{'4' * 64}.json").mkdir()
    fifo = root / f"{'5' * 64}.json"
    os.mkfifo(fifo, 0o600)
    kept = [current, link, odd, root / f"{'4' * 64}.json", fifo]
    if os.geteuid() == 0:  # CI runs as root: a file another user owns
        theirs = _old_run_entry(root / f"{'6' * 64}.json", "6" * 64)
        os.chown(theirs, 65534, 65534)
        kept.append(theirs)

    root.chmod(0o777)  # a directory others can write: nothing in it is touched
    assert sweep_old_entries(root) == 0
    assert old.exists()
    root.chmod(0o700)

    VerifiedBundles(root, trust).put(b"{}", result("2"))  # a run that stores a bundle
    assert not old.exists()
    assert all(os.path.lexists(p) for p in kept)
    assert outside.exists()
    assert VerifiedBundles(root, trust).get("x-1-py3-none-any.whl", "ab" * 32, b"{}") is not None
    assert sweep_old_entries(tmp_path / "missing") == 0
    assert sweep_old_entries(link) == 0  # a link is no directory to sweep
