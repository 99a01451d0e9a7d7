"""Index history on first sight costs one provenance read per earlier release (not per file),
and the releases are read in parallel (shown by two reads in progress at once, never by a
wall-clock time: a loaded machine can make any read slow)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

from safe_pip.check import Checker
from safe_pip.models import FileRef
from safe_pip.net import ProjectPage
from safe_pip.policy.file import Policy
from safe_pip.policy.history import HistoryRecord
from safe_pip.provenance.trust import TrustConfig

RELEASES = 6
#: How long a read waits for a second one to start: only a serial reader ever waits it out.
RENDEZVOUS_S = 30.0


class Counting(Checker):
    def __init__(self, page: ProjectPage) -> None:
        super().__init__(trust=TrustConfig(), policy=Policy(), provenance_index=None)
        self.page = page
        self.reads: list[str] = []
        self.active = 0
        self.peak = 0
        self._count = threading.Lock()
        self._two_at_once = threading.Event()

    def _history_page(self, name: str, index: str) -> ProjectPage | None:
        return self.page

    def _history_record(
        self, name: str, version: str, f: FileRef, index: str
    ) -> HistoryRecord | None:
        with self._count:
            self.reads.append(f.filename)
            self.active += 1
            self.peak = max(self.peak, self.active)
            if self.active > 1:
                self._two_at_once.set()
        # a read over a slow link: it lasts until another read is in progress too (parallel
        # readers), or RENDEZVOUS_S (a serial reader: peak stays 1 and the test fails)
        self._two_at_once.wait(RENDEZVOUS_S)
        with self._count:
            self.active -= 1
        return HistoryRecord(
            name, version, f.filename, f.sha256 or "", None, datetime.now(timezone.utc)
        )


def _page() -> ProjectPage:
    files = []
    for v in range(1, RELEASES + 1):
        for tag in ("cp311-cp311-manylinux_2_17_x86_64", "cp312-cp312-win_amd64", "py3-none-any"):
            files.append(FileRef("demo", f"{v}.0", f"demo-{v}.0-{tag}.whl", sha256=f"{v:064x}"))
        files.append(FileRef("demo", f"{v}.0", f"demo-{v}.0.tar.gz", sha256=f"{v + 100:064x}"))
    return ProjectPage("demo", tuple(files), tuple(f"{v}.0" for v in range(1, 7)), None, "x")


def test_one_read_per_release_in_parallel(tmp_path: Path) -> None:
    checker = Counting(_page())
    depth = checker.policy.defaults.index_history_depth
    history = checker.history_for("demo", index="https://example.invalid/simple/")
    wanted = min(depth, RELEASES)
    assert len(checker.reads) == wanted  # one file per release, never every wheel
    assert len({r.split("-")[1] for r in checker.reads}) == wanted
    assert all(r.endswith(".whl") for r in checker.reads)  # a wheel preferred
    assert len(history.records) == wanted
    if wanted > 1:
        assert checker.peak > 1  # read in parallel
