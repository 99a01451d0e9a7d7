"""Which lock files a verify run reads, and reading them (every reader's error reported at once);
the index the locks name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from safe_pip.errors import ConfigError
from safe_pip.sources import Lock, read_lock

DEFAULT_LOCKS = ("pylock.toml", "uv.lock", "poetry.lock", "pdm.lock", "requirements.txt")


def lock_paths(given: Sequence[str], write_identities: str | None) -> list[Path]:
    """The lock files to verify: those given and the ``--write-identities`` target, each once;
    none given: the first of :data:`DEFAULT_LOCKS` in the current directory."""
    paths = [Path(p) for p in given]
    if write_identities:
        target = Path(write_identities)
        if all(p.resolve() != target.resolve() for p in paths):
            paths.append(target)
    unique: dict[Path, Path] = {}
    for p in paths:
        unique.setdefault(p.resolve(), p)
    paths = list(unique.values())
    if not paths:
        for name in DEFAULT_LOCKS:
            if Path(name).is_file():
                return [Path(name)]
        raise ConfigError(
            "no lockfile given and none of " + ", ".join(DEFAULT_LOCKS) + " found here",
            fix="name the lockfile: safe-pip verify path/to/pylock.toml",
        )
    return paths


def read_locks(paths: Sequence[Path]) -> list[Lock]:
    """Every lock at ``paths``; a ConfigError naming every one that cannot be read."""
    errors: list[str] = []
    locks = []
    for path in paths:
        try:
            locks.append(read_lock(path))
        except ConfigError as exc:
            errors.append(f"{exc.message} (fix: {exc.fix})" if exc.fix else exc.message)
    if errors:
        # one line: error messages are printed inert, so line breaks would show as '\n'
        raise ConfigError("; ".join(errors))
    return locks


def lock_index(locks: Sequence[Lock]) -> str | None:
    """The index the locks name (a package's own, else a lock's), or None."""
    return next((p.index for lock in locks for p in lock.packages if p.index), None) or next(
        (lock.index for lock in locks if lock.index), None
    )
