"""``safe-pip install``: pip's install arguments unchanged, every resolved file verified first.

The argument list is split in two: safe-pip's own options (``--policy``, ``--trust-root``,
``--json``, ...) and everything else, which is pip's and passed on in its original order. The
pip arguments are then sorted into what the resolution call gets (all of them) and what the
final, offline install call gets (location and behaviour options only; never a requirement,
an index or a find-links source).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from safe_pip.errors import ConfigError

DESCRIPTION = """\
Install Python packages like 'pip install', but only after every file pip would install
(transitive dependencies included) has been downloaded into a private directory, hashed,
and its PEP 740 provenance verified and accepted by your policy and known-good history.
If any file is refused nothing is installed. Accepted files are installed from that
directory, hash-pinned, in one offline pip call.

All of pip's install arguments are accepted unchanged (requirements, -r, -c, -i,
--extra-index-url, -f, --only-binary, --pre, -U, --target, --prefix, --user, --no-deps,
--force-reinstall, --dry-run, -q, -v, ...). pip runs isolated from pip.conf and PIP_*
environment variables: give indexes on the command line.

sdists are refused by default (building one installs and runs build dependencies that
nothing verified); resolution asks pip for wheels only (--only-binary :all:).

examples:
  safe-pip install requests
  safe-pip install -r requirements.txt --policy safe-pip.toml
  safe-pip install --target ./vendor -i https://mirror.example/simple/ sampleproject
  safe-pip install --dry-run --json sampleproject
"""

#: safe-pip's own options that take a value / are flags (pip never sees them).
OWN_VALUE = {
    "--policy": "policy",
    "--trust-root": "trust_root",
    "--home": "home",
    "--report": "report",
    "--provenance-index": "provenance_index",
}
OWN_FLAGS = {
    "--offline": "offline",
    "--staging": "staging",
    "--json": "json",
    "--no-index-history": "no_index_history",
    "--allow-unverifiable-sources": "allow_unverifiable_sources",
}

#: pip install options that take a value (so the value is never mistaken for anything else).
PIP_VALUE_LONG = frozenset(
    {
        "--requirement",
        "--constraint",
        "--build-constraint",
        "--requirements-from-script",
        "--editable",
        "--target",
        "--platform",
        "--python-version",
        "--implementation",
        "--abi",
        "--root",
        "--prefix",
        "--src",
        "--upgrade-strategy",
        "--config-settings",
        "--global-option",
        "--progress-bar",
        "--root-user-action",
        "--group",
        "--all-releases",
        "--only-final",
        "--no-binary",
        "--only-binary",
        "--index-url",
        "--extra-index-url",
        "--refresh-package",
        "--find-links",
        "--uploaded-prior-to",
        "--python",
        "--log",
        "--log-file",
        "--keyring-provider",
        "--proxy",
        "--retries",
        "--timeout",
        "--exists-action",
        "--trusted-host",
        "--cert",
        "--client-cert",
        "--cache-dir",
        "--use-feature",
        "--use-deprecated",
        "--resume-retries",
    }
)
PIP_VALUE_SHORT = {
    "-r": "--requirement",
    "-c": "--constraint",
    "-e": "--editable",
    "-t": "--target",
    "-C": "--config-settings",
    "-i": "--index-url",
    "-f": "--find-links",
}
PIP_FLAG_SHORT = {"-U": "--upgrade", "-I": "--ignore-installed", "-q": "--quiet", "-v": "--verbose"}

#: Options the final install call gets (where and how to install; nothing about sources).
INSTALL_VALUE = frozenset(
    {
        "--target",
        "--platform",
        "--python-version",
        "--implementation",
        "--abi",
        "--root",
        "--prefix",
        "--progress-bar",
        "--root-user-action",
        "--python",
        "--log",
        "--log-file",
        "--exists-action",
        "--cache-dir",
        "--use-feature",
        "--use-deprecated",
    }
)
INSTALL_FLAGS = frozenset(
    {
        "--user",
        "--upgrade",
        "--force-reinstall",
        "--ignore-installed",
        "--ignore-requires-python",
        "--no-warn-script-location",
        "--no-warn-conflicts",
        "--compile",
        "--no-compile",
        "--break-system-packages",
        "--require-virtualenv",
        "--no-color",
        "--no-cache-dir",
        "--no-input",
    }
)
#: Options safe-pip sets itself on every pip call (the user's copy is dropped).
#: Options about where packages come from (only a build of an allowed unverifiable source
#: gets them; the verified install never does).
SOURCE_VALUE = frozenset(
    {
        "--index-url",
        "--extra-index-url",
        "--find-links",
        "--trusted-host",
        "--cert",
        "--client-cert",
        "--proxy",
        "--timeout",
        "--retries",
        "--keyring-provider",
    }
)
SOURCE_FLAGS = frozenset({"--no-index", "--pre"})
#: Where pip fetches from: left out of the resolution that goes through safe-pip's own
#: verifying index (allow-sdist), which is then pip's only index.
INDEX_VALUE = frozenset(
    {
        "--index-url",
        "--extra-index-url",
        "--find-links",
        "--trusted-host",
        "--cert",
        "--client-cert",
        "--proxy",
        "--keyring-provider",
    }
)
INDEX_FLAGS = frozenset({"--no-index"})
#: Options that shape an sdist build (given to the `pip wheel` call that builds verified sdists).
BUILD_VALUE = frozenset({"--config-settings", "--build-constraint"})
BUILD_FLAGS = frozenset({"--pre"})
DROPPED = frozenset({"--dry-run", "--quiet", "--verbose", "--isolated", "--report"})

_QV = re.compile(r"^-([qv])\1*$")


@dataclass
class PipArgs:
    """The user's pip arguments, sorted."""

    resolve: list[str] = field(default_factory=list)  # for `pip install --dry-run --report`
    # the same without index / find-links / TLS-to-index options (resolution through the
    # verifying index, which is then the only index)
    resolve_no_index: list[str] = field(default_factory=list)
    build: list[str] = field(default_factory=list)  # for `pip wheel` of verified sdists
    install: list[str] = field(default_factory=list)  # for the final offline install
    index_urls: list[str] = field(default_factory=list)  # -i (last wins, as in pip)
    extra_index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    no_index: bool = False
    no_binary: list[str] = field(default_factory=list)
    dry_run: bool = False
    quiet: int = 0
    verbose: int = 0
    requirements: list[str] = field(default_factory=list)  # positional specifiers / URLs / paths
    editables: list[str] = field(default_factory=list)
    requirement_files: list[str] = field(default_factory=list)  # -r and -c files
    sources: list[str] = field(default_factory=list)  # index/network options, for source builds

    @property
    def index_url(self) -> str | None:
        """The primary index pip uses (None with --no-index); PyPI when not given."""
        if self.no_index:
            return None
        return self.index_urls[-1] if self.index_urls else "https://pypi.org/simple/"

    @property
    def indexes(self) -> list[str]:
        primary = self.index_url
        if primary is None:
            return []
        return [primary, *self.extra_index_urls]


def _long_name(token: str) -> tuple[str, str | None]:
    """(canonical long option, inline value) for one option token."""
    if token.startswith("--"):
        name, eq, value = token.partition("=")
        return name, (value if eq else None)
    short, rest = token[:2], token[2:]
    if short in PIP_VALUE_SHORT:
        return PIP_VALUE_SHORT[short], (rest.lstrip("=") if rest else None)
    if short in PIP_FLAG_SHORT and not rest:
        return PIP_FLAG_SHORT[short], None
    return token, None


def split_argv(argv: Sequence[str]) -> tuple[argparse.Namespace, PipArgs]:
    """Separate safe-pip's own options from pip's, and sort pip's. Raises ConfigError."""
    own = argparse.Namespace(
        help=False,
        **dict.fromkeys(OWN_VALUE.values()),
        **dict.fromkeys(OWN_FLAGS.values(), False),
    )
    pip = PipArgs()
    tokens = list(argv)
    i = 0
    only_positional = False
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if only_positional or not tok.startswith("-") or tok == "-":
            pip.resolve.append(tok)
            pip.resolve_no_index.append(tok)
            pip.requirements.append(tok)
            continue
        if tok == "--":
            only_positional = True
            pip.resolve.append(tok)
            pip.resolve_no_index.append(tok)
            continue
        if tok in ("-h", "--help"):
            own.help = True
            continue
        name, inline = _long_name(tok)
        if name in OWN_FLAGS:
            if inline is not None:
                raise ConfigError(f"{name} takes no value")
            setattr(own, OWN_FLAGS[name], True)
            continue
        if name in OWN_VALUE:
            if inline is None:
                if i >= len(tokens):
                    raise ConfigError(f"{name} needs a value")
                inline = tokens[i]
                i += 1
            setattr(own, OWN_VALUE[name], inline)
            continue
        m = _QV.match(tok)
        if m:
            if m.group(1) == "q":
                pip.quiet += len(tok) - 1
            else:
                pip.verbose += len(tok) - 1
            continue
        if name in PIP_VALUE_LONG:
            raw = [tok]
            if inline is None:
                if i >= len(tokens):
                    raise ConfigError(f"pip option {tok} needs a value")
                inline = tokens[i]
                raw.append(inline)
                i += 1
            _pip_value(pip, name, inline, raw)
            continue
        _pip_flag(pip, name, tok)
    return own, pip


def _pip_value(pip: PipArgs, name: str, value: str, raw: list[str]) -> None:
    if name == "--report":
        return  # never reached: our own --report wins (see OWN_VALUE)
    pip.resolve.extend(raw)
    if name not in INDEX_VALUE:
        pip.resolve_no_index.extend(raw)
    if name in BUILD_VALUE:
        pip.build.extend([name, value])
    if name in INSTALL_VALUE:
        pip.install.extend([name, value])
    if name in SOURCE_VALUE:
        pip.sources.extend([name, value])
    if name == "--index-url":
        pip.index_urls.append(value)
    elif name == "--extra-index-url":
        pip.extra_index_urls.append(value)
    elif name == "--find-links":
        pip.find_links.append(value)
    elif name == "--no-binary":
        pip.no_binary.append(value)
    elif name == "--editable":
        pip.editables.append(value)
    elif name in ("--requirement", "--constraint"):
        pip.requirement_files.append(value)


def _pip_flag(pip: PipArgs, name: str, token: str) -> None:
    if name == "--dry-run":
        pip.dry_run = True
        return
    if name in ("--quiet", "--verbose"):
        if name == "--quiet":
            pip.quiet += 1
        else:
            pip.verbose += 1
        return
    if name in DROPPED:
        return
    pip.resolve.append(token)
    if name not in INDEX_FLAGS:
        pip.resolve_no_index.append(token)
    if name in BUILD_FLAGS:
        pip.build.append(name)
    if name == "--no-index":
        pip.no_index = True
    if name in INSTALL_FLAGS:
        pip.install.append(name)
    if name in SOURCE_FLAGS:
        pip.sources.append(name)


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
    from safe_pip.commands._common import add_policy_options, add_trust_options

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
        "mirror, --find-links or a local path that serve none (default: PyPI)",
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
