"""The verify step: one verdict per resolved file (sdists, unverifiable sources, verified files,
index confusion)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from safe_pip.models import Action, ReasonCode, Verdict

if TYPE_CHECKING:
    from safe_pip.check import Checker
    from safe_pip.install.args import PipArgs
    from safe_pip.resolve.pip_report import ReportItem
    from safe_pip.serve import RunningServer

from safe_pip.install.args import PipArgs
from safe_pip.install.requirements import FileSource, effective_indexes
from safe_pip.install.sources import (
    PYPI_FILES_HOSTS,
    _host,
    _served_by,
    apply_index_confusion,
    fetch_pages,
    file_refs,
    index_unknown_verdict,
)

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
