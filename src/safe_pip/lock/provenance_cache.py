"""Fetched provenance by file digest under ``$SAFE_PIP_HOME/cache/provenance``: only material
that verified is stored, and every hit is verified again like a fresh download."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

MAX_PROVENANCE_BYTES = 2 * 1024 * 1024


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def hexdigest_ok(sha256: str) -> bool:
    return len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256)


class ProvenanceCache:
    """Fetched provenance by file sha256. A hit is only a candidate: it is verified like a
    fresh download, so a tampered cache can make a check fail but never pass."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path | None:
        sha = sha256.lower()
        if not hexdigest_ok(sha):
            return None
        return self.root / sha[:2] / f"{sha}.json"

    def get(self, sha256: str) -> bytes | None:
        path = self._path(sha256)
        if path is None:
            return None
        try:
            with path.open("rb") as fh:
                data = fh.read(MAX_PROVENANCE_BYTES + 1)
        except OSError:
            return None
        return data if 0 < len(data) <= MAX_PROVENANCE_BYTES else None

    def put(self, sha256: str, provenance: bytes) -> None:
        path = self._path(sha256)
        if path is None or len(provenance) > MAX_PROVENANCE_BYTES:
            return
        with contextlib.suppress(OSError):  # a cache that cannot be written is no cache
            atomic_write(path, provenance)


def default_cache_dir(home: str | None) -> Path:
    if home:
        return Path(home) / "cache" / "provenance"
    import platformdirs

    return Path(platformdirs.user_cache_dir("safe-pip")) / "provenance"
