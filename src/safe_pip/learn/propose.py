"""What needs a human for a learned project: a ``publisher`` proposal for alternating
publishers, ``unsigned`` / ``unsigned-project`` for unsigned releases, with the evidence why."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from safe_pip.learn.window import Learned

if TYPE_CHECKING:
    from safe_pip.learn.proposals import Kind, Proposal


def _versions_text(versions: list[str]) -> str:
    return ", ".join(versions[:6]) + (f" and {len(versions) - 6} more" if len(versions) > 6 else "")


def _switches(item: Learned) -> int:
    """How often the publisher changes from one release of the window to the next."""
    from safe_pip.policy.edit import identity_key

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
