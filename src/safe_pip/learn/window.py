"""Verify each used project's release in use and its window of earlier releases: the publishers
each release proved, unsigned files, and where they contradict the history."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from safe_pip.learn.proposals import Dependency
from safe_pip.learn.used import Used

if TYPE_CHECKING:
    from safe_pip.check import Checker
    from safe_pip.models import FileRef, PublisherIdentity, Verdict
    from safe_pip.net import ProjectPage
    from safe_pip.options import RunOptions


@dataclass
class ReleaseSeen:
    """What one release in the window proved."""

    version: str
    publishers: list[PublisherIdentity] = field(default_factory=list)
    unsigned: bool = False
    upload_time: str | None = None


@dataclass
class Learned:
    project: str
    version: str
    dependency: Dependency = "unknown"
    upload_date: str = ""
    publishers: list[PublisherIdentity] = field(default_factory=list)  # of the release in use
    window: list[ReleaseSeen] = field(default_factory=list)  # oldest first, in use included
    unsigned_files: list[str] = field(default_factory=list)
    unsigned_sha256: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # invalid / could not check
    could_not_check: bool = False
    ever_attested: bool = False  # any file of the project on the index lists provenance
    newer_attested: str | None = None  # the newest attested version after the one in use
    #: why the learned publishers contradict this machine's history: never written without
    #: --accept-contradictions
    contradiction: str | None = None

    def window_publishers(self) -> list[tuple[PublisherIdentity, list[str]]]:
        """Each distinct publisher of the window (table + ids) with the versions it signed."""
        from safe_pip.policy.edit import identity_key

        out: dict[tuple[tuple[str, str], ...], tuple[PublisherIdentity, list[str]]] = {}
        for rel in self.window:
            for p in rel.publishers:
                out.setdefault(identity_key(p), (p, []))[1].append(rel.version)
        return list(out.values())


def learn(
    projects: list[Used],
    *,
    index_url: str,
    args: RunOptions,
    depth: int = 5,
) -> list[Learned]:
    """Verify each project's release in use (pinned, else the latest) and its ``depth`` most
    recent earlier releases, and collect their publishers."""
    from safe_pip.check import Checker, default_jobs
    from safe_pip.options import open_store, trust_from_args
    from safe_pip.policy.file import Policy

    # read-only: learning records nothing, it compares with what is known
    store = open_store(args, readonly=True)
    checker = Checker(
        trust=trust_from_args(args),
        policy=Policy.default(),
        store=store,
        jobs=default_jobs(),
        provenance_index=index_url,
        index_history=True,
    )
    try:
        return _learn(projects, checker, index_url, depth)
    finally:
        store.close()


def _release_files(
    page: ProjectPage, wanted: str | None
) -> tuple[str | None, dict[str, list[FileRef]]]:
    """(version in use, files by version) of ``page``; the version in use is the pinned one,
    else the newest final release that is not yanked."""
    from packaging.version import InvalidVersion, Version

    by_version: dict[str, list[FileRef]] = {}
    parsed: dict[str, Version] = {}
    for f in page.files:
        try:
            v = Version(f.version)
        except InvalidVersion:
            continue
        parsed[str(v)] = v
        by_version.setdefault(str(v), []).append(f)
    if wanted is not None:
        try:
            key = str(Version(wanted))
        except InvalidVersion:
            return None, by_version
        return (key if key in by_version else None), by_version
    finals = [
        s
        for s, v in parsed.items()
        if not v.is_prerelease and any(not f.yanked for f in by_version[s])
    ]
    return (max(finals, key=lambda s: parsed[s]) if finals else None), by_version


def _learn(projects: list[Used], checker: Checker, index_url: str, depth: int) -> list[Learned]:
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    from safe_pip.models import VerifyStatus
    from safe_pip.net import SimpleIndex

    index = SimpleIndex(checker.http, index_url)
    results: dict[str, Learned] = {}
    refs: list[tuple[str, str, bool, FileRef]] = []  # (project, version, in use?, ref)
    for used in projects:
        key = str(canonicalize_name(used.name))
        if key in results:
            continue
        item = results[key] = Learned(used.name, used.version or "?", used.dependency)
        try:
            page = index.project(used.name)
            checker.serials.observe_page(index_url, page)
        except Exception as exc:
            item.could_not_check = True
            item.problems.append(f"cannot read the index page: {exc}")
            continue
        version, by_version = _release_files(page, used.version)
        if version is None:
            item.problems.append(f"no files for version {used.version or 'latest'}")
            continue
        item.version = version
        current = Version(version)
        item.ever_attested = any(f.provenance_url for f in page.files)
        newer = [
            v
            for v in by_version
            if Version(v) > current and any(f.provenance_url for f in by_version[v])
        ]
        item.newer_attested = max(newer, key=Version) if newer else None
        earlier = sorted((v for v in by_version if Version(v) < current), key=Version)
        window = [*earlier[-depth:], version] if depth > 0 else [version]
        for v in window:
            files = by_version[v]
            uploads = sorted(f.upload_time for f in files if f.upload_time)
            item.window.append(ReleaseSeen(v, upload_time=uploads[0] if uploads else None))
            if v == version:
                item.upload_date = (uploads[0] if uploads else "")[:10]
                chosen = files  # every file of the release in use
            else:  # one file per earlier release tells its publisher; prefer a wheel
                chosen = sorted(files, key=lambda f: (not f.filename.endswith(".whl"), f.filename))[
                    :1
                ]
            # verify against the index-declared digests: learning needs no download
            refs += [(key, v, v == version, replace(f, url=None)) for f in chosen if f.sha256]
    verdicts = checker.check([r for *_x, r in refs])
    by_release = {(k, rel.version): rel for k, it in results.items() for rel in it.window}
    from safe_pip.policy.edit import identity_key

    for (key, version, in_use, ref), verdict in zip(refs, verdicts, strict=True):
        item = results[key]
        rel = by_release[(key, version)]
        res = verdict.verification
        if res is None:
            continue
        if res.status is VerifyStatus.VERIFIED and res.identity is not None:
            ident = res.identity
            if all(identity_key(p) != identity_key(ident) for p in rel.publishers):
                rel.publishers.append(ident)
            if in_use and all(identity_key(p) != identity_key(ident) for p in item.publishers):
                item.publishers.append(ident)
        elif res.status is VerifyStatus.UNSIGNED:
            rel.unsigned = True
            if in_use:
                item.unsigned_files.append(ref.filename)
                item.unsigned_sha256.append(res.sha256)
        elif in_use:
            item.could_not_check |= res.status is VerifyStatus.ERROR
            item.problems.append(f"{ref.filename}: {res.reason}")
        else:  # an earlier release whose provenance does not verify: say so, learn nothing
            item.problems.append(f"earlier release {version}: {ref.filename}: {res.reason}")
            item.could_not_check |= res.status is VerifyStatus.ERROR
    by_project: dict[str, list[Verdict]] = {}
    for (key, _v, in_use, _ref), verdict in zip(refs, verdicts, strict=True):
        if in_use:
            by_project.setdefault(key, []).append(verdict)
    for key, item in results.items():
        if item.publishers and not item.problems:
            item.contradiction = _contradiction(checker, key, by_project.get(key, []), index_url)
    return list(results.values())


def _contradiction(
    checker: Checker, name: str, verdicts: list[Verdict], index_url: str
) -> str | None:
    """Where the publishers of ``verdicts`` contradict ``name``'s history (this machine's, else
    the index's window, read as a sequence), or None."""
    from safe_pip.errors import SafePipError
    from safe_pip.policy.rules import sequence_change, verdict_record

    cands = [r for r in (verdict_record(v, checker.now) for v in verdicts) if r is not None]
    try:
        history = checker.history_for(name, index=index_url)
    except SafePipError as exc:
        return f"its history could not be read ({exc.message})"
    found = sequence_change((*history.records, *cands), cands)
    if found is None:
        return None
    return (
        f"publisher changes at {found.where()}: {found.before.describe()} before, "
        f"{found.after.describe()} from there on ({found.change.detail})"
    )
