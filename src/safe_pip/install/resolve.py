"""The resolve step: pip ``install --dry-run --report`` through safe-pip's verifying indexes only.

pip gets one in-process verifying index (:func:`safe_pip.serve.start_server`, block mode) per
index of the run, each in front of one upstream index, and no other source: its requirement
files are rewritten copies (:mod:`safe_pip.install.requirements`), and every other host is
behind a dead proxy (:class:`DeadProxy`), so a direct URL pip might meet goes nowhere. pip
reads each wheel's metadata as PEP 658 ``.metadata`` from the verifying index: the METADATA of
the verified bytes, or for a refused wheel a stand-in naming only its project and version, so
the resolution runs to its end and every refused file pip picked is known; a refused file
itself is answered 403 (never an older version instead).
"""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple, TextIO

from safe_pip.errors import (
    EXIT_CONFIG,
    EXIT_COULD_NOT_CHECK,
    EXIT_REFUSED,
)
from safe_pip.install import piprun
from safe_pip.install.piprun import pip_env
from safe_pip.install.report import Outcome, _exit_for
from safe_pip.install.verdicts import sdist_verdict
from safe_pip.models import FileRef, ReasonCode, Verdict

if TYPE_CHECKING:
    from safe_pip.check import Checker
    from safe_pip.install.args import PipArgs
    from safe_pip.serve import RunningServer
    from safe_pip.sources.pip_report import ReportItem

#: Environment variables naming proxies (any case): replaced for every pip call of a run.
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy")
_VCS = ("git+", "hg+", "svn+", "bzr+")


class DeadProxy:
    """A proxy address on 127.0.0.1 that refuses every connection (a bound socket that never
    listens). pip's environment names it for every scheme, with only 127.0.0.1 (where the
    verifying indexes listen) exempt: anything else pip or its build subprocesses (git
    included) try to reach fails to connect."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def env(self, base: dict[str, str], allow_hosts: Sequence[str] = ()) -> dict[str, str]:
        """``base`` with every proxy variable replaced: the dead proxy for every scheme, only
        127.0.0.1 (and ``allow_hosts``: the hosts of VCS URLs the user allowed with
        --allow-unverifiable-sources) reached directly."""
        env = {k: v for k, v in base.items() if k.lower() not in _PROXY_VARS}
        for var in ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy"):
            env[var] = env[var.upper()] = self.url
        env["no_proxy"] = env["NO_PROXY"] = ",".join(["127.0.0.1", *allow_hosts])
        env["PIP_RETRIES"] = "0"  # the child pip that installs build dependencies
        return env

    def close(self) -> None:
        self._sock.close()


class IndexFailure(NamedTuple):
    """An upstream read of a verifying index that failed (pip was answered 5xx)."""

    upstream: str
    reason: str
    fix: str
    project: str


@dataclass
class VerifyingIndexes:
    """The verifying indexes of one run: ``servers[i]`` fronts ``upstreams[i]``."""

    upstreams: list[str]
    servers: list[RunningServer] = field(default_factory=list)

    @property
    def index_urls(self) -> list[str]:
        return [s.index_url for s in self.servers]

    def serving(self, url: str) -> tuple[str, RunningServer] | None:
        """(upstream, server) of a file link pip got from one of the verifying indexes."""
        for upstream, server in zip(self.upstreams, self.servers, strict=True):
            if url.startswith(server.url + "/"):
                return upstream, server
        return None

    def listed_on(self, project: str) -> list[str]:
        """The upstreams whose page for ``project`` (as pip saw it) listed files."""
        return [
            u for u, s in zip(self.upstreams, self.servers, strict=True) if s.index.listed(project)
        ]

    def failures(self, project: str | None = None) -> list[IndexFailure]:
        """(upstream, reason, fix, project) of every upstream read that failed (pip was
        answered 5xx and, for an extra index, would have skipped it), optionally for one
        project. A read ahead of pip that failed is none: only pip's own request for it counts
        (read again)."""
        from packaging.utils import canonicalize_name

        from safe_pip.store.serials import stale_error

        out: list[IndexFailure] = []
        want = canonicalize_name(project) if project else None
        for upstream, server in zip(self.upstreams, self.servers, strict=True):
            for e in list(server.index.log.events):
                if e.get("event") not in ("upstream", "error", "stale") or e.get("ahead"):
                    continue
                name = str(e.get("project") or "")
                if want is not None and canonicalize_name(name) != want:
                    continue
                if e.get("event") == "stale":
                    exc = stale_error(
                        upstream,
                        name,
                        int(e.get("serial") or 0),
                        int(e.get("previous_serial") or 0),
                    )
                    out.append(IndexFailure(upstream, exc.message, exc.fix or "", name))
                    continue
                reason = str(e.get("reason") or e.get("event"))
                fix = "check the index URL and your network, then retry"
                out.append(IndexFailure(upstream, reason, fix, name))
        return out

    def too_new(self) -> list[dict[str, str]]:
        """The files the verifying indexes left out of the pages pip read because they are
        younger than the minimum release age (docs/policy.md "Release age"): pip resolved an
        older release where the requirements allowed one. One entry per file."""
        out: dict[tuple[str, str], dict[str, str]] = {}
        for server in self.servers:
            for e in list(server.index.log.events):
                if e.get("event") != "refuse" or e.get("code") != ReasonCode.REFUSED_TOO_NEW:
                    continue
                key = (str(e.get("project") or ""), str(e.get("filename") or ""))
                out[key] = {
                    "project": key[0],
                    "version": str(e.get("version") or ""),
                    "filename": key[1],
                    "acceptable_from": str(e.get("acceptable_from") or ""),
                    "reason": str(e.get("reason") or ""),
                }
        return sorted(out.values(), key=lambda d: (d["project"], d["filename"]))

    def refusals(self, text: str) -> list[Verdict]:
        """The refused files pip met: every refused wheel whose metadata it read (answered
        with a stand-in, so its resolution went on), and the refused files it asked for
        (answered 403), named in pip's output. Each file once."""
        out: list[Verdict] = []
        seen: set[tuple[str, str]] = set()
        for server in self.servers:
            for v in [*server.index.stand_ins(), *served_refusals(text, server)]:
                if (v.filename, v.sha256) not in seen:
                    seen.add((v.filename, v.sha256))
                    out.append(v)
        return out

    def unchecked(self, known: Sequence[Verdict] = ()) -> list[Verdict]:
        """The files pip asked for that a verifying index could not check (answered 5xx: the
        upstream page, provenance or file failed), each once, leaving out those in ``known``."""
        seen = {(v.filename, v.sha256) for v in known}
        out: list[Verdict] = []
        for server in self.servers:
            for v in server.index.unchecked():
                if (v.filename, v.sha256) not in seen:
                    seen.add((v.filename, v.sha256))
                    out.append(v)
        return out

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> VerifyingIndexes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_verifying_indexes(
    checker: Checker,
    upstreams: Sequence[str],
    *,
    verbose: bool,
    err: TextIO,
    file_cache: Path | None = None,
    page_sequence: bool = True,
) -> VerifyingIndexes:
    """One verifying index (block mode, lazy, 127.0.0.1, ephemeral port) per upstream;
    ``file_cache``: verified files by sha256, kept across runs (re-hashed on every use);
    ``page_sequence``: without the index's history window, a file is decided with its
    page's releases (ADR 0012; off only where no history is judged)."""
    from safe_pip.errors import CouldNotCheckError
    from safe_pip.serve import EventLog, start_server

    out = VerifyingIndexes(list(upstreams))
    try:
        for upstream in upstreams:
            log = EventLog(stream=err, quiet=not verbose, keep=True)
            out.servers.append(
                start_server(
                    checker,
                    upstream,
                    host="127.0.0.1",
                    port=0,
                    mode="block",
                    log=log,
                    lazy=True,
                    record=False,  # install records what it installs (compare-and-set)
                    file_cache=file_cache,
                    core_metadata=True,  # every refusal known, in one report (ADR 0007)
                    read_ahead=True,  # dependencies' pages read in parallel, not one by one
                    watch_policy=False,  # one run, one policy (read at its start)
                )
            )
            out.servers[-1].index.page_sequence = page_sequence
    except OSError as exc:
        out.stop()
        raise CouldNotCheckError(
            f"could not start the verifying index on 127.0.0.1: {exc.strerror or exc}",
            fix="pip resolves only through it; check that 127.0.0.1 can be bound",
        ) from exc
    except BaseException:
        out.stop()
        raise
    return out


def resolve_argv(
    pip: PipArgs,
    report: Path,
    *,
    wheels_only: bool,
    index_urls: Sequence[str],
    requirements: Path | None = None,
    constraints: Path | None = None,
) -> list[str]:
    """The resolution call: through the verifying indexes only, with pip's copies of the
    requirement files; the user's other options and named requirements unchanged."""
    argv = [*pip.pip_global, "install", "--dry-run", "--report", str(report), "--isolated"]
    argv += ["--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    argv += ["-v"] * pip.verbose if pip.verbose else ["--quiet"]
    if wheels_only:
        argv += ["--only-binary", ":all:"]
    argv += ["--retries", "0", "--index-url", index_urls[0]]
    for url in index_urls[1:]:
        argv += ["--extra-index-url", url]
    argv += pip.resolve_through
    if requirements is not None:
        argv += ["-r", str(requirements)]
    if constraints is not None:
        argv += ["-c", str(constraints)]
    return argv


_NO_MATCH = re.compile(r"No matching distribution found for (\S+)")


def resolve(
    argv: Sequence[str], report: Path, env: dict[str, str], *, verbose: bool, err: TextIO
) -> tuple[list[ReportItem], subprocess.CompletedProcess[str]]:
    from safe_pip.sources.pip_report import read_report

    proc = piprun.run_pip(argv, env=env, capture=True)
    if proc.returncode != 0 or not report.is_file():
        return [], proc
    if verbose and proc.stderr:
        err.write(proc.stderr)
    return read_report(report), proc


def file_cache_dir(home: str | None) -> Path:
    """Where ``safe-pip install`` keeps verified files by sha256 between runs."""
    import os

    home = home or os.environ.get("SAFE_PIP_HOME")
    if home:
        return Path(home) / "cache" / "files"
    import platformdirs

    return Path(platformdirs.user_cache_dir("safe-pip")) / "files"


def sealed_env(proxy: DeadProxy, allow_hosts: Sequence[str] = ()) -> dict[str, str]:
    """The environment of every pip call of a run: no pip configuration, no proxy but the
    dead one (only the verifying indexes on 127.0.0.1, and ``allow_hosts``, are reachable)."""
    return proxy.env(pip_env(), allow_hosts)


def vcs_hosts(texts: Sequence[str]) -> list[str]:
    """The hosts of the VCS URLs among ``texts`` (``git+https://host/...``,
    ``name @ git+ssh://git@host/...``): allowed past the dead proxy only when the user allowed
    those sources unverified."""
    from urllib.parse import urlsplit

    out: list[str] = []
    for text in texts:
        url = text.strip()
        if not url.lower().startswith(_VCS) and "@" in url:
            url = url.split("@", 1)[1].strip()
        if not url.lower().startswith(_VCS):
            continue
        try:
            host = urlsplit(url.split("+", 1)[1]).hostname
        except ValueError:
            continue
        if host and _exemptable(host) and host not in out:
            out.append(host)
    return out


#: A DNS name of two or more labels. NO_PROXY entries match as suffixes (requests compares
#: with a plain ``endswith``, urllib takes ``*`` as every host), so anything else ("*", a
#: single label such as "g", a leading dot) would open far more than the one host.
_HOSTNAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}", re.I)


def _exemptable(host: str) -> bool:
    """Whether ``host`` may stand in NO_PROXY: an IP address or a multi-label DNS name."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return _HOSTNAME.fullmatch(host) is not None


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


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    from safe_pip.net import redact

    try:
        return urlsplit(url).hostname or redact(url)
    except ValueError:
        return redact(url)


def resolve_failed(
    proc: subprocess.CompletedProcess[str],
    checker: Checker,
    outcome: Outcome,
    indexes: VerifyingIndexes,
    blocker: str | None,
    err: TextIO,
    *,
    sdist_builds: bool,
) -> int:
    """What a failed resolution means, said plainly: a refused file (exit 1), an index that
    could not be read (exit 3, naming its host), a project or version that does not exist,
    or only an sdist (exit 1, refused-sdist)."""
    from safe_pip.output.render import refusal_table
    from safe_pip.text import clean

    text = (proc.stderr or "") + (proc.stdout or "")
    refused = indexes.refusals(text)
    if refused and len(indexes.upstreams) > 1:
        from safe_pip.install.sources import apply_index_confusion

        noted = []
        for v in refused:
            listed = indexes.listed_on(v.project)
            if len(listed) > 1:
                v = apply_index_confusion(v, v.project, listed, checker.policy)
            noted.append(v)
        refused = noted
    # the files pip asked for that could not be checked (or whose bytes proved a refusal),
    # named beside the refusals; alone, they are the same one report (exit 3)
    refused += indexes.unchecked(refused)
    if refused:
        # A refused file (a dependency, a wheel whose metadata needs a direct URL, an sdist's
        # build dependency) was answered 403, or a file could not be checked (5xx), and pip
        # stopped.
        outcome.verdicts = refused
        outcome.pip_exit_code = proc.returncode
        if text and refused[0].code.value not in text:
            err.write(text if text.endswith("\n") else text + "\n")
        err.write(refusal_table(refused) + "\n")
        code = _exit_for(refused)
        outcome.message = (
            "the verifying index refused a file pip needed"
            if code == EXIT_REFUSED
            else "the verifying index could not check a file pip needed"
        )
        err.write(f"safe-pip: {outcome.message}; nothing was installed.\n")
        return code
    err.write(text if text.endswith("\n") or not text else text + "\n")
    outcome.pip_exit_code = proc.returncode
    failed = indexes.failures()
    if failed:
        outcome.could_not_read = _could_not_read(failed)
        upstream, reason, fix, _project = failed[0]
        outcome.message = (
            f"could not check: the index {clean(_host(upstream))} could not be read "
            f"({clean(reason, limit=400)})"
        )
        err.write(
            f"safe-pip: {outcome.message}; nothing was installed.\n  fix: {clean(fix, limit=400)}\n"
        )
        return EXIT_COULD_NOT_CHECK
    if "DO NOT MATCH THE HASHES" in text:
        outcome.message = "pip refused a file whose hash differs from the pinned one"
        err.write(f"safe-pip: {outcome.message}; nothing was installed.\n")
        return EXIT_REFUSED
    m = _NO_MATCH.search(text)
    young = _too_new_for(m.group(1), outcome.too_new) if m else []
    if young:
        outcome.message = (
            f"every release that fits {clean(m.group(1) if m else '', limit=200)} is younger "
            "than the minimum release age: "
            + ", ".join(
                f"{clean(d['filename'], limit=120)} (acceptable from "
                f"{_utc_minute(d['acceptable_from'])})"
                for d in young
            )
        )
        err.write(
            f"safe-pip: {outcome.message}; nothing was installed.\n  fix: wait, or run once "
            "with --min-release-age 0 if you need it now\n"
        )
        return EXIT_REFUSED
    if m:
        allow_sdist = bool(checker.policy.defaults.allow_sdist)
        verdict, message = _no_match(
            m.group(1),
            indexes.upstreams,
            checker,
            allow_sdist=allow_sdist,
            blocker=blocker,
            sdist_builds=sdist_builds,
        )
        if verdict is not None:
            outcome.verdicts = [verdict]
            err.write(refusal_table([verdict]) + "\n")
            err.write("safe-pip: nothing was installed.\n")
            return EXIT_REFUSED
        outcome.message = message
    else:
        outcome.message = f"pip could not resolve the requirements (exit {proc.returncode})"
    err.write(f"safe-pip: {outcome.message}; nothing was installed.\n")
    return EXIT_CONFIG


def _could_not_read(failed: Sequence[IndexFailure]) -> list[dict[str, str]]:
    """The failed upstream reads for the JSON report: one entry per index and project (a
    page, or a file the index could not read for it), first reason and fix."""
    from safe_pip.net import redact

    out: dict[tuple[str, str], dict[str, str]] = {}
    for f in failed:
        out.setdefault(
            (f.upstream, f.project),
            {
                "index": redact(f.upstream),
                "host": _host(f.upstream),
                "project": f.project,
                "reason": f.reason,
                "fix": f.fix,
            },
        )
    return list(out.values())


def _too_new_for(requirement: str, left_out: list[dict[str, str]]) -> list[dict[str, str]]:
    """The left-out too-new files of the project ``requirement`` names."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        name = canonicalize_name(Requirement(requirement.strip("'\"")).name)
    except InvalidRequirement:
        return []
    return [d for d in left_out if canonicalize_name(d["project"]) == name]


def _no_match(
    requirement: str,
    upstreams: Sequence[str],
    checker: Checker,
    *,
    allow_sdist: bool,
    blocker: str | None,
    sdist_builds: bool,
) -> tuple[Verdict | None, str]:
    """When pip found nothing for ``requirement``: a refused-quarantined verdict if an index
    marks the project quarantined (PEP 792), a refused-sdist verdict if the indexes have only
    an sdist that fits it, else (None, what the indexes do have)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    from safe_pip.check import QUARANTINED, quarantined_verdict
    from safe_pip.net import SimpleIndex
    from safe_pip.sources.pip_report import ReportItem
    from safe_pip.text import clean

    generic = f"pip found no distribution for {clean(requirement)}"
    try:
        req = Requirement(requirement.strip("'\""))
    except InvalidRequirement:
        return None, generic
    best: tuple[Version, FileRef] | None = None
    versions: set[Version] = set()
    found = False
    for index in upstreams:
        try:
            page = SimpleIndex(checker.http, index).project(req.name)
        except Exception:  # noqa: S112 - a missing page only means no better message
            continue
        found = True
        if (page.status or "").strip().lower() == QUARANTINED:
            # PEP 792: the index offers no files of a quarantined project (threat T25)
            ref = FileRef(
                project=req.name,
                version=str(req.specifier) or "-",
                filename="(no files offered)",
                index=index,
                project_status=page.status,
                project_status_reason=page.status_reason,
            )
            return quarantined_verdict(ref, ""), generic
        for f in page.files:
            try:
                v = Version(f.version)
            except InvalidVersion:
                continue
            if not f.yanked:
                versions.add(v)
            if not f.filename.endswith((".tar.gz", ".zip")) or f.yanked:
                continue
            if req.specifier and not req.specifier.contains(v, prereleases=True):
                continue
            if best is None or v > best[0]:
                best = (v, f)
    if best is not None and not sdist_builds:
        f = best[1]
        item = ReportItem(
            name=req.name,
            version=f.version,
            url=f.url or f.filename,
            kind="sdist",
            filename=f.filename,
            sha256=f.sha256,
        )
        return sdist_verdict(item, allow_sdist=allow_sdist, blocker=blocker), generic
    hosts = ", ".join(clean(_host(u)) for u in upstreams)
    if not found:
        return None, f"{clean(req.name)} was not found on the index ({hosts})"
    if req.specifier and not any(req.specifier.contains(v, prereleases=True) for v in versions):
        listed = ", ".join(str(v) for v in sorted(versions)[-10:]) or "none"
        return None, (
            f"{clean(req.name)} has no version matching {clean(str(req.specifier))} on the "
            f"index ({hosts}); versions there: {clean(listed)}"
        )
    return None, (
        f"pip found no installable wheel for {clean(requirement)} on the index ({hosts}): none "
        "fits this Python and platform, or only sdists exist (safe-pip resolves wheels only: "
        "sdists would run unverified build code)"
    )


def say_too_new(left_out: list[dict[str, str]], err: TextIO) -> None:
    """Tell the user which releases were left out as too new (pip took older ones)."""
    from safe_pip.text import clean

    if not left_out:
        return
    releases: dict[tuple[str, str], str] = {}
    for d in left_out:
        releases.setdefault((d["project"], d["version"]), d["acceptable_from"])
    shown = ", ".join(
        f"{clean(p, limit=80)} {clean(v, limit=40)} (acceptable from {_utc_minute(when)})"
        for (p, v), when in sorted(releases.items())
    )
    err.write(
        f"safe-pip: left out {len(releases)} release(s) younger than the minimum release age: "
        f"{shown}; pip resolves older releases where your requirements allow them "
        "(--min-release-age 0 takes the newest)\n"
    )


def _utc_minute(iso: str) -> str:
    """``2026-12-02T19:02:11+00:00`` as ``2026-12-02 19:02 UTC``."""
    from safe_pip.text import clean

    return clean(iso[:16].replace("T", " "), limit=20) + " UTC" if iso else "?"
