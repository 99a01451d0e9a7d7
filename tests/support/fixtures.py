"""Where the real-world fixtures live: ``fixtures/`` at the top of the repository.

``fixtures/realworld`` holds the real PEP 740 attestation corpus, ``fixtures/pages`` recorded
index pages, ``fixtures/locks`` lockfiles made by real tools (fixtures/README.md says where each
came from and under which licence). ``$SAFE_PIP_REALWORLD`` may point the attestation tests at
another copy of the corpus; by default the repository's own copy is used, so a clone runs them.
"""

from __future__ import annotations

import json
import lzma
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PAGES = FIXTURES / "pages"
LOCKS = FIXTURES / "locks"


def realworld_dir() -> Path:
    """The attestation corpus: $SAFE_PIP_REALWORLD when set, else fixtures/realworld."""
    override = os.environ.get("SAFE_PIP_REALWORLD")
    return Path(override) if override else FIXTURES / "realworld"


def realworld_cases() -> list[Path]:
    root = realworld_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "case.json").is_file())


@dataclass(frozen=True)
class RecordedPage:
    """One recorded index page: what the server answered, and where it came from."""

    name: str
    project: str
    url: str
    content_type: str
    headers: dict[str, str]
    body: bytes
    source: str
    derived: bool
    notes: str


def _manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAGES / "pages.json").read_text(encoding="utf-8"))
    return data


def recorded_pages() -> list[RecordedPage]:
    """Every page in fixtures/pages/pages.json, bodies read (``.xz`` bodies decompressed)."""
    out = []
    for name, entry in _manifest()["pages"].items():
        path = PAGES / entry["file"]
        body = lzma.decompress(path.read_bytes()) if path.suffix == ".xz" else path.read_bytes()
        out.append(
            RecordedPage(
                name=name,
                project=entry["project"],
                url=entry["url"],
                content_type=entry["content_type"],
                headers=dict(entry.get("headers", {})),
                body=body,
                source=entry["source"],
                derived=bool(entry.get("derived", False)),
                notes=entry.get("notes", ""),
            )
        )
    return out


def recorded_page(name: str) -> RecordedPage:
    for page in recorded_pages():
        if page.name == name:
            return page
    raise KeyError(name)
