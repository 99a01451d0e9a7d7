"""safe_pip.sources.read_lock (pylock.toml, uv.lock, requirements.txt) on arbitrary text and
fragment soups: a Lock or a ConfigError, never another exception."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safe_pip.errors import ConfigError
from safe_pip.sources import read_lock

TOML_FRAGMENTS = [
    'lock-version = "1.0"\n',
    "version = 1\n",
    'created-by = "x"\n',
    "[[packages]]\n",
    "[[package]]\n",
    'name = "demo"\n',
    'version = "1.0"\n',
    'version = "not a version"\n',
    'index = "https://example.test/simple/"\n',
    "[packages.sdist]\n",
    "[[packages.wheels]]\n",
    'name = "demo-1.0-py3-none-any.whl"\n',
    'url = "https://f.test/demo-1.0-py3-none-any.whl"\n',
    'hashes = { sha256 = "' + "a" * 64 + '" }\n',
    'hashes = { md5 = "x" }\n',
    "[[packages.attestation-identities]]\n",
    'kind = "GitHub"\n',
    'source = { registry = "https://example.test/simple/" }\n',
    'wheels = [ { url = "x", hash = "sha256:zz" } ]\n',
    "= broken\n",
]
REQ_FRAGMENTS = [
    "demo==1.0 \\\n",
    "    --hash=sha256:" + "b" * 64 + "\n",
    "    --hash=md5:abc\n",
    "--index-url https://example.test/simple/\n",
    "-r other.txt\n",
    "-e .\n",
    "demo @ https://f.test/demo-1.0.tar.gz\n",
    "# comment\n",
    "\\\n",
    "demo>=1\n",
    "--hash\n",
]


@pytest.mark.parametrize("name", ["pylock.toml", "uv.lock", "requirements.txt"])
@given(text=st.text(max_size=300))
def test_arbitrary_text(tmp_path: Path, name: str, text: str) -> None:
    _read(tmp_path / name, text)


@pytest.mark.parametrize("name", ["pylock.toml", "uv.lock"])
@given(parts=st.lists(st.sampled_from(TOML_FRAGMENTS), max_size=16))
def test_toml_soup(tmp_path: Path, name: str, parts: list[str]) -> None:
    _read(tmp_path / name, "".join(parts))


@given(parts=st.lists(st.sampled_from(REQ_FRAGMENTS), max_size=16))
def test_requirements_soup(tmp_path: Path, parts: list[str]) -> None:
    _read(tmp_path / "requirements.txt", "".join(parts))


def _read(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with contextlib.suppress(ConfigError):
        read_lock(path)
