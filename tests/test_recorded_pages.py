"""Recorded real index pages (fixtures/pages) are read as their servers wrote them.

- Every page parses: PyPI JSON at API 1.1-1.4 and HTML, a bandersnatch-style mirror whose
  ``_last-serial`` is a string of digits, a real devpi-server page, large real pages.
- A mirror that drops provenance is named as such (could-not-check, "this index serves no
  provenance; see --provenance-index"), never reported as a plain "unsigned".
- A page is fetched and parsed once per run, however many files and history steps use it.
- The PyPI 1.4 page with the real sampleproject 4.0.0 provenance verifies end to end under
  Sigstore's production root (shipped with sigstore), over a loopback replay.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from safe_pip.cli import main
from safe_pip.net import Http, Response, SimpleIndex
from support.fixtures import RecordedPage, realworld_dir, recorded_page, recorded_pages
from support.replay import Replay

PAGES = recorded_pages()
SAMPLE_SDIST = "sampleproject-4.0.0.tar.gz"
SAMPLE_WHEEL = "sampleproject-4.0.0-py3-none-any.whl"


def _parse(page: RecordedPage, http: Http) -> Any:
    index = page.url.rsplit("/", 2)[0] + "/"
    resp = Response(
        200,
        {"Content-Type": page.headers.get("Content-Type", page.content_type)},
        page.body,
        page.url,
    )
    return SimpleIndex(http, index).parse_page(page.project, resp)


def test_fixtures_cover_what_the_issue_lists() -> None:
    names = {p.name for p in PAGES}
    for want in (
        "mirror-sampleproject-json",  # bandersnatch-style, string serial, no provenance keys
        "mirror-sampleproject-html",
        "devpi-sampleproject-json",
        "devpi-sampleproject-html",
        "pypi-sampleproject-1.2-json",
        "pypi-sampleproject-1.3-json",
        "pypi-sampleproject-1.4-json",
        "pypi-sampleproject-1.4-html",
        "mirror-pydantic-core-json",
    ):
        assert want in names
    for page in PAGES:
        assert page.source, page.name  # every recording says where it came from


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_recorded_page_parses(page: RecordedPage) -> None:
    with Http(offline=True) as http:  # parsing needs no network
        parsed = _parse(page, http)
    assert parsed.name == page.project
    assert len(parsed.files) >= 2
    assert all(f.sha256 and len(f.sha256) == 64 for f in parsed.files)
    assert all(f.url and f.url.startswith(("https://", "http://127.0.0.1")) for f in parsed.files)
    if page.name.startswith(("mirror-", "devpi-")) or "-1.2-" in page.name:
        assert parsed.serves_provenance is False  # no provenance keys, API below 1.3
        assert all(f.provenance_url is None for f in parsed.files)
    else:
        assert parsed.serves_provenance is True
        with_prov = {f.filename for f in parsed.files if f.provenance_url}
        assert with_prov == {SAMPLE_SDIST, SAMPLE_WHEEL}
    if page.content_type.endswith("+json"):
        meta = json.loads(page.body)["meta"]
        serial = meta.get("_last-serial")
        assert parsed.last_serial == (int(serial) if serial is not None else None)
    if page.name.endswith("-1.4-json") or page.name.endswith("-1.4-html"):
        assert parsed.status == "active"


def test_bandersnatch_string_serial_is_that_integer() -> None:
    page = recorded_page("mirror-sampleproject-json")
    raw = json.loads(page.body)["meta"]["_last-serial"]
    assert isinstance(raw, str)
    assert raw.isdigit()
    with Http(offline=True) as http:
        assert _parse(page, http).last_serial == int(raw)


def test_large_real_page_parses_in_reasonable_time() -> None:
    page = recorded_page("mirror-pydantic-core-json")
    started = time.monotonic()
    with Http(offline=True) as http:
        parsed = _parse(page, http)
    elapsed = time.monotonic() - started
    assert len(parsed.files) > 15_000
    assert parsed.file(parsed.files[-1].filename) is parsed.files[-1]
    assert elapsed < 20, elapsed


# -- end to end over a loopback replay -----------------------------------------------------------


def _sample_files(page: RecordedPage) -> dict[str, tuple[str, str]]:
    """filename -> (sha256, url) of sampleproject 4.0.0 on the recorded page."""
    data = json.loads(page.body)
    return {
        f["filename"]: (f["hashes"]["sha256"], f["url"])
        for f in data["files"]
        if f["filename"] in (SAMPLE_SDIST, SAMPLE_WHEEL)
    }


def _pylock(path: Path, index: str, files: dict[str, tuple[str, str]]) -> Path:
    lines = [
        'lock-version = "1.0"',
        'created-by = "safe-pip-tests"',
        "",
        "[[packages]]",
        'name = "sampleproject"',
        'version = "4.0.0"',
        f'index = "{index}"',
        "",
        "[packages.sdist]",
        f'name = "{SAMPLE_SDIST}"',
        f'url = "{files[SAMPLE_SDIST][1]}"',
        f'hashes = {{ sha256 = "{files[SAMPLE_SDIST][0]}" }}',
        "",
        "[[packages.wheels]]",
        f'name = "{SAMPLE_WHEEL}"',
        f'url = "{files[SAMPLE_WHEEL][1]}"',
        f'hashes = {{ sha256 = "{files[SAMPLE_WHEEL][0]}" }}',
    ]
    lock = path / "pylock.toml"
    lock.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lock


def _real_provenance() -> dict[str, bytes]:
    """The real provenance of sampleproject 4.0.0's two files (the wheel's attestation wrapped
    in the provenance object PyPI serves around it)."""
    root = realworld_dir()
    sdist = root / "pos-09-sampleproject-4.0.0-sdist-provenance" / f"{SAMPLE_SDIST}.provenance"
    case = root / "pos-10-sampleproject-4.0.0-wheel"
    attestation = json.loads(
        (case / "docs-sampleproject-4.0.0-py3-none-any.whl.attestation.json").read_text()
    )
    publisher = {"kind": "GitHub", "repository": "pypa/sampleproject", "workflow": "release.yml"}
    wheel = {
        "version": 1,
        "attestation_bundles": [{"publisher": publisher, "attestations": [attestation]}],
    }
    base = "/integrity/sampleproject/4.0.0"
    return {
        f"{base}/{SAMPLE_SDIST}/provenance": sdist.read_bytes(),
        f"{base}/{SAMPLE_WHEEL}/provenance": json.dumps(wheel).encode(),
    }


def _verify(
    lock: Path, home: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, list[dict[str, Any]]]:
    code = main(
        [
            "verify",
            str(lock),
            "--embedded-root",
            "--no-cache",
            "--home",
            str(home),
            "--format",
            "json",
            *extra,
        ]
    )
    captured = capsys.readouterr()
    assert captured.out, captured.err
    doc = json.loads(captured.out)
    return code, [f for lock in doc["locks"] for f in lock["files"]]


def test_mirror_without_provenance_is_named_and_its_page_read_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = recorded_page("mirror-sampleproject-json")
    with Replay({"sampleproject": page}).running() as replay:
        lock = _pylock(tmp_path, replay.index_url, _sample_files(page))
        code, files = _verify(lock, tmp_path / "home", capsys)
    assert code == 3, files
    assert len(files) == 2
    for f in files:
        assert f["status"] == "error"
        assert f["detail"] == "no-provenance-served"
        assert "this index serves no provenance" in f["reason"]
        assert "see --provenance-index" in f["reason"]
        assert "--provenance-index" in f["fix"]
    # locate, provenance look-ups (the lock's index is the provenance index) and index history
    # all used the one read of the page
    assert replay.hits["/simple/sampleproject/"] == 1


def test_pypi_1_4_page_with_real_provenance_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = recorded_page("pypi-sampleproject-1.4-json")
    files = _sample_files(page)
    with Replay({"sampleproject": page}, files=_real_provenance()).running() as replay:
        lock = _pylock(tmp_path, replay.index_url, files)
        code, outcomes = _verify(lock, tmp_path / "home", capsys)
        assert replay.hits["/simple/sampleproject/"] == 1
    assert code == 0, outcomes
    for f in outcomes:
        assert f["verified"] is True
        assert f["identity"]["repository"] == "pypa/sampleproject"
    real = {
        SAMPLE_SDIST: realworld_dir()
        / "pos-09-sampleproject-4.0.0-sdist-provenance"
        / SAMPLE_SDIST,
        SAMPLE_WHEEL: realworld_dir() / "pos-10-sampleproject-4.0.0-wheel" / SAMPLE_WHEEL,
    }
    for name, path in real.items():  # the recorded page's digests are the real files' digests
        assert hashlib.sha256(path.read_bytes()).hexdigest() == files[name][0]


def test_mirror_with_provenance_index_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fix the message prints works: --provenance-index at an index that serves it."""
    mirror = recorded_page("mirror-sampleproject-json")
    pypi = recorded_page("pypi-sampleproject-1.4-json")
    with (
        Replay({"sampleproject": mirror}).running() as m,
        Replay({"sampleproject": pypi}, files=_real_provenance()).running() as p,
    ):
        lock = _pylock(tmp_path, m.index_url, _sample_files(mirror))
        code, outcomes = _verify(lock, tmp_path / "home", capsys, "--provenance-index", p.index_url)
    assert code == 0, outcomes
    assert all(f["verified"] for f in outcomes)
