"""``safe-pip install``: resolve with pip, verify every file, install exactly the verified bytes.

Phases, strictly ordered (THREATS T10, T12, T19, T26):

1. **Resolve**: ``python -m pip install --dry-run --report`` with the user's arguments, isolated
   from pip's configuration, wheels only unless sdist builds are allowed. Nothing is installed
   and (wheels only) nothing is built or run.
2. **Fetch and verify**: every file in the report (transitive dependencies included) is
   downloaded into a private temporary wheelhouse (0700), hashed, its provenance fetched,
   verified and decided by :class:`safe_pip.check.Checker`, in parallel.
3. **Refuse or install**: any refusal prints one table and exits 1 with nothing installed.
   Otherwise one ``pip install --no-index --no-deps --require-hashes --isolated`` over the files
   in the wheelhouse, pinned to the sha256 that was verified (pip re-hashes them, so a swap
   after verification fails the install), then the history records what was installed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from safe_pip.errors import (
    EXIT_CONFIG,
    EXIT_COULD_NOT_CHECK,
    EXIT_OK,
    EXIT_PIP_FAILED,
    EXIT_REFUSED,
    ConfigError,
    SafePipError,
)
from safe_pip.models import Action, FileRef, ReasonCode, Verdict

if TYPE_CHECKING:
    from safe_pip.check import Checker
    from safe_pip.commands.install import PipArgs
    from safe_pip.net import Http
    from safe_pip.resolve.pip_report import ReportItem

#: Building sdists through the verifying index (``safe-pip serve``) is not wired into install
#: yet: until it is, allow-sdist = true still refuses sdists (with that explanation).
SDIST_BUILDS_SUPPORTED = False

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


# -- phase 1: resolve -------------------------------------------------------------------------


def resolve_argv(pip: PipArgs, report: Path, *, wheels_only: bool) -> list[str]:
    argv = ["install", "--dry-run", "--report", str(report), "--isolated"]
    argv += ["--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    argv += ["-v"] * pip.verbose if pip.verbose else ["--quiet"]
    if wheels_only:
        argv += ["--only-binary", ":all:"]
    return argv + pip.resolve


_NO_MATCH = re.compile(r"No matching distribution found for (\S+)")


def resolve(
    pip: PipArgs, workdir: Path, *, wheels_only: bool, err: TextIO
) -> tuple[list[ReportItem], subprocess.CompletedProcess[str]]:
    from safe_pip.resolve.pip_report import read_report

    report = workdir / "pip-report.json"
    proc = run_pip(resolve_argv(pip, report, wheels_only=wheels_only), env=pip_env(), capture=True)
    if proc.returncode != 0 or not report.is_file():
        return [], proc
    if pip.verbose and proc.stderr:
        err.write(proc.stderr)
    return read_report(report), proc


# -- phase 2: file references and verdicts ----------------------------------------------------


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "").lower()


def _same_file_url(a: str, b: str) -> bool:
    return a.split("#", 1)[0] == b.split("#", 1)[0]


def file_refs(
    items: Sequence[ReportItem], pip: PipArgs, http: Http, *, jobs: int
) -> dict[int, FileRef]:
    """FileRefs for the verifiable items (by position). Files served by one of the configured
    indexes get that index's provenance URL; the rest (mirrors without provenance,
    --find-links, local files, direct URLs) are looked up on the provenance index."""
    from safe_pip.check import PYPI_SIMPLE
    from safe_pip.net import ProjectPage, SimpleIndex

    pages: dict[tuple[str, str], ProjectPage | None] = {}
    wanted: set[tuple[str, str]] = set()
    for item in items:
        if not item.verifiable or item.is_local:
            continue
        if _host(item.url) in PYPI_FILES_HOSTS:
            continue
        for index in pip.indexes:
            wanted.add((index, item.project))

    def fetch(key: tuple[str, str]) -> tuple[tuple[str, str], ProjectPage | None]:
        index, project = key
        try:
            return key, SimpleIndex(http, index).project(project)
        except Exception:  # no page: no provenance URL; looked up on the provenance index
            return key, None

    if wanted:
        with ThreadPoolExecutor(max_workers=max(1, min(2 * jobs, len(wanted)))) as pool:
            pages.update(pool.map(fetch, sorted(wanted)))

    refs: dict[int, FileRef] = {}
    for pos, item in enumerate(items):
        if not item.verifiable:
            continue
        if _host(item.url) in PYPI_FILES_HOSTS:
            refs[pos] = item.to_fileref(index=PYPI_SIMPLE)
            continue
        ref: FileRef | None = None
        for index in pip.indexes:
            page = pages.get((index, item.project))
            if page is None:
                continue
            for f in page.files:
                if f.filename == item.filename and f.url and _same_file_url(f.url, item.url):
                    ref = item.to_fileref(
                        index=index, provenance_url=f.provenance_url, size=f.size, yanked=f.yanked
                    )
                    break
            if ref is not None:
                break
        refs[pos] = ref if ref is not None else item.to_fileref()
    return refs


SDIST_REASON = (
    "sdists are refused: building one first installs its build dependencies, which nothing "
    "verifies, and runs their code and the sdist's own build code"
)


def sdist_verdict(item: ReportItem, *, allow_sdist: bool) -> Verdict:
    if allow_sdist:
        reason = (
            SDIST_REASON + "; allow-sdist = true is set, but this version of safe-pip install "
            "cannot yet build sdists with verified build dependencies"
        )
        fix = (
            f"install a wheel of {item.name} instead (--only-binary :all:, or a version that "
            "has a wheel), or build it yourself through the verifying index: "
            "safe-pip serve, then pip wheel --index-url <its URL>"
        )
    else:
        reason = SDIST_REASON
        fix = (
            f"use a wheel of {item.name}: a version that publishes one (safe-pip already asks "
            "pip for wheels only, like --only-binary :all:), or a wheel URL instead of the "
            "sdist; or set allow-sdist = true in [defaults] of your policy to build sdists "
            "with build dependencies fetched through the verifying index (safe-pip serve)"
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
) -> list[Verdict]:
    """One verdict per report item, in report order."""
    allow_sdist = bool(checker.policy.defaults.allow_sdist)
    fixed: dict[int, Verdict] = {}
    for pos, item in enumerate(items):
        if item.kind == "sdist" and not (allow_sdist and SDIST_BUILDS_SUPPORTED):
            fixed[pos] = sdist_verdict(item, allow_sdist=allow_sdist)
        elif not item.verifiable:
            fixed[pos] = unverifiable_verdict(item, allowed=allow_unverifiable)
    candidates = [it for pos, it in enumerate(items) if pos not in fixed]
    refs = file_refs(candidates, pip, checker.http, jobs=checker.jobs)
    ordered = [refs[i] for i in range(len(candidates))]
    checked = iter(checker.check(ordered, download_dir=wheelhouse, progress=progress))
    return [fixed[pos] if pos in fixed else next(checked) for pos in range(len(items))]


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
        files.append(doc)
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
        "pip_exit_code": outcome.pip_exit_code,
        "message": outcome.message,
    }


def _emit(own: argparse.Namespace, pip: PipArgs, outcome: Outcome, out: TextIO) -> None:
    from safe_pip.render import dump_json

    doc = report_doc(outcome, pip)
    if own.report:
        path = Path(own.report)
        try:
            tmp = path.with_name(f".{path.name}.tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                dump_json(doc, fh)
            os.replace(tmp, path)
        except OSError as exc:
            raise ConfigError(f"cannot write the report {path}: {exc.strerror or exc}") from exc
    if own.json:
        dump_json(doc, out)


def run_install(own: argparse.Namespace, pip: PipArgs, *, out: TextIO, err: TextIO) -> int:
    """The whole command. Returns the exit code; raises SafePipError for usage errors."""
    outcome = Outcome()
    try:
        code = _run(own, pip, outcome, err=err, out=out)
    except SafePipError as exc:
        if not (own.json or own.report):
            raise
        outcome.exit_code = exc.exit_code
        outcome.message = exc.diagnostics()
        err.write(f"safe-pip: error: {exc.diagnostics()}\n")
        _emit(own, pip, outcome, out)
        return exc.exit_code
    outcome.exit_code = code
    _emit(own, pip, outcome, out)
    return code


def _run(
    own: argparse.Namespace, pip: PipArgs, outcome: Outcome, *, err: TextIO, out: TextIO
) -> int:
    from safe_pip.commands._common import ProgressLine, make_checker, open_store
    from safe_pip.render import clean, refusal_table

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
        allow_sdist = bool(checker.policy.defaults.allow_sdist) and SDIST_BUILDS_SUPPORTED
        if not allow_sdist:
            bad = [v for v in pip.no_binary if v.strip() != ":none:"]
            if bad:
                raise ConfigError(
                    f"--no-binary {bad[0]} asks pip for sdists, which safe-pip refuses "
                    "(building them runs unverified build dependencies)",
                    fix="drop --no-binary; safe-pip installs wheels only (see allow-sdist in "
                    "the policy documentation)",
                )
        with tempfile.TemporaryDirectory(prefix="safe-pip-install-") as tmp:
            work = Path(tmp)  # mkdtemp: mode 0700, private to this user
            os.chmod(work, 0o700)
            warm = _warm_up(checker)  # imports and trust root load while pip resolves
            items, proc = resolve(pip, work, wheels_only=not allow_sdist, err=err)
            warm.join()
            if proc.returncode != 0:
                return _resolve_failed(proc, pip, checker, outcome, allow_sdist, err)
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
            )
            outcome.verdicts = verdicts
            code = _exit_for(verdicts)
            if any(v.action is not Action.ALLOW for v in verdicts) and (code or not quiet):
                err.write(refusal_table(verdicts) + "\n")
            if code != EXIT_OK:
                refused = sum(1 for v in verdicts if v.action is Action.REFUSE)
                err.write(
                    f"safe-pip: {refused} of {len(verdicts)} file(s) refused; nothing was "
                    "installed.\n"
                )
                return code
            if pip.dry_run:
                names = " ".join(f"{clean(i.name)}-{clean(i.version)}" for i in items)
                if not own.json:
                    out.write(f"Would install {names}\n")
                if not quiet:
                    err.write(f"safe-pip: {len(verdicts)} file(s) verified (dry run).\n")
                return EXIT_OK
            if not quiet:
                err.write(
                    f"safe-pip: {len(verdicts)} file(s) verified; installing them from a "
                    "private wheelhouse.\n"
                )
            code = _install(pip, items, verdicts, wheelhouse, work, outcome, own, out, err)
            if outcome.installed:
                checker.record(
                    [v for v in verdicts if v.code is not ReasonCode.UNVERIFIABLE_ALLOWED],
                    index=pip.index_url,
                )
            return code
    finally:
        store.close()


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
) -> int:
    pinned: list[tuple[ReportItem, Path, str]] = []
    unverified: list[ReportItem] = []
    for item, v in zip(items, verdicts, strict=True):
        if v.code is ReasonCode.UNVERIFIABLE_ALLOWED:
            unverified.append(item)
            continue
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
    allow_sdist: bool,
    err: TextIO,
) -> int:
    from safe_pip.render import clean

    text = (proc.stderr or "") + (proc.stdout or "")
    err.write(text if text.endswith("\n") or not text else text + "\n")
    if "DO NOT MATCH THE HASHES" in text:
        outcome.message = "pip refused a file whose hash differs from the pinned one"
        err.write(f"safe-pip: {outcome.message}; nothing was installed.\n")
        return EXIT_REFUSED
    m = _NO_MATCH.search(text)
    if m and not allow_sdist:
        verdict = _sdist_only(m.group(1), pip, checker)
        if verdict is not None:
            outcome.verdicts = [verdict]
            from safe_pip.render import refusal_table

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


def _sdist_only(requirement: str, pip: PipArgs, checker: Checker) -> Verdict | None:
    """When pip found no wheel for ``requirement``: a refused-sdist verdict if the configured
    indexes do have an sdist that fits it, else None."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

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
    return sdist_verdict(item, allow_sdist=False)
