"""``safe-pip history``: show, forget (logged), export / import, and bad databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import pytest

from safe_pip.cli import main
from safe_pip.models import PublisherIdentity
from safe_pip.policy.history import HistoryRecord
from safe_pip.store.sqlite import SQLiteHistoryStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
A = PublisherIdentity(
    kind="GitHub",
    repository="acme/widget",
    workflow="release.yml",
    repository_id="100",
    repository_owner_id="10",
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def populate(home: Path) -> Path:
    path = home / "history.sqlite3"
    with SQLiteHistoryStore.open(path) as store:
        store.record(
            [
                HistoryRecord("widget", "1.0", "widget-1.0.whl", "a" * 64, A, T0, None, "index"),
                HistoryRecord("widget", "1.1", "widget-1.1.whl", "b" * 64, A, T0, None, "local"),
                HistoryRecord("six", "1.16.0", "six-1.16.0.whl", "c" * 64, None, T0, None, "local"),
            ]
        )
    return path


def test_show_without_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "history", "show", "--home", str(tmp_path / "h"))
    assert code == 0
    assert "no history yet" in out
    assert not (tmp_path / "h").exists()
    code, out, _ = run(capsys, "history", "show", "--home", str(tmp_path / "h"), "--json")
    assert json.loads(out)["projects"] == []


def test_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    populate(tmp_path)
    code, out, _ = run(capsys, "history", "show", "--home", str(tmp_path))
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split() == ["PROJECT", "RECORDS", "ATTESTED", "PUBLISHERS", "LAST", "SEEN"]
    assert lines[2].split()[:4] == ["six", "1", "0", "0"]
    assert lines[3].split()[:4] == ["widget", "2", "2", "1"]

    code, out, _ = run(capsys, "history", "show", "Widget", "--home", str(tmp_path))
    assert code == 0
    assert "widget: 2 record(s)" in out
    assert "GitHub acme/widget @ release.yml (repository id 100, repository owner id 10)" in out
    assert "index" in out
    code, out, _ = run(capsys, "history", "show", "six", "--home", str(tmp_path))
    assert "never seen attested" in out
    assert "(unsigned)" in out

    code, out, _ = run(capsys, "history", "show", "widget", "--json", "--home", str(tmp_path))
    doc = json.loads(out)
    assert doc["project"] == "widget"
    assert doc["publishers"] == [A.to_json()]
    assert [r["version"] for r in doc["records"]] == ["1.0", "1.1"]


def test_show_uses_safe_pip_home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(tmp_path)
    monkeypatch.setenv("SAFE_PIP_HOME", str(tmp_path))
    code, out, _ = run(capsys, "history", "show", "--json")
    assert code == 0
    assert {p["project"] for p in json.loads(out)["projects"]} == {"six", "widget"}


def test_show_sanitises_index_strings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with SQLiteHistoryStore.open(tmp_path / "history.sqlite3") as store:
        store.record(
            [HistoryRecord("evil", "1\x1b[2J", "evil\x1b]0;pwned\x07.whl", "d" * 64, None, T0)]
        )
    code, out, _ = run(capsys, "history", "show", "evil", "--home", str(tmp_path))
    assert code == 0
    assert "\x1b" not in out
    assert "\\x1b" in out


def test_forget_requires_reason_and_is_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(tmp_path)
    code, _, err = run(capsys, "history", "forget", "widget", "--home", str(tmp_path))
    assert code == 2
    assert "--reason" in err
    code, _, err = run(
        capsys, "history", "forget", "widget", "--reason", " ", "--home", str(tmp_path)
    )
    assert code == 2
    code, out, _ = run(
        capsys,
        "history",
        "forget",
        "Widget",
        "--reason",
        "repo re-created by owner (checked)",
        "--home",
        str(tmp_path),
    )
    assert code == 0
    assert "forgot 2 record(s) of widget" in out
    code, out, _ = run(capsys, "history", "show", "widget", "--home", str(tmp_path))
    assert "no history for widget" in out
    assert "forget: 2 record(s), reason: repo re-created by owner (checked)" in out
    code, out, _ = run(capsys, "history", "show", "widget", "--json", "--home", str(tmp_path))
    (entry,) = json.loads(out)["audit"]
    assert entry["action"] == "forget"
    assert entry["count"] == 2


def test_export_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    populate(tmp_path / "a")
    code, out, _ = run(capsys, "history", "export", "--home", str(tmp_path / "a"))
    assert code == 0
    stdout_doc = json.loads(out)
    assert stdout_doc["format"] == "safe-pip-history"
    assert len(stdout_doc["records"]) == 3

    target = tmp_path / "baseline.json"
    code, _, err = run(capsys, "history", "export", str(target), "--home", str(tmp_path / "a"))
    assert code == 0
    assert "wrote 3 record(s)" in err
    assert json.loads(target.read_text())["records"] == stdout_doc["records"]

    code, out, _ = run(capsys, "history", "import", str(target), "--home", str(tmp_path / "b"))
    assert code == 0
    assert "imported 3 new record(s) of 3" in out
    code, out, _ = run(capsys, "history", "import", str(target), "--home", str(tmp_path / "b"))
    assert "imported 0 new record(s) of 3" in out
    with (
        SQLiteHistoryStore.open(tmp_path / "a" / "history.sqlite3") as a,
        SQLiteHistoryStore.open(tmp_path / "b" / "history.sqlite3") as b,
    ):
        assert a.project("widget") == b.project("widget")
        assert a.project("six") == b.project("six")


EVIL = {
    "kind": "GitHub",
    "repository": "evil/widget",
    "workflow": "release.yml",
    "repository_id": "666",
    "repository_owner_id": "66",
}
RECREATED = {**A.to_json(), "repository_id": "666"}  # same name, another repository


def _baseline_with(home: Path, tmp: Path, identity: Mapping[str, object]) -> Path:
    """An export of ``home`` plus one record of widget 2.0 claiming ``identity``."""
    with SQLiteHistoryStore.open(home / "history.sqlite3", readonly=True) as store:
        doc = store.export()
    doc["records"].append(
        {
            "project": "widget",
            "version": "2.0",
            "filename": "widget-2.0.whl",
            "sha256": "d" * 64,
            "identity": identity,
            "seen_at": T0.isoformat(),
            "index": None,
            "source": "local",
        }
    )
    path = tmp / "baseline.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("identity", "shown"),
    [
        (EVIL, "evil/widget @ release.yml (repository id 666"),
        (RECREATED, "acme/widget @ release.yml (repository id 666"),
    ],
    ids=["other-repository", "re-created-repository"],
)
def test_import_refuses_a_publisher_beside_the_known_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], identity: dict[str, object], shown: str
) -> None:
    home = tmp_path / "h"
    populate(home)
    baseline = _baseline_with(home, tmp_path, identity)
    with SQLiteHistoryStore.open(home / "history.sqlite3", readonly=True) as store:
        before = (store.export()["records"], store.audit_log())

    code, out, err = run(capsys, "history", "import", str(baseline), "--home", str(home))
    assert code == 1
    assert out == ""
    assert "would change the publisher of a project's history 1 time(s)" in err
    assert "nothing was imported" in err
    assert f"[1] widget: GitHub {shown}" in err
    assert "known here: GitHub acme/widget @ release.yml (repository id 100" in err
    assert "--accept-new-publishers" in err
    assert "Traceback" not in err
    with SQLiteHistoryStore.open(home / "history.sqlite3", readonly=True) as store:
        assert (store.export()["records"], store.audit_log()) == before  # nothing written

    code, out, err = run(
        capsys,
        "history",
        "import",
        str(baseline),
        "--accept-new-publishers",
        "--home",
        str(home),
    )
    assert code == 0, err
    assert "imported 1 new record(s) of 4" in out
    assert "added 1 publisher change(s) to the history" in out
    assert f"widget: GitHub {shown}" in out
    with SQLiteHistoryStore.open(home / "history.sqlite3", readonly=True) as store:
        assert {r.version for r in store.project("widget").records} == {"1.0", "1.1", "2.0"}
        (entry,) = store.audit_log("widget")
        assert entry.action == "import-new-publisher"
        assert entry.count == 1
        assert "--accept-new-publishers" in entry.reason
        assert entry.detail[0]["repository_id"] == "666"
    code, out, _ = run(capsys, "history", "show", "widget", "--home", str(home))
    assert "import-new-publisher: 1 record(s)" in out


@pytest.mark.parametrize(
    "identity",
    [
        A.to_json(),
        {"kind": "GitHub", "repository": "ACME/Widget", "workflow": "release.yml"},  # no ids
        {**A.to_json(), "environment": "release"},
    ],
    ids=["same", "same-without-ids", "same-with-environment"],
)
def test_import_of_the_known_publisher_needs_no_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], identity: dict[str, object]
) -> None:
    home = tmp_path / "h"
    populate(home)
    baseline = _baseline_with(home, tmp_path, identity)
    code, out, err = run(capsys, "history", "import", str(baseline), "--home", str(home))
    assert code == 0, err
    assert "imported 1 new record(s) of 4" in out
    assert "publisher change(s)" not in out


def test_import_seeds_projects_unknown_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A baseline's purpose: projects with no attested history here take its publisher. A
    publisher change within the baseline's own sequence (acme's 1.0 and 1.1, then evil's 2.0)
    is a change like any other: listed, and imported only with --accept-new-publishers."""
    populate(tmp_path / "a")
    home = tmp_path / "b"
    baseline = _baseline_with(tmp_path / "a", tmp_path, A.to_json())
    code, out, err = run(capsys, "history", "import", str(baseline), "--home", str(home))
    assert code == 0, err
    assert "imported 4 new record(s) of 4" in out
    assert "publisher change(s)" not in out

    home = tmp_path / "c"
    baseline = _baseline_with(tmp_path / "a", tmp_path, EVIL)
    code, out, err = run(capsys, "history", "import", str(baseline), "--home", str(home))
    assert code == 1, out
    assert "[1] widget: GitHub evil/widget @ release.yml (repository id 666" in err
    assert "from widget 2.0" in err
    code, out, err = run(
        capsys, "history", "import", str(baseline), "--accept-new-publishers", "--home", str(home)
    )
    assert code == 0, err
    assert "imported 4 new record(s) of 4" in out
    assert "added 1 publisher change(s) to the history" in out


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "baseline.json:1: not JSON"),
        ("[]", "not a safe-pip history export"),
        ('{"format": "safe-pip-history", "version": 7, "records": []}', "version 7"),
        (
            '{"format": "safe-pip-history", "version": 1, "records": [{"project": "x"}]}',
            "records[0]",
        ),
    ],
)
def test_import_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, fragment: str
) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(content)
    code, _, err = run(capsys, "history", "import", str(path), "--home", str(tmp_path / "h"))
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err
    with SQLiteHistoryStore.open(tmp_path / "h" / "history.sqlite3", readonly=True) as s:
        assert s.projects() == []


def test_import_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "history", "import", str(tmp_path / "nope.json"))
    assert code == 2
    assert "cannot read" in err


@pytest.mark.parametrize(
    "argv", [["show"], ["show", "x"], ["forget", "x", "--reason", "r"], ["export"]]
)
def test_corrupt_database_stops_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    db = tmp_path / "history.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    os.chmod(db, 0o600)
    before = db.read_bytes()
    code, _, err = run(capsys, "history", *argv, "--home", str(tmp_path))
    assert code == 3
    assert "not a SQLite database" in err
    assert "never resets" in err
    assert db.read_bytes() == before


def test_history_without_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "history")
    assert code == 2
    assert "show" in err


@pytest.mark.slow
def test_real_subprocess(tmp_path: Path) -> None:
    populate(tmp_path)
    env = dict(os.environ)
    env.pop("SAFE_PIP_HOME", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "safe_pip",
            "history",
            "show",
            "widget",
            "--json",
            "--home",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["records"]) == 2
