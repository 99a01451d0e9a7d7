"""No disclosure by default: a file's provenance is looked up on its own index only.

A private index (here a mirror that serves no provenance) must not make safe-pip ask another
index (PyPI by default, before) about every project it lists: that discloses internal project
names, and an unreachable PyPI turned every such file into "could not check". Another index is
asked only when the user names it (--provenance-index, $SAFE_PIP_PROVENANCE_INDEX).
The test session refuses any non-loopback connection, so a PyPI lookup would fail the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from safe_pip.cli import main
from support.index_server import IndexServer
from support.publish import Publisher
from support.sigstore_ca import TestSigstore


@pytest.fixture
def indexes(sigstore: TestSigstore, workdir: Path) -> Iterator[tuple[IndexServer, IndexServer]]:
    """(public, mirror): the mirror lists the public index's signed wheel without provenance."""
    with IndexServer(workdir / "public") as public, IndexServer(workdir / "mirror") as mirror:
        stored = Publisher(sigstore, public, workdir / "build").wheel("internal-lib", "1.0")
        mirror.add_file(stored, project="internal-lib", provenance=None)
        yield public, mirror


def _install(trust_root: Path, mirror: IndexServer, workdir: Path, *extra: str) -> list[str]:
    return [
        "install", "--trust-root", str(trust_root), "-i", mirror.index_url,
        "--target", str(workdir / "t"), "--dry-run", "--json", *extra, "internal-lib",
    ]  # fmt: skip


def _page_hits(server: IndexServer) -> int:
    return server.hits("/simple/internal-lib/")


def test_private_index_files_are_not_looked_up_elsewhere(
    indexes: tuple[IndexServer, IndexServer],
    trust_root: Path,
    workdir: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    public, mirror = indexes
    before = _page_hits(public)
    rc = main(_install(trust_root, mirror, workdir))
    out, err = capfd.readouterr()
    assert rc == 1, err  # refused as unsigned, not "could not check" (exit 3)
    [f] = json.loads(out)["files"]
    assert f["code"] == "refused-unsigned"
    assert "no other index was asked" in f["reason"]
    assert _page_hits(public) == before


@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_named_provenance_index_is_asked(
    indexes: tuple[IndexServer, IndexServer],
    trust_root: Path,
    workdir: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    public, mirror = indexes
    extra: list[str] = []
    if how == "flag":
        extra = ["--provenance-index", public.index_url]
    else:
        monkeypatch.setenv("SAFE_PIP_PROVENANCE_INDEX", public.index_url)
    before = _page_hits(public)
    rc = main(_install(trust_root, mirror, workdir, *extra))
    out, err = capfd.readouterr()
    assert rc == 0, err
    [f] = json.loads(out)["files"]
    assert f["verified"] is True
    assert _page_hits(public) > before
