"""Shared fixtures: the test Sigstore instance, its trust root, isolation from the machine's
pip configuration and from the user's safe-pip state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.sigstore_ca import TestSigstore


@pytest.fixture(autouse=True)
def _isolate_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the machine's pip config or the user's safe-pip home/policy."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("PIP_NO_INPUT", "1")
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONSTRAINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SAFE_PIP_HOME", str(tmp_path_factory.mktemp("safe-pip-home")))
    monkeypatch.delenv("SAFE_PIP_POLICY", raising=False)
    monkeypatch.delenv("SAFE_PIP_TRUST_ROOT", raising=False)


@pytest.fixture(scope="session")
def sigstore() -> TestSigstore:
    """One test Sigstore instance (CA, CT log, transparency log) for the session."""
    return TestSigstore()


@pytest.fixture(scope="session")
def trust_root(sigstore: TestSigstore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The instance's trusted_root.json on disk (what --trust-root takes)."""
    return sigstore.write_trusted_root(tmp_path_factory.mktemp("trust") / "trusted_root.json")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary current directory (so no stray safe-pip.toml is picked up)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
