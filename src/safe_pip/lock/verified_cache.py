"""A cache of verified runs: an unchanged lock, verified with an unchanged policy, trust root
and history, answers from the last run's report instead of verifying again (like pnpm's
lockfile-verified cache).

Only runs that exited 0 (every file verified and allowed) are stored, one file per key under
``$SAFE_PIP_HOME/cache/verified/`` (else the user cache directory). The key is a sha256 over:

- the bytes of every lockfile (and its resolved path), what was read from it and from the
  files it includes (a requirements file's ``-r``), the output format and options;
- the policy (its file's bytes and the validated policy);
- the trust root (its mode, and a custom root's bytes);
- this machine's history of every project the locks name (a record another run added or
  forgot changes the key);
- safe-pip's version, and the UTC day: an entry is used on the day it was written only, so an
  ``[[unsigned]]`` exception that expires, a project the index quarantines (PEP 792) or a
  withdrawn attestation is seen again by the next day's first run at the latest.

A hit re-prints the stored report and exit code; ``--no-cache`` (or any option that writes:
``--write-identities``, ``--save-evidence``; or ``--evidence``) always verifies again. A cache
entry that cannot be read, is of another schema, names another key, or that another user
owns or could write (the file or its directory) is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safe_pip import __version__

if TYPE_CHECKING:
    from safe_pip.policy.file import Policy
    from safe_pip.provenance.trust import TrustConfig
    from safe_pip.sources import Lock
    from safe_pip.store.db import HistoryStore

SCHEMA = "safe-pip-verified/1"
MAX_ENTRY_BYTES = 64 * 1024 * 1024


def cache_dir(home: str | None) -> Path:
    if home:
        return Path(home) / "cache" / "verified"
    import platformdirs

    return Path(platformdirs.user_cache_dir("safe-pip")) / "verified"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _history_digest(store: HistoryStore | None, projects: Iterable[str]) -> str:
    if store is None:
        return ""
    h = hashlib.sha256()
    for name in sorted(set(projects)):
        hist = store.project(name)
        h.update(name.encode() + b"\0")
        for rec in hist.records:
            h.update(repr(rec).encode() + b"\n")  # every field, whatever the model holds
    return h.hexdigest()


def _read(lock: Lock) -> tuple[object, ...]:
    """Everything a lock's verification reads from it (and from the files it includes)."""
    return (lock.format, lock.packages, lock.index, lock.extra_indexes, lock.generator)


def key(
    locks: Iterable[Lock],
    policy: Policy,
    trust: TrustConfig,
    store: HistoryStore | None,
    options: Mapping[str, object],
    *,
    now: datetime | None = None,
) -> str:
    """The cache key of one verify run (see the module docstring for what it covers)."""
    from packaging.utils import canonicalize_name

    locks = list(locks)
    parts: dict[str, Any] = {
        "schema": SCHEMA,
        "version": __version__,
        "day": (now or datetime.now(timezone.utc)).astimezone(timezone.utc).date().isoformat(),
        "locks": [[str(lock.path.resolve()), _sha(lock.path.read_bytes())] for lock in locks],
        # what was read from them, files a lock includes (requirements ``-r``) too
        "read": [_sha(repr(_read(lock)).encode()) for lock in locks],
        "policy": _sha(repr(policy).encode()),
        "policy_file": _sha(policy.path.read_bytes()) if policy.path is not None else "",
        "trust": [trust.mode, str(trust.path or "")],
        "trust_file": _sha(trust.path.read_bytes()) if trust.path is not None else "",
        "history": _history_digest(
            store, (str(canonicalize_name(p.name)) for lock in locks for p in lock.packages)
        ),
        "options": {k: str(v) for k, v in sorted(options.items())},
    }
    return _sha(json.dumps(parts, sort_keys=True).encode())


def _private(st: os.stat_result) -> bool:
    """Owned by this user and writable by no one else (a stored pass is a verdict)."""
    import stat

    owner = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return owner and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def load(root: Path, cache_key: str) -> tuple[str, str] | None:
    """(report text, summary line) stored for ``cache_key`` (a run that exited 0), or None."""
    path = root / f"{cache_key}.json"
    try:
        with path.open("rb") as fh:
            if not _private(os.fstat(fh.fileno())) or not _private(os.stat(root)):
                return None  # another user could have written it: verify again
            raw = fh.read(MAX_ENTRY_BYTES + 1)
        data = json.loads(raw)
    except (OSError, ValueError):
        return None
    if (
        len(raw) > MAX_ENTRY_BYTES
        or not isinstance(data, dict)
        or data.get("schema") != SCHEMA
        or data.get("key") != cache_key
        or data.get("exit_code") != 0
        or not isinstance(data.get("report"), str)
        or not isinstance(data.get("summary"), str)
    ):
        return None
    return data["report"], data["summary"]


def store_run(root: Path, cache_key: str, report: str, summary: str, exit_code: int) -> None:
    """Keep a run that exited 0 (anything else is never stored); failures to write are ignored."""
    if exit_code != 0:
        return
    doc = {
        "schema": SCHEMA,
        "key": cache_key,
        "exit_code": 0,
        "report": report,
        "summary": summary,
    }
    with contextlib.suppress(OSError):
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".verified.", suffix=".tmp", dir=root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh)
            os.replace(tmp, root / f"{cache_key}.json")
        finally:
            Path(tmp).unlink(missing_ok=True)
