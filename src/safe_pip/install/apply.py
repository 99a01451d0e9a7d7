"""The install step: build verified sdists, then one offline, hash-pinned pip install of exactly
the verified bytes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from safe_pip.errors import (
    EXIT_OK,
    EXIT_PIP_FAILED,
    ConfigError,
)
from safe_pip.models import Action, ReasonCode, Verdict

if TYPE_CHECKING:
    from safe_pip.install.args import InstallOptions, PipArgs
    from safe_pip.serve import RunningServer
    from safe_pip.sources.pip_report import ReportItem

from safe_pip.install import piprun
from safe_pip.install.args import PipArgs
from safe_pip.install.piprun import PrestartedPip, install_argv
from safe_pip.install.report import Outcome, _exit_for
from safe_pip.install.resolve import served_refusals


def requirements_text(pairs: Sequence[tuple[ReportItem, Path, str]]) -> str:
    lines = []
    for item, path, sha in pairs:
        lines.append(f"{item.project} @ {path.resolve().as_uri()} --hash=sha256:{sha}")
    return "\n".join(lines) + "\n"


def unverifiable_argv(
    pip: PipArgs, items: Sequence[ReportItem], index_urls: Sequence[str] = ()
) -> list[str]:
    """The second call for sources the user allowed unverified (local dirs, VCS): their
    build dependencies come through the verifying indexes (``index_urls``), like everything
    else pip fetches."""
    argv = [*pip.pip_global, "install", "--isolated", "--no-deps", "--disable-pip-version-check"]
    argv += ["--no-input"]
    argv += ["-q"] * pip.quiet + ["-v"] * pip.verbose
    argv += pip.install
    for pos, url in enumerate(index_urls):
        argv += ["--index-url" if pos == 0 else "--extra-index-url", url]
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
    argv = [*pip.pip_global, "wheel", "--no-deps", "--isolated", "--no-cache-dir"]
    argv += ["--require-hashes"]
    argv += ["--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    argv += ["-q"] * pip.quiet + ["-v"] * pip.verbose
    argv += ["--retries", "0", "--index-url", index_url, "--wheel-dir", str(wheel_dir)]
    argv += pip.build
    return [*argv, "-r", str(requirements)]


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


def _build_sdists(
    pip: PipArgs,
    items: Sequence[ReportItem],
    verdicts: Sequence[Verdict],
    wheelhouse: Path,
    work: Path,
    server: RunningServer,
    outcome: Outcome,
    err: TextIO,
    *,
    env: dict[str, str],
) -> dict[int, tuple[Path, str]]:
    """Build every verified sdist into a wheel (one ``pip wheel`` call). Returns position ->
    (built wheel, its sha256); raises _StepFailed with the exit code on failure."""
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
    from packaging.version import InvalidVersion, Version

    from safe_pip.check import sha256_path
    from safe_pip.output.render import refusal_table
    from safe_pip.text import clean

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
    proc = piprun.run_pip(argv, env=env, capture=True)
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


def _install(
    pip: PipArgs,
    items: Sequence[ReportItem],
    verdicts: Sequence[Verdict],
    wheelhouse: Path,
    work: Path,
    outcome: Outcome,
    own: InstallOptions,
    out: TextIO,
    err: TextIO,
    *,
    built: dict[int, tuple[Path, str]] | None = None,
    early: PrestartedPip | None = None,
    env: dict[str, str],
    index_urls: Sequence[str] = (),
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
    if piprun.HOOKS.before_install is not None:
        piprun.HOOKS.before_install([p for _i, p, _s in pinned])
    reqs = work / "verified-requirements.txt"
    reqs.write_text(requirements_text(pinned), encoding="utf-8")
    # With --json, stdout carries the JSON document only: pip's chatter goes to stderr.
    pip_out = err if own.json else out
    calls = []
    if pinned:
        calls.append(install_argv(pip, reqs))
    if unverified:
        calls.append(unverifiable_argv(pip, unverified, index_urls))
    for argv in calls:
        proc = None
        if early is not None and pinned and argv is calls[0]:
            proc = early.feed(reqs.read_text(encoding="utf-8"))
        if proc is None:
            proc = piprun.run_pip(argv, env=env, capture=False, stdout=pip_out, stderr=err)
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
