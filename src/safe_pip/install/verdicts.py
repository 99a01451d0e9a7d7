"""The verify step: one verdict per resolved file (sdists, unverifiable sources, verified files,
index confusion)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from safe_pip.install.sources import (
    apply_index_confusion,
    index_unknown_verdict,
    served_ref,
)
from safe_pip.models import Action, FileRef, ReasonCode, Verdict

if TYPE_CHECKING:
    from safe_pip.check import Checker
    from safe_pip.install.resolve import VerifyingIndexes
    from safe_pip.serve import Entry
    from safe_pip.sources.pip_report import ReportItem

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
    wheelhouse: Path,
    indexes: VerifyingIndexes,
    *,
    allow_unverifiable: bool,
    progress: Callable[[int, int, str], None] | None,
    sdist_builds: bool = False,
    sdist_blocker: str | None = None,
    file_cache: Path | None = None,
) -> list[Verdict]:
    """One verdict per report item, in report order.

    Every file pip resolved came through a verifying index: it is mapped back to its
    upstream file, fetched from there again, hashed and verified (the bytes installed are the
    bytes verified here). A wheel whose metadata requires a direct URL is refused. With more
    than one index, a project whose page listed files on several of them (as pip saw them)
    is refused as index confusion unless the policy pins it (ADR 0005). ``sdist_builds``:
    sdists are verified (and later built) instead of refused."""
    from packaging.utils import canonicalize_name

    from safe_pip.sources.wheel import check_wheel, is_wheel_name

    policy = checker.policy
    allow_sdist = bool(policy.defaults.allow_sdist)
    several = len(indexes.upstreams) > 1
    fixed: dict[int, Verdict] = {}
    refs: dict[int, FileRef] = {}
    entries: dict[int, Entry] = {}
    for pos, item in enumerate(items):
        if item.kind == "sdist" and not sdist_builds:
            fixed[pos] = sdist_verdict(item, allow_sdist=allow_sdist, blocker=sdist_blocker)
        elif not item.verifiable:
            fixed[pos] = unverifiable_verdict(item, allowed=allow_unverifiable)
        else:
            served = indexes.serving(item.url)
            if served is None:
                fixed[pos] = outside_verdict(item)
            else:
                refs[pos], entry = served_ref(item, served[1], served[0])
                if entry is not None:
                    entries[pos] = entry
    confused: dict[int, list[str]] = {}
    if several:
        for pos, item in enumerate(items):
            if pos in fixed:
                continue
            failed = indexes.failures(item.project)
            if failed:
                fixed[pos] = index_unknown_verdict(item, failed[0][0], failed[0][1])
                continue
            listed = indexes.listed_on(item.project)
            if len(listed) > 1:
                confused[pos] = listed
    index_refused = [
        pos
        for pos, entry in entries.items()
        if pos not in fixed and not (entry.pending or entry.transient or entry.allowed)
    ]
    for pos in index_refused:
        # refused by the verifying index (pip resolved it through a stand-in metadata):
        # that refusal is the verdict (confusion noted below); its bytes are never fetched
        fixed[pos] = entries[pos].verdict
    candidates = [pos for pos in range(len(items)) if pos in refs and pos not in fixed]
    decided = reuse_verdicts(
        checker,
        {p: (refs[p], entries[p]) for p in candidates if p in entries},
        wheelhouse,
        file_cache=file_cache,
    )
    rest = [pos for pos in candidates if pos not in decided]
    checked = checker.check([refs[p] for p in rest], download_dir=wheelhouse, progress=progress)
    verdicts = dict(fixed)
    for pos in index_refused:
        if pos in confused:
            verdicts[pos] = apply_index_confusion(
                verdicts[pos], items[pos].project, confused[pos], policy
            )
    for pos, verdict in [*decided.items(), *zip(rest, checked, strict=True)]:
        item = items[pos]
        if verdict.allowed and item.filename and is_wheel_name(item.filename):
            # pip got this wheel from the verifying index, which refuses an invalid wheel and
            # direct-URL metadata before pip reads it; the same check again on the bytes
            # that will be installed.
            _body, refused = check_wheel(
                verdict,
                wheelhouse / item.filename,
                item.filename,
                canonicalize_name(item.project),
            )
            if refused is not None:
                verdict = refused
        if pos in confused:
            verdict = apply_index_confusion(verdict, item.project, confused[pos], policy)
        verdicts[pos] = verdict
    return [verdicts[pos] for pos in range(len(items))]


def reuse_verdicts(
    checker: Checker,
    served: dict[int, tuple[FileRef, Entry]],
    wheelhouse: Path,
    *,
    file_cache: Path | None = None,
) -> dict[int, Verdict]:
    """The verdicts the verifying index already reached for the files pip fetched through it
    (same checker: same trust root, policy and history), for those whose bytes, downloaded
    again from upstream into the wheelhouse, have exactly the sha256 that was verified. Any
    other file (not decided there, refused, bytes that differ, a failed download) is left out,
    for the full check (which reports why)."""
    from concurrent.futures import ThreadPoolExecutor

    http = checker.http

    def one(pos: int) -> tuple[int, Verdict | None]:
        ref, entry = served[pos]
        if entry.pending or entry.transient or not entry.allowed or not ref.url:
            return pos, None
        dest = wheelhouse / ref.filename
        cap = http.limits.max_file_bytes
        if ref.size is not None and 0 <= ref.size < cap:
            cap = ref.size
        sha = _from_cache(file_cache, entry.sha256, dest)
        try:
            if sha is None:
                sha = http.download(ref.url, dest, max_bytes=cap)
        except Exception:  # fail closed: the full check downloads it again and says why
            return pos, None
        if sha != entry.sha256:
            dest.unlink(missing_ok=True)
            return pos, None
        return pos, entry.verdict

    out: dict[int, Verdict] = {}
    if served:
        with ThreadPoolExecutor(max_workers=max(1, min(checker.jobs, len(served)))) as pool:
            for pos, verdict in pool.map(one, sorted(served)):
                if verdict is not None:
                    out[pos] = verdict
    return out


def outside_verdict(item: ReportItem) -> Verdict:
    """A file pip resolved from somewhere other than a verifying index (never expected: pip
    has no other source): refused, never fetched."""
    from safe_pip.net import redact

    return Verdict(
        project=item.name,
        version=item.version,
        filename=item.filename or item.source,
        sha256=item.sha256 or "",
        action=Action.REFUSE,
        code=ReasonCode.REFUSED_UNVERIFIABLE_SOURCE,
        reason=f"pip took it from {redact(item.url)}, not from the verifying index",
        rule="verifying index only",
        fix="install by name from an index; safe-pip verifies only what its index serves",
    )


def _from_cache(cache: Path | None, sha256: str, dest: Path) -> str | None:
    """The sha256 of ``dest`` after copying the cached verified file for ``sha256`` to it
    (the caller compares it with the verified digest); None when there is none."""
    import shutil

    from safe_pip.check import sha256_path

    if cache is None or not (cache / sha256).is_file():
        return None
    try:
        shutil.copyfile(cache / sha256, dest)
        return sha256_path(dest)
    except OSError:
        dest.unlink(missing_ok=True)
        return None
