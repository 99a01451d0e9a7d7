"""Shared set-up of the adversarial suite: a hostile loopback index, the CLI, the history DB.

Every attack test drives the real CLI (``safe_pip.cli.main``) or the library entry point and
checks three things: the exit code, the reason, and that the history database (SafePip home is
a per-test temporary directory, see tests/conftest.py) was not changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from safe_pip.cli import main
from safe_pip.store.sqlite import SQLiteHistoryStore
from support.index_server import IndexServer
from support.publish import Publisher
from support.sigstore_ca import TestSigstore


def db_path() -> Path:
    return Path(os.environ["SAFE_PIP_HOME"]) / "history.sqlite3"


def db_snapshot() -> list[dict[str, object]]:
    """Every record of the history database ([] when there is no database yet)."""
    path = db_path()
    if not path.exists():
        return []
    with SQLiteHistoryStore.open(path, readonly=True) as store:
        return [
            rec.to_json()
            for summary in store.projects()
            for rec in store.project(summary.project).records
        ]


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Env:
    """One hostile index plus the CLI pointed at it."""

    server: IndexServer
    pub: Publisher
    trust_root: Path
    capsys: pytest.CaptureFixture[str]
    workdir: Path

    def args(self) -> list[str]:
        return ["--trust-root", str(self.trust_root), "-i", self.server.index_url]

    def cli(self, *argv: str) -> Run:
        self.capsys.readouterr()
        code = main(list(argv))
        cap = self.capsys.readouterr()
        return Run(code, cap.out, cap.err)

    def inspect(self, target: str, *extra: str) -> Run:
        return self.cli("inspect", target, *self.args(), *extra)


@pytest.fixture
def env(
    sigstore: TestSigstore,
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Env]:
    with IndexServer(workdir / "index") as server:
        yield Env(
            server, Publisher(sigstore, server, workdir / "build"), trust_root, capsys, workdir
        )
