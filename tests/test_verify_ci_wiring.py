"""The GitHub Action and pre-commit hook that wrap ``safe-pip verify`` (no network)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"


def _step_script(step_id: str) -> str:
    """The ``run: |`` block of the step with ``id: step_id`` (plain text parsing)."""
    lines = ACTION.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"id: {step_id}")
    run = next(i for i in range(start, len(lines)) if lines[i].strip() == "run: |")
    indent = len(lines[run + 1]) - len(lines[run + 1].lstrip())
    body = []
    for line in lines[run + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        body.append(line[indent:])
    return "\n".join(body) + "\n"


def test_action_pins_external_actions_by_sha() -> None:
    uses = re.findall(r"uses:\s*(\S+)", ACTION.read_text())
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
    # inputs never reach a shell through ${{ }} interpolation
    for i, line in enumerate(ACTION.read_text().splitlines()):
        if "${{" in line and "inputs." in line:
            assert line.strip().startswith(("INPUT_", "python-version:", "if:")), (i, line)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("fail", "stub_rc", "want_rc"), [("true", 1, 1), ("false", 1, 0), ("true", 0, 0)]
)
def test_action_verify_step(tmp_path: Path, fail: str, stub_rc: int, want_rc: int) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "safe-pip"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/argv"\nexit {stub_rc}\n')
    stub.chmod(0o755)
    out = tmp_path / "github_output"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "GITHUB_OUTPUT": str(out),
        "INPUT_LOCKFILES": "pylock.toml requirements.txt",
        "INPUT_FORMAT": "sarif",
        "INPUT_OUTPUT": "safe-pip.sarif",
        "INPUT_ARGS": "--offline --evidence ev; echo pwned",
        "INPUT_FAIL": fail,
    }
    proc = subprocess.run(
        ["bash", "-c", _step_script("verify")], env=env, cwd=tmp_path, check=False
    )
    assert proc.returncode == want_rc
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv == [
        "verify",
        "pylock.toml",
        "requirements.txt",
        "--format",
        "sarif",
        "--output",
        "safe-pip.sarif",
        "--offline",
        "--evidence",
        "ev;",  # words, never shell code
        "echo",
        "pwned",
    ]
    outputs = out.read_text()
    assert f"exit-code={stub_rc}" in outputs
    assert "report=safe-pip.sarif" in outputs


def test_pre_commit_hook_matches_lockfiles() -> None:
    text = HOOKS.read_text()
    assert "id: safe-pip-verify" in text
    assert "entry: safe-pip verify" in text
    pattern = re.search(r"files: '([^']+)'", text)
    assert pattern is not None
    rx = re.compile(pattern.group(1))
    for name in [
        "pylock.toml",
        "sub/pylock.dev.toml",
        "uv.lock",
        "poetry.lock",
        "sub/pdm.lock",
        "requirements.txt",
        "req/requirements-dev.txt",
    ]:
        assert rx.search(name), name
    for name in ["pyproject.toml", "requirements.in", "notuv.lockfile", "pylock.toml.bak"]:
        assert not rx.search(name), name
