"""``safe-pip allow review``: accept or reject pending proposals, each with a reason (the options,
the questions on a terminal, the report; the decisions take effect in :mod:`safe_pip.learn.review`).

Interactive on a terminal: every pending proposal is shown (what it adds, where it was learned,
why) and answered with accept / reject / skip / quit, then a reason. Scripts use
``--accept-all --reason TEXT`` (or ``--reject-all``), optionally limited to some projects with
``--only NAME``. A placeholder reason (``REVIEW: ...``, ``TODO``, ...) is refused. Accepted
proposals are written into the policy file (validated, atomically), every decision is logged in
the audit log of the history database, and decided proposals leave the proposals file.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from safe_pip.errors import EXIT_OK, ConfigError

if TYPE_CHECKING:
    from safe_pip.learn.proposals import Proposal

DESCRIPTION = """\
Walk the proposals 'safe-pip allow learn' left pending (in <policy>.proposals.toml beside the
policy file), and accept or reject each with a reason. Accepted proposals are written into the
policy file; every decision is logged in the audit log ('safe-pip history show NAME --json').
A placeholder reason (REVIEW: ..., TODO, FIXME) is refused.

examples:
  safe-pip allow review                                  # interactive
  safe-pip allow review --list
  safe-pip allow review --accept-all --reason "reviewed with the team on 2026-11-29"
  safe-pip allow review --only six --reject-all --reason "pin an attested fork instead"
"""


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "review",
        parents=[common],
        help="accept or reject pending proposals from 'allow learn', each with a reason",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--accept-all", action="store_true", help="accept every pending proposal (with --reason)"
    )
    mode.add_argument(
        "--reject-all", action="store_true", help="reject every pending proposal (with --reason)"
    )
    mode.add_argument("--list", action="store_true", help="show pending proposals, decide nothing")
    p.add_argument(
        "--reason", metavar="TEXT", help="the reason logged for --accept-all/--reject-all"
    )
    p.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        default=[],
        help="only proposals for this project (repeat for several)",
    )
    p.add_argument("--json", action="store_true", help="--list: print JSON")
    p.add_argument(
        "--home",
        metavar="DIR",
        help="history database whose audit log records the decisions (default: $SAFE_PIP_HOME "
        "or the user data directory)",
    )
    from safe_pip.cli._common import add_history_option

    add_history_option(p)
    p.set_defaults(func=run_review)


def _show(p: Proposal, i: int, n: int, out: TextIO) -> None:
    from safe_pip.text import clean

    out.write(f"[{i}/{n}] {clean(p.summary(), limit=500)}\n")
    origin = p.origin()
    if origin:
        out.write(f"        {clean(origin)}\n")
    if p.evidence:
        out.write(f"        why: {clean(p.evidence, limit=600)}\n")


def _ask(prompt: str, out: TextIO) -> str:
    out.write(prompt)
    out.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.strip()


def _ask_reason(out: TextIO) -> str:
    from safe_pip.policy.file import is_placeholder_reason

    while True:
        reason = _ask("reason: ", out)
        if not is_placeholder_reason(reason):
            return reason
        out.write("a reason is required, and a placeholder (REVIEW:, TODO, ...) is not one\n")


def run_review(args: argparse.Namespace) -> int:
    from packaging.utils import canonicalize_name

    from safe_pip.cli._common import run_options
    from safe_pip.learn.proposals import ProposalFile, already_in_policy, proposals_path
    from safe_pip.learn.review import Decision, record_decisions
    from safe_pip.output.render import dump_json
    from safe_pip.policy.edit import PolicyDocument
    from safe_pip.policy.file import is_placeholder_reason
    from safe_pip.text import clean

    doc = PolicyDocument.open(Path(args.policy) if args.policy else None)
    pfile = ProposalFile.load(proposals_path(doc.path))
    only = {canonicalize_name(n) for n in args.only}
    today = datetime.now(timezone.utc).date()
    pending = [p for p in pfile.proposals if not only or canonicalize_name(p.name) in only]
    out = sys.stdout
    if args.list:
        if args.json:
            dump_json({"proposals": str(pfile.path), "pending": [p.to_table() for p in pending]})
        elif not pending:
            print(f"no pending proposals ({pfile.path})")
        else:
            for i, p in enumerate(pending, 1):
                _show(p, i, len(pending), out)
        return EXIT_OK
    if not pending:
        print(f"no pending proposals ({pfile.path}); run 'safe-pip allow learn' first")
        return EXIT_OK
    batch = args.accept_all or args.reject_all
    if batch:
        if not args.reason or is_placeholder_reason(args.reason):
            raise ConfigError(
                "--accept-all/--reject-all need --reason TEXT saying why (a placeholder such "
                "as 'REVIEW: ...' or 'TODO' is not a reason); it is logged"
            )
    elif args.reason:
        raise ConfigError("--reason goes with --accept-all or --reject-all")

    decisions: list[Decision] = []
    if batch:
        verb = "accept" if args.accept_all else "reject"
        decisions = [(p, verb, args.reason.strip()) for p in pending]
    else:
        n = len(pending)
        try:
            for i, p in enumerate(pending, 1):
                _show(p, i, n, out)
                if already_in_policy(p, doc, today):
                    out.write("        (already in the policy: nothing to add)\n")
                while True:
                    answer = _ask("accept, reject, skip or quit? [a/r/s/q]: ", out).lower()
                    if answer in ("a", "accept", "r", "reject", "s", "skip", "q", "quit"):
                        break
                if answer.startswith("q"):
                    break
                if answer.startswith("s"):
                    continue
                verb = "accept" if answer.startswith("a") else "reject"
                decisions.append((p, verb, _ask_reason(out)))
        except EOFError:
            out.write("\n")
            if not decisions:
                raise ConfigError(
                    "no answer on standard input: review interactively on a terminal, or use "
                    "--accept-all/--reject-all --reason TEXT"
                ) from None

    accepted = record_decisions(run_options(args), doc, pfile, decisions, today)
    for p, verb, _reason in decisions:
        print(f"{verb}ed {clean(p.summary(), limit=300)}")
    pfile.save()
    left = len(pfile.pending)
    print(
        f"{len(accepted)} accepted, {len(decisions) - len(accepted)} rejected, {left} still "
        f"pending -> {doc.path}"
    )
    return EXIT_OK
