"""The ``safe-pip serve`` command as a process: starts, prints its URL, serves, logs, and stops
cleanly on SIGINT and SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest

from safe_pip.serve.pages import JSON_V1
from support.index_server import IndexServer
from support.publish import Publisher
from support.sigstore_ca import TestSigstore
from test_serve import get


@pytest.fixture
def upstream(sigstore: TestSigstore, tmp_path: Path) -> Iterator[IndexServer]:
    with IndexServer(tmp_path / "upstream") as srv:
        pub = Publisher(sigstore, srv, tmp_path / "build")
        pub.wheel("alpha", "1.0")
        pub.wheel("alpha", "2.0", signed=False)
        yield srv


def start(args: list[str], tmp: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFE_PIP_")}
    env["SAFE_PIP_HOME"] = str(tmp / "home")
    env["NO_PROXY"] = "127.0.0.1"
    return subprocess.Popen(
        [sys.executable, "-m", "safe_pip", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp,
    )


def listening_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("safe-pip serve: listening on http://127.0.0.1:"), line
    return line.split("listening on ", 1)[1].strip()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_stops_on_signal(
    upstream: IndexServer, trust_root: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    log = tmp_path / "events.jsonl"
    proc = start(
        [
            "--port",
            "0",
            "--upstream",
            upstream.index_url,
            "--provenance-index",  # unsigned alpha 2.0: not looked up on PyPI (offline)
            upstream.index_url,
            "--trust-root",
            str(trust_root),
            "--log-json",
            str(log),
        ],
        tmp_path,
    )
    try:
        url = listening_url(proc)
        assert url.endswith("/simple/")
        doc = get(url + "alpha/", accept=JSON_V1).json()
        # block mode (the default): the refused file is listed, and answers 403 with the reason
        assert [f["filename"] for f in doc["files"]] == [
            "alpha-1.0-py3-none-any.whl",
            "alpha-2.0-py3-none-any.whl",
        ]
        blocked = get(urljoin(url + "alpha/", doc["files"][1]["url"]))
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopping" in err
    assert blocked.status == 403
    # one line per client request (not one per file); the page's line sums up the verdicts
    assert "GET /simple/alpha/ -> 200" in err
    assert "1 allowed, 1 refused [refused-attestation-downgrade x1]" in err
    assert "-> 403" in err
    assert "refused-attestation-downgrade" in err
    assert "allowed alpha 1.0" not in err  # per-file lines only with -v
    events = [json.loads(line) for line in log.read_text().splitlines()]
    refused = [e for e in events if e["event"] == "refuse"]
    assert refused[0]["filename"] == "alpha-2.0-py3-none-any.whl"
    assert refused[0]["code"] == "refused-attestation-downgrade"
    assert (tmp_path / "home" / "history.sqlite3").exists()


@pytest.mark.slow
def test_cli_provenance_index_behind_a_mirror_that_drops_provenance(
    sigstore: TestSigstore, trust_root: Path, tmp_path: Path
) -> None:
    """A mirror (devpi, Artifactory) lists no provenance: serve looks each file up on
    --provenance-index by (name, version, filename), verifies it against the digest the mirror
    claims, and pip installs through serve; the bytes are still hashed before they are sent."""
    from test_serve_installers import pip_install

    with (
        IndexServer(tmp_path / "pypi") as prov_index,
        IndexServer(tmp_path / "mirror", provenance_mode="none") as mirror,
    ):
        whl = Publisher(sigstore, prov_index, tmp_path / "build").wheel("alpha", "1.0")
        mirror.add_file(whl)
        proc = start(
            [
                "--port",
                "0",
                "--upstream",
                mirror.index_url,
                "--provenance-index",
                prov_index.index_url,
                "--trust-root",
                str(trust_root),
                "--policy",
                str(_pinned_policy(tmp_path)),
                "-v",  # per-file decision lines too
            ],
            tmp_path,
        )
        try:
            url = listening_url(proc)
            doc = get(url + "alpha/", accept=JSON_V1).json()
            assert [f["filename"] for f in doc["files"]] == [whl.name]
            assert doc["files"][0]["provenance"]  # the verified provenance is passed on
            result = pip_install(url, tmp_path / "target", "alpha")
            assert result.returncode == 0, result.stdout + result.stderr
            assert (tmp_path / "target" / "alpha").is_dir()
            assert prov_index.hits(f"/provenance/alpha/{whl.name}") >= 1
            assert mirror.hits(f"/files/alpha/{whl.name}") == 1  # bytes from the mirror only
            assert prov_index.hits(f"/files/alpha/{whl.name}") == 0
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert f"provenance index {prov_index.index_url}" in err
    assert "[verified-allowlisted]" in err


def _pinned_policy(tmp: Path) -> Path:
    path = tmp / "policy.toml"
    path.write_text(
        '[[package]]\nname = "alpha"\npublishers = [\n'
        '  { kind = "GitHub", repository = "acme/alpha", workflow = "release.yml" },\n]\n',
        encoding="utf-8",
    )
    return path


def test_cli_rejects_plain_http_provenance_index_off_loopback(
    upstream: IndexServer, trust_root: Path, tmp_path: Path
) -> None:
    proc = start(
        [
            "--port",
            "0",
            "--upstream",
            upstream.index_url,
            "--provenance-index",
            "http://example.com/simple/",
            "--trust-root",
            str(trust_root),
        ],
        tmp_path,
    )
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert "plain http" in err


def test_cli_port_in_use_is_a_clear_error(
    upstream: IndexServer, trust_root: Path, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        proc = start(
            [
                "--port",
                str(port),
                "--upstream",
                upstream.index_url,
                "--trust-root",
                str(trust_root),
            ],
            tmp_path,
        )
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_cli_rejects_plain_http_upstream_off_loopback(trust_root: Path, tmp_path: Path) -> None:
    proc = start(
        [
            "--port",
            "0",
            "--upstream",
            "http://example.com/simple/",
            "--trust-root",
            str(trust_root),
        ],
        tmp_path,
    )
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert "plain http" in err


def test_cli_help_is_fast() -> None:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "safe_pip", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert proc.returncode == 0
    assert "--mode {filter,block}" in proc.stdout
    assert "--upstream URL" in proc.stdout
    assert "--provenance-index URL" in proc.stdout
    assert "--page-ttl SECONDS" in proc.stdout
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("ttl", ["-1", "nan", "1e9"])
def test_cli_rejects_a_bad_page_ttl(
    upstream: IndexServer, trust_root: Path, tmp_path: Path, ttl: str
) -> None:
    proc = start(
        [
            "--port",
            "0",
            "--upstream",
            upstream.index_url,
            "--trust-root",
            str(trust_root),
            f"--page-ttl={ttl}",
        ],
        tmp_path,
    )
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert "--page-ttl" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_cli_offline_starts_without_sigstore_tuf_and_answers_health(tmp_path: Path) -> None:
    """--offline (the trust root shipped inside sigstore) needs no network at start-up, as for
    install and verify: every proxy points at a closed port and the server still starts."""
    dead = "http://127.0.0.1:9"
    proc = subprocess.Popen(
        [sys.executable, "-m", "safe_pip", "serve", "--offline", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("SAFE_PIP_")},
            "SAFE_PIP_HOME": str(tmp_path / "home"),
            "HTTPS_PROXY": dead,
            "HTTP_PROXY": dead,
            "https_proxy": dead,
            "http_proxy": dead,
            "NO_PROXY": "127.0.0.1",
        },
        cwd=tmp_path,
    )
    try:
        url = listening_url(proc)
        assert get(url.replace("/simple/", "/-/healthz")).status == 200
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
