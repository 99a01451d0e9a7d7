"""``safe-pip install``: resolve with pip, verify every file, install exactly the verified bytes.

Phases, strictly ordered (THREATS T10, T12, T19, T26):

1. **Resolve**: ``python -m pip install --dry-run --report`` with the user's arguments, isolated
   from pip's configuration, wheels only unless sdist builds are allowed. Nothing is installed
   and (wheels only) nothing is built or run. With ``allow-sdist = true`` (and one index),
   pip resolves through an in-process verifying index (:func:`safe_pip.serve.start_server`,
   block mode) in front of the user's index instead, without ``--only-binary``: every file pip
   fetches, the sdists and the build dependencies its isolated build environments install,
   passes verification first (a refused one is a 403 and the resolution fails).
2. **Fetch and verify**: every file in the report (transitive dependencies included) is
   downloaded into a private temporary wheelhouse (0700), hashed, its provenance fetched,
   verified and decided by :class:`safe_pip.check.Checker`, in parallel.
3. **Refuse or install**: any refusal prints one table and exits 1 with nothing installed.
   Otherwise one ``pip install --no-index --no-deps --require-hashes --isolated`` over the files
   in the wheelhouse, pinned to the sha256 that was verified (pip re-hashes them, so a swap
   after verification fails the install), then the history records what was installed.
   Verified sdists are first built into wheels by ``pip wheel --no-deps`` (build isolation on,
   build dependencies through the verifying index); those wheels are pinned to the hash they
   have when built and reported as ``built_from`` the sdist (their bytes are not attested).

Several indexes (``-i`` plus ``--extra-index-url``): a project listed on more than one of them
is refused (``refused-index-confusion``, THREATS T11) unless the policy names its publisher
(docs/adr/0005-dependency-confusion.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from safe_pip.errors import (
    EXIT_CONFIG,
    EXIT_COULD_NOT_CHECK,
    EXIT_OK,
    EXIT_PIP_FAILED,
    EXIT_REFUSED,
    ConfigError,
    RefusedError,
    SafePipError,
)
from safe_pip.models import Action, FileRef, ReasonCode, Verdict

if TYPE_CHECKING:
    from safe_pip.check import Checker
    from safe_pip.commands.install import PipArgs
    from safe_pip.net import Http, ProjectPage
    from safe_pip.policy.file import Policy
    from safe_pip.resolve.pip_report import ReportItem
    from safe_pip.serve import RunningServer

PYPI_FILES_HOSTS = ("files.pythonhosted.org",)

#: Environment variables that would add sources or change pip's behaviour behind our back.
_PIP_ENV_PREFIX = "PIP_"


@dataclass
class Hooks:
    """Seams for tests (fault injection); no-ops in normal use."""

    after_resolve: Callable[[list[ReportItem]], None] | None = None
    before_install: Callable[[list[Path]], None] | None = None


HOOKS = Hooks()


@dataclass
class Outcome:
    """What one install run did, for the JSON report."""

    verdicts: list[Verdict] = field(default_factory=list)
    items: list[ReportItem] = field(default_factory=list)
    installed: bool = False
    exit_code: int = EXIT_OK
    pip_exit_code: int | None = None
    message: str | None = None
    built: dict[int, tuple[str, str]] = field(default_factory=dict)  # pos -> (wheel, sha256)
    build_files: list[dict[str, Any]] = field(default_factory=list)  # served to pip's builds
    sdist_builds: bool = False


# -- running pip ------------------------------------------------------------------------------


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
    """pip configuration that safe-pip ignores (THREATS T26), so the user can be told."""
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


# -- phase 1: resolve -------------------------------------------------------------------------


def resolve_argv(
    pip: PipArgs, report: Path, *, wheels_only: bool, index_url: str | None = None
) -> list[str]:
    """The resolution call. ``index_url``: resolve through that index only (the verifying
    index), dropping the user's index, find-links and TLS-to-index options."""
    argv = ["install", "--dry-run", "--report", str(report), "--isolated"]
    argv += ["--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    argv += ["-v"] * pip.verbose if pip.verbose else ["--quiet"]
    if wheels_only:
        argv += ["--only-binary", ":all:"]
    if index_url is not None:
        return [*argv, "--retries", "0", "--index-url", index_url, *pip.resolve_no_index]
    return argv + pip.resolve


def loopback_env(env: dict[str, str]) -> dict[str, str]:
    """pip talks to the in-process verifying index on 127.0.0.1 directly, never via a proxy,
    and does not retry it: the index already retried upstream, and its errors (502/503 when
    upstream or provenance cannot be had) are final for this run. PIP_RETRIES reaches the
    child pip that installs build dependencies (the parent runs --isolated and gets
    --retries 0 on its command line)."""
    for key in ("NO_PROXY", "no_proxy"):
        env[key] = ",".join(p for p in (env.get(key, ""), "127.0.0.1", "localhost") if p)
    env["PIP_RETRIES"] = "0"
    return env


_NO_MATCH = re.compile(r"No matching distribution found for (\S+)")


def resolve(
    pip: PipArgs,
    workdir: Path,
    *,
    wheels_only: bool,
    err: TextIO,
    index_url: str | None = None,
) -> tuple[list[ReportItem], subprocess.CompletedProcess[str]]:
    from safe_pip.resolve.pip_report import read_report

    report = workdir / "pip-report.json"
    env = pip_env() if index_url is None else loopback_env(pip_env())
    argv = resolve_argv(pip, report, wheels_only=wheels_only, index_url=index_url)
    proc = run_pip(argv, env=env, capture=True)
    if proc.returncode != 0 or not report.is_file():
        return [], proc
    if pip.verbose and proc.stderr:
        err.write(proc.stderr)
    return read_report(report), proc


# -- sources: requirement files, sdist builds -------------------------------------------------

#: Options of a requirement file that add or replace where pip fetches from.
_FILE_SOURCE_OPTIONS = {
    "-i": "--index-url",
    "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links",
    "--find-links": "--find-links",
    "--no-index": "--no-index",
}
_FILE_NESTED = ("--requirement", "--constraint")
#: The options pip accepts inside requirement / constraints files (pip 26.3,
#: ``req_file.SUPPORTED_OPTIONS + SUPPORTED_OPTIONS_REQ``): spelling -> canonical name. pip
#: reads them with optparse too (any unambiguous prefix, within this smaller set).
_FILE_LONG = {
    "--index-url": "--index-url",
    "--pypi-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "--no-index": "--no-index",
    "--constraint": "--constraint",
    "--requirement": "--requirement",
    "--editable": "--editable",
    "--find-links": "--find-links",
    "--no-binary": "--no-binary",
    "--only-binary": "--only-binary",
    "--prefer-binary": "--prefer-binary",
    "--require-hashes": "--require-hashes",
    "--no-require-hashes": "--no-require-hashes",
    "--pre": "--pre",
    "--all-releases": "--all-releases",
    "--only-final": "--only-final",
    "--trusted-host": "--trusted-host",
    "--use-feature": "--use-feature",
    "--hash": "--hash",
    "--config-settings": "--config-settings",
}
_FILE_SHORT = {
    "-i": "--index-url",
    "-c": "--constraint",
    "-r": "--requirement",
    "-e": "--editable",
    "-f": "--find-links",
    "-C": "--config-settings",
}
_FILE_FLAGS = frozenset(
    {"--no-index", "--prefer-binary", "--require-hashes", "--no-require-hashes", "--pre"}
)
#: as pip's req_file: comments, ${VAR} references, byte order marks, PEP 263 coding lines
_COMMENT = re.compile(r"(^|\s+)#.*$")
_ENV_VAR = re.compile(r"(?P<var>\$\{(?P<name>[A-Z0-9_]+)\})")
_PEP263 = re.compile(rb"coding[:=]\s*([-\w.]+)")
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)


@dataclass(frozen=True)
class FileSource:
    """An index option found inside a requirement or constraints file."""

    path: str
    option: str  # canonical long name
    value: str | None


def _decode_requirement_file(data: bytes) -> str:
    """The text pip reads from a requirement file's bytes (pip's ``_decode_req_file``)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    for line in data.split(b"\n")[:2]:
        if line[0:1] == b"#":
            m = _PEP263.search(line)
            if m is not None:
                try:
                    return data.decode(m.group(1).decode("ascii"), errors="replace")
                except LookupError:
                    break
    return data.decode("utf-8", errors="replace")


def requirement_file_lines(text: str) -> list[tuple[int, str]]:
    """(line number, logical line) as pip's req_file preprocesses a file: backslash
    continuations joined, comments dropped, blank lines skipped, ``${VAR}`` expanded from the
    environment pip runs with."""
    joined: list[tuple[int, str]] = []
    pending: list[str] = []
    first = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.endswith("\\") or _COMMENT.match(line):
            if _COMMENT.match(line):
                line = " " + line
            if pending:
                pending.append(line)
                joined.append((first, "".join(pending)))
                pending = []
            else:
                joined.append((number, line))
        else:
            if not pending:
                first = number
            pending.append(line.strip("\\"))
    if pending:
        joined.append((first, "".join(pending)))
    env = pip_env()
    out: list[tuple[int, str]] = []
    for number, line in joined:
        line = _COMMENT.sub("", line).strip()
        if not line:
            continue
        for ref, name in _ENV_VAR.findall(line):
            value = env.get(name)
            if value:
                line = line.replace(ref, value)
        out.append((number, line))
    return out


def requirement_line_options(line: str, *, where: str) -> tuple[str, list[tuple[str, str]]]:
    """(requirement part, [(canonical option, value or "")]) of one logical line, read as pip
    reads it (``break_args_options``, ``shlex.split``, optparse over the file's option set).
    Raises ConfigError for an option pip's file parser would not take or that safe-pip cannot
    classify (unknown, ambiguous prefix, missing value)."""
    import shlex

    from safe_pip.commands.install import split_options

    words = line.split(" ")
    args: list[str] = []
    for word in words:
        if word.startswith("-"):
            break
        args.append(word)
    options_str = " ".join(words[len(args) :])
    try:
        tokens = shlex.split(options_str)
    except ValueError as exc:
        raise ConfigError(f"{where}: cannot split the options {options_str!r}: {exc}") from exc
    found: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok == "--":
            break  # optparse: the rest are arguments
        if not tok.startswith("-") or tok == "-":
            continue  # optparse collects it as an argument; pip ignores those
        for name, inline in split_options(
            tok, _FILE_LONG, _FILE_SHORT, lambda n: n not in _FILE_FLAGS, where=where
        ):
            if name in _FILE_FLAGS:
                found.append((name, ""))
                continue
            if inline is None:
                if i >= len(tokens):
                    raise ConfigError(f"{where}: option {name} needs a value (given {tok})")
                inline = tokens[i]
                i += 1
            found.append((name, inline))
    return " ".join(args), found


def requirement_file_sources(paths: Sequence[str], *, _depth: int = 0) -> list[FileSource]:
    """Index options set inside requirement / constraints files (pip honours them: they add
    indexes safe-pip would not otherwise know about). Lines are read as pip reads them,
    abbreviated options included (``--extra=URL`` is ``--extra-index-url``); an option that
    cannot be classified raises ConfigError. Nested -r / -c files are followed; a file given
    as a URL counts as a source of unknown options. Unreadable files are skipped (pip
    reports them)."""
    found: list[FileSource] = []
    for raw in paths:
        if "://" in raw and not raw.startswith("file:"):
            found.append(FileSource(raw, "(read from a URL)", None))
            continue
        path = Path(raw.removeprefix("file://")) if raw.startswith("file:") else Path(raw)
        try:
            text = _decode_requirement_file(path.read_bytes())
        except OSError:
            continue
        nested: list[str] = []
        for number, line in requirement_file_lines(text):
            args, options = requirement_line_options(
                line, where=f"requirement file {path} line {number}"
            )
            if args or any(name == "--editable" for name, _v in options):
                continue  # a requirement line: pip applies only --hash / --config-settings
            for name, value in options:
                if name in _FILE_SOURCE_OPTIONS:
                    found.append(FileSource(str(path), name, value or None))
                elif name in _FILE_NESTED and value and _depth < 10:
                    nested.append(value if "://" in value else str(path.parent / value))
        if nested:
            found += requirement_file_sources(nested, _depth=_depth + 1)
    return found


def effective_indexes(pip: PipArgs, file_sources: Sequence[FileSource]) -> list[str]:
    """The indexes pip searches: the command line's, with requirement files' options applied
    (a file's --index-url replaces the primary index, as in pip)."""
    if pip.no_index or any(f.option == "--no-index" for f in file_sources):
        return []
    primary = pip.index_url
    extras = list(pip.extra_index_urls)
    for f in file_sources:
        if f.option == "--index-url" and f.value:
            primary = f.value
        elif f.option == "--extra-index-url" and f.value:
            extras.append(f.value)
    out: list[str] = []
    for url in [primary, *extras]:
        if url and url not in out:
            out.append(url)
    return out


def sdist_build_blocker(pip: PipArgs, file_sources: Sequence[FileSource]) -> str | None:
    """Why sdists cannot be built through the verifying index in this run (None: they can).

    The verifying index fronts exactly one upstream index, and pip must have no other source:
    build dependencies fetched from another index or a --find-links directory would skip
    verification, and with several indexes pip takes the highest version across them
    (dependency confusion, THREATS T11), which build dependencies are not checked for."""
    if pip.no_index:
        return "--no-index leaves no index to fetch build dependencies through"
    if pip.extra_index_urls:
        return "more than one index is configured (--extra-index-url)"
    if pip.find_links:
        return "--find-links is given (pip would take build dependencies from it unverified)"
    if file_sources:
        f = file_sources[0]
        if f.value is None and f.option not in _FILE_SOURCE_OPTIONS.values():
            return f"the requirement file {f.path} is read from a URL (it could set indexes)"
        return (
            f"the requirement file {f.path} sets {f.option} (pip would fetch from it, "
            "build dependencies included, outside the verifying index)"
        )
    return None


# -- phase 2: file references and verdicts ----------------------------------------------------


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "").lower()


def _same_file_url(a: str, b: str) -> bool:
    return a.split("#", 1)[0] == b.split("#", 1)[0]


@dataclass
class IndexPages:
    """Project pages read from the configured indexes, by (index, project): the pages, the
    404s, and the pages that could not be read (with why)."""

    pages: dict[tuple[str, str], ProjectPage] = field(default_factory=dict)
    missing: set[tuple[str, str]] = field(default_factory=set)
    errors: dict[tuple[str, str], str] = field(default_factory=dict)


def fetch_pages(keys: set[tuple[str, str]], http: Http, *, jobs: int) -> IndexPages:
    """Read the (index, project) pages in parallel; never raises."""
    from safe_pip.net import ProjectNotFound, SimpleIndex

    out = IndexPages()

    def fetch(key: tuple[str, str]) -> tuple[tuple[str, str], ProjectPage | None, str | None]:
        index, project = key
        try:
            return key, SimpleIndex(http, index).project(project), None
        except ProjectNotFound:
            return key, None, None
        except SafePipError as exc:
            return key, None, exc.message
        except Exception as exc:  # fail closed: unreadable is an error, never "absent"
            return key, None, f"{type(exc).__name__}: {exc}"

    if keys:
        with ThreadPoolExecutor(max_workers=max(1, min(2 * jobs, len(keys)))) as pool:
            for key, page, error in pool.map(fetch, sorted(keys)):
                if page is not None:
                    out.pages[key] = page
                elif error is None:
                    out.missing.add(key)
                else:
                    out.errors[key] = error
    return out


def _served_by(item: ReportItem, server: RunningServer | None) -> bool:
    return server is not None and item.url.startswith(server.url + "/")


def _served_ref(item: ReportItem, server: RunningServer) -> FileRef:
    """The upstream file behind a link of the verifying index (pip resolved through it): the
    bytes are fetched from upstream again and verified like any other file."""
    from urllib.parse import unquote, urlsplit

    from safe_pip.serve import ServeError

    parts = [unquote(p) for p in urlsplit(item.url).path.split("/")]
    if len(parts) == 5 and parts[1] == "files":
        try:
            entry = server.index.lookup(parts[2], parts[3], parts[4])
        except ServeError:
            entry = None
        if entry is not None and entry.ref.url:
            up = entry.ref
            ref = item.to_fileref(
                index=up.index or server.index.upstream_url,
                provenance_url=up.provenance_url,
                size=up.size,
                yanked=up.yanked,
            )
            return _with_status(replace(ref, url=up.url), up)
    return item.to_fileref()  # unknown to the server: looked up on the provenance index


def _with_status(ref: FileRef, page_ref: FileRef) -> FileRef:
    """``ref`` with the PEP 792 project status its index page gave (THREATS T25)."""
    return replace(
        ref,
        project_status=page_ref.project_status,
        project_status_reason=page_ref.project_status_reason,
    )


def file_refs(
    items: Sequence[ReportItem],
    indexes: Sequence[str],
    pages: IndexPages,
    *,
    server: RunningServer | None = None,
) -> dict[int, FileRef]:
    """FileRefs for the verifiable items (by position). Files served by one of the configured
    indexes get that index's provenance URL; files pip got through the verifying index are
    mapped back to the upstream file; the rest (mirrors without provenance, --find-links,
    local files, direct URLs) are looked up on the provenance index."""
    from safe_pip.check import PYPI_SIMPLE

    refs: dict[int, FileRef] = {}
    for pos, item in enumerate(items):
        if not item.verifiable:
            continue
        if server is not None and _served_by(item, server):
            refs[pos] = _served_ref(item, server)
            continue
        if _host(item.url) in PYPI_FILES_HOSTS:
            refs[pos] = item.to_fileref(index=PYPI_SIMPLE)
            continue
        ref: FileRef | None = None
        for index in indexes:
            page = pages.pages.get((index, item.project))
            if page is None:
                continue
            for f in page.files:
                if f.filename == item.filename and f.url and _same_file_url(f.url, item.url):
                    ref = item.to_fileref(
                        index=index, provenance_url=f.provenance_url, size=f.size, yanked=f.yanked
                    )
                    ref = _with_status(ref, f)
                    break
            if ref is not None:
                break
        refs[pos] = ref if ref is not None else item.to_fileref()
    return refs


SDIST_REASON = (
    "sdists are refused: building one first installs its build dependencies, which nothing "
    "verifies, and runs their code and the sdist's own build code"
)

ENABLE_SDIST_FIX = (
    "set allow-sdist = true in [defaults] of your policy (safe-pip.toml) and install from a "
    "single index: safe-pip then resolves and builds through its verifying index, so the "
    "sdist and every build dependency are verified first"
)


def sdist_verdict(item: ReportItem, *, allow_sdist: bool, blocker: str | None = None) -> Verdict:
    """The refusal of an sdist that this run does not build (allow-sdist off, or on but
    ``blocker`` says why its build dependencies could not all be verified)."""
    if allow_sdist:
        reason = (
            SDIST_REASON + "; allow-sdist = true is set, but sdists are built only through "
            "safe-pip's verifying index, which needs a single index and no other source, and "
            f"{blocker or 'this run has other sources'}"
        )
        fix = (
            f"install a wheel of {item.name} instead (a version that has one), or run with a "
            "single -i index and no --extra-index-url, --find-links or index options in "
            "requirement files, so safe-pip builds it through its verifying index"
        )
    else:
        reason = SDIST_REASON + " (allow-sdist is off)"
        fix = (
            f"use a wheel of {item.name}: a version that publishes one (safe-pip already asks "
            "pip for wheels only, like --only-binary :all:), or a wheel URL instead of the "
            f"sdist; or {ENABLE_SDIST_FIX}"
        )
    return Verdict(
        project=item.name,
        version=item.version,
        filename=item.filename or item.url,
        sha256=item.sha256 or "",
        action=Action.REFUSE,
        code=ReasonCode.REFUSED_SDIST,
        reason=reason,
        rule="[defaults] allow-sdist",
        fix=fix,
    )


def _redacted(indexes: Sequence[str]) -> str:
    from safe_pip.net import redact

    return ", ".join(redact(i) for i in indexes)


def index_unknown_verdict(item: ReportItem, index: str, error: str) -> Verdict:
    """Several indexes, and one could not tell whether it has the project: fail closed."""
    from safe_pip.net import redact

    return Verdict(
        project=item.name,
        version=item.version,
        filename=item.filename or item.url,
        sha256=item.sha256 or "",
        action=Action.REFUSE,
        code=ReasonCode.COULD_NOT_CHECK,
        reason=f"with several indexes configured, safe-pip must know which of them list "
        f"{item.project}, but the page on {redact(index)} could not be read: {error}",
        rule="index confusion (several indexes)",
        fix="retry when every configured index answers, or drop the index that fails",
    )


def _unsigned_pinned(policy: Policy, project: str, sha256: str) -> bool:
    return any(sha256.lower() in exc.sha256 for exc in policy.unsigned_for(project))


def apply_index_confusion(
    verdict: Verdict, item: ReportItem, listed: Sequence[str], policy: Policy
) -> Verdict:
    """THREATS T11: ``item``'s project is listed on more than one configured index. pip takes
    the highest version across them, so whoever controls the name on any of them decides what
    is installed. Allowed only when the policy itself says what to accept: a [[package]]
    entry naming the publisher that signed this file (verified-allowlisted), or an
    [[unsigned]] exception pinning this file's sha256. Everything else is refused
    (refused-index-confusion); an already refused verdict keeps its own reason, with a note."""
    from safe_pip.policy.rules import allow_add_command, allow_unsigned_command

    note = (
        f"{item.project} is listed on {len(listed)} of the configured indexes "
        f"({_redacted(listed)}): dependency confusion risk"
    )
    if verdict.action is Action.REFUSE:
        return replace(verdict, reason=f"{verdict.reason}; note: {note}")
    if verdict.code is ReasonCode.VERIFIED_ALLOWLISTED:
        return verdict
    if verdict.code is ReasonCode.UNSIGNED_ALLOWED and _unsigned_pinned(
        policy, item.project, verdict.sha256
    ):
        return verdict
    if verdict.identity is not None:
        fix = (
            f"if {verdict.identity.describe()} is the publisher you expect for {item.project}, "
            f"name it in the policy: {allow_add_command(item.project, verdict.identity)}; "
            f"otherwise drop the index that should not serve {item.project}"
        )
    else:
        fix = (
            f"if this exact file is the one you reviewed, pin it: "
            f"{allow_unsigned_command(item.project, item.version, verdict.sha256)}; otherwise "
            f"drop the index that should not serve {item.project}"
        )
    return replace(
        verdict,
        action=Action.REFUSE,
        code=ReasonCode.REFUSED_INDEX_CONFUSION,
        reason=(
            f"{note}. pip picks the highest version across indexes, so whoever publishes "
            f"{item.project} on another index can take over this install, and no [[package]] "
            f"entry of the policy names {item.project}'s publisher (this file: "
            f"{verdict.reason})"
        ),
        rule="index confusion (several indexes)",
        fix=fix,
    )


def unverifiable_verdict(item: ReportItem, *, allowed: bool) -> Verdict:
    what = {
        "dir": "a local directory",
        "vcs": "a VCS checkout",
    }.get(item.kind, "an archive that is not a published wheel or sdist of this project")
    if allowed:
        return Verdict(
            project=item.name,
            version=item.version,
            filename=item.source,
            sha256=item.sha256 or "",
            action=Action.WARN,
            code=ReasonCode.UNVERIFIABLE_ALLOWED,
            reason=f"{what} has no provenance to verify; installed unverified because "
            "--allow-unverifiable-sources was given",
            rule="--allow-unverifiable-sources",
        )
    return Verdict(
        project=item.name,
        version=item.version,
        filename=item.source,
        sha256=item.sha256 or "",
        action=Action.REFUSE,
        code=ReasonCode.REFUSED_UNVERIFIABLE_SOURCE,
        reason=f"{what} has no provenance to verify",
        rule="unverifiable source",
        fix="if you trust this source, rerun with --allow-unverifiable-sources "
        "(it is then built and installed without verification)",
    )


def check_items(
    checker: Checker,
    items: Sequence[ReportItem],
    pip: PipArgs,
    wheelhouse: Path,
    *,
    allow_unverifiable: bool,
    progress: Callable[[int, int, str], None] | None,
    sdist_builds: bool = False,
    sdist_blocker: str | None = None,
    server: RunningServer | None = None,
    file_sources: Sequence[FileSource] = (),
) -> list[Verdict]:
    """One verdict per report item, in report order.

    ``sdist_builds``: sdists are verified (and later built) instead of refused. ``server``: the
    verifying index pip resolved through (its links are mapped back to upstream files)."""
    policy = checker.policy
    allow_sdist = bool(policy.defaults.allow_sdist)
    indexes = effective_indexes(pip, file_sources)
    several = len(indexes) > 1
    fixed: dict[int, Verdict] = {}
    for pos, item in enumerate(items):
        if item.kind == "sdist" and not sdist_builds:
            fixed[pos] = sdist_verdict(item, allow_sdist=allow_sdist, blocker=sdist_blocker)
        elif not item.verifiable:
            fixed[pos] = unverifiable_verdict(item, allowed=allow_unverifiable)
    wanted: set[tuple[str, str]] = set()
    for pos, item in enumerate(items):
        if pos in fixed or _served_by(item, server):
            continue
        if (several and not item.is_direct) or (
            not item.is_local and _host(item.url) not in PYPI_FILES_HOSTS
        ):
            wanted.update((index, item.project) for index in indexes)
    pages = fetch_pages(wanted, checker.http, jobs=checker.jobs)
    for key in sorted(pages.pages):  # a stale / replayed page: exit 3, nothing installed (T21)
        checker.serials.observe_page(key[0], pages.pages[key])
    confused: dict[int, list[str]] = {}
    if several:
        for pos, item in enumerate(items):
            if pos in fixed or item.is_direct:
                continue
            failed = [i for i in indexes if (i, item.project) in pages.errors]
            if failed:
                error = pages.errors[(failed[0], item.project)]
                fixed[pos] = index_unknown_verdict(item, failed[0], error)
                continue
            listed = [
                i
                for i in indexes
                if (page := pages.pages.get((i, item.project))) is not None and page.files
            ]
            if len(listed) > 1:
                confused[pos] = listed
    candidates = [pos for pos in range(len(items)) if pos not in fixed]
    refs = file_refs([items[p] for p in candidates], indexes, pages, server=server)
    ordered = [refs[i] for i in range(len(candidates))]
    checked = checker.check(ordered, download_dir=wheelhouse, progress=progress)
    verdicts = dict(fixed)
    for pos, verdict in zip(candidates, checked, strict=True):
        if pos in confused:
            verdict = apply_index_confusion(verdict, items[pos], confused[pos], policy)
        verdicts[pos] = verdict
    return [verdicts[pos] for pos in range(len(items))]


# -- phase 3: install -------------------------------------------------------------------------


def requirements_text(pairs: Sequence[tuple[ReportItem, Path, str]]) -> str:
    lines = []
    for item, path, sha in pairs:
        lines.append(f"{item.project} @ {path.resolve().as_uri()} --hash=sha256:{sha}")
    return "\n".join(lines) + "\n"


def install_argv(pip: PipArgs, requirements: Path) -> list[str]:
    argv = ["install", "--isolated", "--no-index", "--no-deps", "--require-hashes"]
    argv += ["--disable-pip-version-check", "--no-input"]
    argv += ["-q"] * pip.quiet + ["-v"] * pip.verbose
    argv += pip.install
    return [*argv, "-r", str(requirements)]


def unverifiable_argv(pip: PipArgs, items: Sequence[ReportItem]) -> list[str]:
    """The second call for sources the user allowed unverified (local dirs, VCS)."""
    argv = ["install", "--isolated", "--no-deps", "--disable-pip-version-check", "--no-input"]
    argv += ["-q"] * pip.quiet + ["-v"] * pip.verbose
    argv += pip.install + pip.sources
    for item in items:
        if item.kind == "dir" and item.local_path is not None:
            argv += (["-e"] if item.editable else []) + [str(item.local_path)]
        else:
            argv.append(f"{item.project} @ {item.url}")
    return argv


def build_argv(pip: PipArgs, index_url: str, wheel_dir: Path, requirements: Path) -> list[str]:
    """``pip wheel`` of verified sdists (hash-pinned local files): build isolation on, build
    dependencies fetched through the verifying index only, no wheel cache (the wheel is built
    now from these bytes, never taken from an earlier build)."""
    argv = ["wheel", "--no-deps", "--isolated", "--no-cache-dir", "--require-hashes"]
    argv += ["--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    argv += ["-q"] * pip.quiet + ["-v"] * pip.verbose
    argv += ["--retries", "0", "--index-url", index_url, "--wheel-dir", str(wheel_dir)]
    argv += pip.build
    return [*argv, "-r", str(requirements)]


def served_refusals(text: str, server: RunningServer) -> list[Verdict]:
    """The refused files pip asked the verifying index for (it answered 403), named in pip's
    output by their link (``<server>/files/<project>/<sha256>/<filename>``)."""
    from urllib.parse import unquote

    from safe_pip.serve import ServeError

    link = re.compile(
        re.escape(server.url) + r"/files/([^/\s'\"]+)/([0-9a-fA-F]{64})/([^/\s'\"#?]+)"
    )
    out: list[Verdict] = []
    seen: set[tuple[str, str]] = set()
    for m in link.finditer(text):
        project, sha, filename = unquote(m.group(1)), m.group(2).lower(), unquote(m.group(3))
        if (filename, sha) in seen:
            continue
        seen.add((filename, sha))
        try:
            entry = server.index.lookup(project, sha, filename)
        except ServeError:
            continue
        if not entry.allowed:
            out.append(entry.verdict)
    return out


def _build_files(server: RunningServer, outcome: Outcome) -> None:
    """What the verifying index served to pip besides the report's files: the build
    dependencies of sdists (and anything else pip fetched to build them), for the report."""
    names = {item.filename for item in outcome.items}
    events = list(server.index.log.events)
    decided = {e.get("filename"): e for e in events if e.get("event") in ("allow", "refuse")}
    seen: set[str] = set()
    for e in events:
        filename = e.get("filename")
        if e.get("event") != "served" or not isinstance(filename, str):
            continue
        if filename in names or filename in seen:
            continue
        seen.add(filename)
        d = decided.get(filename, {})
        outcome.build_files.append(
            {
                "project": e.get("project"),
                "version": e.get("version"),
                "filename": filename,
                "sha256": e.get("sha256"),
                "verdict": d.get("verdict"),
                "code": d.get("code"),
                "identity": d.get("identity"),
            }
        )


def _start_verifying_index(checker: Checker, pip: PipArgs, err: TextIO) -> RunningServer:
    from safe_pip.errors import CouldNotCheckError
    from safe_pip.serve import EventLog, start_server

    upstream = pip.index_url
    if upstream is None:  # sdist_build_blocker() rules --no-index out
        raise ConfigError("no index to build sdists through")
    log = EventLog(stream=err, quiet=not pip.verbose, keep=True)
    try:
        return start_server(checker, upstream, host="127.0.0.1", port=0, mode="block", log=log)
    except OSError as exc:
        raise CouldNotCheckError(
            f"could not start the verifying index on 127.0.0.1: {exc.strerror or exc}",
            fix="sdists are built only through it; install wheels instead (allow-sdist = false)",
        ) from exc


def _build_sdists(
    pip: PipArgs,
    items: Sequence[ReportItem],
    verdicts: Sequence[Verdict],
    wheelhouse: Path,
    work: Path,
    server: RunningServer,
    outcome: Outcome,
    err: TextIO,
) -> dict[int, tuple[Path, str]]:
    """Build every verified sdist into a wheel (one ``pip wheel`` call). Returns position ->
    (built wheel, its sha256); raises _StepFailed with the exit code on failure."""
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
    from packaging.version import InvalidVersion, Version

    from safe_pip.check import sha256_path
    from safe_pip.render import clean, refusal_table

    todo = [
        (pos, item, v)
        for pos, (item, v) in enumerate(zip(items, verdicts, strict=True))
        if item.kind == "sdist" and item.filename and v.action is not Action.REFUSE
    ]
    if not todo:
        return {}
    built_dir = work / "built"
    built_dir.mkdir(mode=0o700)
    reqs = work / "sdists-to-build.txt"
    reqs.write_text(
        requirements_text([(i, wheelhouse / (i.filename or ""), v.sha256) for _p, i, v in todo]),
        encoding="utf-8",
    )
    if pip.quiet == 0:
        names = ", ".join(clean(i.filename or "") for _p, i, _v in todo)
        err.write(
            f"safe-pip: building {len(todo)} verified sdist(s) ({names}); build dependencies "
            "come through the verifying index\n"
        )
    argv = build_argv(pip, server.index_url, built_dir, reqs)
    proc = run_pip(argv, env=loopback_env(pip_env()), capture=True)
    text = (proc.stderr or "") + (proc.stdout or "")
    if pip.verbose and text:
        err.write(text if text.endswith("\n") else text + "\n")
    if proc.returncode != 0:
        if not pip.verbose:
            err.write(text if text.endswith("\n") or not text else text + "\n")
        outcome.pip_exit_code = proc.returncode
        refused = served_refusals(text, server)
        if refused:
            outcome.verdicts = [*outcome.verdicts, *refused]
            err.write(refusal_table(refused) + "\n")
            outcome.message = "a build dependency was refused by the verifying index"
            err.write(f"safe-pip: {outcome.message}; nothing was installed.\n")
            raise _StepFailed(_exit_for(refused))
        outcome.message = (
            f"pip could not build the verified sdist(s) (exit {proc.returncode}); see pip's "
            "message above"
        )
        err.write(f"safe-pip: {outcome.message}; nothing was installed.\n")
        raise _StepFailed(EXIT_PIP_FAILED)
    wheels: dict[tuple[str, Version], Path] = {}
    for path in built_dir.glob("*.whl"):
        try:
            name, version, _build, _tags = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        wheels[(name, version)] = path
    out: dict[int, tuple[Path, str]] = {}
    for pos, item, _v in todo:
        try:
            path_or_none = wheels.get((canonicalize_name(item.name), Version(item.version)))
        except InvalidVersion:
            path_or_none = None
        if path_or_none is None:
            outcome.message = (
                f"building {item.filename} gave no wheel for {item.name} {item.version}"
            )
            err.write(f"safe-pip: {clean(outcome.message)}; nothing was installed.\n")
            raise _StepFailed(EXIT_PIP_FAILED)
        out[pos] = (path_or_none, sha256_path(path_or_none))
        outcome.built[pos] = (path_or_none.name, out[pos][1])
    return out


class _StepFailed(Exception):
    """A step after verification failed; its message is written; carries the exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# -- the command ------------------------------------------------------------------------------


def _exit_for(verdicts: Sequence[Verdict]) -> int:
    refused = [v for v in verdicts if v.action is Action.REFUSE]
    if any(v.code is not ReasonCode.COULD_NOT_CHECK for v in refused):
        return EXIT_REFUSED
    if refused:
        return EXIT_COULD_NOT_CHECK
    return EXIT_OK


def report_doc(outcome: Outcome, pip: PipArgs) -> dict[str, Any]:
    from safe_pip.net import redact

    files = []
    for pos, v in enumerate(outcome.verdicts):
        doc = v.to_json()
        res = v.verification
        doc["verification_code"] = res.reason_code if res else None
        if pos < len(outcome.items):
            item = outcome.items[pos]
            doc["url"] = redact(item.url)
            doc["requested"] = item.requested
        if pos in outcome.built:
            # Installed as a wheel built here from the verified sdist: the wheel's bytes are
            # not attested, only its source is.
            doc["built_wheel"] = {
                "filename": outcome.built[pos][0],
                "sha256": outcome.built[pos][1],
            }
        files.append(doc)
    built = [
        {
            "filename": wheel,
            "sha256": sha,
            "built_from": outcome.verdicts[pos].filename,
            "attested": False,
        }
        for pos, (wheel, sha) in sorted(outcome.built.items())
    ]
    refused = sum(1 for v in outcome.verdicts if v.action is Action.REFUSE)
    warned = sum(1 for v in outcome.verdicts if v.action is Action.WARN)
    return {
        "version": 1,
        "command": "install",
        "dry_run": pip.dry_run,
        "installed": outcome.installed,
        "exit_code": outcome.exit_code,
        "summary": {
            "files": len(outcome.verdicts),
            "allowed": len(outcome.verdicts) - refused - warned,
            "warned": warned,
            "refused": refused,
        },
        "files": files,
        "sdist_builds": outcome.sdist_builds,
        "built": built,
        "build_files": outcome.build_files,
        "pip_exit_code": outcome.pip_exit_code,
        "message": outcome.message,
    }


def _emit(
    own: argparse.Namespace, pip: PipArgs, outcome: Outcome, out: TextIO, err: TextIO
) -> None:
    from safe_pip.render import clean, dump_json

    doc = report_doc(outcome, pip)
    if own.report:
        path = Path(own.report)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                dump_json(doc, fh)
            os.replace(tmp, path)
        except OSError as exc:
            # Checked writable before anything ran: failing now must not turn what happened
            # (an install, a refusal) into a usage error. Say so and keep the exit code.
            with contextlib.suppress(OSError):
                tmp.unlink()
            err.write(
                f"safe-pip: warning: cannot write the report {clean(path)}: "
                f"{clean(exc.strerror or exc)}\n"
            )
    if own.json:
        dump_json(doc, out)


def _check_report_path(own: argparse.Namespace) -> None:
    """--report FILE must be writable before anything runs (not after pip installed)."""
    if not own.report:
        return
    path = Path(own.report)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot write the report {path}: its folder does not exist or is not writable",
            fix="give --report a path in a writable folder",
        )


def run_install(own: argparse.Namespace, pip: PipArgs, *, out: TextIO, err: TextIO) -> int:
    """The whole command. Returns the exit code; raises SafePipError for usage errors."""
    _check_report_path(own)
    outcome = Outcome()
    try:
        code = _run(own, pip, outcome, err=err, out=out)
    except SafePipError as exc:
        if not (own.json or own.report):
            raise
        from safe_pip.render import clean_lines

        outcome.exit_code = exc.exit_code
        outcome.message = exc.diagnostics()
        err.write(f"safe-pip: error: {clean_lines(exc.diagnostics())}\n")
        _emit(own, pip, outcome, out, err)
        return exc.exit_code
    outcome.exit_code = code
    _emit(own, pip, outcome, out, err)
    return code


def _run(
    own: argparse.Namespace, pip: PipArgs, outcome: Outcome, *, err: TextIO, out: TextIO
) -> int:
    from safe_pip.commands._common import make_checker, open_store
    from safe_pip.render import clean

    quiet = pip.quiet > 0
    ignored = pip_config_sources()
    if ignored and not quiet:
        err.write(
            "safe-pip: note: pip configuration is ignored (pip runs isolated): "
            + ", ".join(clean(s, limit=120) for s in ignored)
            + "; pass indexes and options on the command line\n"
        )
    store = open_store(own, readonly=pip.dry_run)
    try:
        checker = make_checker(own, store=store, provenance_index=own.provenance_index)
        allow_sdist = bool(checker.policy.defaults.allow_sdist)
        file_sources = requirement_file_sources(pip.requirement_files)
        blocker = sdist_build_blocker(pip, file_sources) if allow_sdist else None
        sdist_builds = allow_sdist and blocker is None
        outcome.sdist_builds = sdist_builds
        if not sdist_builds:
            bad = [v for v in pip.no_binary if v.strip() != ":none:"]
            if bad:
                raise ConfigError(
                    f"--no-binary {bad[0]} asks pip for sdists, which safe-pip refuses "
                    "(building them runs unverified build dependencies)"
                    + (f"; allow-sdist = true is set, but {blocker}" if blocker else ""),
                    fix="drop --no-binary; safe-pip installs wheels only"
                    + (
                        " unless the run has a single index"
                        if blocker
                        else " (or " + ENABLE_SDIST_FIX + ")"
                    ),
                )
        if blocker and not quiet:
            err.write(
                f"safe-pip: note: allow-sdist = true, but {clean(blocker)}: resolving wheels "
                "only (sdists are refused in this run)\n"
            )
        with tempfile.TemporaryDirectory(prefix="safe-pip-install-") as tmp:
            work = Path(tmp)  # mkdtemp: mode 0700, private to this user
            os.chmod(work, 0o700)
            with contextlib.ExitStack() as stack:
                server: RunningServer | None = None
                if sdist_builds:
                    server = stack.enter_context(_start_verifying_index(checker, pip, err))
                    stack.callback(_build_files, server, outcome)  # runs before it stops
                early = None
                if not pip.dry_run:
                    # The final pip starts now and waits for the verified requirements.
                    early = PrestartedPip.start(
                        pip, work, env=pip_env(), out=err if own.json else out, err=err
                    )
                    if early is not None:
                        stack.callback(early.cancel)  # whatever happens next
                try:
                    return _verify_and_install(
                        own,
                        pip,
                        outcome,
                        checker,
                        work,
                        server,
                        file_sources,
                        blocker,
                        out,
                        err,
                        early,
                    )
                except _StepFailed as failed:
                    return failed.code
    finally:
        store.close()


def _verify_and_install(
    own: argparse.Namespace,
    pip: PipArgs,
    outcome: Outcome,
    checker: Checker,
    work: Path,
    server: RunningServer | None,
    file_sources: Sequence[FileSource],
    blocker: str | None,
    out: TextIO,
    err: TextIO,
    early: PrestartedPip | None,
) -> int:
    from safe_pip.commands._common import ProgressLine
    from safe_pip.render import clean, clean_lines, refusal_table

    quiet = pip.quiet > 0
    warm = _warm_up(checker)  # imports and trust root load while pip resolves
    items, proc = resolve(
        pip,
        work,
        wheels_only=server is None,
        err=err,
        index_url=server.index_url if server is not None else None,
    )
    warm.join()
    if proc.returncode != 0:
        return _resolve_failed(proc, pip, checker, outcome, server, blocker, err)
    outcome.items = items
    if HOOKS.after_resolve is not None:
        HOOKS.after_resolve(items)
    if not items:
        if not quiet:
            err.write("safe-pip: nothing to install (all requirements are satisfied)\n")
        return EXIT_OK
    wheelhouse = work / "wheelhouse"
    wheelhouse.mkdir(mode=0o700)
    progress = ProgressLine("safe-pip: verifying", quiet=quiet or bool(own.json))
    verdicts = check_items(
        checker,
        items,
        pip,
        wheelhouse,
        allow_unverifiable=bool(own.allow_unverifiable_sources),
        progress=progress,
        sdist_builds=server is not None,
        sdist_blocker=blocker,
        server=server,
        file_sources=file_sources,
    )
    outcome.verdicts = verdicts
    code = _exit_for(verdicts)
    if any(v.action is not Action.ALLOW for v in verdicts) and (code or not quiet):
        err.write(refusal_table(verdicts) + "\n")
    if code != EXIT_OK:
        refused = sum(1 for v in verdicts if v.action is Action.REFUSE)
        err.write(
            f"safe-pip: {refused} of {len(verdicts)} file(s) refused; nothing was installed.\n"
        )
        return code
    if pip.dry_run:
        names = " ".join(f"{clean(i.name)}-{clean(i.version)}" for i in items)
        if not own.json:
            out.write(f"Would install {names}\n")
        if not quiet:
            err.write(f"safe-pip: {len(verdicts)} file(s) verified (dry run).\n")
        return EXIT_OK
    built: dict[int, tuple[Path, str]] = {}
    if server is not None:
        built = _build_sdists(pip, items, verdicts, wheelhouse, work, server, outcome, err)
    if not quiet:
        extra = f", {len(built)} of them built from verified sdists" if built else ""
        err.write(
            f"safe-pip: {len(verdicts)} file(s) verified; installing them from a private "
            f"wheelhouse{extra}.\n"
        )
    # The history records what was verified, before pip installs it (THREATS T20): a run that
    # raced another one into trusting a different first publisher stops here, with nothing
    # installed, instead of after pip has already installed the loser's files.
    try:
        checker.record(
            [v for v in verdicts if v.code is not ReasonCode.UNVERIFIABLE_ALLOWED],
            index=pip.index_url,
        )
    except RefusedError as exc:
        outcome.message = exc.diagnostics()
        err.write(f"safe-pip: {clean_lines(exc.diagnostics())}\nsafe-pip: nothing was installed.\n")
        return EXIT_REFUSED
    return _install(
        pip, items, verdicts, wheelhouse, work, outcome, own, out, err, built=built, early=early
    )


def _warm_up(checker: Checker) -> threading.Thread:
    """Load the heavy parts (sigstore, the verifier for the trust root, requests) in the
    background while pip resolves: the main thread only waits on pip then. Errors are left
    for the real call to raise."""

    def work() -> None:
        try:
            import safe_pip.net
            import safe_pip.policy.rules
            import safe_pip.verify.attestation  # noqa: F401
            from safe_pip.verify.trust import load_verifier

            load_verifier(checker.trust)
        except Exception:  # noqa: S110 - the same call in the pipeline reports it properly
            pass

    thread = threading.Thread(target=work, name="safe-pip-warm-up", daemon=True)
    thread.start()
    return thread


def _install(
    pip: PipArgs,
    items: Sequence[ReportItem],
    verdicts: Sequence[Verdict],
    wheelhouse: Path,
    work: Path,
    outcome: Outcome,
    own: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    *,
    built: dict[int, tuple[Path, str]] | None = None,
    early: PrestartedPip | None = None,
) -> int:
    pinned: list[tuple[ReportItem, Path, str]] = []
    unverified: list[ReportItem] = []
    for pos, (item, v) in enumerate(zip(items, verdicts, strict=True)):
        if v.code is ReasonCode.UNVERIFIABLE_ALLOWED:
            unverified.append(item)
            continue
        if built and pos in built:  # a wheel built here from the verified sdist
            pinned.append((item, *built[pos]))
            continue
        if item.kind == "sdist":  # never install an sdist directly (pip would build it)
            raise ConfigError(f"internal error: {item.filename} was not built")
        assert item.filename is not None  # verified files only get here
        pinned.append((item, wheelhouse / item.filename, v.sha256))
    if HOOKS.before_install is not None:
        HOOKS.before_install([p for _i, p, _s in pinned])
    reqs = work / "verified-requirements.txt"
    reqs.write_text(requirements_text(pinned), encoding="utf-8")
    # With --json, stdout carries the JSON document only: pip's chatter goes to stderr.
    pip_out = err if own.json else out
    calls = []
    if pinned:
        calls.append(install_argv(pip, reqs))
    if unverified:
        calls.append(unverifiable_argv(pip, unverified))
    for argv in calls:
        proc = None
        if early is not None and pinned and argv is calls[0]:
            proc = early.feed(reqs.read_text(encoding="utf-8"))
        if proc is None:
            proc = run_pip(argv, env=pip_env(), capture=False, stdout=pip_out, stderr=err)
        outcome.pip_exit_code = proc.returncode
        if proc.returncode != 0:
            outcome.message = (
                f"pip failed (exit {proc.returncode}) after verification passed; see pip's "
                "message above"
            )
            err.write(
                f"safe-pip: {outcome.message}. Every file had been verified; pip's install "
                "is not transactional, so check the environment (pip list).\n"
            )
            outcome.installed = outcome.installed or calls.index(argv) > 0
            return EXIT_PIP_FAILED
        outcome.installed = True
    return EXIT_OK


def _resolve_failed(
    proc: subprocess.CompletedProcess[str],
    pip: PipArgs,
    checker: Checker,
    outcome: Outcome,
    server: RunningServer | None,
    blocker: str | None,
    err: TextIO,
) -> int:
    from safe_pip.render import clean, refusal_table

    text = (proc.stderr or "") + (proc.stdout or "")
    err.write(text if text.endswith("\n") or not text else text + "\n")
    if server is not None:
        # Resolution through the verifying index: a refused file (the sdist, a dependency or
        # a build dependency of an sdist) was answered 403 and pip stopped.
        refused = served_refusals(text, server)
        if refused:
            outcome.verdicts = refused
            outcome.pip_exit_code = proc.returncode
            err.write(refusal_table(refused) + "\n")
            outcome.message = (
                "the verifying index refused a file pip needed to resolve or to build an sdist"
            )
            err.write(f"safe-pip: {outcome.message}; nothing was installed.\n")
            return _exit_for(refused)
        failed = [e for e in server.index.log.events if e.get("event") in ("error", "upstream")]
        if failed:
            outcome.pip_exit_code = proc.returncode
            outcome.message = (
                f"the verifying index could not check what pip asked for "
                f"({clean(str(failed[0].get('reason') or ''), limit=300)})"
            )
            err.write(f"safe-pip: {outcome.message}; nothing was installed.\n")
            return EXIT_COULD_NOT_CHECK
    if "DO NOT MATCH THE HASHES" in text:
        outcome.message = "pip refused a file whose hash differs from the pinned one"
        err.write(f"safe-pip: {outcome.message}; nothing was installed.\n")
        return EXIT_REFUSED
    m = _NO_MATCH.search(text)
    if m and server is None:
        allow_sdist = bool(checker.policy.defaults.allow_sdist)
        verdict = _sdist_only(m.group(1), pip, checker, allow_sdist=allow_sdist, blocker=blocker)
        if verdict is not None:
            outcome.verdicts = [verdict]
            err.write(refusal_table([verdict]) + "\n")
            err.write("safe-pip: nothing was installed.\n")
            return EXIT_REFUSED
        outcome.message = (
            f"pip found no wheel for {clean(m.group(1))} (safe-pip resolves wheels only: "
            "sdists would run unverified build code)"
        )
    else:
        outcome.message = f"pip could not resolve the requirements (exit {proc.returncode})"
    err.write(f"safe-pip: {outcome.message}; nothing was installed.\n")
    return EXIT_CONFIG


def _sdist_only(
    requirement: str, pip: PipArgs, checker: Checker, *, allow_sdist: bool, blocker: str | None
) -> Verdict | None:
    """When pip found no wheel for ``requirement``: a refused-quarantined verdict if an index
    marks the project quarantined (PEP 792), a refused-sdist verdict if the configured
    indexes do have an sdist that fits it, else None."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    from safe_pip.check import QUARANTINED, quarantined_verdict
    from safe_pip.net import SimpleIndex
    from safe_pip.resolve.pip_report import ReportItem

    try:
        req = Requirement(requirement.strip("'\""))
    except InvalidRequirement:
        return None
    best: tuple[Version, FileRef] | None = None
    for index in pip.indexes:
        try:
            page = SimpleIndex(checker.http, index).project(req.name)
        except Exception:  # noqa: S112 - a missing page only means no better message
            continue
        if (page.status or "").strip().lower() == QUARANTINED:
            # PEP 792: the index offers no files of a quarantined project (THREATS T25)
            ref = FileRef(
                project=req.name,
                version=str(req.specifier) or "-",
                filename="(no files offered)",
                index=index,
                project_status=page.status,
                project_status_reason=page.status_reason,
            )
            return quarantined_verdict(ref, "")
        for f in page.files:
            if not f.filename.endswith((".tar.gz", ".zip")) or f.yanked:
                continue
            try:
                v = Version(f.version)
            except InvalidVersion:
                continue
            if req.specifier and not req.specifier.contains(v, prereleases=True):
                continue
            if best is None or v > best[0]:
                best = (v, f)
    if best is None:
        return None
    f = best[1]
    item = ReportItem(
        name=req.name,
        version=f.version,
        url=f.url or f.filename,
        kind="sdist",
        filename=f.filename,
        sha256=f.sha256,
    )
    return sdist_verdict(item, allow_sdist=allow_sdist, blocker=blocker)
