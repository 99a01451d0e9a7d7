"""``safe-pip verify``: verify every file a lockfile names, without installing anything."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safe_pip.cli._common import add_policy_options, add_trust_options, run_fields
from safe_pip.errors import ConfigError

DESCRIPTION = """\
Verify the PEP 740 provenance of every file a lockfile names (every wheel and the sdist of
every package, whatever platform its markers select), the way `safe-pip install` checks files,
without installing anything. Reads pylock.toml (PEP 751), requirements files with == pins and
--hash (pip-compile --generate-hashes), uv.lock, poetry.lock and pdm.lock (a pdm.lock names no
index: its packages are looked up on --index-url, else PyPI).

The policy file and the known-good history decide; where a pylock.toml package has
attestation-identities, every file's verified publisher must also match one of them (a match
never lifts a refusal). Every locked file must be pinned by sha256 (requirements: --hash):
an entry without one fails (no-hash-pinned). A sha256 in the lock that differs from the
index's file or from the attested digest is a failure.

exit codes: 0 verified, 1 refused (a file failed), 2 bad lockfile or usage,
            3 could not check (network, index, trust root)

examples:
  safe-pip verify pylock.toml
  safe-pip verify requirements.txt --format sarif --output safe-pip.sarif
  safe-pip verify --write-identities pylock.toml
  safe-pip verify pylock.toml --save-evidence .safe-pip-evidence
  safe-pip verify pylock.toml --offline --evidence .safe-pip-evidence
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify",
        help="verify every file of a lockfile (pylock.toml, requirements, uv.lock, poetry.lock, "
        "pdm.lock)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "locks",
        metavar="LOCKFILE",
        nargs="*",
        help="lockfiles to verify (default: the first of ./pylock.toml, ./uv.lock, "
        "./poetry.lock, ./pdm.lock, ./requirements.txt)",
    )
    p.add_argument(
        "--format",
        choices=("text", "json", "sarif", "junit"),
        default="text",
        help="report format (default: text)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE, not stdout")
    p.add_argument(
        "-i",
        "--index-url",
        metavar="URL",
        help="index to find files and provenance on (default: the lock's index, else PyPI); "
        "overrides the lock's index",
    )
    p.add_argument(
        "--provenance-index",
        metavar="URL",
        help="where to look up provenance for files whose index lists none (a mirror that "
        "drops it), by name, version and file name (default: $SAFE_PIP_PROVENANCE_INDEX, else "
        "the lock's index, else PyPI)",
    )
    p.add_argument(
        "--write-identities",
        metavar="PYLOCK",
        help="verify PYLOCK and fill attestation-identities of its packages that have none from "
        "the verified provenance (every file checked); the rest of the file is left unchanged",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="also download every file and hash its bytes (default: verify the attestation for "
        "the lock's sha256, which is what hash-checking installers enforce)",
    )
    p.add_argument(
        "--save-evidence",
        metavar="DIR",
        help="store each file's provenance and the trusted root used in DIR",
    )
    p.add_argument(
        "--evidence",
        metavar="DIR",
        help="verify from evidence saved with --save-evidence, with no network at all "
        "(implies --offline; the root is the one shipped with sigstore unless --trust-root)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="verify everything again: neither the provenance cache, the cache of bundles "
        "that verified before nor the kept index pages are read or written (the index, "
        "history and policy are read by every run anyway; a kept page only lets the index "
        "answer 304 Not Modified)",
    )
    p.add_argument(
        "-j", "--jobs", type=int, default=16, metavar="N", help="parallel requests (default 16)"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="text: list verified files too")
    p.add_argument("-q", "--quiet", action="store_true", help="text: print the summary line only")
    add_trust_options(p)
    add_policy_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from safe_pip.lock.report import render, render_text
    from safe_pip.lock.run import LockRunOptions, run_verify
    from safe_pip.output.terminal import Style

    style = Style.for_stream(sys.stdout) if not args.output else Style()
    quiet = args.quiet or (args.format != "text" and not args.output)
    result = run_verify(
        LockRunOptions(
            locks=tuple(args.locks),
            write_identities=args.write_identities,
            index_url=args.index_url,
            provenance_index=args.provenance_index,
            download=args.download,
            save_evidence=args.save_evidence,
            evidence=args.evidence,
            no_cache=args.no_cache,
            jobs=args.jobs,
            progress=not quiet,
            **run_fields(args),
        )
    )
    text = render(result, args.format, verbose=args.verbose, quiet=args.quiet, style=style)
    summary = render_text(result, quiet=True).splitlines()[-1]  # the summary line only
    _emit(args, text, summary)
    return result.exit_code


def _emit(args: argparse.Namespace, text: str, summary: str) -> None:
    """Write the report where it goes."""
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
        if args.format != "text":
            sys.stderr.write(summary + "\n")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
