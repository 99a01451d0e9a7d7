"""``safe-pip history``: show, forget, export and import the known-good history.

The database is ``DIR/history.sqlite3`` for ``--home DIR``, else ``$SAFE_PIP_HOME``, else the
per-user data directory. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safe_pip.errors import EXIT_OK, ConfigError

if TYPE_CHECKING:
    from safe_pip.store import HistoryStore

DESCRIPTION = """\
The known-good history: every verified file safe-pip allowed (project, version, file, sha256,
publisher, when, index), and the earlier releases it read from the index on first sight of a
project. A later release by another publisher is a publisher change; an unsigned release of a
project with attested history is an attestation downgrade.

examples:
  safe-pip history show
  safe-pip history show sampleproject --json
  safe-pip history forget sampleproject --reason "repository moved to a new org (checked)"
  safe-pip history export baseline.json      # share a reviewed baseline
  safe-pip history forget-serials sampleproject --index https://mirror.example/simple/ \\
      --reason "mirror rebuilt from scratch (checked)"
  safe-pip history import baseline.json
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "history",
        help="show, forget, export or import the known-good publisher history",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home",
        metavar="DIR",
        help="directory of the history database (default: $SAFE_PIP_HOME or the user data "
        "directory)",
    )
    from safe_pip.cli._common import add_history_option

    add_history_option(common)
    hsub = parser.add_subparsers(dest="history_command", metavar="SUBCOMMAND")

    p = hsub.add_parser(
        "show",
        parents=[common],
        help="list projects, or one project's records",
        description="Without NAME, one line per project; with NAME, every record and the "
        "audit log of that project.",
    )
    p.add_argument("name", metavar="NAME", nargs="?", help="project name")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_show)

    p = hsub.add_parser(
        "forget",
        parents=[common],
        help="delete a project's history (logged)",
        description="Delete every record of NAME, so its next release is trusted on first use "
        "again. The removed records and the reason are kept in the audit log.",
    )
    p.add_argument("name", metavar="NAME", help="project name")
    p.add_argument("--reason", metavar="TEXT", required=True, help="why (kept in the audit log)")
    p.set_defaults(func=run_forget)

    p = hsub.add_parser(
        "forget-serials",
        parents=[common],
        help="forget the index serials recorded for a project or an index (logged)",
        description="safe-pip remembers the highest _last-serial each index served for each "
        "project and refuses an older page (stale mirror or replayed page, exit 3). When an "
        "index was legitimately reset or replaced, forget its serials: of NAME, of --index "
        "URL, of both, or --all. The removed serials and the reason are kept in the audit log.",
    )
    p.add_argument("name", metavar="NAME", nargs="?", help="project name")
    p.add_argument("--index", metavar="URL", help="only the serials recorded for this index")
    p.add_argument("--all", action="store_true", help="every recorded serial")
    p.add_argument("--reason", metavar="TEXT", required=True, help="why (kept in the audit log)")
    p.set_defaults(func=run_forget_serials)

    p = hsub.add_parser(
        "export",
        parents=[common],
        help="write the history as JSON",
        description="Write every record as versioned JSON (to FILE, or standard output).",
    )
    p.add_argument("file", metavar="FILE", nargs="?", help="output file (default: stdout)")
    p.set_defaults(func=run_export)

    p = hsub.add_parser(
        "import",
        parents=[common],
        help="add records from an exported JSON file",
        description="Add the records of a 'history export' file (validated first, all or "
        "nothing; records already present are skipped). Logged in the audit log. Imported "
        "records count as seen on this machine (they keep the source they were exported "
        "with), so a reviewed baseline works with trust-on-first-use = false. An import that "
        "would change a project's publisher (a record whose publisher is not the one before it "
        "in publication order, with the records already here) is refused (exit 1, nothing "
        "imported) and names each change, unless --accept-new-publishers is given.",
    )
    p.add_argument("file", metavar="FILE", help="the JSON file, or - for standard input")
    p.add_argument(
        "--accept-new-publishers",
        action="store_true",
        help="also import records that change a project's publisher (each one is printed "
        "and logged in the project's audit log)",
    )
    p.set_defaults(func=run_import)

    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _open(args: argparse.Namespace, *, readonly: bool) -> HistoryStore:
    from safe_pip.cli._common import run_options
    from safe_pip.options import open_store

    return open_store(run_options(args), readonly=readonly)


def _clean(text: object) -> str:
    from safe_pip.text import clean

    return clean(text)


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def run_show(args: argparse.Namespace) -> int:
    from safe_pip.output.render import dump_json

    with _open(args, readonly=True) as store:
        if args.name:
            return _show_project(store, args.name, as_json=args.json)
        projects = store.projects()
        if args.json:
            dump_json(
                {
                    "database": str(store.path),
                    "projects": [
                        {
                            "project": p.project,
                            "records": p.records,
                            "attested": p.attested,
                            "identities": p.identities,
                            "last_seen": p.last_seen.isoformat(),
                        }
                        for p in projects
                    ],
                }
            )
            return EXIT_OK
        if not store.exists:
            print(f"no history yet ({store.path} does not exist)")
            return EXIT_OK
        print(f"history: {store.path}")
        if not projects:
            print("no records")
            return EXIT_OK
        rows = [["PROJECT", "RECORDS", "ATTESTED", "PUBLISHERS", "LAST SEEN"]]
        for p in projects:
            rows.append(
                [
                    _clean(p.project),
                    str(p.records),
                    str(p.attested),
                    str(p.identities),
                    p.last_seen.strftime("%Y-%m-%d %H:%M"),
                ]
            )
        _table(rows)
    return EXIT_OK


def _show_project(store: HistoryStore, name: str, *, as_json: bool) -> int:
    from safe_pip.output.render import dump_json

    history = store.project(name)
    audit = store.audit_log(history.project)
    if as_json:
        doc: dict[str, Any] = {
            "database": str(store.path),
            "project": history.project,
            "publishers": [i.to_json() for i in history.attested_identities()],
            "records": [r.to_json() for r in history.records],
            "audit": [
                {
                    "at": a.at.isoformat(),
                    "action": a.action,
                    "count": a.count,
                    "reason": a.reason,
                }
                for a in audit
            ],
        }
        dump_json(doc)
        return EXIT_OK
    if history.is_empty:
        print(f"no history for {_clean(history.project)}")
    else:
        print(f"{_clean(history.project)}: {len(history.records)} record(s)")
        idents = history.attested_identities()
        if idents:
            print("publishers seen:")
            for ident in idents:
                ids = ", ".join(
                    f"{k.replace('_', ' ')} {getattr(ident, k)}"
                    for k in ("repository_id", "repository_owner_id")
                    if getattr(ident, k)
                )
                print(f"  {_clean(ident.describe())}" + (f" ({_clean(ids)})" if ids else ""))
        else:
            print("never seen attested")
        # in publication order (the sequence decide() reads); PUBLISHED says where the time
        # comes from: log (transparency log), index (upload-time), - (unknown: SEEN places it)
        rows = [["VERSION", "FILE", "PUBLISHER", "SOURCE", "PUBLISHED", "SEEN", "SHA256"]]
        for r in history.records:
            published = (
                f"{r.published_at:%Y-%m-%d %H:%M} ({r.published_from})" if r.published_at else "-"
            )
            rows.append(
                [
                    _clean(r.version),
                    _clean(r.filename),
                    _clean(r.identity.describe()) if r.identity else "(unsigned)",
                    r.source,
                    published,
                    r.seen_at.strftime("%Y-%m-%d %H:%M"),
                    r.sha256[:12],
                ]
            )
        _table(rows)
    for a in audit:
        print(
            f"{a.at.strftime('%Y-%m-%d %H:%M')} {a.action}: {a.count} record(s), reason: "
            f"{_clean(a.reason)}"
        )
    return EXIT_OK


def run_forget(args: argparse.Namespace) -> int:
    from safe_pip.policy.file import validate_project_name

    name = validate_project_name(args.name)
    if not args.reason.strip():
        raise ConfigError("--reason must not be empty: forgetting a project is logged")
    with _open(args, readonly=False) as store:
        count = store.forget(name, reason=args.reason)
    print(
        f"forgot {count} record(s) of {name} (logged with your reason); its next verified "
        "release is trusted on first use again unless the policy names its publishers"
    )
    return EXIT_OK


def run_forget_serials(args: argparse.Namespace) -> int:
    from safe_pip.policy.file import validate_project_name

    if not (args.name or args.index or args.all):
        raise ConfigError(
            "forget-serials needs NAME, --index URL or --all",
            fix="name the project and/or the index that was reset",
        )
    if args.all and (args.name or args.index):
        raise ConfigError("--all goes without NAME and --index")
    name = validate_project_name(args.name) if args.name else None
    if not args.reason.strip():
        raise ConfigError("--reason must not be empty: forgetting serials is logged")
    with _open(args, readonly=False) as store:
        count = store.forget_serials(index=args.index, project=name, reason=args.reason)
    print(f"forgot {count} recorded serial(s) (logged with your reason)")
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    with _open(args, readonly=True) as store:
        data = store.export()
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if args.file:
        from safe_pip.policy.edit import atomic_write_text

        atomic_write_text(Path(args.file), text)
        print(f"wrote {len(data['records'])} record(s) to {args.file}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


MAX_IMPORT_BYTES = 256 * 1024 * 1024


def run_import(args: argparse.Namespace) -> int:
    try:
        if args.file == "-":
            text = sys.stdin.read(MAX_IMPORT_BYTES + 1)
        else:
            with open(args.file, encoding="utf-8") as fh:
                text = fh.read(MAX_IMPORT_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{args.file}: cannot read: {exc}") from None
    if len(text) > MAX_IMPORT_BYTES:
        raise ConfigError(f"{args.file}: larger than {MAX_IMPORT_BYTES} bytes")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{args.file}:{exc.lineno}: not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{args.file}: not a safe-pip history export")
    from safe_pip.store.base import NewPublishersError

    with _open(args, readonly=False) as store:
        try:
            result = store.import_(
                data,
                reason=f"import {args.file}",
                accept_new_publishers=args.accept_new_publishers,
            )
        except ConfigError as exc:
            raise ConfigError(f"{args.file}: {exc.message}") from None
        except NewPublishersError as exc:
            raise NewPublishersError(exc.publishers, source=args.file) from None
    print(f"imported {result.added} new record(s) of {result.total} from {_clean(args.file)}")
    if result.new_publishers:
        print(
            f"added {len(result.new_publishers)} publisher change(s) to the history "
            "(--accept-new-publishers; logged in each project's audit log):"
        )
        for p in result.new_publishers:
            print(f"  {_clean(p.describe())}")
    return EXIT_OK
