"""The local index server behaves like PyPI's simple API, and real pip installs through it."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from support.index_server import Fault, IndexServer, negotiate, write_minimal_wheel

JSON_V1 = "application/vnd.pypi.simple.v1+json"
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
PROVENANCE = b'{"version": 1, "attestation_bundles": []}'


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> dict[str, object]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


def get(url: str, accept: str | None = None) -> Reply:
    """One GET without following redirects (http.client; loopback only)."""
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path, headers={"Accept": accept} if accept else {})
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IndexServer]:
    wheel = write_minimal_wheel(tmp_path / "build", "Demo_Pkg", "1.0", requires_python=">=3.8")
    other = write_minimal_wheel(tmp_path / "build", "Demo_Pkg", "2.0")
    with IndexServer(tmp_path / "root") as srv:
        srv.add_file(wheel, provenance=PROVENANCE)
        srv.add_file(other, yanked="broken")
        yield srv


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("*/*", "text/html"),
        ("text/html", "text/html"),
        (JSON_V1, JSON_V1),
        (PIP_ACCEPT, JSON_V1),
        ("application/vnd.pypi.simple.v1+json;q=0.5, text/html;q=0.9", "text/html"),
        ("application/*", "application/vnd.pypi.simple.v1+html"),
        # Nothing acceptable: PyPI falls back to HTML rather than answering 406.
        ("image/png", "text/html"),
        ("application/vnd.pypi.simple.v1+json;q=0", "text/html"),
    ],
)
def test_negotiation(accept: str | None, expected: str) -> None:
    assert negotiate(accept) == expected


def test_json_project_page(server: IndexServer) -> None:
    r = get(server.index_url + "demo-pkg/", JSON_V1)
    assert r.status == 200
    assert r.headers["content-type"] == JSON_V1
    assert r.headers["vary"] == "Accept"
    page = r.json()
    assert page["meta"] == {"api-version": "1.1", "_last-serial": 2}
    assert page["name"] == "demo-pkg"
    assert page["versions"] == ["1.0", "2.0"]
    files = page["files"]
    assert isinstance(files, list)
    first, second = files
    assert first["filename"] == "demo_pkg-1.0-py3-none-any.whl"
    assert first["url"] == server.file_url("demo-pkg", first["filename"])
    assert first["provenance"] == server.provenance_url("demo-pkg", first["filename"])
    assert first["requires-python"] == ">=3.8"
    assert first["yanked"] is False
    assert first["size"] == len(get(first["url"]).body)
    assert first["upload-time"].endswith("Z")
    assert len(first["hashes"]["sha256"]) == 64
    assert second["provenance"] is None
    assert second["yanked"] == "broken"
    assert second["requires-python"] is None


def test_html_project_page(server: IndexServer) -> None:
    r = get(server.index_url + "demo-pkg/")
    assert r.status == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    text = r.body.decode()
    assert '<meta name="pypi:repository-version" content="1.1">' in text
    assert 'data-requires-python="&gt;=3.8"' in text
    assert 'data-yanked="broken"' in text
    prov = server.provenance_url("demo-pkg", "demo_pkg-1.0-py3-none-any.whl")
    assert f'data-provenance="{prov}"' in text
    assert text.count("data-provenance=") == 1
    assert "data-dist-info-metadata" not in text
    assert "#sha256=" in text


def test_root_index(server: IndexServer) -> None:
    assert get(server.index_url, JSON_V1).json()["projects"] == [{"name": "demo-pkg"}]
    assert 'href="/simple/demo-pkg/"' in get(server.index_url).body.decode()
    assert get(server.url + "/simple").status == 301


@pytest.mark.parametrize("name", ["Demo_Pkg", "demo.pkg", "DEMO-PKG/", "demo-pkg"])
def test_non_normalized_names_redirect(server: IndexServer, name: str) -> None:
    r = get(server.index_url + name)
    assert r.status == 301
    assert r.headers["location"] == "/simple/demo-pkg/"


def test_unknown_project_and_paths_404(server: IndexServer) -> None:
    assert get(server.index_url + "nope/").status == 404
    assert get(server.url + "/files/demo-pkg/nope.whl").status == 404
    assert get(server.url + "/files/demo-pkg/..").status == 404
    assert get(server.url + "/elsewhere").status == 404
    # The sidecar files themselves are never served as dists.
    name = "demo_pkg-1.0-py3-none-any.whl.provenance"
    assert get(server.url + f"/files/demo-pkg/{name}").status == 404


def test_provenance_and_files(server: IndexServer) -> None:
    wheel = "demo_pkg-1.0-py3-none-any.whl"
    r = get(server.provenance_url("demo-pkg", wheel))
    assert (r.status, r.body) == (200, PROVENANCE)
    assert get(server.provenance_url("demo-pkg", "demo_pkg-2.0-py3-none-any.whl")).status == 404
    body = get(server.file_url("demo-pkg", wheel)).body
    assert body == (server.root / "demo-pkg" / wheel).read_bytes()


@pytest.mark.parametrize("mode", ["url", "integrity", "none"])
def test_integrity_api(tmp_path: Path, mode: str) -> None:
    wheel = write_minimal_wheel(tmp_path / "b", "demo", "1.0")
    with IndexServer(tmp_path / "root", provenance_mode=mode) as srv:  # type: ignore[arg-type]
        srv.add_file(wheel, provenance=PROVENANCE)
        url = srv.integrity_url("demo", "1.0", wheel.name)
        r = get(url)
        if mode == "none":
            assert r.status == 404
        else:
            assert r.status == 200
            assert r.headers["content-type"] == "application/vnd.pypi.integrity.v1+json"
            assert r.body == PROVENANCE
        # Only JSON is offered, like PyPI.
        assert get(url, "text/html").status == 406
        # Wrong version, wrong project: 404 like PyPI.
        assert get(srv.integrity_url("demo", "2.0", wheel.name)).status == 404
        assert get(srv.integrity_url("other", "1.0", wheel.name)).status == 404
        page = get(srv.index_url + "demo/", JSON_V1).json()
        files = page["files"]
        assert isinstance(files, list)
        advertised = files[0]["provenance"]
        assert (advertised is not None) == (mode == "url")


def test_relative_urls(tmp_path: Path) -> None:
    wheel = write_minimal_wheel(tmp_path / "b", "demo", "1.0")
    with IndexServer(tmp_path / "root", relative_urls=True) as srv:
        srv.add_file(wheel, provenance=PROVENANCE)
        files = get(srv.index_url + "demo/", JSON_V1).json()["files"]
        assert isinstance(files, list)
        assert files[0]["url"] == f"../../files/demo/{wheel.name}"
        assert files[0]["provenance"] == f"../../provenance/demo/{wheel.name}"


def test_serial_override(server: IndexServer) -> None:
    server.serials["demo-pkg"] = 90
    assert get(server.index_url + "demo-pkg/", JSON_V1).json()["meta"] == {
        "api-version": "1.1",
        "_last-serial": 90,
    }


def test_faults(server: IndexServer) -> None:
    path = "/simple/demo-pkg/"
    server.faults[path] = Fault(status=503, body=b"down", times=1)
    r = get(server.index_url + "demo-pkg/")
    assert (r.status, r.body) == (503, b"down")
    assert get(server.index_url + "demo-pkg/").status == 200  # `times` used up
    assert server.faults[path].hits == 1

    server.faults[path] = Fault(redirect="http://127.0.0.2/evil")
    r = get(server.index_url + "demo-pkg/")
    assert (r.status, r.headers["location"]) == (302, "http://127.0.0.2/evil")

    server.faults[path] = Fault(gzip_bomb=10 << 20)
    r = get(server.index_url + "demo-pkg/")
    assert r.headers["content-encoding"] == "gzip"
    assert len(r.body) < 64 * 1024

    server.faults[path] = Fault(delay=0.3)
    t0 = time.monotonic()
    assert get(server.index_url + "demo-pkg/").status == 200
    assert time.monotonic() - t0 >= 0.3
    assert server.hits(path) == 5


def test_endless_fault_stops_when_client_leaves(server: IndexServer) -> None:
    server.faults["/files/x"] = Fault(status=200, endless=True)
    with urllib.request.urlopen(server.url + "/files/x", timeout=5) as resp:
        assert len(resp.read(1 << 20)) == 1 << 20
    # The server is still healthy afterwards.
    assert get(server.index_url).status == 200


def test_truncated_reply_fault(server: IndexServer) -> None:
    server.faults["/files/x"] = Fault(status=200, body=b"abc", content_length=100)
    with (
        pytest.raises(http.client.IncompleteRead),
        urllib.request.urlopen(server.url + "/files/x", timeout=5) as resp,
    ):
        resp.read()


def test_latency(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "root", latency=0.2) as srv:
        t0 = time.monotonic()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(srv.index_url + "missing/", timeout=5)
        assert time.monotonic() - t0 >= 0.2


def _pip_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_CACHE_DIR"] = "1"
    env["HOME"] = str(tmp_path)  # keep pip away from the real user's files
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env.pop(key, None)
    env["NO_PROXY"] = "127.0.0.1"
    return env


@pytest.mark.slow
@pytest.mark.parametrize("use_html", [False, True])
def test_real_pip_installs_through_it(tmp_path: Path, use_html: bool) -> None:
    good = write_minimal_wheel(tmp_path / "b", "Demo_Pkg", "1.0", payload=b"one")
    newest_but_yanked = write_minimal_wheel(tmp_path / "b", "Demo_Pkg", "2.0", payload=b"two")
    with IndexServer(tmp_path / "root") as srv:
        srv.add_file(good, provenance=PROVENANCE)
        srv.add_file(newest_but_yanked, yanked="oops")
        if use_html:
            # A PEP 691-unaware index: always HTML, whatever pip prefers.
            srv.faults["/simple/demo-pkg/"] = Fault(content_type="text/html; charset=utf-8")
            srv.faults["/simple/demo-pkg/"].body = srv.project_html("demo-pkg")
        target = tmp_path / "target"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--isolated",
                "--no-cache-dir",
                "--index-url",
                srv.index_url,
                "--target",
                str(target),
                "Demo.Pkg",  # non-normalized on purpose: pip follows the 301
            ],
            capture_output=True,
            text=True,
            env=_pip_env(tmp_path),
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        init = (target / "demo_pkg" / "__init__.py").read_text()
        assert "one" in init  # 2.0 is yanked, so pip picks 1.0
        assert "/simple/demo-pkg/" in srv.requests_log
        assert f"/files/demo-pkg/{good.name}" in srv.requests_log
