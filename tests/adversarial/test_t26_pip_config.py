"""T26: pip's own configuration (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS, a pip.conf
named by PIP_CONFIG_FILE) cannot add unverified sources to safe-pip's pip calls: a decoy index
serving a higher, unsigned version is never contacted, and every pip call is isolated."""

from __future__ import annotations

from pathlib import Path

import pytest

import safe_pip.install.piprun as install_mod
from adversarial.conftest import Env, db_snapshot
from support.index_server import IndexServer
from support.publish import Publisher

pytestmark = pytest.mark.slow


def test_pip_configuration_adds_no_source(
    env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.pub.wheel("alpha", "1.0")
    target = tmp_path / "target"
    target.mkdir()
    calls: list[list[str]] = []
    real_run_pip = install_mod.run_pip

    def spy(argv: list[str], **kw: object) -> object:
        calls.append(list(argv))
        env_arg = kw.get("env")
        assert isinstance(env_arg, dict)
        assert not [
            k
            for k in env_arg
            if k.upper().startswith("PIP_") and k not in ("PIP_CONFIG_FILE", "PIP_RETRIES")
        ]
        assert env_arg.get("PIP_RETRIES", "0") == "0"
        assert env_arg["PIP_CONFIG_FILE"] == "/dev/null"
        return real_run_pip(argv, **kw)  # type: ignore[arg-type]

    real_spawn_pip = install_mod.spawn_pip

    def spawn_spy(argv: list[str], **kw: object) -> object:
        # the final install, pre-started to wait for its requirements (PrestartedPip)
        calls.append(list(argv))
        env_arg = kw.get("env")
        assert isinstance(env_arg, dict)
        assert not [
            k
            for k in env_arg
            if k.upper().startswith("PIP_") and k not in ("PIP_CONFIG_FILE", "PIP_RETRIES")
        ]
        assert env_arg.get("PIP_RETRIES", "0") == "0"
        assert env_arg["PIP_CONFIG_FILE"] == "/dev/null"
        return real_spawn_pip(argv, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(install_mod, "run_pip", spy)
    monkeypatch.setattr(install_mod, "spawn_pip", spawn_spy)
    with IndexServer(tmp_path / "decoy") as decoy:
        Publisher(env.pub.sigstore, decoy, tmp_path / "decoy-build").wheel(
            "alpha", "9.0", signed=False
        )
        links = tmp_path / "links"
        links.mkdir()
        for d in decoy.dists("alpha"):
            (links / d.filename).write_bytes(d.path.read_bytes())
        conf = tmp_path / "pip.conf"
        conf.write_text(
            f"[global]\nindex-url = {decoy.index_url}\nextra-index-url = {decoy.index_url}\n"
            f"find-links = {links}\n[install]\nextra-index-url = {decoy.index_url}\n"
        )
        monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
        monkeypatch.setenv("PIP_INDEX_URL", decoy.index_url)
        monkeypatch.setenv("PIP_EXTRA_INDEX_URL", decoy.index_url)
        monkeypatch.setenv("PIP_FIND_LINKS", str(links))
        monkeypatch.setenv("PIP_PRE", "1")

        run = env.cli(
            "install",
            "alpha",
            "--target",
            str(target),
            "-i",
            env.server.index_url,
            "--trust-root",
            str(env.trust_root),
            "--no-index-history",
        )
        assert decoy.requests_log == []
    assert run.code == 0, run.text
    assert "pip configuration is ignored" in run.err
    assert (target / "alpha-1.0.dist-info").is_dir()
    assert not list(target.glob("alpha-9.0*"))
    assert calls, "pip was never run"
    assert all("--isolated" in argv for argv in calls)
    final = next(c for c in calls if "--dry-run" not in c)
    assert "--no-index" in final
    assert "--require-hashes" in final
    assert not {"-i", "--index-url", "--extra-index-url", "-f", "--find-links"} & set(final)
    assert [r["filename"] for r in db_snapshot()] == ["alpha-1.0-py3-none-any.whl"]
