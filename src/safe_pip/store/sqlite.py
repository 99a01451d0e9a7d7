"""The history in one SQLite file (the default; ``$SAFE_PIP_HOME/history.sqlite3``).

The implementation is :class:`safe_pip.store.db.HistoryStore` itself: the shared SQL runs on a
``sqlite3`` connection (WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE`` writes), and the file is
created, checked and migrated by :mod:`safe_pip.store.db`'s ``_create`` / ``_validate`` /
``_migrate``. This module names it next to :mod:`safe_pip.store.postgres`.
"""

from __future__ import annotations

from safe_pip.store.db import HistoryStore

SQLiteHistoryStore = HistoryStore

__all__ = ["SQLiteHistoryStore"]
