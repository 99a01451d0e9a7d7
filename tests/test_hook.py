"""``safe-pip hook``: plain pip and uv go through serve, with no other source left, and
``uninstall`` puts the configuration back byte for byte. Real pip in a fresh virtual environment
and real uv, with HOME / XDG directories of their own (never the machine's user config; for
--global the machine's /etc is relocated into them, and the real one is checked unchanged)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from safe_pip.hook import edit_pip_conf, edit_uv_toml, pip_sources, uv_sources
from safe_pip.serve import EventLog, RunningServer, start_server
from support.index_server import IndexServer
from support.publish import Publisher
from support.sigstore_ca import TestSigstore
from test_serve import EVIL, make_checker, pinned

UV = Path(sys.executable).with_name("uv")
URL = "http://127.0.0.1:8740/simple/"


# -- the file edits (fast) ----------------------------------------------------------------------


def test_pip_conf_edit_removes_every_spelling_of_a_source() -> None:
    original = (
        "# team settings\n"
        "[global]\n"
        "timeout = 5\n"
        "Extra_Index_URL = https://evil.example/simple/\n"
        "    https://evil2.example/simple/\n"
        "--find-links: /srv/wheels\n"
        "[install]\n"
        "index-url=https://mirror.example/simple/\n"
        "no_index = yes\n"
        "[freeze]\n"
        "all = true\n"
    )
    new = edit_pip_conf(original, URL)
    assert "evil" not in new
    assert "mirror" not in new
    assert "/srv/wheels" not in new
    assert "timeout = 5" in new
    assert "# team settings" in new
    assert "all = true" in new
    path_items = [
        (s.key, s.value) for s in pip_sources(_write(new), ours=URL)
    ]  # ours is not a source
    assert path_items == []
    for section in ("global", "install", "download", "wheel"):
        assert f"[{section}]" in new
    assert new.count("[global]") == 1
    assert new.count("[install]") == 1  # pip refuses duplicates


def test_pip_conf_edit_keeps_crlf_and_switches_off_sections_other_levels_use() -> None:
    new = edit_pip_conf("[global]\r\ntimeout = 5\r\n", URL, extra_sections=["index"])
    assert "\r\n" in new
    assert "\n" not in new.replace("\r\n", "")
    assert "[index]" in new


def test_uv_toml_edit_replaces_indexes_and_pip_table_sources() -> None:
    original = (
        'index-url = "https://mirror.example/simple/"\n'
        'extra-index-url = ["https://evil.example/simple/"]\n'
        "cache-dir = '/tmp/c'\n"
        "[[index]]\n"
        'url = "https://evil.example/simple/"\n'
        "[pip]\n"
        'find-links = ["/srv/wheels"]\n'
        "compile-bytecode = true\n"
    )
    new = edit_uv_toml(original, URL)
    assert "evil" not in new
    assert "mirror" not in new
    assert "/srv/wheels" not in new
    assert "cache-dir" in new
    assert "compile-bytecode = true" in new
    assert uv_sources(_write(new, "uv.toml"), ours=URL) == []
    assert [s.key for s in uv_sources(_write(original, "uv.toml"))] == [
        "index",
        "index-url",
        "extra-index-url",
        "pip.find-links",
    ]


_tmp_counter = [0]


def _write(text: str, name: str = "pip.conf") -> Path:
    import tempfile

    _tmp_counter[0] += 1
    d = Path(tempfile.mkdtemp(prefix="safe-pip-hook-test-"))
    p = d / name
    p.write_text(text, newline="")
    return p


# -- real pip and uv -----------------------------------------------------------------------------


class World:
    """A serve in front of an upstream carrying a good alpha 1.0 and an evil alpha 2.0; an
    attacker's index and find-links directory with alpha 3.0 that the user's pip.conf adds."""

    def __init__(self, sigstore: TestSigstore, trust_root: Path, tmp: Path) -> None:
        self.tmp = tmp
        self.upstream = IndexServer(tmp / "upstream").__enter__()
        self.evil = IndexServer(tmp / "evil").__enter__()
        pub = Publisher(sigstore, self.upstream, tmp / "build")
        pub.wheel("alpha", "1.0")
        pub.wheel("alpha", "2.0", identity=EVIL)
        bad = Publisher(sigstore, self.evil, tmp / "build-evil").wheel("alpha", "3.0", signed=False)
        self.links = tmp / "links"
        self.links.mkdir()
        (self.links / bad.name).write_bytes(bad.read_bytes())
        checker = make_checker(trust_root, tmp / "serve-home", self.upstream.index_url)
        checker.policy = pinned("alpha")
        self.checker = checker
        self.log = EventLog(quiet=True, keep=True)
        self.serve: RunningServer = start_server(
            checker, self.upstream.index_url, mode="block", log=self.log
        )
        self.home = tmp / "home"
        self.user_pip = self.home / ".config" / "pip" / "pip.conf"
        self.user_pip.parent.mkdir(parents=True)
        # the machine's own config adds sources, as in the issue
        self.user_pip.write_bytes(
            b"[global]\nextra-index-url = "
            + self.evil.index_url.encode()
            + b"\nfind-links = "
            + str(self.links).encode()
            + b"\ntimeout = 30\n"
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
        for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
            self.env.pop(key, None)
        self.env.update(
            {
                "HOME": str(self.home),
                "XDG_CONFIG_HOME": str(self.home / ".config"),
                "XDG_CONFIG_DIRS": str(tmp / "xdg"),
                "NO_PROXY": "127.0.0.1",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PIP_NO_CACHE_DIR": "1",
                "UV_CACHE_DIR": str(tmp / "uv-cache"),
                "UV_PYTHON_DOWNLOADS": "never",
                "SAFE_PIP_HOME": str(tmp / "cli-home"),
            }
        )

    def close(self) -> None:
        self.serve.stop()
        self.upstream.__exit__(None, None, None)
        self.evil.__exit__(None, None, None)
        self.log.close()
        if self.checker.store is not None:
            self.checker.store.close()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.tmp,
            timeout=300,
            check=False,
        )

    def safe_pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "safe_pip", "hook", *args)


@pytest.fixture
def world(sigstore: TestSigstore, trust_root: Path, tmp_path: Path) -> Iterator[World]:
    w = World(sigstore, trust_root, tmp_path)
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with its own real pip (ensurepip, no network)."""
    venv = tmp_path_factory.mktemp("hook-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    return venv


def _installed(venv: Path) -> list[str]:
    return sorted(p.name for p in venv.glob("lib/python*/site-packages/alpha-*.dist-info"))


@pytest.mark.slow
def test_hook_venv_real_pip_refuses_the_attackers_files_and_uninstall_restores_bytes(
    world: World, fresh_venv: Path
) -> None:
    py = str(fresh_venv / "bin" / "python")
    site_conf = fresh_venv / "pip.conf"
    before = b"# the venv's own settings\r\n[global]\r\ntimeout = 7   \r\n"
    site_conf.write_bytes(before)
    try:
        # without the hook, the user's pip.conf lets plain pip take the attacker's alpha 3.0
        r = world.run(
            py,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--index-url",
            world.upstream.index_url,
            "-d",
            str(world.tmp / "d"),
            "alpha",
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert (world.tmp / "d" / "alpha-3.0-py3-none-any.whl").exists()

        r = world.safe_pip(
            "install", "--venv", str(fresh_venv), "--index-url", world.serve.index_url
        )
        assert r.returncode == 0, r.stdout + r.stderr
        evil_hits = world.evil.hits("/simple/alpha/")

        # plain pip install: the newest on serve is the evil-signed 2.0, refused with the reason
        r = world.run(py, "-m", "pip", "install", "alpha")
        assert r.returncode != 0
        assert "refused-unexpected-publisher" in r.stdout + r.stderr
        assert _installed(fresh_venv) == []
        # the attacker's find-links / extra index are off: 3.0 is not found at all
        r = world.run(py, "-m", "pip", "install", "alpha==3.0")
        assert r.returncode != 0
        assert world.evil.hits("/simple/alpha/") == evil_hits
        # the good release installs, through serve
        r = world.run(py, "-m", "pip", "install", "alpha==1.0")
        assert r.returncode == 0, r.stdout + r.stderr
        assert _installed(fresh_venv) == ["alpha-1.0.dist-info"]
        assert any(e["event"] == "served" for e in world.log.events)

        r = world.safe_pip("status", "--venv", str(fresh_venv), "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        doc = json.loads(r.stdout)
        assert doc["ok"]
        assert doc["index_answers"]
        assert doc["remaining_sources"] == []

        r = world.safe_pip("uninstall", "--venv", str(fresh_venv))
        assert r.returncode == 0, r.stdout + r.stderr
        assert site_conf.read_bytes() == before
        assert not list(fresh_venv.glob("*.safe-pip-hook.json"))
        r = world.safe_pip("status", "--venv", str(fresh_venv))
        assert r.returncode == 1
        assert "not hooked" in r.stdout
    finally:
        world.run(py, "-m", "pip", "uninstall", "-y", "alpha")
        site_conf.unlink(missing_ok=True)


@pytest.mark.slow
def test_hook_user_real_uv_and_pip_user_config_restored(world: World, fresh_venv: Path) -> None:
    before = world.user_pip.read_bytes()
    r = world.safe_pip("install", "--user", "--index-url", world.serve.index_url)
    assert r.returncode == 0, r.stdout + r.stderr
    uv_toml = world.home / ".config" / "uv" / "uv.toml"
    assert uv_toml.is_file()
    target = world.tmp / "uv-target"
    r = world.run(
        str(UV), "pip", "install", "--python", sys.executable, "--target", str(target), "alpha"
    )
    assert r.returncode != 0
    assert "refused-unexpected-publisher" in r.stdout + r.stderr
    r = world.run(
        str(UV),
        "pip",
        "install",
        "--python",
        sys.executable,
        "--target",
        str(target),
        "alpha==1.0",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "alpha").is_dir()
    # pip with the user config: the lower level's sources are off
    py = str(fresh_venv / "bin" / "python")
    r = world.safe_pip("status", "--user", "--python", py)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "other sources that remain: none" in r.stdout

    r = world.safe_pip("uninstall", "--user")
    assert r.returncode == 0, r.stdout + r.stderr
    assert world.user_pip.read_bytes() == before
    assert not uv_toml.exists()


# pip reads no other /etc: for --global the machine's directory is relocated (in the hook's
# process only) into a directory pip and uv read at the same, global, level: $XDG_CONFIG_DIRS.
_RELOCATED_GLOBAL = """\
import sys
from pathlib import Path

import safe_pip.hook as hook

root = Path(sys.argv[1])
hook.SYSTEM_CONFIG_DIR = root / "xdg" / "pip"
targets = [t.path for t in hook.plan("global").targets]
if not all(p.is_relative_to(root) for p in targets):
    sys.exit(f"refusing to run: the hook would write {targets}")
from safe_pip.cli import main

sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_hook_global_real_pip_and_uv_sync_then_uninstall_restores(
    world: World, fresh_venv: Path
) -> None:
    machine = {p: p.read_bytes() if p.exists() else None for p in _MACHINE_FILES}
    system_pip = world.tmp / "xdg" / "pip" / "pip.conf"
    system_uv = world.tmp / "xdg" / "uv" / "uv.toml"
    system_uv.parent.mkdir(parents=True)
    uv_before = b"# the machine's uv settings\nnative-tls = false\n"
    system_uv.write_bytes(uv_before)

    def hook(*args: str) -> subprocess.CompletedProcess[str]:
        return world.run(sys.executable, "-c", _RELOCATED_GLOBAL, str(world.tmp), "hook", *args)

    install = ("install", "--global", "--index-url", world.serve.index_url)
    # the user's pip.conf (a higher level) adds the attacker's sources: refused, nothing written
    r = hook(*install)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "extra-index-url" in r.stderr
    assert not system_pip.exists()
    assert system_uv.read_bytes() == uv_before
    world.user_pip.unlink()

    r = hook(*install)
    assert r.returncode == 0, r.stdout + r.stderr
    assert world.serve.index_url in system_pip.read_text()
    py = str(fresh_venv / "bin" / "python")
    try:
        r = world.run(py, "-m", "pip", "install", "alpha")
        assert r.returncode != 0
        assert "refused-unexpected-publisher" in r.stdout + r.stderr
        r = world.run(py, "-m", "pip", "install", "alpha==1.0")
        assert r.returncode == 0, r.stdout + r.stderr
        assert _installed(fresh_venv) == ["alpha-1.0.dist-info"]
    finally:
        world.run(py, "-m", "pip", "uninstall", "-y", "alpha")

    # uv sync of a project resolves and installs through serve (the system uv.toml)
    project = world.tmp / "project"
    project.mkdir()
    pyproject = '[project]\nname = "app"\nversion = "0"\ndependencies = ["{}"]\n'
    (project / "pyproject.toml").write_text(pyproject.format("alpha"))
    sync = (str(UV), "sync", "--project", str(project), "--python", sys.executable)
    r = world.run(*sync)
    assert r.returncode != 0
    assert "refused-unexpected-publisher" in r.stdout + r.stderr
    (project / "pyproject.toml").write_text(pyproject.format("alpha==1.0"))
    r = world.run(*sync)
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(project.glob(".venv/lib/python*/site-packages/alpha-1.0.dist-info"))
    assert world.serve.index_url in (project / "uv.lock").read_text()
    assert any(e["event"] == "served" for e in world.log.events)

    r = hook("status", "--global", "--python", py)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "other sources that remain: none" in r.stdout

    r = hook("uninstall", "--global")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not system_pip.exists()  # there was none before
    assert system_uv.read_bytes() == uv_before
    assert not list(system_uv.parent.glob("*.safe-pip-hook.json"))
    assert {p: p.read_bytes() if p.exists() else None for p in _MACHINE_FILES} == machine


_MACHINE_FILES = (Path("/etc/pip.conf"), Path("/etc/uv/uv.toml"), Path("/etc/xdg/pip/pip.conf"))


@pytest.mark.slow
def test_hook_refuses_sources_it_cannot_switch_off_and_status_names_them(
    world: World, fresh_venv: Path
) -> None:
    world.env["PIP_EXTRA_INDEX_URL"] = world.evil.index_url
    r = world.safe_pip("install", "--venv", str(fresh_venv), "--index-url", world.serve.index_url)
    assert r.returncode == 2
    assert "PIP_EXTRA_INDEX_URL" in r.stderr
    assert "fix:" in r.stderr
    assert not (fresh_venv / "pip.conf").exists()  # nothing written

    r = world.safe_pip(
        "install", "--venv", str(fresh_venv), "--index-url", world.serve.index_url, "--force"
    )
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        r = world.safe_pip("status", "--venv", str(fresh_venv))
        assert r.returncode == 1
        assert "PIP_EXTRA_INDEX_URL" in r.stdout
        assert "NOT SAFE" in r.stdout
    finally:
        assert world.safe_pip("uninstall", "--venv", str(fresh_venv)).returncode == 0
    assert not (fresh_venv / "pip.conf").exists()

    # uv concatenates indexes across levels: a system uv.toml with an index is refused for --user
    del world.env["PIP_EXTRA_INDEX_URL"]
    system = world.tmp / "xdg" / "uv" / "uv.toml"
    system.parent.mkdir(parents=True)
    system.write_text(f'[[index]]\nurl = "{world.evil.index_url}"\n')
    r = world.safe_pip("install", "--user", "--index-url", world.serve.index_url)
    assert r.returncode == 2
    assert str(system) in r.stderr


@pytest.mark.slow
def test_hook_uninstall_refuses_over_later_edits(world: World) -> None:
    r = world.safe_pip("install", "--user", "--index-url", world.serve.index_url)
    assert r.returncode == 0, r.stdout + r.stderr
    with world.user_pip.open("a") as fh:
        fh.write("# edited later\n")
    r = world.safe_pip("uninstall", "--user")
    assert r.returncode == 2
    assert "changed since" in r.stderr
    r = world.safe_pip("uninstall", "--user", "--force")
    assert r.returncode == 0


def test_hook_rejects_plain_http_to_another_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safe_pip.cli import main

    # a home of its own: were the URL taken, the user's real pip.conf must not be the one edited
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg"))
    code = main(["hook", "install", "--user", "--index-url", "http://10.0.0.7:8740/simple/"])
    assert code == 2
    assert not (tmp_path / ".config").exists()


@pytest.mark.slow
def test_hook_switches_off_every_spelling_pip_reads_as_a_source(
    world: World, fresh_venv: Path
) -> None:
    """pip's ``--index-url`` is also spelled ``--pypi-url`` (``pypi-url`` in a pip.conf,
    ``PIP_PYPI_URL``): left in place after the hook's own ``index-url`` in the same section, it
    won, so real pip took the attacker's unsigned alpha 3.0 while ``status`` said no source
    remained. The hook removes it as it removes ``index-url``; the variable is refused."""
    py = str(fresh_venv / "bin" / "python")
    dest = world.tmp / "dl"
    world.user_pip.write_text(
        f"[global]\ntimeout = 30\n[download]\nPYPI_URL = {world.evil.index_url}\n"
    )
    before = world.user_pip.read_bytes()
    r = world.safe_pip("install", "--user", "--index-url", world.serve.index_url)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        r = world.run(py, "-m", "pip", "download", "--no-deps", "-d", str(dest), "alpha==3.0")
        assert r.returncode != 0, r.stdout  # not found through serve
        assert not dest.exists() or not list(dest.iterdir())
        assert world.evil.hits("/simple/alpha/") == 0
        r = world.safe_pip("status", "--user", "--python", py, "--json")
        assert json.loads(r.stdout)["remaining_sources"] == []
    finally:
        assert world.safe_pip("uninstall", "--user").returncode == 0
    assert world.user_pip.read_bytes() == before

    # the variable overrides every file: install refuses it, naming it
    world.user_pip.write_text("[global]\ntimeout = 30\n")
    world.env["PIP_PYPI_URL"] = world.evil.index_url
    r = world.safe_pip("install", "--user", "--index-url", world.serve.index_url)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "PIP_PYPI_URL" in r.stderr


@pytest.mark.slow
def test_hook_switches_off_uvs_pytorch_index(world: World) -> None:
    """uv's ``torch-backend`` (``[pip]`` of a uv.toml, ``UV_TORCH_BACKEND``) sends every
    PyTorch-ecosystem package to download.pytorch.org instead of the configured index: with
    it left in place, real uv asked that host for torch while the hook said nothing remained.
    The hook removes it from the uv.toml it edits and refuses the variable. (A dead proxy
    stands in for the network: nothing leaves the machine.)"""
    uv_toml = world.home / ".config" / "uv" / "uv.toml"
    uv_toml.parent.mkdir(parents=True, exist_ok=True)
    uv_toml.write_text('[pip]\ntorch-backend = "cpu"\ncompile-bytecode = true\n')
    before = uv_toml.read_bytes()
    world.env["HTTPS_PROXY"] = world.env["HTTP_PROXY"] = "http://127.0.0.1:9"
    world.env["UV_HTTP_RETRIES"] = "0"
    r = world.safe_pip("install", "--user", "--index-url", world.serve.index_url)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        assert "torch-backend" not in uv_toml.read_text()
        r = world.run(str(UV), "pip", "install", "--dry-run", "--python", sys.executable, "torch")
        assert r.returncode != 0
        assert "pytorch.org" not in r.stdout + r.stderr
        assert world.upstream.hits("/simple/torch/") > 0  # asked through serve
    finally:
        assert world.safe_pip("uninstall", "--user").returncode == 0
    assert uv_toml.read_bytes() == before

    # the variable overrides every file: install refuses it, naming it
    uv_toml.unlink()
    world.env["UV_TORCH_BACKEND"] = "auto"
    r = world.safe_pip("install", "--user", "--index-url", world.serve.index_url)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "UV_TORCH_BACKEND" in r.stderr


@pytest.mark.slow
def test_hook_status_names_a_projects_uv_sources(world: World) -> None:
    """A project's ``[tool.uv.sources]`` (a git, URL or path source per package) takes the
    package from there, not from the hooked serve: real ``uv sync`` installed the attacker's
    unsigned alpha 3.0 by URL while ``status`` in the project listed no source that remains. No
    configuration can switch it off; status names it now."""
    r = world.safe_pip("install", "--user", "--index-url", world.serve.index_url)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        project = world.tmp / "project"
        project.mkdir()
        wheel = "alpha-3.0-py3-none-any.whl"
        (project / "pyproject.toml").write_text(
            '[project]\nname = "app"\nversion = "0"\ndependencies = ["alpha"]\n'
            f'[tool.uv.sources]\nalpha = {{ url = "{world.evil.file_url("alpha", wheel)}" }}\n'
        )

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                list(args),
                capture_output=True,
                text=True,
                env=world.env,
                cwd=project,
                timeout=300,
                check=False,
            )

        r = run(str(UV), "sync", "--python", sys.executable)
        assert r.returncode == 0, r.stdout + r.stderr  # uv took it around serve
        assert list(project.glob(".venv/lib/python*/site-packages/alpha-3.0.dist-info"))
        r = run(sys.executable, "-m", "safe_pip", "hook", "status", "--user", "--json")
        # (the exit code speaks for pip, which this source does not reach)
        remaining = json.loads(r.stdout)["remaining_sources"]
        assert [(s["tool"], s["key"]) for s in remaining] == [("uv", "sources")]
        assert wheel in remaining[0]["value"]
    finally:
        assert world.safe_pip("uninstall", "--user").returncode == 0
