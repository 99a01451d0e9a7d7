"""Where each resolved file comes from (which index, which upstream file behind a link of the
verifying index) and the dependency-confusion rule over several indexes (ADR 0005)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from safe_pip.errors import (
    SafePipError,
)
from safe_pip.models import Action, FileRef, ReasonCode, Verdict

if TYPE_CHECKING:
    from safe_pip.net import Http, ProjectPage
    from safe_pip.policy.file import Policy
    from safe_pip.resolve.pip_report import ReportItem
    from safe_pip.serve import RunningServer


PYPI_FILES_HOSTS = ("files.pythonhosted.org",)


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
