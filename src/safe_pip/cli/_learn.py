"""``safe-pip allow learn``: its options, its report (text or JSON) and exit code; the learning
itself is :mod:`safe_pip.learn`."""

from __future__ import annotations

import argparse
import sys

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


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    from safe_pip.cli._common import add_history_option, add_trust_options

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


def run_learn(args: argparse.Namespace) -> int:
    from safe_pip.cli._common import run_fields
    from safe_pip.learn.run import LearnOptions, learn_into_policy
    from safe_pip.output.render import dump_json
    from safe_pip.text import clean

    result = learn_into_policy(
        LearnOptions(
            requirements=args.requirements,
            pyproject=args.pyproject,
            pylock=args.pylock,
            python=args.python,
            index_url=args.index_url,
            dry_run=args.dry_run,
            accept_contradictions=args.accept_contradictions,
            **run_fields(args),
        )
    )
    doc, pfile, learned = result.doc, result.pfile, result.learned
    added, withheld, proposed, problems = (
        result.added,
        result.withheld,
        result.proposed,
        result.problems,
    )

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
    return result.exit_code
