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

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from safe_pip.errors import EXIT_COULD_NOT_CHECK, EXIT_OK, EXIT_REFUSED
from safe_pip.learn.propose import proposals_for
from safe_pip.learn.used import used_projects
from safe_pip.learn.window import Learned, learn
from safe_pip.options import RunOptions

if TYPE_CHECKING:
    from safe_pip.learn.proposals import Proposal, ProposalFile
    from safe_pip.models import PublisherIdentity
    from safe_pip.policy.edit import PolicyDocument


@dataclass(frozen=True)
class LearnOptions(RunOptions):
    """What ``allow learn`` is asked to learn from (one of requirements, pyproject, pylock,
    python; none: the active virtualenv, as ``--environment``) and how; with the trust, policy
    and history options every run has."""

    requirements: str | None = None  # resolved with pip, as install resolves
    pyproject: str | None = None  # its [project] dependencies, resolved
    pylock: str | None = None  # read as locked
    python: str | None = None  # the distributions installed for this interpreter
    index_url: str | None = None  # default PyPI
    dry_run: bool = False  # write nothing
    accept_contradictions: bool = False  # write publishers that contradict the history too


@dataclass
class LearnRun:
    """What ``allow learn`` found and wrote (or, with ``--dry-run``, would write)."""

    doc: PolicyDocument
    pfile: ProposalFile
    learned: list[Learned]
    added: dict[str, list[PublisherIdentity]]  # project -> publishers written to the policy
    withheld: list[Learned]  # contradicting the history (written only if accepted)
    proposed: list[Proposal]  # new proposals for 'allow review'

    @property
    def problems(self) -> list[Learned]:
        return [i for i in self.learned if i.problems]

    @property
    def exit_code(self) -> int:
        if any(i.problems and not i.could_not_check for i in self.learned):
            return EXIT_REFUSED
        if any(i.project not in self.added for i in self.withheld):
            return EXIT_REFUSED
        if any(i.could_not_check for i in self.learned):
            return EXIT_COULD_NOT_CHECK
        return EXIT_OK


def learn_into_policy(args: LearnOptions) -> LearnRun:
    """Learn what ``args`` names; write single publishers into the policy and everything that
    needs a human into the proposals file (neither with ``args.dry_run``)."""
    from safe_pip.check import PYPI_SIMPLE
    from safe_pip.learn.proposals import ProposalFile, already_in_policy, proposals_path
    from safe_pip.policy.edit import PolicyDocument

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
    return LearnRun(doc, pfile, learned, added, withheld, proposed)
