"""Real pip and real uv install through ``safe-pip serve`` (in-process, 127.0.0.1) in front of
a local upstream index with test-signed packages."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from safe_pip.policy.file import Policy
from safe_pip.serve import EventLog, RunningServer, start_server
from support.index_server import IndexServer
from support.publish import Publisher
from support.sigstore_ca import TestSigstore
from test_serve import EVIL, make_checker, pinned

pytestmark = pytest.mark.slow

UV = Path(sys.executable).with_name("uv")


def installer_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env.pop(key, None)
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_CACHE_DIR": "1",
            "PIP_NO_INPUT": "1",
            "NO_PROXY": "127.0.0.1",
            "HOME": str(tmp),
            "UV_NO_CONFIG": "1",
            "UV_CACHE_DIR": str(tmp / "uv-cache"),
            "UV_PYTHON": sys.executable,
            "UV_PYTHON_DOWNLOADS": "never",
        }
    )
    return env


def pip_install(index_url: str, target: Path, *reqs: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--isolated",
            "--no-cache-dir",
            "--index-url",
            index_url,
            "--target",
            str(target),
            *reqs,
        ],
        capture_output=True,
        text=True,
        env=installer_env(target.parent),
        timeout=180,
        check=False,
    )


def uv_install(index_url: str, target: Path, *reqs: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(UV),
            "pip",
            "install",
            "--index-url",
            index_url,
            "--python",
            sys.executable,
            "--target",
            str(target),
            *reqs,
        ],
        capture_output=True,
        text=True,
        env=installer_env(target.parent),
        timeout=180,
        check=False,
    )


INSTALLERS = {"pip": pip_install, "uv": uv_install}


class Setup:
    def __init__(self, trust_root: Path, upstream: IndexServer, pub: Publisher, tmp: Path) -> None:
        self.trust_root = trust_root
        self.upstream = upstream
        self.pub = pub
        self.tmp = tmp
        self.log = EventLog(quiet=True, keep=True)
        self._stores: list[object] = []

    def serve(self, policy: Policy | None = None, mode: str = "filter") -> RunningServer:
        checker = make_checker(
            self.trust_root, self.tmp / f"home{len(self._stores)}", self.upstream.index_url, policy
        )
        self._stores.append(checker.store)
        return start_server(
            checker,
            self.upstream.index_url,
            mode="block" if mode == "block" else "filter",
            log=self.log,
        )

    def close(self) -> None:
        for s in self._stores:
            s.close()  # type: ignore[attr-defined]


@pytest.fixture
def setup(sigstore: TestSigstore, trust_root: Path, tmp_path: Path) -> Iterator[Setup]:
    with IndexServer(tmp_path / "upstream") as upstream:
        s = Setup(trust_root, upstream, Publisher(sigstore, upstream, tmp_path / "build"), tmp_path)
        yield s
        s.close()


def installed(target: Path, module: str) -> str:
    return (target / module / "__init__.py").read_text()


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_allowed_tree_installs(setup: Setup, installer: str) -> None:
    setup.pub.wheel("alpha", "1.0", requires=["beta>=1"])
    setup.pub.wheel("beta", "1.0", requires=["gamma"])
    setup.pub.wheel("gamma", "2.0")
    target = setup.tmp / "target"
    with setup.serve() as srv:
        proc = INSTALLERS[installer](srv.index_url, target, "alpha")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for mod in ("alpha", "beta", "gamma"):
        assert (target / mod / "__init__.py").is_file()
    served = {e["filename"] for e in setup.log.events if e["event"] == "served"}
    assert served == {
        "alpha-1.0-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
        "gamma-2.0-py3-none-any.whl",
    }
    # The installer never talked to upstream itself: every file went through serve.
    assert all(
        p.startswith(("/simple/", "/files/", "/provenance/")) for p in setup.upstream.requests_log
    )


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_block_mode_refused_file_fails_the_install(setup: Setup, installer: str) -> None:
    setup.pub.wheel("alpha", "1.0")
    evil = setup.pub.wheel("alpha", "2.0", identity=EVIL)
    target = setup.tmp / "target"
    with setup.serve(policy=pinned("alpha"), mode="block") as srv:
        proc = INSTALLERS[installer](srv.index_url, target, "alpha")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "403" in out
    assert "refused-unexpected-publisher" in out  # the reason phrase reaches the user
    assert not (target / "alpha").exists()
    assert setup.upstream.hits(f"/files/alpha/{evil.name}") == 0


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_filter_mode_falls_back_to_allowed_version(setup: Setup, installer: str) -> None:
    setup.pub.wheel("alpha", "1.0")
    setup.pub.wheel("alpha", "2.0", identity=EVIL)
    setup.pub.wheel("alpha", "3.0", signed=False)
    target = setup.tmp / "target"
    with setup.serve(policy=pinned("alpha")) as srv:
        proc = INSTALLERS[installer](srv.index_url, target, "alpha")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1.0" in installed(target, "alpha")


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_sdist_with_unsigned_build_dependency_fails_to_build(setup: Setup, installer: str) -> None:
    """threat T12: the installer fetches build dependencies from the same index, so an
    unsigned build backend is refused there and the sdist cannot be built."""
    setup.pub.sdist("app", "1.0", build_requires=["evil-backend"])
    setup.pub.wheel("evil-backend", "1.0", signed=False)
    target = setup.tmp / "target"
    policy = pinned("app", allow_sdist=True)
    with setup.serve(policy=policy, mode="block") as srv:
        proc = INSTALLERS[installer](srv.index_url, target, "app")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "evil-backend" in out or "evil_backend" in out
    assert not (target / "app").exists()
    refused = {e["filename"]: e["code"] for e in setup.log.events if e["event"] == "refuse"}
    assert refused == {"evil_backend-1.0-py3-none-any.whl": "refused-unsigned"}
    assert setup.upstream.hits("/files/evil-backend/evil_backend-1.0-py3-none-any.whl") == 0


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_sdist_with_signed_build_dependency_builds(setup: Setup, installer: str) -> None:
    setup.pub.sdist("app", "1.0", build_requires=["good-backend"])
    setup.pub.wheel("good-backend", "1.0")
    target = setup.tmp / "target"
    policy = pinned("app", "good-backend", allow_sdist=True)
    with setup.serve(policy=policy, mode="block") as srv:
        proc = INSTALLERS[installer](srv.index_url, target, "app")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1.0" in installed(target, "app")
    served = {e["filename"] for e in setup.log.events if e["event"] == "served"}
    assert "good_backend-1.0-py3-none-any.whl" in served
