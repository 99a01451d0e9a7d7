"""``safe-pip allow review``'s decisions taking effect: accepted proposals written into the policy,
the bytes learn saw remembered, every decision in the audit log, decided proposals removed."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

from safe_pip.learn.proposals import Proposal, ProposalFile, already_in_policy, apply

if TYPE_CHECKING:
    from safe_pip.options import RunOptions
    from safe_pip.policy.edit import PolicyDocument

#: (proposal, "accept" | "reject", reason)
Decision = tuple[Proposal, str, str]


def record_decisions(
    args: RunOptions,
    doc: PolicyDocument,
    pfile: ProposalFile,
    decisions: list[Decision],
    today: date,
) -> list[tuple[Proposal, str]]:
    """Write the accepted proposals into the policy (saved when it changed), record the files of
    accepted ones and log every decision in the history store ``args`` names, and leave only the
    undecided and rejected proposals in ``pfile`` (not saved: the caller saves it). Returns the
    accepted proposals with their reasons."""
    from safe_pip.options import open_store
    from safe_pip.policy.history import HistoryRecord

    accepted = [(p, r) for p, verb, r in decisions if verb == "accept"]
    for p, reason in accepted:
        if not already_in_policy(p, doc, today):
            apply(p, doc, reason)
    store = open_store(args)
    try:
        if doc.changed():
            doc.save()
        now = datetime.now(timezone.utc)
        for p, verb, reason in decisions:
            if verb == "accept" and p.files:
                # the bytes learn saw become the unsigned file memory (refused-file-changed)
                store.record(
                    HistoryRecord(
                        project=p.name,
                        version=p.learned_version or "0",
                        filename=filename,
                        sha256=sha,
                        identity=None,
                        seen_at=now,
                        index=None,
                        source="local",
                    )
                    for filename, sha in p.files
                )
            store.audit(
                f"review-{verb}",
                p.name,
                reason=reason,
                detail={"proposal": p.to_table(), "policy": str(doc.path)},
            )
    finally:
        store.close()
    verdicts = {id(p): (verb, reason) for p, verb, reason in decisions}
    kept = []
    for p in pfile.proposals:
        verb, reason = verdicts.get(id(p), ("", ""))
        if verb == "accept":
            continue
        kept.append(replace(p, rejected=reason) if verb == "reject" else p)
    pfile.proposals = kept
    return accepted
