"""safe_pip.net against a real HTTP server on 127.0.0.1: status semantics (T09), hostile responses
(T13), redirect and host rules (T14), PEP 691/503 parsing, downloads. No other sockets."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safe_pip.net.integrity as integrity_mod
from safe_pip.errors import ConfigError, NetworkError
from safe_pip.models import FileRef
from safe_pip.net import (
    ConnectionFailed,
    DeadlineExceeded,
    HashMismatch,
    Http,
    HttpStatusError,
    InsecureURL,
    Limits,
    MalformedResponse,
    ProjectNotFound,
    Response,
    ResponseTooLarge,
    SimpleIndex,
    UnexpectedRedirect,
    UnsafeProvenanceURL,
    check_redirect,
    check_url,
    fetch_provenance,
    integrity_url,
    parse_json,
    provenance_source,
    redact,
)
from support.index_server import (
    Fault,
    IndexServer,
    TlsFiles,
    make_tls_files,
    write_minimal_wheel,
)

PROVENANCE = json.dumps({"version": 1, "attestation_bundles": []}).encode()
WHEEL = "demo_pkg-1.0-py3-none-any.whl"
FAST = Limits(
    connect_timeout=2,
    read_timeout=1,
    total_deadline=3,
    retry_backoff=0,
    max_page_bytes=1 << 20,
    max_provenance_bytes=64 << 10,
)


@pytest.fixture
def http() -> Iterator[Http]:
    with Http(FAST) as client:
        yield client


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IndexServer]:
    build = tmp_path / "build"
    with IndexServer(tmp_path / "root") as srv:
        srv.add_file(write_minimal_wheel(build, "Demo_Pkg", "1.0"), provenance=PROVENANCE)
        srv.add_file(write_minimal_wheel(build, "Demo_Pkg", "2.0"), yanked="broken")
        yield srv


def ref_for(server: IndexServer, filename: str = WHEEL, **kw: object) -> FileRef:
    base: dict[str, object] = {
        "project": "demo-pkg",
        "version": "1.0",
        "filename": filename,
        "url": server.file_url("demo-pkg", filename),
        "index": server.index_url,
        "provenance_url": server.provenance_url("demo-pkg", filename),
    }
    base.update(kw)
    return FileRef(**base)  # type: ignore[arg-type]


# -- PEP 691 / PEP 503 pages -------------------------------------------------------------------


def test_json_page(server: IndexServer, http: Http) -> None:
    page = SimpleIndex(http, server.index_url).project("Demo.Pkg")
    assert page.name == "demo-pkg"
    assert page.url == server.index_url + "demo-pkg/"  # the 301 was followed, same origin
    assert page.versions == ("1.0", "2.0")
    assert page.api_version == "1.1"
    assert page.last_serial == 2
    one, two = page.files
    data = (server.root / "demo-pkg" / WHEEL).read_bytes()
    assert one == FileRef(
        project="demo-pkg",
        version="1.0",
        filename=WHEEL,
        url=server.file_url("demo-pkg", WHEEL),
        sha256=hashlib.sha256(data).hexdigest(),
        index=server.index_url,
        provenance_url=server.provenance_url("demo-pkg", WHEEL),
        yanked=False,
        upload_time=one.upload_time,
        size=len(data),
    )
    assert one.upload_time is not None
    assert one.upload_time.endswith("Z")
    assert two.yanked == "broken"
    assert two.provenance_url is None
    assert page.for_version("2.0") == (two,)
    assert server.requests_log == ["/simple/demo-pkg/"]  # normalized before asking
    again, resp = SimpleIndex(http, server.index_url).fetch_page("demo-pkg")
    assert again == page
    assert resp is not None
    assert resp.content_type == "application/vnd.pypi.simple.v1+json"
    assert SimpleIndex(http, server.index_url).parse_page("Demo_Pkg", resp) == page


def test_relative_urls_are_resolved_against_the_page(tmp_path: Path, http: Http) -> None:
    with IndexServer(tmp_path / "root", relative_urls=True) as srv:
        srv.add_file(write_minimal_wheel(tmp_path / "b", "demo", "1.0"), provenance=PROVENANCE)
        (ref,) = SimpleIndex(http, srv.index_url).project("demo").files
        assert ref.url == srv.file_url("demo", "demo-1.0-py3-none-any.whl")
        assert ref.provenance_url == srv.provenance_url("demo", "demo-1.0-py3-none-any.whl")
        assert fetch_provenance(http, ref) == PROVENANCE


def test_html_fallback(server: IndexServer, http: Http) -> None:
    # A PEP 691-unaware index: HTML whatever the client prefers.
    server.faults["/simple/demo-pkg/"] = Fault(
        body=server.project_html("demo-pkg"), content_type="text/html; charset=utf-8"
    )
    page = SimpleIndex(http, server.index_url).project("demo-pkg")
    json_page = SimpleIndex(Http(FAST), server.index_url)
    server.faults.clear()
    expected = json_page.project("demo-pkg")
    assert page.versions == expected.versions
    assert page.last_serial == expected.last_serial  # from X-PyPI-Last-Serial
    for got, want in zip(page.files, expected.files, strict=True):
        # HTML carries neither size nor upload time; everything else matches the JSON page.
        assert dataclasses.replace(want, size=None, upload_time=None) == got


def test_html_details(tmp_path: Path, http: Http) -> None:
    digest = "ab" * 32
    body = f"""<!DOCTYPE html><html><head>
    <meta name="pypi:repository-version" content="1.0"><base href="/pkgs/"></head><body>
    <a href="demo-1.0.tar.gz#sha256={digest}" data-yanked>demo-1.0.tar.gz</a>
    <a href="https://files.example/demo-1.1-py3-none-any.whl#md5=00" data-yanked="why"
       data-provenance="/prov/demo-1.1-py3-none-any.whl">x</a>
    <a href="other-1.0.tar.gz">other</a><a href="demo-latest.tar.gz">bad name</a>
    <a href="demo-1.2.exe">legacy</a><a>no href</a>
    </body></html>"""
    with IndexServer(tmp_path / "root") as srv:
        (srv.root / "demo").mkdir()
        srv.faults["/simple/demo/"] = Fault(body=body.encode(), content_type="text/html")
        page = SimpleIndex(http, srv.index_url).project("demo")
    sdist, wheel = page.files
    assert sdist.url == srv.url + "/pkgs/demo-1.0.tar.gz"
    assert sdist.sha256 == digest
    assert sdist.yanked is True  # a valueless data-yanked still means yanked
    assert wheel.url == "https://files.example/demo-1.1-py3-none-any.whl"
    assert wheel.sha256 is None
    assert wheel.yanked == "why"
    assert wheel.provenance_url == srv.url + "/prov/demo-1.1-py3-none-any.whl"
    assert page.versions == ("1.0", "1.1")
    assert page.api_version == "1.0"


def pypi_like_page(**overrides: object) -> dict[str, object]:
    page: dict[str, object] = {
        "meta": {"api-version": "1.3", "_last-serial": 7},
        "name": "demo",
        "versions": ["1.0"],
        "files": [
            {
                "filename": "demo-1.0-py3-none-any.whl",
                "url": "https://files.pythonhosted.org/packages/ab/cd/demo-1.0-py3-none-any.whl",
                "hashes": {"sha256": "AB" * 32, "blake2b_256": "00"},
                "requires-python": ">=3.9",
                "core-metadata": {"sha256": "cd" * 32},
                "data-dist-info-metadata": {"sha256": "cd" * 32},
                "yanked": "",
                "size": 1234,
                "upload-time": "2024-01-01T00:00:00.000000Z",
                "provenance": "https://pypi.org/integrity/demo/1.0/demo-1.0-py3-none-any.whl/provenance",
            },
            {"filename": "demo-1.0.tar.gz.asc", "url": "x", "hashes": {}},
        ],
    }
    page.update(overrides)
    return page


def serve_page(tmp_path: Path, http: Http, page: object, ctype: str | None = None) -> object:
    body = page if isinstance(page, bytes) else json.dumps(page).encode()
    with IndexServer(tmp_path / "root") as srv:
        (srv.root / "demo").mkdir(exist_ok=True)
        srv.faults["/simple/demo/"] = Fault(
            body=body, content_type=ctype or "application/vnd.pypi.simple.v1+json"
        )
        return SimpleIndex(http, srv.index_url).project("demo")


def test_pypi_shaped_json(tmp_path: Path, http: Http) -> None:
    page = serve_page(tmp_path, http, pypi_like_page())
    (ref,) = page.files  # type: ignore[attr-defined]
    assert ref.sha256 == "ab" * 32
    assert ref.yanked is True  # PEP 691: a string means yanked, even an empty one
    assert ref.size == 1234
    assert ref.provenance_url.startswith("https://pypi.org/integrity/")
    assert page.last_serial == 7  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"meta": {"api-version": "2.0"}}, "not supported"),
        ({"meta": {"api-version": "one"}}, "invalid repository API version"),
        ({"meta": "x"}, "missing 'meta'"),
        ({"name": "other"}, "not 'demo'"),
        ({"files": {}}, "'files' must be a list"),
        ({"files": [1]}, "not an object"),
        ({"files": [{"filename": 1, "url": "x"}]}, "lacks a string filename"),
        ({"files": [{"filename": "demo-1.0.tar.gz", "url": "x", "yanked": 1}]}, "'yanked'"),
        ({"files": [{"filename": "demo-1.0.tar.gz", "url": "x", "hashes": []}]}, "'hashes'"),
        ({"files": [{"filename": "demo-1.0.tar.gz", "url": "x", "size": -1}]}, "'size'"),
        ({"files": [{"filename": "demo-1.0.tar.gz", "url": "x", "provenance": 3}]}, "provenance"),
        ({"versions": [1]}, "'versions'"),
        # a string of digits is that serial (bandersnatch); every other form is refused
        ({"meta": {"api-version": "1.1", "_last-serial": "-7"}}, "_last-serial"),
        ({"meta": {"api-version": "1.1", "_last-serial": "7.0"}}, "_last-serial"),
        ({"meta": {"api-version": "1.1", "_last-serial": " 7"}}, "_last-serial"),
        ({"meta": {"api-version": "1.1", "_last-serial": ""}}, "_last-serial"),
        ({"meta": {"api-version": "1.1", "_last-serial": "\u0667"}}, "_last-serial"),
        ({"meta": {"api-version": "1.1", "_last-serial": "1" * 21}}, "_last-serial"),
        ({"meta": {"api-version": "1.1", "_last-serial": True}}, "_last-serial"),
        ({"meta": {"api-version": "1.1", "_last-serial": 7.5}}, "_last-serial"),
    ],
)
def test_malformed_json_pages(
    tmp_path: Path, http: Http, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(MalformedResponse, match=message):
        serve_page(tmp_path, http, pypi_like_page(**overrides))


@pytest.mark.parametrize(
    ("body", "ctype", "error", "message"),
    [
        (b"{not json", None, MalformedResponse, "not valid JSON"),
        (b"[]", None, MalformedResponse, "expected a JSON object"),
        (b'{"meta": NaN}', None, MalformedResponse, "NaN"),
        (b"[" * 100_000 + b"]" * 100_000, None, MalformedResponse, "nested"),
        (b'{"a":' * 70 + b"1" + b"}" * 70, None, MalformedResponse, "deeper than 64"),
        (b"\xff\xfe<html>", "text/html", MalformedResponse, "not UTF-8"),
        (b"%PDF", "application/pdf", MalformedResponse, "unexpected content type"),
        (b"x" * (2 << 20), None, ResponseTooLarge, "limit"),
    ],
)
def test_hostile_pages(
    tmp_path: Path,
    http: Http,
    body: bytes,
    ctype: str | None,
    error: type[NetworkError],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        serve_page(tmp_path, http, body, ctype)


def test_too_many_files(tmp_path: Path) -> None:
    limits = Limits(max_files_per_page=3, retry_backoff=0)
    many = [{"filename": f"demo-{i}.tar.gz", "url": "x", "hashes": {}} for i in range(4)]
    with pytest.raises(ResponseTooLarge, match="4 files"):
        serve_page(tmp_path, Http(limits), pypi_like_page(files=many))
    links = "".join(f'<a href="demo-{i}.tar.gz">x</a>' for i in range(4)).encode()
    with pytest.raises(ResponseTooLarge, match="more than 3 links"):
        serve_page(tmp_path, Http(limits), links, "text/html")


def test_page_status_semantics(server: IndexServer, http: Http) -> None:
    index = SimpleIndex(http, server.index_url)
    with pytest.raises(ProjectNotFound, match="nope was not found"):
        index.project("nope")
    path = "/simple/demo-pkg/"
    server.faults[path] = Fault(status=403)
    with pytest.raises(HttpStatusError, match="HTTP 403") as info:
        index.project("demo-pkg")
    assert info.value.status == 403
    assert info.value.exit_code == 3
    assert server.hits(path) == 1  # 4xx is not retried
    server.faults[path] = Fault(status=503)
    with pytest.raises(HttpStatusError, match="HTTP 503"):
        index.project("demo-pkg")
    assert server.hits(path) == 1 + 1 + FAST.retries  # 5xx retried
    server.faults[path] = Fault(status=502, times=FAST.retries)
    assert index.project("demo-pkg").name == "demo-pkg"  # recovers within the retries


@pytest.mark.parametrize(
    "url", ["http://example.invalid/simple/", "ftp://127.0.0.1/simple/", "simple/"]
)
def test_index_url_must_be_safe(http: Http, url: str) -> None:
    with pytest.raises(ConfigError, match="not allowed"):
        SimpleIndex(http, url)


def test_file_index(server: IndexServer, http: Http, tmp_path: Path) -> None:
    index = SimpleIndex(http, server.root.as_uri())
    page = index.project("Demo_Pkg")
    one, two = page.files
    assert one.url == (server.root / "demo-pkg" / WHEEL).as_uri()
    assert one.size == (server.root / "demo-pkg" / WHEEL).stat().st_size
    assert one.provenance_url == (server.root / "demo-pkg" / (WHEEL + ".provenance")).as_uri()
    assert two.yanked == "broken"
    assert two.provenance_url is None
    assert fetch_provenance(http, one) == PROVENANCE
    assert fetch_provenance(http, two) is None
    dest = tmp_path / "dl" / WHEEL
    data = (server.root / "demo-pkg" / WHEEL).read_bytes()
    assert http.download(one.url or "", dest, max_bytes=1 << 20) == hashlib.sha256(data).hexdigest()
    assert dest.read_bytes() == data
    with pytest.raises(ResponseTooLarge):
        http.download(one.url or "", tmp_path / "dl" / "small", max_bytes=10)
    assert not (tmp_path / "dl" / "small").exists()
    with pytest.raises(ProjectNotFound):
        index.project("nope")
    with pytest.raises(ConfigError, match="not a directory"):
        SimpleIndex(http, (tmp_path / "missing").as_uri())
    assert server.requests_log == []


# -- provenance (T09) --------------------------------------------------------------------------


def test_provenance_200_and_404(server: IndexServer, http: Http) -> None:
    assert fetch_provenance(http, ref_for(server)) == PROVENANCE
    two = "demo_pkg-2.0-py3-none-any.whl"
    assert fetch_provenance(http, ref_for(server, two, version="2.0")) is None  # 404: unsigned


def test_no_provenance_url_off_pypi_is_unsigned_without_a_request(
    server: IndexServer, http: Http
) -> None:
    assert fetch_provenance(http, ref_for(server, provenance_url=None)) is None
    assert server.requests_log == []


@pytest.mark.parametrize("status", [401, 403, 406, 410, 429, 500, 502, 503])
def test_provenance_errors_are_could_not_check(
    server: IndexServer, http: Http, status: int
) -> None:
    ref = ref_for(server)
    server.faults[f"/provenance/demo-pkg/{WHEEL}"] = Fault(status=status, body=b"{}")
    with pytest.raises(NetworkError) as info:
        fetch_provenance(http, ref)
    text = str(info.value)
    assert "demo-pkg" in text
    assert WHEEL in text
    assert f"HTTP {status}" in text
    assert str(ref.provenance_url) in text
    assert info.value.exit_code == 3
    assert "not 'unsigned'" in (info.value.fix or "")


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        # an answer far later than the deadline: a slow machine never sees it in time
        (Fault(delay=30), DeadlineExceeded, "no answer within"),
        (Fault(status=200, body=b"x" * (65 << 10)), ResponseTooLarge, "limit"),
        (Fault(status=200, endless=True), ResponseTooLarge, "limit"),
        (Fault(status=200, gzip_bomb=64 << 20), ResponseTooLarge, "once decompressed"),
        (Fault(status=200, body=b"{nope"), MalformedResponse, "not valid JSON"),
        (Fault(status=200, body=b"[1, 2]"), MalformedResponse, "JSON object"),
        (Fault(status=200, body=b"null"), MalformedResponse, "JSON object"),
        (Fault(status=200, content_type="text/html"), MalformedResponse, "content type"),
        (Fault(status=200, body=b"{}", content_length=10), ConnectionFailed, "IncompleteRead"),
        (Fault(redirect="http://127.0.0.2/evil"), UnexpectedRedirect, "same-origin"),
        (Fault(redirect="https://evil.example/p"), UnexpectedRedirect, "another host"),
        (Fault(redirect="ftp://127.0.0.1/p"), UnexpectedRedirect, "not an https URL"),
        (Fault(status=302), MalformedResponse, "without a Location"),
        (
            Fault(status=200, body=json.dumps({"attestation_bundles": [{}] * 10_000}).encode()),
            ResponseTooLarge,
            "10000 attestation bundles",
        ),
        (
            Fault(
                status=200,
                body=json.dumps({"attestation_bundles": [{"attestations": [{}] * 33}]}).encode(),
            ),
            ResponseTooLarge,
            "33 attestations",
        ),
    ],
)
def test_hostile_provenance(
    server: IndexServer,
    http: Http,
    fault: Fault,
    error: type[NetworkError],
    message: str,
) -> None:
    server.faults[f"/provenance/demo-pkg/{WHEEL}"] = fault
    t0 = time.monotonic()
    with pytest.raises(error, match=message) as info:
        fetch_provenance(http, ref_for(server))
    # bounded by the deadline (an endless or late answer would hold it for ever), with room
    # for a loaded machine
    assert time.monotonic() - t0 < FAST.total_deadline + 5
    assert "demo-pkg 1.0" in str(info.value)


def test_redirect_loop(server: IndexServer, http: Http) -> None:
    path = f"/provenance/demo-pkg/{WHEEL}"
    server.faults[path] = Fault(redirect=path, status=307)
    with pytest.raises(UnexpectedRedirect, match="more than 5 redirects"):
        fetch_provenance(http, ref_for(server))
    assert server.hits(path) == 6


def test_same_origin_redirect_is_followed(server: IndexServer, http: Http) -> None:
    old = f"/old/{WHEEL}/provenance"
    server.faults[old] = Fault(redirect=f"/provenance/demo-pkg/{WHEEL}", status=301)
    assert fetch_provenance(http, ref_for(server, provenance_url=server.url + old)) == PROVENANCE
    assert server.requests_log == [old, f"/provenance/demo-pkg/{WHEEL}"]


def test_provenance_url_elsewhere_is_refused_unfetched(
    server: IndexServer, http: Http, tmp_path: Path
) -> None:
    with IndexServer(tmp_path / "other") as other:
        evil = dataclasses.replace(ref_for(server), provenance_url=other.url + f"/{WHEEL}")
        with pytest.raises(UnsafeProvenanceURL, match="not on the file's index"):
            fetch_provenance(http, evil)
        assert other.requests_log == []
    for url in (
        server.provenance_url("demo-pkg", "demo_pkg-2.0-py3-none-any.whl"),  # another file
        server.url + "/provenance/",
        (tmp_path / WHEEL).as_uri(),  # a local file named by a remote index
    ):
        with pytest.raises(UnsafeProvenanceURL):
            fetch_provenance(http, ref_for(server, provenance_url=url))
    assert server.requests_log == []


def test_integrity_api_fallback(
    tmp_path: Path, http: Http, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PyPI file without a provenance URL goes to the Integrity API: pointed at the local
    server's PyPI-compatible route, 200 / 404 / 403 keep their meaning."""
    wheel = write_minimal_wheel(tmp_path / "b", "demo", "1.0")
    unsigned = write_minimal_wheel(tmp_path / "b", "demo", "2.0")
    with IndexServer(tmp_path / "root", provenance_mode="integrity") as srv:
        srv.add_file(wheel, provenance=PROVENANCE)
        srv.add_file(unsigned)
        page = SimpleIndex(http, srv.index_url).project("demo")
        assert all(f.provenance_url is None for f in page.files)
        monkeypatch.setattr(
            integrity_mod,
            "integrity_url",
            lambda _i, p, v, f: srv.integrity_url(p, v, f),
        )
        signed_ref, unsigned_ref = page.files
        assert fetch_provenance(http, signed_ref) == PROVENANCE
        assert fetch_provenance(http, unsigned_ref) is None
        route = f"/integrity/demo/1.0/{wheel.name}/provenance"
        assert route in srv.requests_log
        srv.faults[route] = Fault(status=403, body=b'{"message": "disabled"}')
        with pytest.raises(HttpStatusError, match=r"403 .*attestations are disabled"):
            fetch_provenance(http, signed_ref)


def test_integrity_urls() -> None:
    assert integrity_url("https://pypi.org/simple/", "Demo_Pkg", "1.0", "demo_pkg-1.0.tar.gz") == (
        "https://pypi.org/integrity/demo-pkg/1.0/demo_pkg-1.0.tar.gz/provenance"
    )
    assert integrity_url("https://test.pypi.org/simple/", "a", "1!2+x", "a b.whl") == (
        "https://test.pypi.org/integrity/a/1%212%2Bx/a%20b.whl/provenance"
    )
    assert integrity_url("https://files.pythonhosted.org/packages/x.whl", "a", "1", "a") == (
        "https://pypi.org/integrity/a/1/a/provenance"
    )
    assert integrity_url("https://mirror.example/simple/", "a", "1", "a") is None
    assert integrity_url("https://pypi.org.evil.example/simple/", "a", "1", "a") is None
    # A lockfile ref with only a files.pythonhosted.org URL still finds PyPI's provenance.
    ref = FileRef("a", "1", "a-1.tar.gz", url="https://files.pythonhosted.org/p/a-1.tar.gz")
    assert provenance_source(ref) == "https://pypi.org/integrity/a/1/a-1.tar.gz/provenance"
    assert provenance_source(FileRef("a", "1", "a-1.tar.gz")) is None


def test_pypi_provenance_url_rules() -> None:
    from safe_pip.net import check_provenance_url

    good = "https://pypi.org/integrity/a/1/a-1.tar.gz/provenance"
    ref = FileRef("a", "1", "a-1.tar.gz", index="https://pypi.org/simple/", provenance_url=good)
    check_provenance_url(ref, good)
    for bad in (
        "http://pypi.org/integrity/a/1/a-1.tar.gz/provenance",
        "https://files.pythonhosted.org/integrity/a/1/a-1.tar.gz/provenance",
        "https://evil.example/integrity/a/1/a-1.tar.gz/provenance",
        "https://pypi.org/integrity/a/1/other-1.tar.gz/provenance",
    ):
        with pytest.raises(UnsafeProvenanceURL):
            check_provenance_url(ref, bad)


# -- the HTTP policy (T13, T14) ----------------------------------------------------------------


def test_drip_hits_the_total_deadline(server: IndexServer) -> None:
    server.faults["/slow"] = Fault(status=200, body=b"x" * 1000, drip=0.05)
    limits = Limits(read_timeout=5, total_deadline=1.0, retry_backoff=0)
    t0 = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="deadline"):
        Http(limits).get_bytes(server.url + "/slow", max_bytes=1 << 20)
    # the whole body takes 50 s; the deadline cuts it at 1 s (the rest: a loaded machine)
    assert 1.0 <= time.monotonic() - t0 < 1.0 + 5


def test_endless_body_stops_at_the_cap(server: IndexServer, http: Http) -> None:
    server.faults["/big"] = Fault(status=200, endless=True)
    # stopped at the cap, not at the deadline (that would be DeadlineExceeded)
    with pytest.raises(ResponseTooLarge, match="over the 204800-byte limit"):
        http.get_bytes(server.url + "/big", max_bytes=200 << 10)
    assert server.hits("/big") == 1  # too large is not retried


def test_gzip_is_decoded_and_counted(server: IndexServer, http: Http) -> None:
    payload = json.dumps({"k": "v" * 5000}).encode()
    server.faults["/gz"] = Fault(
        status=200, body=gzip.compress(payload), headers={"Content-Encoding": "gzip"}
    )
    assert http.get_bytes(server.url + "/gz", max_bytes=len(payload)).body == payload
    with pytest.raises(ResponseTooLarge, match="once decompressed"):
        http.get_bytes(server.url + "/gz", max_bytes=len(payload) - 1)
    server.faults["/gz"] = Fault(status=200, body=b"not gzip", headers={"Content-Encoding": "gzip"})
    with pytest.raises(MalformedResponse, match="could not decode"):
        http.get_bytes(server.url + "/gz", max_bytes=1000)


def test_declared_length_over_cap_is_refused_before_reading(
    server: IndexServer, http: Http
) -> None:
    server.faults["/big"] = Fault(status=200, body=b"x" * 10, content_length=10 << 30)
    with pytest.raises(ResponseTooLarge, match="10737418240 bytes"):
        http.get_bytes(server.url + "/big", max_bytes=1 << 20)


def test_connection_refused_is_retried_then_could_not_check() -> None:
    # a port bound but never listening, for the whole test: connections to it are refused and
    # nothing else on the machine can be given it meanwhile
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
        t0 = time.monotonic()
        with pytest.raises(ConnectionFailed, match="Connection refused"):
            Http(Limits(retry_backoff=0.05)).get_bytes(dead + "/x", max_bytes=10)
        assert time.monotonic() - t0 >= 0.05 + 0.1  # two retries with backoff


def test_truncated_body_is_retried(server: IndexServer, http: Http) -> None:
    server.faults["/t"] = Fault(status=200, body=b"abc", content_length=10, times=1)
    r = http.get_bytes(server.url + "/t", max_bytes=100)
    assert (r.status, r.url) == (404, server.url + "/t")  # second attempt: the real answer
    assert server.hits("/t") == 2


def test_error_bodies_are_capped_not_fatal(server: IndexServer, http: Http) -> None:
    server.faults["/e"] = Fault(status=404, endless=True)
    r = http.get_bytes(server.url + "/e", max_bytes=10 << 20)
    assert r.status == 404
    assert len(r.body) <= 64 << 10


@pytest.mark.parametrize(
    ("src", "dst", "ok"),
    [
        ("https://pypi.org/simple/a/", "https://pypi.org/simple/b/", True),
        ("https://pypi.org/x", "https://files.pythonhosted.org/p/a.whl", True),
        ("https://test.pypi.org/x", "https://test-files.pythonhosted.org/p/a.whl", True),
        ("https://files.pythonhosted.org/p", "https://pypi.org/x", False),
        ("https://pypi.org/x", "http://pypi.org/x", False),
        ("https://pypi.org/x", "https://evil.example/x", False),
        ("https://mirror.example/x", "https://files.pythonhosted.org/x", False),
        ("http://127.0.0.1:5000/a", "http://127.0.0.1:5000/b", True),
        ("http://127.0.0.1:5000/a", "http://127.0.0.1:5001/b", False),
        ("http://127.0.0.1:5000/a", "http://127.0.0.2:5000/b", False),
        ("http://127.0.0.1:5000/a", "https://127.0.0.1:5000/b", True),
        ("https://127.0.0.1/a", "http://127.0.0.1/b", False),
        ("https://pypi.org/x", "file:///etc/passwd", False),
    ],
)
def test_redirect_rules(src: str, dst: str, ok: bool) -> None:
    if ok:
        check_redirect(src, dst)
    else:
        with pytest.raises(UnexpectedRedirect):
            check_redirect(src, dst)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://pypi.org/simple/", True),
        ("http://127.0.0.1:8080/simple/", True),
        ("http://localhost/simple/", True),
        ("http://[::1]:80/", True),
        ("http://pypi.org/simple/", False),
        ("http://10.0.0.1/simple/", False),
        ("ftp://pypi.org/", False),
        ("https:///nohost", False),
        ("https://pypi.org:99999/", False),
    ],
)
def test_url_rules(url: str, ok: bool) -> None:
    if ok:
        check_url(url)
    else:
        with pytest.raises(InsecureURL):
            check_url(url)


def test_plain_http_off_loopback_is_refused_without_connecting(http: Http) -> None:
    with pytest.raises(InsecureURL, match="plain http"):
        http.get_bytes("http://192.0.2.1/simple/", max_bytes=10)


def test_loopback_bypasses_proxies(
    server: IndexServer, http: Http, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert http.get_bytes(server.index_url, max_bytes=1 << 20).status == 200


def test_ca_bundle_from_environment_must_exist(
    server: IndexServer, http: Http, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="SSL_CERT_FILE"):
        http.get_bytes(server.index_url, max_bytes=1 << 20)


def test_concurrent_gets(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "root", latency=0.05) as srv, Http(FAST) as client:
        srv.add_file(write_minimal_wheel(tmp_path / "b", "demo", "1.0"), provenance=PROVENANCE)
        results: list[int] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(5):
                    results.append(
                        client.get_bytes(srv.index_url + "demo/", max_bytes=1 << 20).status
                    )
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
    assert not errors
    assert results == [200] * 40
    assert elapsed < 40 * 0.05  # requests overlapped


# -- downloads ---------------------------------------------------------------------------------


def test_download(server: IndexServer, http: Http, tmp_path: Path) -> None:
    data = (server.root / "demo-pkg" / WHEEL).read_bytes()
    want = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "out" / WHEEL
    url = server.file_url("demo-pkg", WHEEL)
    assert http.download(url, dest, max_bytes=len(data), expected_sha256=want.upper()) == want
    assert dest.read_bytes() == data


@pytest.mark.parametrize(
    ("fault", "max_bytes", "expected", "error"),
    [
        (None, 10, None, ResponseTooLarge),  # longer than the declared size
        (None, 1 << 20, "00" * 32, HashMismatch),
        (Fault(status=404), 1 << 20, None, HttpStatusError),
        (Fault(status=200, body=b"abc", content_length=50), 1 << 20, None, ConnectionFailed),
        (Fault(status=200, endless=True), 1 << 20, None, ResponseTooLarge),
        (Fault(redirect="https://evil.example/x.whl"), 1 << 20, None, UnexpectedRedirect),
    ],
)
def test_failed_download_leaves_nothing(
    server: IndexServer,
    http: Http,
    tmp_path: Path,
    fault: Fault | None,
    max_bytes: int,
    expected: str | None,
    error: type[NetworkError],
) -> None:
    if fault is not None:
        server.faults[f"/files/demo-pkg/{WHEEL}"] = fault
    out = tmp_path / "out"
    with pytest.raises(error):
        http.download(
            server.file_url("demo-pkg", WHEEL),
            out / WHEEL,
            max_bytes=max_bytes,
            expected_sha256=expected,
        )
    assert list(out.iterdir()) == []


def test_download_takes_bytes_as_sent(server: IndexServer, http: Http, tmp_path: Path) -> None:
    """Like pip: Accept-Encoding identity and no decoding, so a .tar.gz served with a stray
    Content-Encoding header still hashes as the file."""
    blob = gzip.compress(b"tarball")
    server.faults["/files/demo-pkg/demo_pkg-3.0.tar.gz"] = Fault(
        status=200, body=blob, headers={"Content-Encoding": "gzip"}
    )
    got = http.download(
        server.file_url("demo-pkg", "demo_pkg-3.0.tar.gz"), tmp_path / "x.tar.gz", max_bytes=1000
    )
    assert got == hashlib.sha256(blob).hexdigest()


# -- small helpers -----------------------------------------------------------------------------


def test_redact() -> None:
    assert (
        redact("https://user:secret@idx.example/simple/") == "https://user:***@idx.example/simple/"
    )
    assert redact("https://idx.example/simple/") == "https://idx.example/simple/"


def test_response_helpers() -> None:
    r = Response(200, {"Content-Type": "Application/JSON; charset=utf-8"}, b'{"a": 1}', "u")
    assert r.content_type == "application/json"
    assert r.json(what="x") == {"a": 1}
    assert r.ok


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_parse_json_never_crashes(body: bytes) -> None:
    with contextlib.suppress(MalformedResponse):
        parse_json(body, what="fuzz")


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "meta": _json_values | st.just({"api-version": "1.1"}),
            "name": st.just("demo") | st.text(max_size=5),
            "files": st.lists(
                st.fixed_dictionaries(
                    {"filename": st.sampled_from(["demo-1.0.tar.gz", "x.whl"]), "url": st.text()},
                    optional={
                        "hashes": _json_values,
                        "yanked": _json_values,
                        "provenance": _json_values,
                        "size": _json_values,
                        "upload-time": _json_values,
                    },
                )
                | _json_values,
                max_size=3,
            ),
            "versions": _json_values,
        },
    )
)
def test_page_parser_only_raises_network_errors(page: dict[str, object]) -> None:
    index = SimpleIndex(Http(FAST), "https://pypi.org/simple/")
    resp = Response(
        200,
        {"Content-Type": "application/vnd.pypi.simple.v1+json"},
        json.dumps(page).encode(),
        "https://pypi.org/simple/demo/",
    )
    try:
        result = index._parse_json("demo", resp, "fuzz")  # type: ignore[arg-type]
    except NetworkError:
        return
    assert all(f.project == "demo" for f in result.files)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_html_parser_only_raises_network_errors(text: str) -> None:
    index = SimpleIndex(Http(FAST), "https://pypi.org/simple/")
    body = f'<a href="demo-1.0.tar.gz" data-yanked>{text}</a>{text}'.encode()
    resp = Response(200, {"Content-Type": "text/html"}, body, "https://pypi.org/simple/demo/")
    with contextlib.suppress(NetworkError):
        index._parse_html("demo", resp, "fuzz")  # type: ignore[arg-type]


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(tmp_path: Path, tls_files: TlsFiles) -> Iterator[IndexServer]:
    with IndexServer(tmp_path / "root", tls=tls_files) as srv:
        srv.add_file(write_minimal_wheel(tmp_path / "b", "demo", "1.0"), provenance=PROVENANCE)
        yield srv


def _trust(monkeypatch: pytest.MonkeyPatch, var: str | None, path: Path | str) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    if var:
        monkeypatch.setenv(var, str(path))


@pytest.mark.parametrize("var", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_https_with_ca_from_environment(
    tls_server: IndexServer, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch, var: str
) -> None:
    _trust(monkeypatch, var, tls_files.ca)
    assert tls_server.index_url.startswith("https://127.0.0.1:")
    http = Http(FAST)
    (ref,) = SimpleIndex(http, tls_server.index_url).project("demo").files
    assert fetch_provenance(http, ref) == PROVENANCE


def test_untrusted_certificate_is_could_not_check(
    tls_server: IndexServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _trust(monkeypatch, None, "")  # certifi's public roots do not know the test CA
    with pytest.raises(NetworkError, match=r"TLS verification failed for 127\.0\.0\.1") as info:
        SimpleIndex(Http(FAST), tls_server.index_url).project("demo")
    assert type(info.value) is NetworkError  # not a retried connection failure
    assert tls_server.requests_log == []


def test_https_to_http_redirect_is_refused(
    tls_server: IndexServer, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _trust(monkeypatch, "SSL_CERT_FILE", tls_files.ca)
    with IndexServer(tmp_path / "plain") as plain:
        tls_server.faults["/simple/demo/"] = Fault(redirect=plain.index_url + "demo/")
        with pytest.raises(UnexpectedRedirect, match="https -> http downgrade"):
            SimpleIndex(Http(FAST), tls_server.index_url).project("demo")
        assert plain.requests_log == []


def test_environment_proxy_settings_are_read_once_per_origin_and_still_apply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """requests reads the proxy environment per request (a quarter of a small page read's
    CPU); the session reads it once per origin and run, with the same answer per host."""
    import requests.utils

    from safe_pip.net.session import _Session

    for var in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(var, "http://proxy.example:3128")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "internal.example")
    calls: list[str] = []
    real = requests.utils.get_environ_proxies

    def counting(url: str, no_proxy: str | None = None) -> dict[str, str]:
        calls.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr("requests.sessions.get_environ_proxies", counting)
    s = _Session()
    first = s.merge_environment_settings("https://pypi.example/simple/a/", {}, True, True, None)
    first["proxies"].clear()  # a caller's change does not reach the next request
    again = s.merge_environment_settings("https://pypi.example/simple/b/", {}, True, True, None)
    assert again["proxies"]["https"] == "http://proxy.example:3128"
    inside = s.merge_environment_settings("https://internal.example/x/", {}, True, True, None)
    assert "https" not in inside["proxies"]
    assert len(calls) == 2  # one read per origin
