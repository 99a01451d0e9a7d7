"""``safe-pip allow learn``: propose an allowlist from what a project already uses.

What is learned comes from what the project uses: a requirements file or a ``pyproject.toml``
(resolved, transitive dependencies included, by the same wheels-only pip resolution ``install``
runs), a pylock.toml, or an installed environment (``--python PATH``). For every project, the
release in use and its window of most recent earlier releases (``index-history-depth``) are read
from the index and their provenance verified, so a project whose releases alternate between two
legitimate workflows is learned with both.

* One publisher across the window: written into the policy file as a ``[[package]]`` entry, its
  numeric ids pinned (unless it contradicts this machine's history: then listed, not written).
* Several publishers in the window: a ``publisher`` proposal, annotated with which releases each
  one published, for ``safe-pip allow review``.
* An unsigned release: a proposal with the honest reason: ``unsigned-project`` when no file of
  the project on the index has ever been attested; an ``[[unsigned]]`` exception pinned to the
  files' sha256 when newer releases are attested ("upgrade") or older ones were (a downgrade).
* Invalid provenance: reported, never written.

Learning is idempotent: publishers are compared by their table and numeric ids (never by
certificate-only facts such as the git ref), proposals already pending, rejected or satisfied
by the policy are not made again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from safe_pip.errors import (
    EXIT_COULD_NOT_CHECK,
    EXIT_OK,
    EXIT_REFUSED,
    ConfigError,
    CouldNotCheckError,
)

if TYPE_CHECKING:
    from safe_pip.check import Checker
    from safe_pip.learn.proposals import Kind, Proposal
    from safe_pip.models import FileRef, PublisherIdentity, Verdict
    from safe_pip.net import ProjectPage

LEARN_DESCRIPTION = """\
Learn the publishers of every project you use and write them into the policy file. What you use
comes from a requirements file or pyproject.toml (resolved with pip, wheels only, as install
resolves: transitive dependencies included), a pylock.toml, or an installed environment
(--python PATH; --environment is the active virtualenv). For each project the release in use
and its most recent earlier releases are verified on the index.

A project with one publisher across those releases is written as a [[package]] entry (numeric
ids pinned). Everything that needs a human - several publishers, unsigned projects - becomes a
proposal in <policy>.proposals.toml, annotated with the release it was learned from, its date,
direct or transitive, and why; decide them with 'safe-pip allow review'. Running learn again on
an unchanged project changes nothing.

examples:
  safe-pip allow learn -r requirements.in
  safe-pip allow learn --pyproject pyproject.toml
  safe-pip allow learn --python .venv/bin/python --dry-run
  safe-pip allow learn --pylock pylock.toml --json
"""

Dependency = Literal["direct", "transitive", "unknown"]


@dataclass(frozen=True)
class Used:
    """A project the user's project uses."""

    name: str
    version: str | None
    dependency: Dependency = "unknown"


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
        from safe_pip.policy.file import identity_key

        out: dict[tuple[tuple[str, str], ...], tuple[PublisherIdentity, list[str]]] = {}
        for rel in self.window:
            for p in rel.publishers:
                out.setdefault(identity_key(p), (p, []))[1].append(rel.version)
        return list(out.values())


def register_learn(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    from safe_pip.commands._common import add_history_option, add_trust_options

    p = sub.add_parser(
        "learn",
        parents=[common],
        help="write the verified publishers of the projects you use into the policy file",
        description=LEARN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "-r",
        "--requirements",
        metavar="FILE",
        help="a requirements file (requirements.in or a lock), resolved with pip",
    )
    src.add_argument(
        "--pyproject", metavar="FILE", help="a pyproject.toml: its [project] dependencies"
    )
    src.add_argument("--pylock", metavar="FILE", help="a pylock.toml (read as locked)")
    src.add_argument(
        "--python",
        metavar="PATH",
        help="the distributions installed in the environment of this Python interpreter",
    )
    src.add_argument(
        "--environment",
        action="store_true",
        help="the active virtualenv ($VIRTUAL_ENV): same as --python $VIRTUAL_ENV/bin/python",
    )
    p.add_argument(
        "-i",
        "--index-url",
        metavar="URL",
        help="simple index to resolve against and read releases and provenance from "
        "(default: PyPI)",
    )
    p.add_argument("--dry-run", action="store_true", help="show what would be written")
    p.add_argument(
        "--accept-contradictions",
        action="store_true",
        help="also write publishers that contradict this machine's history; each is listed. "
        "Without it they are listed and not written",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--home",
        metavar="DIR",
        help="history database learned publishers are compared with (default: $SAFE_PIP_HOME "
        "or the user data directory)",
    )
    add_history_option(p)
    add_trust_options(p)
    p.set_defaults(func=run_learn)


# -- what the project uses ---------------------------------------------------------------------


def _resolve(argv: list[str], index_url: str, what: str, args: argparse.Namespace) -> list[Used]:
    """Resolve as ``install`` does (its requirement reading, pip through in-process verifying
    indexes behind a dead proxy, wheels only, so no package code runs) with a learning policy:
    unsigned files and any publisher pass (that is what is being learned), a file whose
    provenance does not verify does not. Direct = requested by the input."""
    import contextlib
    import os
    import tempfile

    from safe_pip.check import Checker, default_jobs
    from safe_pip.commands._common import trust_from_args
    from safe_pip.install.args import split_argv
    from safe_pip.install.requirements import (
        read_requirements,
        refuse_unverifiable,
        write_requirement_files,
    )
    from safe_pip.install.resolve import (
        DeadProxy,
        resolve,
        resolve_argv,
        sealed_env,
        start_verifying_indexes,
    )
    from safe_pip.install.sources import run_indexes
    from safe_pip.policy.file import Defaults, Policy
    from safe_pip.text import clean

    _own, pip = split_argv([*argv, "--index-url", index_url])
    reading = read_requirements(pip, allow_unverifiable=False)
    refuse_unverifiable(reading, sdist_builds=False, blocker=None)
    upstreams = run_indexes(pip, reading.sources)
    learning = Policy(defaults=Defaults(require_attestation=False, index_history_depth=0))
    checker = Checker(
        trust=trust_from_args(args),
        policy=learning,
        store=None,
        jobs=default_jobs(),
        provenance_index=index_url,
        index_history=False,
    )
    with (
        tempfile.TemporaryDirectory(prefix="safe-pip-learn-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        os.chmod(work, 0o700)
        proxy = DeadProxy()
        stack.callback(proxy.close)
        indexes = stack.enter_context(
            start_verifying_indexes(checker, upstreams, verbose=False, err=sys.stderr)
        )
        requirements, constraints = write_requirement_files(reading, work)
        report = work / "pip-report.json"
        pip_argv = resolve_argv(
            pip,
            report,
            wheels_only=True,
            index_urls=indexes.index_urls,
            requirements=requirements,
            constraints=constraints,
        )
        items, proc = resolve(pip_argv, report, sealed_env(proxy), verbose=False, err=sys.stderr)
        refused = [v for v in indexes.refusals(proc.stdout + proc.stderr) if not v.allowed]
    if proc.returncode != 0 or not items:
        if refused:
            from safe_pip.errors import RefusedError

            raise RefusedError(
                f"resolving {what}: "
                + clean("; ".join(f"{v.filename}: {v.reason}" for v in refused[:3]), limit=900),
                fix="nothing is learned from files whose provenance does not verify; report "
                "them to the project's maintainers",
            )
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
        detail = " / ".join(tail) or f"exit code {proc.returncode}"
        raise CouldNotCheckError(
            f"could not resolve {what} (wheels only, as install resolves): "
            + clean(detail, limit=600),
            fix="check the requirements and -i/--index-url; a project without wheels cannot "
            "be learned (safe-pip installs wheels only by default)",
        )
    return [
        Used(i.name, i.version, "direct" if i.requested else "transitive")
        for i in items
        if i.filename
    ]


def _from_pyproject(path: Path) -> list[str]:
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    project = data.get("project")
    deps = project.get("dependencies") if isinstance(project, dict) else None
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ConfigError(f"{path}: no [project] dependencies list to learn from")
    if not deps:
        raise ConfigError(f"{path}: [project] dependencies is empty: nothing to learn")
    return list(deps)


def _from_pylock(path: Path) -> list[Used]:
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        data = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
    except (OSError, ValueError, TOMLKitError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    packages = data.get("packages")
    if not isinstance(packages, list):
        raise ConfigError(f"{path}: no [[packages]] array")
    out: list[Used] = []
    for pkg in packages:
        if isinstance(pkg, dict) and isinstance(pkg.get("name"), str):
            version = pkg.get("version")
            out.append(Used(pkg["name"], version if isinstance(version, str) else None))
    return out


_ENV_SCRIPT = """\
import json, importlib.metadata as m
out = []
for d in m.distributions():
    name = d.metadata["Name"]
    if name:
        out.append([name, d.version, list(d.requires or [])])
print(json.dumps(out))
"""


def _from_python(python: str) -> list[Used]:
    """The distributions installed for ``python`` (run in its own process, so safe-pip's own
    environment is never what is learned); direct = required by no other distribution."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        proc = subprocess.run(
            [python, "-I", "-c", _ENV_SCRIPT],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"--python {python}: cannot run it ({exc})") from None
    try:
        rows = json.loads(proc.stdout)
    except ValueError:
        rows = None
    if proc.returncode != 0 or not isinstance(rows, list):
        raise ConfigError(
            f"--python {python}: could not list its distributions "
            f"({(proc.stderr or '').strip()[-300:] or proc.returncode})"
        )
    required: set[str] = set()
    seen: dict[str, tuple[str, str]] = {}
    for row in rows:
        if not (isinstance(row, list) and len(row) == 3):
            continue
        name, version, requires = row
        if not isinstance(name, str) or not isinstance(version, str):
            continue
        key = canonicalize_name(name)
        seen.setdefault(key, (name, version))
        for text in requires if isinstance(requires, list) else []:
            try:
                req = Requirement(str(text))
            except InvalidRequirement:
                continue
            if req.marker is not None and "extra" in str(req.marker):
                continue
            required.add(canonicalize_name(req.name))
    return sorted(
        (
            Used(name, version, "transitive" if key in required else "direct")
            for key, (name, version) in seen.items()
        ),
        key=lambda u: u.name.lower(),
    )


def used_projects(args: argparse.Namespace, index_url: str) -> list[Used]:
    import os

    if args.requirements:
        path = Path(args.requirements)
        if not path.is_file():
            raise ConfigError(f"{path}: no such requirements file")
        return _resolve(["-r", str(path)], index_url, str(path), args)
    if args.pyproject:
        path = Path(args.pyproject)
        return _resolve(_from_pyproject(path), index_url, f"{path} [project] dependencies", args)
    if args.pylock:
        return _from_pylock(Path(args.pylock))
    python = args.python
    if python is None:
        venv = os.environ.get("VIRTUAL_ENV")
        if not venv:
            raise ConfigError(
                "nothing to learn from: give -r FILE, --pyproject FILE, --pylock FILE or "
                "--python PATH (the interpreter of the environment to learn)"
            )
        python = str(Path(venv) / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
    return _from_python(python)


# -- learning ----------------------------------------------------------------------------------


def learn(
    projects: list[Used],
    *,
    index_url: str,
    args: argparse.Namespace,
    depth: int = 5,
) -> list[Learned]:
    """Verify each project's release in use (pinned, else the latest) and its ``depth`` most
    recent earlier releases, and collect their publishers."""
    from safe_pip.check import Checker, default_jobs
    from safe_pip.commands._common import open_store, trust_from_args
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
    from safe_pip.policy.file import identity_key

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


# -- proposals ---------------------------------------------------------------------------------


def _versions_text(versions: list[str]) -> str:
    return ", ".join(versions[:6]) + (f" and {len(versions) - 6} more" if len(versions) > 6 else "")


def _switches(item: Learned) -> int:
    """How often the publisher changes from one release of the window to the next."""
    from safe_pip.policy.file import identity_key

    keys = [identity_key(p) for p, _vs in item.window_publishers()]
    order = [keys.index(identity_key(rel.publishers[0])) for rel in item.window if rel.publishers]
    return sum(1 for a, b in itertools.pairwise(order) if a != b)


def _publisher_evidence(item: Learned) -> str:
    pubs = item.window_publishers()
    parts = [f"{_versions_text(vs)} by {p.describe()}" for p, vs in pubs]
    n = len(item.window)
    return (
        f"{len(pubs)} publishers in the last {n} releases ({'; '.join(parts)}): the releases "
        "alternate between them"
    )


def proposals_for(item: Learned, today: str) -> list[Proposal]:
    """What needs a human for ``item`` (nothing when its one publisher is written directly)."""
    from safe_pip.learn.proposals import Proposal

    def make(kind: Kind, **kw: Any) -> Proposal:
        return Proposal(
            kind=kind,
            name=item.project,
            learned_version=item.version,
            learned_date=item.upload_date,
            dependency=item.dependency,
            proposed=today,
            **kw,
        )

    if item.problems:
        return []
    pubs = item.window_publishers()
    # Publishers that alternate across the window (two release workflows, say) are proposed
    # together. One change in the window is a publisher change: the release in use is then
    # written only if it does not contradict the history (see _contradiction), never proposed
    # as if it were routine.
    if item.publishers and len(pubs) > 1 and _switches(item) > 1:
        return [
            make(
                "publisher",
                publishers=tuple(p for p, _vs in pubs),
                evidence=_publisher_evidence(item),
            )
        ]
    if not item.unsigned_files or item.publishers:
        return []
    files = tuple(sorted(zip(item.unsigned_files, item.unsigned_sha256, strict=True)))
    if not item.ever_attested:
        return [
            make(
                "unsigned-project",
                files=files,
                evidence=f"no release of {item.project} has ever been attested (no file on the "
                "index lists provenance); its new unsigned releases will pass until one is",
            )
        ]
    attested = [rel.version for rel in item.window if rel.publishers]
    if item.newer_attested:
        why = (
            f"newer releases are attested ({item.newer_attested} is): upgrade to it rather "
            f"than accept unsigned {item.version}"
        )
    elif attested:
        why = (
            f"earlier releases were attested ({_versions_text(attested)}) and {item.version} is "
            "not: an attestation downgrade; find out why before accepting these files"
        )
    else:
        why = (
            f"other releases of {item.project} are attested, {item.version} is not; pinned to "
            "these files"
        )
    return [
        make(
            "unsigned",
            versions=f"=={item.version}",
            sha256=tuple(sorted(set(item.unsigned_sha256))),
            files=files,
            evidence=why,
        )
    ]


def run_learn(args: argparse.Namespace) -> int:
    from safe_pip.check import PYPI_SIMPLE
    from safe_pip.learn.proposals import ProposalFile, already_in_policy, proposals_path
    from safe_pip.output.render import dump_json
    from safe_pip.policy.file import PolicyDocument
    from safe_pip.text import clean

    index_url = args.index_url or PYPI_SIMPLE
    doc = PolicyDocument.open(Path(args.policy) if args.policy else None)
    projects = used_projects(args, index_url)
    learned = learn(
        projects, index_url=index_url, args=args, depth=doc.policy.defaults.index_history_depth
    )

    added: dict[str, list[PublisherIdentity]] = {}
    withheld: list[Learned] = []
    now = datetime.now(timezone.utc)
    today = now.date().isoformat()
    pfile = ProposalFile.load(proposals_path(doc.path))
    wanted: list[Proposal] = []
    for item in learned:
        props = proposals_for(item, today)
        if item.publishers and not item.problems and not props:
            if item.contradiction:
                withheld.append(item)
                if not args.accept_contradictions:
                    continue  # listed below, never written silently
            new = doc.add_package(item.project, item.publishers)
            if new:
                added[item.project] = new
        wanted += [p for p in props if not already_in_policy(p, doc, now.date())]
    proposed = pfile.add(wanted)
    if not args.dry_run:
        if added:
            doc.save()
        if proposed:
            pfile.save()
    problems = [i for i in learned if i.problems]

    if args.json:
        dump_json(
            {
                "version": 2,
                "policy": str(doc.path),
                "proposals": str(pfile.path),
                "written": not args.dry_run,
                "projects": [
                    {
                        "name": i.project,
                        "version": i.version,
                        "dependency": i.dependency,
                        "released": i.upload_date or None,
                        "publishers": [p.to_table() for p in i.publishers],
                        "window": [
                            {
                                "version": r.version,
                                "publishers": [p.to_table() for p in r.publishers],
                                "unsigned": r.unsigned,
                            }
                            for r in i.window
                        ],
                        "unsigned_files": i.unsigned_files,
                        "problems": i.problems,
                        "contradiction": i.contradiction,
                        "written": i.project in added,
                    }
                    for i in learned
                ],
                "proposed": [p.to_table() for p in proposed],
            }
        )
    else:
        verb = "would add" if args.dry_run else "added"
        for name, pubs in added.items():
            who = "; ".join(clean(p.describe()) for p in pubs)
            print(f"{verb} {clean(name)}: {who}")
        for p in proposed:
            print(f"proposed {clean(p.summary(), limit=300)} ({clean(p.origin())})")
        if proposed:
            where = "would be" if args.dry_run else "are"
            print(
                f"{len(proposed)} proposal(s) {where} pending in {pfile.path}: review them with "
                "'safe-pip allow review'"
            )
        for i in withheld:
            what = (
                "written anyway (--accept-contradictions)"
                if i.project in added
                else ("NOT written; review, then rerun with --accept-contradictions to write it")
            )
            who = "; ".join(clean(p.describe()) for p in i.publishers)
            print(
                f"contradicts history {clean(i.project)}: {who}: "
                f"{clean(i.contradiction, limit=400)} - {what}",
                file=sys.stderr,
            )
        for i in problems:
            for msg in i.problems:
                print(f"problem {clean(i.project)}: {clean(msg, limit=300)}", file=sys.stderr)
        print(
            f"{len(learned)} project(s): {len(added)} with new publishers, "
            f"{len(proposed)} new proposal(s), {len(problems)} with problems, "
            f"{len(withheld)} contradicting history -> {doc.path}"
        )
    if any(i.problems and not i.could_not_check for i in learned):
        return EXIT_REFUSED
    if any(i.project not in added for i in withheld):
        return EXIT_REFUSED
    if any(i.could_not_check for i in learned):
        return EXIT_COULD_NOT_CHECK
    return EXIT_OK
