"""Where file references come from: the readers of locks and of pip's report, one release or file
for inspect. May import net, output, models, errors and text.

- :mod:`~safe_pip.sources.pip_report`: pip's ``--dry-run --report`` (format version 1).
- :mod:`~safe_pip.sources.pylock`: ``pylock.toml`` (PEP 751).
- :mod:`~safe_pip.sources.requirements`: requirements files with ``==`` pins and ``--hash`` (as
  pip-compile and ``uv export`` write them).
- :mod:`~safe_pip.sources.uvlock`: ``uv.lock``.
- :mod:`~safe_pip.sources.package_files_lock`: ``poetry.lock`` and ``pdm.lock``.

Each lock reader turns a lock into a :class:`~safe_pip.sources.model.Lock`: its packages, and
for each package every file the lock names (every wheel and the sdist), with the line of the
lock where the entry is, so that reports (SARIF, text) can point at it. Where a lock does not
name its files (requirements files list hashes only), the lock face finds them on the index.
:func:`read_lock` picks the reader. Malformed locks raise
:class:`safe_pip.errors.ConfigError` (exit 2), naming the file and line.

May import :mod:`safe_pip.models` and :mod:`safe_pip.errors` only (no network, no face).
"""

from __future__ import annotations

from pathlib import Path

from safe_pip.errors import ConfigError
from safe_pip.sources.model import Lock, LockedFile, LockedPackage, LockFormat

__all__ = ["Lock", "LockFormat", "LockedFile", "LockedPackage", "detect_format", "read_lock"]


def detect_format(path: Path) -> LockFormat:
    """Which reader handles ``path``, from its name (PEP 751 names, uv.lock, poetry.lock,
    pdm.lock, else requirements)."""
    name = path.name.lower()
    if name == "uv.lock":
        return "uv"
    if name == "poetry.lock":
        return "poetry"
    if name == "pdm.lock":
        return "pdm"
    if name == "pylock.toml" or (name.startswith("pylock.") and name.endswith(".toml")):
        return "pylock"
    if name.endswith(".toml"):
        raise ConfigError(
            f"{path}: cannot tell which lockfile format this is",
            fix="name it pylock.toml / pylock.<name>.toml (PEP 751), uv.lock, poetry.lock or "
            "pdm.lock",
        )
    return "requirements"


def read_lock(path: Path, fmt: LockFormat | None = None) -> Lock:
    """Read one lockfile. Raises ConfigError (exit 2) when it is missing, unreadable or
    malformed (a missing file is said to be missing, whatever its name)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"lockfile {path} does not exist", fix="check the path (safe-pip verify PATH/TO/LOCK)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read lockfile {path}: {exc.strerror or exc}") from exc
    fmt = fmt or detect_format(path)
    if fmt == "requirements":
        from safe_pip.sources.pip_options import decode_requirement_file
        from safe_pip.sources.requirements import parse_requirements

        # decoded as pip decodes it: a PEP 263 coding line (utf-7 makes '+AAo-' a line break)
        return parse_requirements(decode_requirement_file(raw), path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 ({exc})") from exc
    if fmt == "pylock":
        from safe_pip.sources.pylock import parse_pylock

        return parse_pylock(text, path)
    if fmt == "uv":
        from safe_pip.sources.uvlock import parse_uv_lock

        return parse_uv_lock(text, path)
    if fmt == "poetry":
        from safe_pip.sources.package_files_lock import parse_poetry_lock

        return parse_poetry_lock(text, path)
    if fmt == "pdm":
        from safe_pip.sources.package_files_lock import parse_pdm_lock

        return parse_pdm_lock(text, path)
    raise AssertionError(fmt)  # pragma: no cover - detect_format names no other
