"""Where each resolved file comes from (which index, which upstream file behind a link of the
verifying index) and the dependency-confusion rule over several indexes (ADR 0005)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from safe_pip.models import Action, FileRef, ReasonCode, Verdict

if TYPE_CHECKING:
    from safe_pip.install.args import PipArgs
    from safe_pip.install.requirements import FileSource
    from safe_pip.policy.file import Policy
    from safe_pip.serve import Entry, RunningServer
    from safe_pip.sources.pip_report import ReportItem


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "").lower()


def served_ref(
    item: ReportItem, server: RunningServer, upstream: str
) -> tuple[FileRef, Entry | None]:
    """The upstream file behind a link of the verifying index (pip resolved through it), and
    the verifying index's entry for it (its verdict; None when it has none)."""
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
                index=up.index or upstream,
                provenance_url=up.provenance_url,
                size=up.size,
                yanked=up.yanked,
            )
            return _with_status(replace(ref, url=up.url), up), entry
    return item.to_fileref(), None  # unknown to the server: looked up on the provenance index


def _with_status(ref: FileRef, page_ref: FileRef) -> FileRef:
    """``ref`` with the PEP 792 project status its index page gave (threat T25)."""
    return replace(
        ref,
        project_status=page_ref.project_status,
        project_status_reason=page_ref.project_status_reason,
        index_serves_provenance=page_ref.index_serves_provenance,  # a mirror is named as such
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
    verdict: Verdict, project: str, listed: Sequence[str], policy: Policy
) -> Verdict:
    """threat T11: ``project`` is listed on more than one configured index. pip takes
    the highest version across them, so whoever controls the name on any of them decides what
    is installed. Allowed only when the policy itself says what to accept: a [[package]]
    entry naming the publisher that signed this file (verified-allowlisted), or an
    [[unsigned]] exception pinning this file's sha256. Everything else is refused
    (refused-index-confusion); an already refused verdict keeps its own reason, with a note."""
    from safe_pip.policy.rules import allow_add_command, allow_unsigned_command

    note = (
        f"{project} is listed on {len(listed)} of the configured indexes "
        f"({_redacted(listed)}): dependency confusion risk"
    )
    if verdict.action is Action.REFUSE:
        return replace(verdict, reason=f"{verdict.reason}; note: {note}")
    if verdict.code is ReasonCode.VERIFIED_ALLOWLISTED:
        return verdict
    if verdict.code is ReasonCode.UNSIGNED_ALLOWED and _unsigned_pinned(
        policy, project, verdict.sha256
    ):
        return verdict
    if verdict.identity is not None:
        fix = (
            f"if {verdict.identity.describe()} is the publisher you expect for {project}, "
            f"name it in the policy: {allow_add_command(project, verdict.identity)}; "
            f"otherwise drop the index that should not serve {project}"
        )
    else:
        fix = (
            f"if this exact file is the one you reviewed, pin it: "
            f"{allow_unsigned_command(project, verdict.version, verdict.sha256)}; otherwise "
            f"drop the index that should not serve {project}"
        )
    return replace(
        verdict,
        action=Action.REFUSE,
        code=ReasonCode.REFUSED_INDEX_CONFUSION,
        reason=(
            f"{note}. pip picks the highest version across indexes, so whoever publishes "
            f"{project} on another index can take over this install, and no [[package]] "
            f"entry of the policy names {project}'s publisher (this file: "
            f"{verdict.reason})"
        ),
        rule="index confusion (several indexes)",
        fix=fix,
    )


# -- the indexes of a run ----------------------------------------------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_index_url(url: str, *, where: str = "index URL") -> str:
    """One spelling per index: scheme and host lower-cased, a default port dropped, the path
    with exactly one trailing slash (``localhost`` and ``127.0.0.1`` stay different indexes).
    Raises ConfigError (exit 2) for a URL that is not an http(s) or file: URL."""
    from urllib.parse import urlsplit, urlunsplit

    from safe_pip.errors import ConfigError

    fix = "give the index as a full URL, e.g. https://pypi.org/simple/"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise ConfigError(f"{where} {url!r} is malformed: {exc}", fix=fix) from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        path = parts.path.rstrip("/") + "/"
        return urlunsplit(("file", parts.netloc, path, "", ""))
    if scheme not in _DEFAULT_PORTS or not host:
        raise ConfigError(
            f"{where} {url!r} is not an http(s) URL with a host",
            fix=fix,
        )
    netloc = host.lower()
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    if parts.username is not None or parts.password is not None:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        netloc = f"{userinfo}@{netloc}"
    path = parts.path.rstrip("/") + "/"
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def run_indexes(pip: PipArgs, sources: Sequence[FileSource]) -> list[str]:
    """The indexes pip would search, normalized and without duplicates, in pip's order: the
    command line's (``-i``, default PyPI, then ``--extra-index-url``), then each requirement
    file's options as pip applies them (a file's ``--index-url`` replaces the list so far, its
    ``--extra-index-url`` adds one). Raises ConfigError for a malformed URL."""
    primary = pip.index_urls[-1] if pip.index_urls else "https://pypi.org/simple/"
    urls = [primary, *pip.extra_index_urls]
    for f in sources:
        if f.option == "--index-url" and f.value:
            urls = [f.value]
        elif f.option == "--extra-index-url" and f.value:
            urls.append(f.value)
    return unique_indexes(urls)


def unique_indexes(urls: Sequence[str]) -> list[str]:
    """``urls`` normalized, in order, each index once. Raises ConfigError when malformed."""
    out: list[str] = []
    for url in urls:
        norm = normalize_index_url(url)
        if norm not in out:
            out.append(norm)
    return out
