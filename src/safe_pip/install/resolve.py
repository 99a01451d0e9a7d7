"""The resolve step: pip ``install --dry-run --report``, and what a failed resolution means."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from safe_pip.errors import (
    EXIT_CONFIG,
    EXIT_COULD_NOT_CHECK,
    EXIT_REFUSED,
    ConfigError,
)
from safe_pip.models import FileRef, Verdict

if TYPE_CHECKING:
    from safe_pip.check import Checker
    from safe_pip.install.args import PipArgs
    from safe_pip.resolve.pip_report import ReportItem
    from safe_pip.serve import RunningServer

from safe_pip.install import piprun
from safe_pip.install.args import PipArgs
from safe_pip.install.piprun import loopback_env, pip_env
from safe_pip.install.report import Outcome, _exit_for
from safe_pip.install.verdicts import sdist_verdict


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
    proc = piprun.run_pip(argv, env=env, capture=True)
    if proc.returncode != 0 or not report.is_file():
        return [], proc
    if pip.verbose and proc.stderr:
        err.write(proc.stderr)
    return read_report(report), proc


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
