"""Local state: the known-good history database (SQLite, WAL, transactions)."""

from __future__ import annotations

from safe_pip.store.db import HistoryStore, default_db_path, default_home

__all__ = ["HistoryStore", "default_db_path", "default_home"]
