"""``safe-pip allow learn``: propose an allowlist from what a project already uses.

For every project named by a requirements file, a pylock.toml or the current environment, read
the release's files on the index, verify their provenance, and write the verified publishers
into the policy file as ``[[package]]`` entries. Unsigned projects are *not* allowed: they are
listed (and written as commented-out ``[[unsigned]]`` proposals) for a human to review.
Files whose provenance is invalid are reported and never written.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from safe_pip.errors import EXIT_COULD_NOT_CHECK, EXIT_OK, EXIT_REFUSED, ConfigError

if TYPE_CHECKING:
    from safe_pip.check import Checker
    from safe_pip.models import PublisherIdentity, Verdict
    from safe_pip.policy.proposals import Proposal

LEARN_DESCRIPTION = """\
Verify the current release of every project a requirements file, a pylock.toml or the current
environment names, and write each project's verified publishers into the policy file.
Unsigned projects are listed as proposed [[unsigned]] exceptions (commented out) for review;
projects whose provenance does not verify are reported and left out.

examples:
  safe-pip allow learn -r requirements.txt
  safe-pip allow learn --pylock pylock.toml --json
  safe-pip allow learn --environment --dry-run
"""


@dataclass
class Learned:
    project: str
    version: str
    publishers: list[PublisherIdentity] = field(default_factory=list)
    unsigned_files: list[str] = field(default_factory=list)
    unsigned_sha256: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # invalid / could not check
    could_not_check: bool = False
    #: why the learned publishers contradict the project's history (local or the index's
    #: window): never written without --accept-contradictions
    contradiction: str | None = None


def register_learn(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    from safe_pip.commands._common import add_trust_options

    p = sub.add_parser(
        "learn",
        parents=[common],
        help="write the verified publishers of the projects you use into the policy file",
        description=LEARN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("-r", "--requirements", metavar="FILE", help="a requirements file")
    src.add_argument("--pylock", metavar="FILE", help="a pylock.toml")
    src.add_argument(
        "--environment",
        action="store_true",
        help="the distributions installed in this Python environment (the default)",
    )
    p.add_argument(
        "-i",
        "--index-url",
        metavar="URL",
        help="simple index to read releases and provenance from (default: PyPI)",
    )
    p.add_argument("--dry-run", action="store_true", help="show what would be written")
    p.add_argument(
        "--accept-contradictions",
        action="store_true",
        help="also write publishers that contradict the project's history (local or the "
        "index's earlier releases); each is listed. Without it they are listed and not written",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_trust_options(p)
    p.set_defaults(func=run_learn)


def _from_requirements(path: Path) -> list[tuple[str, str | None]]:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    out: list[tuple[str, str | None]] = []
    pending = ""
    for lineno, raw in enumerate(lines, 1):
        line = pending + raw.split(" #", 1)[0].strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line.startswith(("#", "-")):
            continue
        spec = line.split(" --hash", 1)[0].split(";", 1)[0].strip()
        try:
            req = Requirement(spec)
        except InvalidRequirement as exc:
            raise ConfigError(f"{path}:{lineno}: {exc}") from exc
        pinned = [s.version for s in req.specifier if s.operator in ("==", "===")]
        out.append((req.name, pinned[0] if pinned else None))
    return out


def _from_pylock(path: Path) -> list[tuple[str, str | None]]:
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        data = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
    except (OSError, ValueError, TOMLKitError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    packages = data.get("packages")
    if not isinstance(packages, list):
        raise ConfigError(f"{path}: no [[packages]] array")
    out: list[tuple[str, str | None]] = []
    for pkg in packages:
        if isinstance(pkg, dict) and isinstance(pkg.get("name"), str):
            version = pkg.get("version")
            out.append((pkg["name"], version if isinstance(version, str) else None))
    return out


def _from_environment() -> list[tuple[str, str | None]]:
    from importlib import metadata

    seen: dict[str, tuple[str, str | None]] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            seen.setdefault(name.lower(), (name, dist.version))
    return sorted(seen.values())


def learn(
    projects: list[tuple[str, str | None]],
    *,
    index_url: str,
    args: argparse.Namespace,
) -> list[Learned]:
    """Verify each project's release (pinned, else the latest) and collect its publishers;
    note where they contradict the project's history (the local store, else the index's
    window of most recent releases), read as a sequence."""
    from safe_pip.check import Checker, default_jobs
    from safe_pip.commands._common import store_path, trust_from_args
    from safe_pip.policy.file import Policy
    from safe_pip.store.db import HistoryStore

    # read-only: learning records nothing, it compares with what is known
    store = HistoryStore.open(store_path(args), readonly=True)
    checker = Checker(
        trust=trust_from_args(args),
        policy=Policy.default(),
        store=store,
        jobs=default_jobs(),
        provenance_index=index_url,
        index_history=True,
    )
    try:
        return _learn(projects, checker, index_url)
    finally:
        store.close()


def _learn(
    projects: list[tuple[str, str | None]], checker: Checker, index_url: str
) -> list[Learned]:
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    from safe_pip.models import FileRef, VerifyStatus
    from safe_pip.net import SimpleIndex

    index = SimpleIndex(checker.http, index_url)
    results: dict[str, Learned] = {}
    refs: list[tuple[str, FileRef]] = []
    for name, version in projects:
        key = str(canonicalize_name(name))
        if key in results:
            continue
        try:
            page = index.project(name)
        except Exception as exc:
            results[key] = Learned(name, version or "?", could_not_check=True)
            results[key].problems.append(f"cannot read the index page: {exc}")
            continue
        wanted: Version | None = None
        if version:
            try:
                wanted = Version(version)
            except InvalidVersion:
                wanted = None
        candidates = []
        for f in page.files:
            try:
                v = Version(f.version)
            except InvalidVersion:
                continue
            if f.yanked and wanted is None:
                continue
            if wanted is None and v.is_prerelease:
                continue
            candidates.append((v, f))
        if wanted is None and candidates:
            wanted = max(v for v, _f in candidates)
        files = [f for v, f in candidates if v == wanted]
        results[key] = Learned(name, str(wanted) if wanted else (version or "?"))
        if not files:
            results[key].problems.append(f"no files for version {version or 'latest'}")
            continue
        # verify against the index-declared digests: learning needs no download
        refs += [(key, replace(f, url=None)) for f in files if f.sha256]
    verdicts = checker.check([r for _k, r in refs])
    for (key, ref), verdict in zip(refs, verdicts, strict=True):
        item = results[key]
        res = verdict.verification
        if res is None:
            continue
        if res.status is VerifyStatus.VERIFIED and res.identity is not None:
            ident = res.identity
            if all(p.to_table() != ident.to_table() for p in item.publishers):
                item.publishers.append(ident)
        elif res.status is VerifyStatus.UNSIGNED:
            item.unsigned_files.append(ref.filename)
            item.unsigned_sha256.append(res.sha256)
        else:
            item.could_not_check |= res.status is VerifyStatus.ERROR
            item.problems.append(f"{ref.filename}: {res.reason}")
    by_project: dict[str, list[Verdict]] = {}
    for (key, _ref), verdict in zip(refs, verdicts, strict=True):
        by_project.setdefault(key, []).append(verdict)
    for key, item in results.items():
        if item.publishers and not item.problems:
            item.contradiction = _contradiction(checker, key, by_project.get(key, []), index_url)
    return list(results.values())


def _contradiction(
    checker: Checker, name: str, verdicts: list[Verdict], index_url: str
) -> str | None:
    """Where the publishers of ``verdicts`` contradict ``name``'s history, or None."""
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


def _proposals(items: list[Learned], today: str) -> list[Proposal]:
    from safe_pip.policy.proposals import Proposal

    return [
        Proposal(
            kind="unsigned",
            name=it.project,
            versions=f"=={it.version}",
            sha256=tuple(sorted(set(it.unsigned_sha256))),
            learned_version=it.version,
            evidence=f"{it.project} {it.version} has no attestation on the index",
            proposed=today,
        )
        for it in items
    ]


def run_learn(args: argparse.Namespace) -> int:
    from safe_pip.check import PYPI_SIMPLE
    from safe_pip.policy.file import PolicyDocument
    from safe_pip.policy.proposals import ProposalFile, proposals_path
    from safe_pip.render import clean, dump_json

    if args.requirements:
        projects = _from_requirements(Path(args.requirements))
    elif args.pylock:
        projects = _from_pylock(Path(args.pylock))
    else:
        projects = _from_environment()
    index_url = args.index_url or PYPI_SIMPLE
    learned = learn(projects, index_url=index_url, args=args)

    doc = PolicyDocument.open(Path(args.policy) if args.policy else None)
    added: dict[str, list[PublisherIdentity]] = {}
    withheld = [i for i in learned if i.contradiction and i.publishers and not i.problems]
    for item in learned:
        if item.publishers and not item.problems:
            if item.contradiction and not args.accept_contradictions:
                continue  # listed below, never written silently
            new = doc.add_package(item.project, item.publishers)
            if new:
                added[item.project] = new
    unsigned = [i for i in learned if i.unsigned_files and not i.publishers and not i.problems]
    today = datetime.now(timezone.utc).date().isoformat()
    pfile = ProposalFile.load(proposals_path(doc.path))
    proposed = pfile.add(_proposals(unsigned, today))
    if not args.dry_run:
        if added:
            doc.save()
        if proposed:
            pfile.save()
    problems = [i for i in learned if i.problems]

    if args.json:
        dump_json(
            {
                "version": 1,
                "policy": str(doc.path),
                "written": not args.dry_run,
                "projects": [
                    {
                        "name": i.project,
                        "version": i.version,
                        "publishers": [p.to_table() for p in i.publishers],
                        "unsigned_files": i.unsigned_files,
                        "problems": i.problems,
                        "contradiction": i.contradiction,
                        "written": i.project in added,
                    }
                    for i in learned
                ],
            }
        )
    else:
        verb = "would add" if args.dry_run else "added"
        for name, pubs in added.items():
            who = "; ".join(clean(p.describe()) for p in pubs)
            print(f"{verb} {clean(name)}: {who}")
        for i in unsigned:
            print(f"unsigned {clean(i.project)} {clean(i.version)}: proposed [[unsigned]] (review)")
        if proposed:
            print(
                f"{len(proposed)} proposal(s) pending in {pfile.path}: review them with "
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
            for p in i.problems:
                print(f"problem {clean(i.project)}: {clean(p, limit=300)}", file=sys.stderr)
        print(
            f"{len(learned)} project(s): {len(added)} with new publishers, "
            f"{len(unsigned)} unsigned, {len(problems)} with problems, "
            f"{len(withheld)} contradicting history -> {doc.path}"
        )
    if any(i.problems and not i.could_not_check for i in learned):
        return EXIT_REFUSED
    if any(i.project not in added for i in withheld):
        return EXIT_REFUSED
    if any(i.could_not_check for i in learned):
        return EXIT_COULD_NOT_CHECK
    return EXIT_OK
