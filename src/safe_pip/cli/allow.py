"""``safe-pip allow``: edit the policy file's allowlist and unsigned exceptions.

Subcommands are registered from :data:`SUBCOMMANDS`; to add one (e.g. ``learn``), write a
``_register_<name>(sub, common)`` that adds its parser with ``set_defaults(func=...)`` and
append it to the list. Every subcommand takes ``--policy PATH`` (the ``common`` parent parser).
Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safe_pip.errors import EXIT_OK, ConfigError

if TYPE_CHECKING:
    from safe_pip.models import PublisherIdentity
    from safe_pip.policy.edit import PolicyDocument
    from safe_pip.policy.file import Policy

DESCRIPTION = """\
Edit the policy file: which publishers may ship a project ([[package]]), and which unsigned
releases are accepted ([[unsigned]]). Comments and layout of the file are kept; every edit is
validated and written atomically.

The policy file is the one safe-pip reads: --policy PATH, else $SAFE_PIP_POLICY, else
./safe-pip.toml, else [tool.safe-pip] in ./pyproject.toml; when none exists, ./safe-pip.toml
is created.

publisher shorthand (--publisher):
  github:OWNER/REPO@WORKFLOW.yml         e.g. github:pypa/sampleproject@release.yml
  gitlab:GROUP/PROJECT@PATH/FILE.yml     e.g. gitlab:group/sub/proj@.gitlab-ci.yml
  google:EMAIL                           e.g. google:builder@project.iam.gserviceaccount.com

examples:
  safe-pip allow add sampleproject --publisher github:pypa/sampleproject@release.yml
  safe-pip allow add mypkg --publisher github:me/mypkg@release.yml --environment pypi
  safe-pip allow add mypkg --publisher github:me/mypkg@release.yml --repository-id 14899596 \\
      --owner-id 647025
  safe-pip allow unsigned six --versions ==1.16.0 --reason "no attestations upstream" \\
      --expires 2027-06-01
  safe-pip allow unsigned six --project --reason "upstream publishes no attestations"
  safe-pip allow list --json
  safe-pip allow remove sampleproject
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "allow",
        help="edit the allowlist of publishers and unsigned exceptions",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--policy",
        metavar="PATH",
        help="policy file to edit (default: the one safe-pip reads; ./safe-pip.toml is "
        "created when there is none). A pyproject.toml path edits its [tool.safe-pip] table",
    )
    allow_sub = parser.add_subparsers(dest="allow_command", metavar="SUBCOMMAND")
    for add in SUBCOMMANDS:
        add(allow_sub, common)
    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


# ------------------------------------------------------------------------------ add


def _register_add(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "add",
        parents=[common],
        help="allow publishers for a project ([[package]])",
        description="Add publishers to NAME's [[package]] entry (created if needed). Files of "
        "NAME are then allowed only when their attestation was made by one of its publishers.",
    )
    p.add_argument("name", metavar="NAME", help="project name")
    p.add_argument(
        "--publisher",
        metavar="SHORTHAND",
        action="append",
        required=True,
        help="github:OWNER/REPO@WORKFLOW.yml | gitlab:GROUP/PROJECT@PATH/FILE.yml | "
        "google:EMAIL (repeat for several)",
    )
    p.add_argument(
        "--environment",
        metavar="ENV",
        help="also require this deployment environment (GitHub/GitLab; asserted by the index, "
        "not by the certificate)",
    )
    p.add_argument(
        "--repository-id",
        metavar="ID",
        help="pin the repository's numeric id from the certificate (one GitHub/GitLab "
        "--publisher): a repository deleted and re-created under the same name no longer "
        "matches",
    )
    p.add_argument(
        "--owner-id",
        metavar="ID",
        help="pin the repository owner's numeric id from the certificate (one GitHub/GitLab "
        "--publisher)",
    )
    p.set_defaults(func=run_add)


def _open_doc(args: argparse.Namespace) -> PolicyDocument:
    from safe_pip.policy.edit import PolicyDocument

    explicit = getattr(args, "policy", None)
    return PolicyDocument.open(Path(explicit) if explicit else None)


def _identity(text: str, environment: str | None) -> PublisherIdentity:
    from safe_pip.policy.file import IdentityError, parse_publisher_shorthand

    try:
        return parse_publisher_shorthand(text, environment=environment)
    except IdentityError as exc:
        raise ConfigError(f"--publisher: {exc}") from None


def _clean(text: object) -> str:
    from safe_pip.text import clean

    return clean(text)


def _with_ids(
    publishers: list[PublisherIdentity], repository_id: str | None, owner_id: str | None
) -> list[PublisherIdentity]:
    """Apply --repository-id / --owner-id to the one GitHub/GitLab publisher given."""
    from dataclasses import replace

    from safe_pip.models import GITHUB, GITLAB
    from safe_pip.policy.file import IdentityError, validate_identity_table

    if not repository_id and not owner_id:
        return publishers
    if len(publishers) != 1 or publishers[0].kind not in (GITHUB, GITLAB):
        raise ConfigError(
            "--repository-id / --owner-id pin the ids of exactly one GitHub or GitLab "
            "--publisher; add the others with separate commands"
        )
    pinned = replace(
        publishers[0],
        repository_id=repository_id or publishers[0].repository_id,
        repository_owner_id=owner_id or publishers[0].repository_owner_id,
    )
    table = {**pinned.to_table()}
    for key in ("repository_id", "repository_owner_id"):
        value = getattr(pinned, key)
        if value:
            table[key] = value
    try:
        return [validate_identity_table(table)]
    except IdentityError as exc:
        flag = {"repository_id": "--repository-id", "repository_owner_id": "--owner-id"}.get(
            exc.key or "", "--publisher"
        )
        raise ConfigError(f"{flag}: {exc}") from None


def run_add(args: argparse.Namespace) -> int:
    from safe_pip.policy.file import validate_project_name

    name = validate_project_name(args.name)
    publishers = [_identity(p, args.environment) for p in args.publisher]
    publishers = _with_ids(publishers, args.repository_id, args.owner_id)
    doc = _open_doc(args)
    created = not doc.location.exists
    added = doc.add_package(args.name, publishers)
    rule = doc.policy.packages[name]
    where = doc.policy.label(rule.line)
    if not added:
        print(f"{where}: {name} already allows {_describe(publishers)}; nothing changed")
        return EXIT_OK
    doc.save()
    if created:
        print(f"created {doc.path}")
    for p in added:
        print(f"{where}: [[package]] {name} now allows {_describe([p])}")
    return EXIT_OK


def _describe(identities: list[PublisherIdentity]) -> str:
    return _clean(" and ".join(i.describe_with_ids() for i in identities))


# ------------------------------------------------------------------------------ remove


def _register_remove(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "remove",
        parents=[common],
        help="remove a project's [[package]] and [[unsigned]] entries",
        description="Remove NAME's [[package]] entry and all its [[unsigned]] exceptions.",
    )
    p.add_argument("name", metavar="NAME", help="project name")
    p.set_defaults(func=run_remove)


def run_remove(args: argparse.Namespace) -> int:
    from safe_pip.policy.file import validate_project_name

    name = validate_project_name(args.name)
    doc = _open_doc(args)
    if not doc.location.exists:
        raise ConfigError(f"{doc.path}: no policy file, so nothing to remove for {name}")
    packages, unsigned = doc.remove_package(name)
    if not packages and not unsigned:
        raise ConfigError(f"{doc.path}: no [[package]] or [[unsigned]] entry for {name}")
    doc.save()
    parts = []
    if packages:
        parts.append("its [[package]] entry")
    if unsigned:
        parts.append(f"{unsigned} [[unsigned]] exception{'s' if unsigned != 1 else ''}")
    print(f"{doc.path}: removed {' and '.join(parts)} for {name}")
    return EXIT_OK


# ------------------------------------------------------------------------------ list


def _register_list(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "list",
        parents=[common],
        help="show the allowlist and unsigned exceptions",
        description="Show the policy's defaults, [[package]] publishers and [[unsigned]] "
        "exceptions.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_list)


def policy_to_json(policy: Policy, today: date) -> dict[str, Any]:
    """The policy as JSON (``allow list --json``)."""
    from safe_pip.policy.age import format_duration

    d = policy.defaults
    return {
        "policy": str(policy.path) if policy.path else None,
        "defaults": {
            "require-attestation": d.require_attestation,
            "trust-on-first-use": d.trust_on_first_use,
            "on-publisher-change": d.on_publisher_change,
            "on-attestation-downgrade": d.on_attestation_downgrade,
            "allow-sdist": d.allow_sdist,
            "index-history-depth": d.index_history_depth,
            "index-history-anchor-age": format_duration(d.index_history_anchor_age),
            "min-release-age": format_duration(d.min_release_age),
            "on-unknown-release-age": d.on_unknown_release_age,
            "on-build-context-change": d.on_build_context_change,
        },
        "packages": [
            {
                "name": rule.name,
                "publishers": [
                    {
                        **p.to_table(),
                        **{
                            k: getattr(p, k)
                            for k in ("repository_id", "repository_owner_id")
                            if getattr(p, k)
                        },
                    }
                    for p in rule.publishers
                ],
                "line": rule.line,
                "min-release-age": (
                    format_duration(rule.min_release_age)
                    if rule.min_release_age is not None
                    else None
                ),
            }
            for rule in sorted(policy.packages.values(), key=lambda r: r.name)
        ],
        "unsigned_projects": [
            {
                "name": u.name,
                "reason": u.reason,
                "expires": u.expires.isoformat() if u.expires else None,
                "expired": u.expired(today),
                "line": u.line,
            }
            for u in sorted(policy.unsigned_projects.values(), key=lambda u: u.name)
        ],
        "unsigned": [
            {
                "name": u.name,
                "versions": str(u.versions),
                "sha256": sorted(u.sha256),
                "reason": u.reason,
                "expires": u.expires.isoformat() if u.expires else None,
                "expired": u.expired(today),
                "line": u.line,
                "min-release-age": (
                    format_duration(u.min_release_age) if u.min_release_age is not None else None
                ),
            }
            for u in policy.unsigned
        ],
    }


def run_list(args: argparse.Namespace) -> int:
    from safe_pip.policy.file import find_policy, load_policy

    explicit = Path(args.policy) if args.policy else None
    policy = load_policy(explicit)
    today = datetime.now(timezone.utc).date()
    if args.json:
        from safe_pip.output.render import dump_json

        dump_json(policy_to_json(policy, today))
        return EXIT_OK
    loc = find_policy(explicit)
    if policy.path is None:
        print("no policy file: built-in defaults (create one with 'safe-pip allow add ...')")
    else:
        print(f"policy: {policy.path}" + (" [tool.safe-pip]" if loc.pyproject else ""))
    from safe_pip.policy.age import format_duration

    d = policy.defaults
    print(
        f"defaults: require-attestation={str(d.require_attestation).lower()} "
        f"trust-on-first-use={str(d.trust_on_first_use).lower()} "
        f"on-publisher-change={d.on_publisher_change} "
        f"on-attestation-downgrade={d.on_attestation_downgrade} "
        f"allow-sdist={str(d.allow_sdist).lower()} index-history-depth={d.index_history_depth} "
        f"index-history-anchor-age={format_duration(d.index_history_anchor_age)} "
        f"min-release-age={format_duration(d.min_release_age)} "
        f"on-unknown-release-age={d.on_unknown_release_age} "
        f"on-build-context-change={d.on_build_context_change}"
    )
    print()
    if policy.packages:
        rows = [("PROJECT", "PUBLISHER", "LINE")]
        for rule in sorted(policy.packages.values(), key=lambda r: r.name):
            for i, p in enumerate(rule.publishers):
                rows.append(
                    (rule.name if i == 0 else "", _clean(p.describe()), str(rule.line or ""))
                )
        _table(rows)
    else:
        print("no [[package]] entries")
    print()
    if policy.unsigned:
        urows = [("UNSIGNED", "VERSIONS", "EXPIRES", "SHA256", "LINE", "REASON")]
        for u in policy.unsigned:
            expires = u.expires.isoformat() if u.expires else "never"
            if u.expired(today):
                expires += " (expired)"
            pins = f"{len(u.sha256)} pinned" if u.sha256 else "any"
            urows.append(
                (u.name, str(u.versions), expires, pins, str(u.line or ""), _clean(u.reason))
            )
        _table(urows)
    else:
        print("no [[unsigned]] exceptions")
    if policy.unsigned_projects:
        print()
        prows = [("UNSIGNED PROJECT", "EXPIRES", "LINE", "REASON")]
        for up in sorted(policy.unsigned_projects.values(), key=lambda u: u.name):
            expires = up.expires.isoformat() if up.expires else "never"
            if up.expired(today):
                expires += " (expired)"
            prows.append((up.name, expires, str(up.line or ""), _clean(up.reason)))
        _table(prows)
    return EXIT_OK


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


# ------------------------------------------------------------------------------ unsigned


def _register_unsigned(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "unsigned",
        parents=[common],
        help="accept unsigned releases of a project ([[unsigned]])",
        description="Add an [[unsigned]] exception: unsigned files of NAME whose version is in "
        "SPEC (and, with --sha256, whose digest is pinned) are allowed until --expires.",
    )
    p.add_argument("name", metavar="NAME", help="project name")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--versions", metavar="SPEC", help='PEP 440 specifier, e.g. "==1.16.0"')
    which.add_argument(
        "--project",
        action="store_true",
        help="the project publishes no attestations: its unsigned releases pass "
        "([[unsigned-project]]) until any release is attested (then history wins)",
    )
    p.add_argument("--reason", metavar="TEXT", required=True, help="why this is acceptable")
    p.add_argument(
        "--expires",
        metavar="YYYY-MM-DD",
        help="the exception stops applying on this date (00:00 UTC)",
    )
    p.add_argument(
        "--sha256",
        metavar="HEX",
        nargs="+",
        action="extend",
        default=[],
        help="allow only files with these sha256 digests",
    )
    p.set_defaults(func=run_unsigned)


def run_unsigned(args: argparse.Namespace) -> int:
    import re

    from safe_pip.policy.file import unsigned_versions, validate_project_name

    name = validate_project_name(args.name)
    if args.project:
        return _run_unsigned_project(args, name)
    try:
        unsigned_versions(args.versions)
    except ValueError as bad:
        raise ConfigError(f"--versions: {bad}") from None
    from safe_pip.policy.file import is_placeholder_reason

    if is_placeholder_reason(args.reason):
        raise ConfigError(
            f"--reason {args.reason.strip()!r} is a placeholder: say why this unsigned release "
            "is acceptable"
        )
    expires = _expires_arg(args.expires)
    hashes = [h.lower() for h in args.sha256]
    for h in hashes:
        if not re.fullmatch(r"[0-9a-f]{64}", h):
            raise ConfigError(f"--sha256 {h!r} is not a 64-character hex digest")
    doc = _open_doc(args)
    created = not doc.location.exists
    exc = doc.add_unsigned(
        args.name,
        versions=args.versions.strip(),
        reason=args.reason.strip(),
        expires=expires,
        sha256=hashes,
    )
    doc.save()
    if created:
        print(f"created {doc.path}")
    until = f" until {exc.expires}" if exc.expires else ""
    pins = f", {len(exc.sha256)} sha256 pinned" if exc.sha256 else ""
    print(
        f"{doc.policy.label(exc.line)}: [[unsigned]] {name} allows unsigned {exc.versions}"
        f"{pins}{until}"
    )
    return EXIT_OK


def _expires_arg(text: str | None) -> date | None:
    if not text:
        return None
    try:
        expires = date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--expires {text!r} is not a date (YYYY-MM-DD)") from None
    if expires <= datetime.now(timezone.utc).date():
        raise ConfigError(f"--expires {expires} is not in the future")
    return expires


def _run_unsigned_project(args: argparse.Namespace, name: str) -> int:
    from safe_pip.policy.file import is_placeholder_reason

    if args.sha256:
        raise ConfigError("--sha256 pins files of a version: use it with --versions, not --project")
    if is_placeholder_reason(args.reason):
        raise ConfigError(
            f"--reason {args.reason.strip()!r} is a placeholder: say why this project's "
            "unsigned releases are acceptable"
        )
    expires = _expires_arg(args.expires)
    doc = _open_doc(args)
    created = not doc.location.exists
    entry = doc.add_unsigned_project(args.name, reason=args.reason.strip(), expires=expires)
    if entry is None:
        print(f"{doc.path}: [[unsigned-project]] {name} is already there; nothing changed")
        return EXIT_OK
    doc.save()
    if created:
        print(f"created {doc.path}")
    until = f" until {entry.expires}" if entry.expires else ""
    print(
        f"{doc.policy.label(entry.line)}: [[unsigned-project]] {name}: its unsigned releases "
        f"pass{until}, unless a release of it is attested"
    )
    return EXIT_OK


# ------------------------------------------------------------------------------ defaults


def _register_defaults(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "defaults",
        parents=[common],
        help="set policy defaults ([defaults]) from the command line",
        description="Set [defaults] keys of the policy file, e.g. "
        "'safe-pip allow defaults require-attestation=false index-history-depth=10'. "
        "Values: true/false for require-attestation, trust-on-first-use, allow-sdist; "
        "error/warn for on-publisher-change, on-attestation-downgrade, on-unknown-release-age; "
        "an integer 0-100 for index-history-depth; days or hours (3d, 36h, 0) for "
        "min-release-age and index-history-anchor-age. Without KEY=VALUE, print the current "
        "defaults.",
    )
    p.add_argument("settings", metavar="KEY=VALUE", nargs="*", help="defaults to set")
    p.set_defaults(func=run_defaults)


def _default_value(key: str, text: str) -> bool | str | int:
    from safe_pip.policy.file import DEFAULT_KINDS

    kind = DEFAULT_KINDS.get(key)
    if kind is None:
        raise ConfigError(f"unknown default {key!r}; known: {', '.join(DEFAULT_KINDS)}")
    value = text.strip()
    if kind == "bool":
        if value.lower() in ("true", "yes", "on", "1"):
            return True
        if value.lower() in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"{key}={text}: use true or false")
    if kind == "int":
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{key}={text}: use an integer") from None
    return value


def run_defaults(args: argparse.Namespace) -> int:
    if not args.settings:
        from safe_pip.policy.file import load_policy

        explicit = Path(args.policy) if args.policy else None
        from safe_pip.policy.age import format_duration

        d = load_policy(explicit).defaults
        for key, attr in (
            ("require-attestation", d.require_attestation),
            ("trust-on-first-use", d.trust_on_first_use),
            ("on-publisher-change", d.on_publisher_change),
            ("on-attestation-downgrade", d.on_attestation_downgrade),
            ("allow-sdist", d.allow_sdist),
            ("index-history-depth", d.index_history_depth),
            ("index-history-anchor-age", format_duration(d.index_history_anchor_age)),
            ("min-release-age", format_duration(d.min_release_age)),
            ("on-unknown-release-age", d.on_unknown_release_age),
        ):
            print(f"{key} = {str(attr).lower() if isinstance(attr, bool) else attr}")
        return EXIT_OK
    settings: list[tuple[str, bool | str | int]] = []
    for item in args.settings:
        key, eq, text = item.partition("=")
        if not eq:
            raise ConfigError(f"{item!r}: write KEY=VALUE, e.g. require-attestation=false")
        settings.append((key.strip(), _default_value(key.strip(), text)))
    doc = _open_doc(args)
    created = not doc.location.exists
    changed = [key for key, value in settings if doc.set_default(key, value)]
    if not changed:
        print(f"{doc.path}: defaults already set; nothing changed")
        return EXIT_OK
    doc.save()
    if created:
        print(f"created {doc.path}")
    for key, value in settings:
        if key in changed:
            shown = str(value).lower() if isinstance(value, bool) else value
            print(f"{doc.path}: [defaults] {key} = {shown}")
    return EXIT_OK


#: The ``allow`` subcommands, in --help order. Add ``learn`` here.
SUBCOMMANDS: list[
    Callable[[argparse._SubParsersAction[argparse.ArgumentParser], argparse.ArgumentParser], None]
] = [_register_add, _register_remove, _register_list, _register_unsigned, _register_defaults]


def _register_learn(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    from safe_pip.cli._learn import register

    register(sub, common)


def _register_review(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    from safe_pip.cli._review import register

    register(sub, common)


SUBCOMMANDS += [_register_learn, _register_review]
