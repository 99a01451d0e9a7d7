"""``safe-pip install``: pip's install arguments unchanged, every resolved file verified first.

The argument list is split in two: safe-pip's own options (``--policy``, ``--trust-root``,
``--json``, ...) and everything else, which is pip's and passed on in its original order. The
pip arguments are then sorted into what the resolution call gets (all of them) and what the
final, offline install call gets (location and behaviour options only; never a requirement,
an index or a find-links source).
"""

from __future__ import annotations

import argparse
import sys

from safe_pip.install.args import split_argv

DESCRIPTION = """\
Install Python packages like 'pip install', but only after every file pip would install
(transitive dependencies included) has been downloaded into a private directory, hashed,
and its PEP 740 provenance verified and accepted by your policy and known-good history.
If any file is refused nothing is installed. Accepted files are installed from that
directory, hash-pinned, in one offline pip call.

No code of an unverified distribution runs, at any step. Every requirement is read before
pip starts (command line, -r/-c files, nested, file: URLs); what cannot be verified is
refused, all of it at once (exit 2): direct URLs (name @ URL), local paths and archives,
VCS URLs, -e, --no-binary, --only-binary :none:, --find-links, --no-index, requirement
files at http(s) URLs. pip then resolves through safe-pip's own verifying index (started
on 127.0.0.1 in front of each index you name; every other host is behind a dead proxy):
it gets only files safe-pip verified, and a refused file stops it (never an older
version instead). -r pylock.toml installs exactly a PEP 751 lock's files, verified as
'safe-pip verify' does.

pip's install arguments are accepted unchanged (requirements, -r, -c, -i,
--extra-index-url, --pre, -U, --target, --prefix, --user, --python, --no-deps,
--force-reinstall, --dry-run, -q, -v, ...). pip runs isolated from pip.conf and PIP_*
environment variables: give indexes on the command line. Options are read as pip reads
them (unambiguous prefixes such as --extra=URL, combined short options such as -Ui URL),
in requirement files too; an unknown or ambiguous option is refused (exit 2) rather than
passed on unchecked. sdists are refused by default (building one installs and runs build
dependencies that nothing verified).

examples:
  safe-pip install sampleproject
  safe-pip install -r requirements.txt --policy safe-pip.toml
  safe-pip install --python .venv/bin/python -r requirements.txt
  safe-pip install -r pylock.toml
  safe-pip install --dry-run --json sampleproject
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Every argument after `install` reaches run() untouched: pip's options are unknown to us
    # and must keep their order, so this parser sees them all as one positional list.
    p = sub.add_parser(
        "install",
        help="verify every file pip would install, then install exactly those bytes",
        description=DESCRIPTION,
        prefix_chars="\x00",
        add_help=False,
    )
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(func=run)


def help_parser() -> argparse.ArgumentParser:
    """The parser used only to print ``safe-pip install --help``."""
    from safe_pip.cli._common import add_policy_options, add_trust_options

    p = argparse.ArgumentParser(
        prog="safe-pip install",
        usage="safe-pip install [safe-pip options] [pip install options] <requirements>",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    g.add_argument("--report", metavar="FILE", help="write the JSON report to FILE")
    s = p.add_argument_group("sources")
    s.add_argument(
        "--provenance-index",
        metavar="URL",
        help="where to look up provenance, by (name, version, filename), for files from a "
        "mirror, --find-links or a local path that serve none, e.g. https://pypi.org/simple/ "
        "for a PyPI mirror; also $SAFE_PIP_PROVENANCE_INDEX (default: none: provenance comes "
        "only from each file's own index, so no other index learns the project names)",
    )
    s.add_argument(
        "--allow-unverifiable-sources",
        action="store_true",
        help="install local directories and VCS checkouts, which have no provenance to verify "
        "(they are refused otherwise)",
    )
    add_trust_options(p)
    add_policy_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    own, pip = split_argv(list(args.argv))
    if own.help:
        help_parser().print_help()
        return 0
    from safe_pip.install import run_install

    return run_install(own, pip, out=sys.stdout, err=sys.stderr)
