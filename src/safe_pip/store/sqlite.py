"""The history in one SQLite file (the default): ``$SAFE_PIP_HOME/history.sqlite3``.

The queries are :class:`~safe_pip.store.base.HistoryStore`'s; this module opens, creates, checks
and migrates the file (docs/threat-model.md T17, T20; docs/adr/0001-tofu-history.md):

* WAL journal, ``synchronous=FULL``, a busy timeout, and every write inside
  ``BEGIN IMMEDIATE`` so concurrent runs serialise instead of interleaving.
* A new database is built in a temporary file next to the final path and linked into place, so
  no other process ever sees a half-created file.
* An existing file is checked before use, read-only: regular file owned by this user and not
  group/world-writable (POSIX), SQLite header, size consistent with the header, our
  ``application_id``, a known schema version, the expected tables, and ``PRAGMA quick_check``.
  Any failure is a :class:`~safe_pip.errors.StoreError`: the file is never modified, reset or
  recreated, because an empty history would trust whoever publishes next.
* A database from an older schema is migrated forward (one write transaction, logged in the
  audit table) when it is opened for writing; opened read-only it is used as it is. A database
  from a newer schema is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from safe_pip.errors import StoreError
from safe_pip.store.base import (
    BUSY_TIMEOUT_S,
    COLUMN_SINCE,
    EXPECTED_COLUMNS,
    MIGRATIONS,
    SCHEMA_SQL,
    SCHEMA_VERSION,
    TABLE_SINCE,
    HistoryStore,
    default_home,
    now,
    store_error,
)

DB_FILENAME = "history.sqlite3"
#: ``PRAGMA application_id``: "SPIP" in ASCII. A SQLite file without it is not ours.
APPLICATION_ID = 0x53504950
_SQLITE_MAGIC = b"SQLite format 3\x00"


def default_db_path(env: Mapping[str, str] | None = None) -> Path:
    return default_home(env) / DB_FILENAME


class SQLiteHistoryStore(HistoryStore):
    """:class:`~safe_pip.store.base.HistoryStore` on a SQLite file. Open with :meth:`open`; use as
    a context manager or call :meth:`close`."""

    @classmethod
    def open(cls, path: Path | None = None, *, readonly: bool = False) -> SQLiteHistoryStore:
        """Open (creating it when absent and not ``readonly``) the history database.

        ``readonly`` on a database that does not exist yet gives an empty store that cannot be
        written. Anything wrong with an existing file is a :class:`StoreError`. An older schema
        is migrated when not ``readonly``.
        """
        path = default_db_path() if path is None else path
        path = path.expanduser()
        _check_home(path.parent)
        if not path.exists() and not path.is_symlink():
            if readonly:
                return cls(path, None, readonly=True)
            _create(path)
        version = _validate(path)
        conn = _connect(path, readonly=readonly)
        if version < SCHEMA_VERSION and not readonly:
            try:
                version = _migrate(conn, path)
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
                raise
        return cls(path, conn, readonly=readonly, schema_version=version)

    def ping(self) -> None:
        """Raise StoreError unless the database answers a trivial query (readiness probes).
        A read-only store whose file does not exist yet answers (it is empty)."""
        with self._lock:
            if self._conn is None:
                if self.readonly and not self.path.exists():
                    return
                raise StoreError(f"{self.location}: history database is closed")
            try:
                self._conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
            except sqlite3.Error as exc:
                raise store_error(self.location, exc, "could not read") from None


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    mode = "ro" if readonly else "rw"
    uri = f"{path.resolve().as_uri()}?mode={mode}"
    try:
        conn = sqlite3.connect(
            uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if not readonly:
            conn.execute("PRAGMA synchronous = FULL")
        mode_row = conn.execute("PRAGMA journal_mode").fetchone()
        if not mode_row or str(mode_row[0]).lower() != "wal":
            conn.close()
            raise StoreError(
                f"{path}: history database is not in WAL mode ({mode_row}); it was not changed"
            )
        return conn
    except sqlite3.Error as exc:
        raise store_error(path, exc, "could not open") from None


def _create(path: Path) -> None:
    """Build a fresh database next to ``path`` and link it into place (never over a file)."""
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StoreError(f"{directory}: cannot create the history directory: {exc}") from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        conn = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN")
            for statement in SCHEMA_SQL.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?), ('created_at', ?)",
                (str(SCHEMA_VERSION), now()),
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        with open(tmp, "rb+") as fh:  # durable before it becomes visible
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        except OSError:
            if os.name != "nt":
                raise
            with contextlib.suppress(FileExistsError):
                os.rename(tmp, path)  # no-clobber on Windows
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: could not create the history database: {exc}") from None
    except OSError as exc:
        raise StoreError(f"{path}: could not create the history database: {exc}") from None
    finally:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{tmp}{suffix}")


def _migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring an older schema up to SCHEMA_VERSION in one write transaction (a concurrent run
    that migrated first is fine: the version is read again inside the transaction). The
    migration is logged in the audit table. Returns the new version."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise store_error(path, exc, "could not start a write transaction on") from None
    try:
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{path}: history database schema {current} is newer than this safe-pip "
                f"understands ({SCHEMA_VERSION})",
                fix="upgrade safe-pip",
            )
        if current < SCHEMA_VERSION:
            for version in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute(
                "INSERT INTO audit (at, action, project, count, reason, detail) "
                "VALUES (?, 'migrate', NULL, 0, ?, ?)",
                (
                    now(),
                    f"schema {current} -> {SCHEMA_VERSION}",
                    json.dumps({"from": current, "to": SCHEMA_VERSION}),
                ),
            )
        conn.execute("COMMIT")
    except BaseException as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise store_error(path, exc, "could not migrate") from None
        raise
    return SCHEMA_VERSION


def _check_home(directory: Path) -> None:
    """Refuse a history directory that another local user could change (threat T17): one
    writable by group or others can have its database deleted or swapped, and the next run
    would trust an attacker on first use. Only checked where it exists (a missing one is
    created 0700 by :func:`_create`)."""
    if sys.platform == "win32":
        return
    try:
        st = directory.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"{directory}: cannot read the history directory: {exc}") from None
    from safe_pip.errors import InsecureHomeError

    if not stat.S_ISDIR(st.st_mode):
        raise InsecureHomeError(
            f"{directory}: the history directory (SAFE_PIP_HOME) is not a directory",
            fix="point SAFE_PIP_HOME (or --home) at a directory of your own",
        )
    if st.st_mode & 0o022:
        raise InsecureHomeError(
            f"{directory}: the history directory (SAFE_PIP_HOME) is writable by group or others "
            f"(mode {stat.filemode(st.st_mode)}); another user could delete the history and "
            "have the next run trust an attacker on first use",
            fix=f"chmod go-w {directory}",
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise InsecureHomeError(
            f"{directory}: the history directory (SAFE_PIP_HOME) is owned by uid {st.st_uid}, "
            f"not by you (uid {os.getuid()})",
            fix="point SAFE_PIP_HOME (or --home) at a directory you own",
        )
    _check_ancestors(directory)


def _check_ancestors(directory: Path) -> None:
    """The directories above the history directory (as resolved: symbolic links followed),
    like ssh's StrictModes: each must be owned by you or root and writable by no one else,
    unless it has the sticky bit (``/tmp``: others cannot rename what is yours in it).
    Otherwise another user could rename the history directory away, and the next run would
    create an empty one and trust whoever publishes next on first use."""
    from safe_pip.errors import InsecureHomeError

    uid = os.getuid() if hasattr(os, "getuid") else None
    try:
        resolved = directory.resolve()
    except (OSError, RuntimeError) as exc:
        raise StoreError(f"{directory}: cannot resolve the history directory: {exc}") from None
    for parent in resolved.parents:
        try:
            st = parent.stat()
        except OSError as exc:
            raise StoreError(
                f"{parent}: cannot read a directory above the history directory: {exc}"
            ) from None
        if uid is not None and st.st_uid not in (0, uid):
            raise InsecureHomeError(
                f"{parent}: a directory above the history directory (SAFE_PIP_HOME) "
                f"{directory} is owned by uid {st.st_uid}, not by you (uid {uid}) or root; "
                "its owner could move the history away and have the next run trust an "
                "attacker on first use",
                fix="point SAFE_PIP_HOME (or --home) at a directory inside your own home",
            )
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise InsecureHomeError(
                f"{parent}: a directory above the history directory (SAFE_PIP_HOME) "
                f"{directory} is writable by group or others (mode {stat.filemode(st.st_mode)}) "
                "without the sticky bit; another user could move the history away and have the "
                "next run trust an attacker on first use",
                fix=f"chmod go-w {parent}",
            )


def _validate(path: Path) -> int:
    """Refuse anything that is not a healthy safe-pip history database. Read-only. Returns
    the file's schema version."""
    fix = "inspect or restore it (or move it aside deliberately); safe-pip never resets it"
    try:
        st = path.stat()
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the history database: {exc}", fix=fix) from None
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{path}: history database is not a regular file", fix=fix)
    if sys.platform != "win32":
        if st.st_mode & 0o022:
            raise StoreError(
                f"{path}: history database is writable by group or others "
                f"(mode {stat.filemode(st.st_mode)}); anyone who can write it can choose "
                "which publishers you trust",
                fix=f"chmod go-w {path}",
            )
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise StoreError(
                f"{path}: history database is owned by uid {st.st_uid}, not by you "
                f"(uid {os.getuid()})",
                fix=fix,
            )
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the history database: {exc}", fix=fix) from None
    if st.st_size == 0:
        raise StoreError(f"{path}: history database is empty (truncated?)", fix=fix)
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise StoreError(f"{path}: not a SQLite database (corrupt or foreign file)", fix=fix)
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    valid_for = int.from_bytes(header[92:96], "big")
    change = int.from_bytes(header[24:28], "big")
    if page_size < 512 or page_size & (page_size - 1):
        raise StoreError(f"{path}: corrupt SQLite header (page size {page_size})", fix=fix)
    if st.st_size % page_size or (pages and valid_for == change and st.st_size < pages * page_size):
        raise StoreError(
            f"{path}: history database is truncated ({st.st_size} bytes, header says "
            f"{pages} pages of {page_size})",
            fix=fix,
        )
    app_id = int.from_bytes(header[68:72], "big")
    if app_id != APPLICATION_ID:
        raise StoreError(
            f"{path}: this SQLite database is not a safe-pip history (application_id {app_id:#x})",
            fix=fix,
        )
    user_version = int.from_bytes(header[60:64], "big")
    if user_version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: history database schema {user_version} is newer than this safe-pip "
            f"understands ({SCHEMA_VERSION})",
            fix="upgrade safe-pip",
        )
    if user_version < 1:
        raise StoreError(f"{path}: history database has no schema version", fix=fix)
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise store_error(path, exc, "could not open") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        check = [r[0] for r in conn.execute("PRAGMA quick_check")]
        if check != ["ok"]:
            raise StoreError(
                f"{path}: history database is corrupt ({'; '.join(map(str, check[:3]))})",
                fix=fix,
            )
        expected = {
            name: {c for c in columns if COLUMN_SINCE.get((name, c), 1) <= user_version}
            for name, columns in EXPECTED_COLUMNS.items()
            if TABLE_SINCE.get(name, 1) <= user_version
        }
        tables = {
            name: {r[1] for r in conn.execute(f"PRAGMA table_info({name})")} for name in expected
        }
        for name, columns in expected.items():
            if not columns <= tables[name]:
                raise StoreError(
                    f"{path}: history database lacks table {name!r} or its columns", fix=fix
                )
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or row[0] != str(user_version):
            raise StoreError(f"{path}: history database schema version mismatch", fix=fix)
    except sqlite3.Error as exc:
        raise StoreError(
            f"{path}: history database is unreadable or corrupt ({exc}); it was not changed",
            fix=fix,
        ) from None
    finally:
        conn.close()
    return user_version
