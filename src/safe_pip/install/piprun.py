"""Running pip: always ``python -m pip`` as a subprocess, isolated from pip's configuration;
the final install may be started early and fed through a FIFO (docs/adr/0006)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from safe_pip.install.args import PipArgs
    from safe_pip.sources.pip_report import ReportItem

from safe_pip.install.args import PipArgs

#: Environment variables that would add sources or change pip's behaviour behind our back.
_PIP_ENV_PREFIX = "PIP_"


def pip_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every pip call: no PIP_* variable, no pip configuration file
    (PIP_CONFIG_FILE=/dev/null makes pip skip global, user and site files alike)."""
    env = dict(os.environ if base is None else base)
    for key in list(env):
        if key.upper().startswith(_PIP_ENV_PREFIX):
            del env[key]
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PYTHONIOENCODING"] = env.get("PYTHONIOENCODING", "utf-8")
    return env


def pip_config_sources(env: dict[str, str] | None = None) -> list[str]:
    """pip configuration that safe-pip ignores (threat T26), so the user can be told."""
    env = dict(os.environ if env is None else env)
    found = sorted(
        k
        for k in env
        if k.upper().startswith(_PIP_ENV_PREFIX)
        and k.upper() not in ("PIP_CONFIG_FILE", "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_NO_INPUT")
    )
    cfg = env.get("PIP_CONFIG_FILE")
    if cfg == os.devnull:
        return found
    if cfg:
        found.append(cfg)
    home = Path(env.get("HOME", "~")).expanduser()
    xdg = env.get("XDG_CONFIG_HOME") or str(home / ".config")
    dirs = (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep)
    candidates = [Path("/etc/pip.conf"), *(Path(d) / "pip" / "pip.conf" for d in dirs)]
    candidates += [Path(xdg) / "pip" / "pip.conf", home / ".pip" / "pip.conf"]
    candidates.append(Path(sys.prefix) / "pip.conf")
    found += [str(p) for p in candidates if p.is_file()]
    return found


def _real_file(stream: TextIO) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):  # captured / in-memory streams
        return False
    return True


def run_pip(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    capture: bool,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pip ARGV`` (the Python running safe-pip). A seam for tests.

    ``capture``: return pip's output. Otherwise pip writes to ``stdout`` / ``stderr``
    (default: ours) as it goes; streams that are not real files get pip's output relayed."""
    cmd = [sys.executable, "-m", "pip", *argv]
    if capture:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    out.flush()
    err.flush()
    out_arg: Any = out if _real_file(out) else subprocess.PIPE
    err_arg: Any = err if _real_file(err) else subprocess.PIPE
    proc = subprocess.run(cmd, env=env, stdout=out_arg, stderr=err_arg, text=True, check=False)
    if out_arg is subprocess.PIPE:
        out.write(proc.stdout or "")
    if err_arg is subprocess.PIPE:
        err.write(proc.stderr or "")
    return proc


def spawn_pip(
    argv: Sequence[str], *, env: dict[str, str], stdout: Any, stderr: Any
) -> subprocess.Popen[str]:
    """Start ``python -m pip ARGV`` without waiting for it. A seam for tests."""
    cmd = [sys.executable, "-m", "pip", *argv]
    return subprocess.Popen(cmd, env=env, stdout=stdout, stderr=stderr, text=True)


class PrestartedPip:
    """The final ``pip install``, started before resolution so that pip's own start-up
    (about 0.3 s of imports) overlaps resolution and verification instead of following them.

    Its requirements file is a FIFO in the private work directory: pip blocks opening it and
    installs nothing until :meth:`feed` writes the verified, hash-pinned requirements. If the
    run refuses (or ends any other way), :meth:`cancel` terminates it before it has read a
    single requirement. Where FIFOs do not exist, or pip is not waiting on the FIFO when it is
    needed, the caller runs pip the ordinary way.
    """

    #: How long :meth:`feed` waits for pip to open the FIFO before giving up on it.
    OPEN_TIMEOUT = 30.0

    def __init__(self, proc: subprocess.Popen[str], fifo: Path, out: TextIO, err: TextIO) -> None:
        self.proc = proc
        self.fifo = fifo
        self._out = out
        self._err = err

    @classmethod
    def start(
        cls, pip: PipArgs, work: Path, *, env: dict[str, str], out: TextIO, err: TextIO
    ) -> PrestartedPip | None:
        if not hasattr(os, "mkfifo"):
            return None
        fifo = work / "verified-requirements-fifo.txt"
        try:
            os.mkfifo(fifo, 0o600)
            out_arg: Any = out if _real_file(out) else subprocess.PIPE
            err_arg: Any = err if _real_file(err) else subprocess.PIPE
            proc = spawn_pip(install_argv(pip, fifo), env=env, stdout=out_arg, stderr=err_arg)
        except OSError:
            return None
        return cls(proc, fifo, out, err)

    def feed(self, requirements: str) -> subprocess.CompletedProcess[str] | None:
        """Hand pip the verified requirements and wait for it. None when pip is not waiting
        on the FIFO (it exited, or never opened it in time): it has then installed nothing
        and the caller runs pip the ordinary way."""
        import errno
        import time

        deadline = time.monotonic() + self.OPEN_TIMEOUT
        fd = -1
        while fd < 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.cancel()
                return None
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    self.cancel()
                    return None
                time.sleep(0.005)
        try:
            os.set_blocking(fd, True)
            data = requirements.encode("utf-8")
            while data:
                data = data[os.write(fd, data) :]
        except OSError:
            os.close(fd)
            self.cancel()
            return None
        os.close(fd)
        stdout, stderr = self.proc.communicate()
        if stdout:
            self._out.write(stdout)
        if stderr:
            self._err.write(stderr)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, stdout, stderr)

    def cancel(self) -> None:
        """Stop pip if it still runs; it has read no requirement, so it installed nothing."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(ValueError, OSError):
            self.proc.communicate(timeout=1)


def install_argv(pip: PipArgs, requirements: Path) -> list[str]:
    argv = [*pip.pip_global, "install", "--isolated", "--no-index", "--no-deps"]
    argv += ["--require-hashes"]
    argv += ["--disable-pip-version-check", "--no-input"]
    argv += ["-q"] * pip.quiet + ["-v"] * pip.verbose
    argv += pip.install
    return [*argv, "-r", str(requirements)]


@dataclass
class Hooks:
    """Seams for tests (fault injection); no-ops in normal use."""

    after_resolve: Callable[[list[ReportItem]], None] | None = None
    before_install: Callable[[list[Path]], None] | None = None


HOOKS = Hooks()
