"""A real PostgreSQL server for the tests: ``initdb`` + ``pg_ctl`` in a temporary directory,
listening only on a unix socket in that directory (no TCP port).

initdb refuses to run as root; the tests (and CI) run as root, so the server then runs as the
``postgres`` system user (Debian's server package creates it) through ``runuser``. The binaries
are found in ``$SAFE_PIP_PG_BINDIR``, else the newest ``/usr/lib/postgresql/*/bin``, else on
PATH. ``.ci/run`` installs Debian's ``postgresql`` package when they are missing.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def find_bindir() -> Path | None:
    env = os.environ.get("SAFE_PIP_PG_BINDIR")
    if env and (Path(env) / "initdb").exists():
        return Path(env)
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for c in reversed(candidates):
        if (c / "initdb").exists() and (c / "pg_ctl").exists():
            return c
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresServer:
    """Start with :meth:`start`, stop with :meth:`stop`; :meth:`new_database` gives a fresh,
    empty database's URL."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="safe-pip-pg-"))
        self.data = self.root / "data"
        self.port = 5432
        self._counter = itertools.count(1)
        self.as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self.user = "postgres" if self.as_root else _whoami()

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env, cwd="/"
        )

    def start(self) -> PostgresServer:
        if self.as_root:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chmod(self.root, 0o755)  # noqa: S103 - the server user must reach its socket
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        r = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed: {r.stdout}{r.stderr}")
        opts = (
            f"-k {self.root} -c listen_addresses='' -p {self.port} -F "
            "-c max_connections=200 -c shared_buffers=16MB"
        )
        r = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        if r.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pg_ctl start failed: {r.stdout}{r.stderr}\n{log}")
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@/{dbname}?host={self.root}&port={self.port}"

    def admin_sql(self, sql: str, dbname: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            conn.execute(sql.encode())  # test-only literal SQL

    def new_database(self) -> str:
        name = f"t{os.getpid()}_{next(self._counter)}"
        self.admin_sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _whoami() -> str:
    import getpass

    return getpass.getuser()
