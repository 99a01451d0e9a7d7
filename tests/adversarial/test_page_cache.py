"""Index pages kept between ``safe-pip verify`` runs (safe_pip.net.pagecache, ADR 0014).

A repeat run asks the index for every page again, conditionally on the page it kept: a 304
reuses the kept page's parsed form, a 200 replaces it. Each test drives real signed lab
packages through the CLI and shows one defence: the kept page is used only when the index
confirmed exactly that page (its validator, URL and serial), only when it is this user's own
unchanged file, never across indexes, and never in place of a verdict (a quarantine, the
policy or the clock decide every run).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import safe_pip.net.pagecache as pagecache
import safe_pip.net.simple as simple
from adversarial.conftest import Env, Run
from safe_pip.net.pagecache import PageCache, cache_dir
from safe_pip.net.session import Http, Limits, Response
from support.index_server import Fault, IndexServer
from support.publish import Publisher
from verify_helpers import pylock_text

PAGE = "/simple/alpha/"


def _pages_dir() -> Path:
    return cache_dir(os.environ["SAFE_PIP_HOME"])


def _entry() -> Path:
    entries = sorted(_pages_dir().glob("*.page"))
    assert len(entries) == 1, entries
    return entries[0]


def _answers(server: IndexServer, path: str = PAGE) -> list[int]:
    """The statuses of the project-page answers since the last call."""
    out = [status for p, status in server.page_answers if p == path]
    server.page_answers.clear()
    return out


@pytest.fixture
def locked(env: Env) -> tuple[Env, Path]:
    """alpha 1.0 signed on the lab index, its pylock.toml verified once (exit 0)."""
    env.pub.wheel("alpha", "1.0")
    lock = env.workdir / "pylock.toml"
    lock.write_text(pylock_text(env.server, ["alpha"]))
    first = _verify(env, lock)
    assert first.code == 0, first.text
    assert _answers(env.server) == [200]  # nothing kept yet: an unconditional read
    return env, lock


def _verify(env: Env, lock: Path, *extra: str) -> Run:
    return env.cli("verify", str(lock), "--trust-root", str(env.trust_root), *extra)


def _no_parse(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the pages parsed from a body (a reused kept page is not)."""
    parsed: list[str] = []
    real = simple.SimpleIndex.parse_page

    def counting(self: simple.SimpleIndex, name: str, resp: Response) -> Any:
        parsed.append(name)
        return real(self, name, resp)

    monkeypatch.setattr(simple.SimpleIndex, "parse_page", counting)
    return parsed


def test_a_repeat_run_asks_the_index_and_reuses_the_kept_page_on_304(
    locked: tuple[Env, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, lock = locked
    parsed = _no_parse(monkeypatch)
    again = _verify(env, lock, "--format", "json")
    assert again.code == 0, again.text
    assert _answers(env.server) == [304]  # asked again, conditionally
    assert parsed == []  # the kept parsed page was used
    assert again.json()["summary"]["verified"] == 1


def test_a_quarantine_published_after_a_run_is_refused_by_the_next_runs(
    locked: tuple[Env, Path],
) -> None:
    """The page changed (a PEP 792 quarantine): its new tag gets a 200 that replaces the kept
    page, and the run after that, answered 304, still refuses from the kept quarantined page."""
    env, lock = locked
    env.server.project_status["alpha"] = ("quarantined", "malware found")
    for expected in ([200], [304]):
        run = _verify(env, lock)
        assert run.code == 1, run.text
        assert "refused-quarantined" in run.text
        assert "malware found" in run.text
        assert _answers(env.server) == expected


def test_nothing_about_the_verdict_is_kept(locked: tuple[Env, Path]) -> None:
    """A 304 gives back the page, not a decision: the clock and the policy (here a minimum
    release age the file does not meet) decide the run again."""
    env, lock = locked
    run = _verify(env, lock, "--min-release-age", "60d")
    assert run.code == 1, run.text
    assert "refused-too-new" in run.text
    assert _answers(env.server) == [304]


def test_a_304_to_an_unconditional_request_is_asked_again(env: Env) -> None:
    """Nothing kept: a 304 confirms nothing (a broken or hostile index); the page is asked
    for again without condition, and only a 200 is used."""
    env.pub.wheel("alpha", "1.0")
    lock = env.workdir / "pylock.toml"
    lock.write_text(pylock_text(env.server, ["alpha"]))
    fault = Fault(status=304, body=b"", times=1)
    env.server.faults[PAGE] = fault
    run = _verify(env, lock)
    assert run.code == 0, run.text
    assert fault.hits == 1
    assert env.server.requests_log.count(PAGE) == 2


def test_a_304_naming_another_validator_is_asked_again(locked: tuple[Env, Path]) -> None:
    """The kept page is active; the index now quarantines the project but a 304 with another
    tag than the kept one arrives (a stale cache in front of the index, or an attacker): it
    does not confirm the kept page, so the page is asked for again and the quarantine seen."""
    env, lock = locked
    for forged in (
        {"ETag": '"not-the-kept-tag"'},
        {"Last-Modified": "Tue, 01 Dec 2099 00:00:00 GMT"},
        {"X-PyPI-Last-Serial": "999999"},
    ):
        kept = json.loads(_entry().read_bytes().partition(b"\n")[0])
        same = {
            "ETag": kept["etag"],
            "Last-Modified": kept["last_modified"],
            "X-PyPI-Last-Serial": kept["serial_header"],
        }
        env.server.project_status["alpha"] = ("quarantined", "malware found")
        headers = {**same, **forged}  # only one validator differs from the kept page
        env.server.faults[PAGE] = Fault(status=304, body=b"", headers=headers, times=1)
        run = _verify(env, lock)
        assert run.code == 1, run.text
        assert "refused-quarantined" in run.text
        assert env.server.faults[PAGE].hits == 1
        env.server.project_status["alpha"] = ("active", None)
        assert _verify(env, lock).code == 0  # kept: the active page again


def test_a_page_kept_without_validators_is_never_confirmed_by_a_304(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index that sends no ETag / Last-Modified gets no conditional request; a 304 then
    confirms nothing. The same body sent again (a 200) is not parsed again."""
    env.server.validators = False
    env.pub.wheel("alpha", "1.0")
    lock = env.workdir / "pylock.toml"
    lock.write_text(pylock_text(env.server, ["alpha"]))
    assert _verify(env, lock).code == 0
    parsed = _no_parse(monkeypatch)
    assert _verify(env, lock).code == 0
    assert parsed == []  # the same body: the kept parsed page
    env.server.project_status["alpha"] = ("quarantined", "malware found")
    env.server.faults[PAGE] = Fault(status=304, body=b"", times=1)
    run = _verify(env, lock)
    assert run.code == 1, run.text
    assert "refused-quarantined" in run.text
    assert parsed == ["alpha"]
    assert env.server.requests_log.count(PAGE) == 4


def test_a_corrupted_or_truncated_entry_is_not_trusted(
    locked: tuple[Env, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept page's payload is changed on disk (the wheel's sha256 is made another one)
    while the index still answers 304 for the tag: the payload's digest no longer matches its
    header, so the entry is not used and the page is read again (no false hash-mismatch, no
    trust in bytes nobody checked). A truncated entry is not used either."""
    env, lock = locked
    parsed = _no_parse(monkeypatch)
    entry = _entry()
    raw = entry.read_bytes()
    head, _, payload = raw.partition(b"\n")
    sha = json.loads(payload)["files"][0][3]
    assert isinstance(sha, str)
    assert len(sha) == 64
    other = ("0" if sha[0] != "0" else "1") + sha[1:]
    entry.write_bytes(head + b"\n" + payload.replace(sha.encode(), other.encode()))
    run = _verify(env, lock)
    assert run.code == 0, run.text
    assert "hash-mismatch" not in run.text
    assert _answers(env.server) == [304, 200]  # the 304 confirmed nothing usable: asked again
    assert parsed == ["alpha"]
    parsed.clear()
    raw = _entry().read_bytes()
    _entry().write_bytes(raw[: len(raw) - 10])
    run = _verify(env, lock)
    assert run.code == 0, run.text
    assert _answers(env.server) == [200]  # not even a condition was sent
    assert parsed == ["alpha"]


@pytest.mark.parametrize("how", ["directory", "file", "owner"])
def test_an_entry_another_user_could_have_written_is_ignored(
    locked: tuple[Env, Path], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    env, lock = locked
    if how == "directory":
        _pages_dir().chmod(0o777)
    elif how == "file":
        _entry().chmod(0o666)
    else:  # owned by another user
        uid = os.getuid()
        monkeypatch.setattr(pagecache, "_uid", lambda: uid + 1)
    parsed = _no_parse(monkeypatch)
    run = _verify(env, lock)
    assert run.code == 0, run.text
    assert _answers(env.server) == [200]  # asked without condition, parsed again
    assert parsed == ["alpha"]


def test_indexes_never_share_a_kept_page(
    locked: tuple[Env, Path], workdir: Path, sigstore: Any
) -> None:
    """Another index with the same project answers 304 with the first index's tag: nothing
    is kept for that index, so the 304 confirms nothing and its own page is read (there,
    alpha is quarantined)."""
    env, lock = locked
    kept = json.loads(_entry().read_bytes().partition(b"\n")[0])
    with IndexServer(workdir / "other") as other:
        Publisher(sigstore, other, workdir / "build-other").wheel("alpha", "1.0")
        other.project_status["alpha"] = ("quarantined", "taken down")
        forged = {"ETag": kept["etag"], "Last-Modified": kept["last_modified"]}
        other.faults[PAGE] = Fault(status=304, body=b"", headers=forged, times=1)
        run = _verify(env, lock, "-i", other.index_url)
        assert run.code == 1, run.text
        assert "refused-quarantined" in run.text
        assert other.faults[PAGE].hits == 1
    assert len(list(_pages_dir().glob("*.page"))) == 2


def test_no_cache_keeps_and_sends_nothing(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    lock = env.workdir / "pylock.toml"
    lock.write_text(pylock_text(env.server, ["alpha"]))
    for _ in range(2):
        assert _verify(env, lock, "--no-cache").code == 0
    assert _answers(env.server) == [200, 200]
    assert not _pages_dir().exists()


# -- the kept page, directly ------------------------------------------------------------------


def _page_response(url: str, **headers: str) -> Response:
    body = json.dumps(
        {
            "meta": {"api-version": "1.1", "_last-serial": 7},
            "name": "alpha",
            "files": [
                {
                    "filename": "alpha-1.0-py3-none-any.whl",
                    "url": "../../files/alpha-1.0-py3-none-any.whl",
                    "hashes": {"sha256": "a" * 64},
                }
            ],
        }
    ).encode()
    return Response(200, {"Content-Type": simple.JSON_V1, **headers}, body, url)


def test_a_304_is_matched_against_the_kept_validators(tmp_path: Path) -> None:
    index = "http://127.0.0.1:1/simple/"
    url = index + "alpha/"
    cache = PageCache(tmp_path / "pages", Limits())
    resp = _page_response(url, ETag='"v1"', **{"Last-Modified": "Mon, 30 Nov 2026 00:00:00 GMT"})
    page = simple.SimpleIndex(Http(), index).parse_page("alpha", resp)
    cache.put(index, url, resp, page)
    kept = cache.get(index, url)
    assert kept is not None
    assert kept.conditions() == {
        "If-None-Match": '"v1"',
        "If-Modified-Since": "Mon, 30 Nov 2026 00:00:00 GMT",
    }
    assert cache.get("http://127.0.0.1:2/simple/", url) is None  # another index
    assert cache.get(index, index + "beta/") is None

    def answer(status: int = 304, at: str = url, **headers: str) -> Response:
        return Response(status, dict(headers), b"", at)

    same = cache.revalidated(kept, answer(ETag='"v1"'), "alpha")
    assert same == page
    assert same is not None
    assert same.files[0].index_serves_provenance is False
    for refused in (
        answer(ETag='"v2"'),
        answer(),  # If-None-Match was sent: the 304 must name the tag
        answer(ETag='"v1"', at=index + "other/"),
        Response(304, {"ETag": '"v1"', "Last-Modified": "Tue, 01 Dec 2026 00:00:00 GMT"}, b"", url),
        Response(304, {"ETag": '"v1"', "X-PyPI-Last-Serial": "8"}, b"", url),
        answer(status=200, ETag='"v1"'),
    ):
        assert cache.revalidated(kept, refused, "alpha") is None, refused.headers
    assert cache.revalidated(None, answer(ETag='"v1"'), "alpha") is None
    assert cache.revalidated(kept, answer(ETag='"v1"'), "beta") is None  # another project


def test_a_page_kept_with_a_date_only_is_asked_if_modified_since(tmp_path: Path) -> None:
    index = "http://127.0.0.1:1/simple/"
    url = index + "alpha/"
    cache = PageCache(tmp_path / "pages", Limits())
    date = "Mon, 30 Nov 2026 00:00:00 GMT"
    resp = _page_response(url, **{"Last-Modified": date})
    page = simple.SimpleIndex(Http(), index).parse_page("alpha", resp)
    cache.put(index, url, resp, page)
    kept = cache.get(index, url)
    assert kept is not None
    assert kept.conditions() == {"If-Modified-Since": date}
    assert cache.revalidated(kept, Response(304, {}, b"", url), "alpha") == page
    assert cache.revalidated(kept, Response(304, {"Last-Modified": date}, b"", url), "alpha")
    # a tag the kept page never had confirms nothing
    assert cache.revalidated(kept, Response(304, {"ETag": '"x"'}, b"", url), "alpha") is None


@pytest.mark.parametrize(
    "name",
    ["mirror-pydantic-core-json", "pypi-sampleproject-1.4-json", "pypi-sampleproject-1.4-html"],
)
def test_the_kept_form_reads_back_as_the_parsed_page(tmp_path: Path, name: str) -> None:
    """Real recorded pages (JSON and HTML) read back from a kept entry exactly as parsed."""
    from support.fixtures import recorded_page

    rec = recorded_page(name)
    index = "https://pypi.org/simple/"
    url = f"{index}{rec.project}/"
    ctype = rec.headers.get("Content-Type", rec.content_type)
    resp = Response(200, {"Content-Type": ctype, "ETag": '"x"'}, rec.body, url)
    page = simple.SimpleIndex(Http(), index).parse_page(rec.project, resp)
    cache = PageCache(tmp_path / "pages", Limits())
    cache.put(index, url, resp, page)
    kept = cache.get(index, url)
    assert kept is not None
    back = cache.revalidated(kept, Response(304, {"ETag": '"x"'}, b"", url), rec.project)
    assert back == page
    assert back is not None
    assert [f.index_serves_provenance for f in back.files] == [
        f.index_serves_provenance for f in page.files
    ]
    # and a 200 with the same body is not parsed again
    assert cache.unchanged(kept, resp, rec.project) == page
