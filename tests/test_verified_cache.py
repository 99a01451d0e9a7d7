"""A repeated ``safe-pip verify`` of an unchanged lock, with an unchanged policy, trust root and
history, reuses the report of today's run that verified everything (no network at all); any
change to what the verdicts depend on verifies again, and a failed run is never reused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from safe_pip._cli import main
from safe_pip.lock import verified_cache
from support.fixtures import recorded_page
from support.replay import Replay
from test_recorded_pages import _pylock, _real_provenance, _sample_files

REUSED = "its report was reused"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def verified_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[tuple[list[str], Path, str, Replay]]:
    """A lock verified once (exit 0); then the replayed index answers 404 for everything, so
    a run that verifies again fails and shows up in the request log, and a reused one does
    neither (a closed port could be taken by another process's test server meanwhile)."""
    page = recorded_page("pypi-sampleproject-1.4-json")
    home = tmp_path / "home"
    with Replay({"sampleproject": page}, files=_real_provenance()).running() as replay:
        lock = _pylock(tmp_path, replay.index_url, _sample_files(page))
        argv = ["verify", str(lock), "--embedded-root", "--home", str(home), "--format", "json"]
        code, out, err = _run(argv, capsys)
        assert code == 0, err
        assert REUSED not in err
        replay.pages.clear()
        replay.files.clear()
        replay.hits.clear()
        yield argv, lock, out, replay


def test_unchanged_run_is_reused_without_network(
    verified_once: tuple[list[str], Path, str, Replay], capsys: pytest.CaptureFixture[str]
) -> None:
    argv, _lock, first, replay = verified_once
    started = time.monotonic()
    code, out, err = _run(argv, capsys)
    assert time.monotonic() - started < 0.5
    assert code == 0, err
    assert REUSED in err
    assert out == first
    assert json.loads(out)["exit_code"] == 0
    assert not replay.hits  # nothing was asked of the index


def test_any_change_verifies_again(
    verified_once: tuple[list[str], Path, str, Replay],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    argv, lock, _first, replay = verified_once
    policy = tmp_path / "safe-pip.toml"
    policy.write_text("[defaults]\nrequire-attestation = true\n", encoding="utf-8")
    changes = {
        "--no-cache": [*argv, "--no-cache"],
        "another policy": [*argv, "--policy", str(policy)],
        "another format": [*argv[:-1], "sarif"],
    }
    for what, run in changes.items():
        replay.hits.clear()
        code, _out, err = _run(run, capsys)
        assert code != 0, what  # verified again, against an index that now has nothing
        assert REUSED not in err, what
        assert replay.hits, what
    # the lock (one byte)
    lock.write_text(lock.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    replay.hits.clear()
    code, _out, err = _run(argv, capsys)
    assert code != 0
    assert REUSED not in err
    assert replay.hits


def test_history_change_and_failures_are_not_reused(tmp_path: Path) -> None:
    from safe_pip.policy.file import Policy
    from safe_pip.provenance.trust import TrustConfig
    from safe_pip.sources import read_lock

    lock_path = tmp_path / "pylock.toml"
    lock_path.write_text(
        'lock-version = "1.0"\ncreated-by = "t"\n\n[[packages]]\nname = "x"\nversion = "1"\n'
        'directory = { path = "." }\n',
        encoding="utf-8",
    )
    locks = [read_lock(lock_path)]
    key = verified_cache.key(locks, Policy(), TrustConfig(), None, {})
    root = tmp_path / "verified"
    verified_cache.store_run(root, key, "report", "summary", 1)  # a failure: never stored
    assert verified_cache.load(root, key) is None
    verified_cache.store_run(root, key, "report", "summary", 0)
    assert verified_cache.load(root, key) == ("report", "summary")
    # an entry of another key (renamed in place) is not taken
    (root / f"{key}.json").rename(root / f"{'0' * 64}.json")
    assert verified_cache.load(root, "0" * 64) is None
    # a new day is a new key
    from datetime import datetime, timedelta, timezone

    tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
    assert verified_cache.key(locks, Policy(), TrustConfig(), None, {}, now=tomorrow) != key
    # a history record of a locked project (another run recorded or forgot one) is a new key
    from safe_pip.policy.history import HistoryRecord, ProjectHistory
    from safe_pip.store.db import HistoryStore

    class Store:
        def __init__(self, records: tuple[HistoryRecord, ...]) -> None:
            self.records = records

        def project(self, name: str) -> ProjectHistory:
            return ProjectHistory(name, self.records)

    record = HistoryRecord("x", "1", "x-1.tar.gz", "ab" * 32, None, datetime.now(timezone.utc))
    keys = {
        verified_cache.key(locks, Policy(), TrustConfig(), cast(HistoryStore, store), {})
        for store in (Store(()), Store((record,)))
    }
    assert len(keys) == 2


def test_a_change_in_an_included_requirements_file_is_a_new_key(tmp_path: Path) -> None:
    """A requirements lock's ``-r`` include is part of the lock: another hash there (a file
    never verified) must not answer from the run that verified the old one."""
    from safe_pip.policy.file import Policy
    from safe_pip.provenance.trust import TrustConfig
    from safe_pip.sources import read_lock

    top = tmp_path / "requirements.txt"
    top.write_text("-r sub.txt\n", encoding="utf-8")
    sub = tmp_path / "sub.txt"
    keys = set()
    for digest in ("ab" * 32, "cd" * 32):
        sub.write_text(f"x==1.0 --hash=sha256:{digest}\n", encoding="utf-8")
        keys.add(verified_cache.key([read_lock(top)], Policy(), TrustConfig(), None, {}))
    assert len(keys) == 2


def test_an_entry_others_could_write_is_not_reused(tmp_path: Path) -> None:
    """A stored pass in a directory (or a file) group or others can write could be theirs."""
    from safe_pip.policy.file import Policy
    from safe_pip.provenance.trust import TrustConfig
    from safe_pip.sources import read_lock

    lock_path = tmp_path / "requirements.txt"
    lock_path.write_text(f"x==1.0 --hash=sha256:{'ab' * 32}\n", encoding="utf-8")
    key = verified_cache.key([read_lock(lock_path)], Policy(), TrustConfig(), None, {})
    root = tmp_path / "verified"
    verified_cache.store_run(root, key, "report", "summary", 0)
    assert verified_cache.load(root, key) == ("report", "summary")
    root.chmod(0o777)
    assert verified_cache.load(root, key) is None
    root.chmod(0o700)
    (root / f"{key}.json").chmod(0o666)
    assert verified_cache.load(root, key) is None
