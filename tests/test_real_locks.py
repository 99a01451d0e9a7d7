"""Lockfiles made by real tools (fixtures/locks: pip lock, uv lock / uv export, pip-compile,
Poetry, PDM) are read with every package at its line, and verified against the recorded real
pages of their projects (a loopback replay of this machine's PyPI mirror, which serves no
provenance): every file is located on its page, and each one is could-not-check naming the
mirror, never not-on-index or hash-mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safe_pip.cli import main
from safe_pip.sources import read_lock
from support.fixtures import LOCKS, recorded_pages
from support.replay import Replay

PROJECTS = {
    "certifi",
    "charset-normalizer",
    "idna",
    "peppercorn",
    "requests",
    "sampleproject",
    "urllib3",
}
#: (lock, reader, files it names, the tool's own project entry or None)
REAL_LOCKS = [
    ("pip/pylock.toml", "pylock", 7, None),
    ("uv/uv.lock", "uv", 167, "demo-app"),  # editable: reported as local-source
    ("uv/requirements.txt", "requirements", 167, "."),
    ("uv/pylock.toml", "pylock", 167, "demo-app"),
    ("pip-tools/requirements.txt", "requirements", 183, None),
    ("poetry/poetry.lock", "poetry", 183, None),
    ("pdm/pdm.lock", "pdm", 167, None),
]
IDS = [lock for lock, *_ in REAL_LOCKS]


@pytest.mark.parametrize(("rel", "fmt", "count", "own"), REAL_LOCKS, ids=IDS)
def test_real_lock_is_read_at_its_lines(rel: str, fmt: str, count: int, own: str | None) -> None:
    path = LOCKS / rel
    lock = read_lock(path)
    assert lock.format == fmt
    assert lock.file_count == count
    names = {p.name for p in lock.packages}
    assert names - {own} == PROJECTS
    lines = path.read_text(encoding="utf-8").splitlines()
    for pkg in lock.packages:
        if pkg.name == own:
            assert pkg.unsupported is not None
            continue
        assert pkg.unsupported is None, pkg
        assert pkg.name in lines[pkg.line - 1] or "[[package" in lines[pkg.line - 1]
        for f in pkg.files:
            assert f.sha256 is not None
            assert f.line is not None
            assert f.sha256 in lines[f.line - 1], (pkg.name, f.filename)  # the file's own line
        for sha in pkg.hashes:
            assert any(sha in line for line in lines[pkg.line - 1 : pkg.line + 200])


@pytest.fixture(scope="module")
def mirror_pages() -> dict[str, object]:
    return {p.project: p for p in recorded_pages() if p.name == f"mirror-{p.project}-json"}


@pytest.mark.parametrize(("rel", "fmt", "count", "own"), REAL_LOCKS, ids=IDS)
def test_real_lock_verifies_against_recorded_mirror_pages(
    rel: str,
    fmt: str,
    count: int,
    own: str | None,
    mirror_pages: dict[str, object],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pages = {name: mirror_pages[name] for name in PROJECTS}
    with Replay(pages).running() as replay:  # type: ignore[arg-type]
        code = main(
            [
                "verify",
                str(LOCKS / rel),
                "-i",
                replay.index_url,
                "--embedded-root",
                "--no-cache",
                "--home",
                str(tmp_path),
                "--format",
                "json",
            ]
        )
        hits = dict(replay.hits)
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    files = [f for lock in doc["locks"] for f in lock["files"]]
    by_code: dict[str, int] = {}
    for f in files:
        key = f"{f['code']}/{f['detail']}"
        by_code[key] = by_code.get(key, 0) + 1
    located = [f for f in files if f["package"] != own]
    assert all(f["detail"] == "no-provenance-served" for f in located), by_code
    assert all("this index serves no provenance" in f["reason"] for f in located)
    assert len(located) == count
    if own is None:
        assert code == 3, by_code
    else:
        assert code == 1  # the project's own entry fails (not an index release) ...
        [entry] = [f for f in files if f["package"] == own]
        # local code, allowed only by the policy: the same in uv.lock and uv export's output
        assert entry["code"] == "local-source"
        assert "allow-local-sources = true" in entry["fix"]
        if fmt != "uv":  # the export's fix also names uv's own option
            assert "uv export --no-emit-project" in entry["fix"]
    # one read of each project's page, for locating, provenance and index history alike
    assert {path: n for path, n in hits.items() if path.startswith("/simple/")} == {
        f"/simple/{name}/": 1 for name in PROJECTS
    }
