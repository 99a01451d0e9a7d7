"""threat T21: an index page must not go back in time (stale mirror, replayed page).

Every face that reads a project page from an index (``Checker`` for index history and
provenance look-ups, ``install``, ``inspect``, ``verify``, ``serve``) passes the parsed page to
:meth:`SerialGuard.observe_page`. The guard compares the page's ``_last-serial`` (PEP 691
``meta._last-serial`` or PyPI's ``X-PyPI-Last-Serial`` header) with the highest serial seen for
the same (index, project), in this process and in the history store, and raises
:class:`~safe_pip.errors.StaleIndexError` (could not check, exit 3) when it is lower.

Recording: a higher serial is remembered in memory and, when the store is writable, recorded
at once (one small write transaction, and only when the serial grew). The serial is a fact about
the index, not a trust decision, so a run that later refuses a file, or fails, still remembers
the freshest page it saw. A read-only store (``inspect`` without ``--record``, ``verify``,
``install --dry-run``) is only read: such runs are checked against what writing runs recorded,
and against pages read earlier in the same run.

Not checked: a page without a serial (many indexes send none; a mirror that strips it is not
caught), or with one outside ``0..2**63-1``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from safe_pip.errors import StaleIndexError
from safe_pip.store.base import MAX_SERIAL, HistoryStore, index_key

if TYPE_CHECKING:
    from safe_pip.net import ProjectPage


class SerialGuard:
    """Highest ``_last-serial`` per (index, project): in memory, and in ``store`` if given."""

    def __init__(self, store: HistoryStore | None) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], int] = {}

    def observe_page(self, index: str, page: ProjectPage) -> None:
        """Check (and remember) a successfully parsed page of ``index``. Raises
        StaleIndexError, or StoreError when the store cannot be read or written."""
        self.observe(index, page.name, page.last_serial)

    def observe(self, index: str, project: str, serial: int | None) -> None:
        if serial is None or not 0 <= serial <= MAX_SERIAL:
            return
        key = (index_key(index), canonicalize_name(project))
        store = self.store
        recorded = store.last_serial(*key) if store is not None else None
        with self._lock:
            known = max(self._seen.get(key, -1), -1 if recorded is None else recorded)
            if serial >= known:
                self._seen[key] = serial
        if serial < known:
            raise stale_error(key[0], key[1], serial, known)
        if store is not None and store.exists and not store.readonly and serial > known:
            higher = store.raise_serial(*key, serial)  # compare-and-set against other runs
            if higher is not None:
                with self._lock:
                    self._seen[key] = max(self._seen.get(key, -1), higher)
                raise stale_error(key[0], key[1], serial, higher)


def stale_error(index: str, project: str, serial: int, previous: int) -> StaleIndexError:
    from safe_pip.net import redact

    where = redact(index)
    return StaleIndexError(
        f"the index {where} served a page for {project} with serial {serial}, older than "
        f"serial {previous} seen before (stale mirror or replayed page); nothing from that "
        "page was used",
        fix="check the mirror, or wait for it to sync and retry; if the index was legitimately "
        f'reset, run: safe-pip history forget-serials {project} --index {where} --reason "..."',
        index=index,
        project=project,
        serial=serial,
        previous=previous,
    )
