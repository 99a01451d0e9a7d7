"""The known-good history: one interface, two databases (SQLite, PostgreSQL); index serials.
May import policy (its history model), net, output, models, errors and text.

:class:`HistoryStore` (:mod:`safe_pip.store.base`) is the interface and the SQL behind it:
records, the compare-and-set of a first-use decision (:meth:`HistoryStore.update`), the audit
log, index serials, export / import, schema versions. Two backends open it:

- :mod:`safe_pip.store.sqlite`: a file, ``$SAFE_PIP_HOME/history.sqlite3`` (the default).
- :mod:`safe_pip.store.postgres`: a PostgreSQL server, ``--history postgresql://...`` /
  ``$SAFE_PIP_HISTORY``, shared by several serve replicas and CI runners.

:func:`open_history` picks one from a location. ``tests/test_store_contract.py`` runs the same
contract against both. :mod:`safe_pip.store.serials` keeps an index page from going back in
time (threat T21) with the serials the store remembers.
"""

from __future__ import annotations

import os
from pathlib import Path

from safe_pip.store.base import HistoryStore, default_home
from safe_pip.store.sqlite import SQLiteHistoryStore, default_db_path

ENV_HISTORY = "SAFE_PIP_HISTORY"

__all__ = ["ENV_HISTORY", "HistoryStore", "default_db_path", "default_home", "open_history"]


def open_history(location: str | None, *, readonly: bool = False) -> HistoryStore:
    """Open the history at ``location``: a ``postgresql://`` (or ``postgres://``) URL, a
    ``sqlite:///PATH`` URL or a file path; None: ``$SAFE_PIP_HISTORY``, else the SQLite file
    under ``$SAFE_PIP_HOME`` / the user data directory."""
    if location is None:
        location = os.environ.get(ENV_HISTORY) or None
    if location is None:
        return SQLiteHistoryStore.open(None, readonly=readonly)
    from safe_pip.store.postgres import PostgresHistoryStore, is_postgres_url

    if is_postgres_url(location):
        return PostgresHistoryStore.open_url(location, readonly=readonly)
    if location.startswith("sqlite://"):
        location = location.removeprefix("sqlite://")
    elif "://" in location:
        from safe_pip.errors import ConfigError

        raise ConfigError(
            f"--history {location.split('://', 1)[0]}://...: not a history location",
            fix="use postgresql://USER@HOST/DB, sqlite:///PATH or a file path",
        )
    return SQLiteHistoryStore.open(Path(location), readonly=readonly)
