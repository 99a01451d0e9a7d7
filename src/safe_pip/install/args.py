"""The arguments of ``safe-pip install``: safe-pip's own options (:class:`InstallOptions`) and
pip's (:class:`PipArgs`), read as pip's optparse reads them and sorted into what each pip call
gets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from safe_pip.errors import ConfigError
from safe_pip.options import RunOptions
from safe_pip.sources.pip_options import split_options


@dataclass(frozen=True)
class InstallOptions(RunOptions):
    """safe-pip's own options of an install run (pip never sees them): the trust, policy and
    history options every run has (``--min-release-age`` as typed: parsed with the policy),
    and install's own."""

    json: bool = False  # the JSON report on stdout (pip's output goes to stderr)
    report: str | None = None  # the JSON report written to this file
    provenance_index: str | None = None
    allow_unverifiable_sources: bool = False
    help: bool = False  # -h / --help: the command prints its help, nothing runs


#: safe-pip's own options that take a value / are flags (pip never sees them): option ->
#: :class:`InstallOptions` field.
OWN_VALUE = {
    "--policy": "policy",
    "--trust-root": "trust_root",
    "--home": "home",
    "--history": "history",
    "--report": "report",
    "--provenance-index": "provenance_index",
    "--min-release-age": "min_release_age",
}


OWN_FLAGS = {
    "--offline": "offline",
    "--embedded-root": "embedded_root",
    "--staging": "staging",
    "--json": "json",
    "--no-index-history": "no_index_history",
    "--allow-unverifiable-sources": "allow_unverifiable_sources",
}


#: The pip version the option tables below were checked against.
PIP_TABLE_VERSION = "26.3"


#: Every long option of ``pip install`` (pip 26.3: ``pip install --help`` plus the hidden
#: aliases): (canonical name, other spellings, takes a value). pip's optparse accepts any
#: unambiguous prefix of any spelling, so this table must be complete: an option missing here
#: would make safe-pip expand a prefix differently from pip, or refuse a real option.
#: safe-pip hands pip the canonical spelling, so pip never re-reads a prefix itself.
_PIP_OPTIONS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    # install options
    ("--requirement", (), True),
    ("--constraint", (), True),
    ("--build-constraint", (), True),
    ("--requirements-from-script", (), True),
    ("--no-deps", ("--no-dependencies",), False),
    ("--only-deps", ("--only-dependencies",), False),
    ("--editable", (), True),
    ("--dry-run", (), False),
    ("--target", (), True),
    ("--platform", (), True),
    ("--python-version", (), True),
    ("--implementation", (), True),
    ("--abi", (), True),
    ("--user", (), False),
    ("--no-user", (), False),
    ("--root", (), True),
    ("--prefix", (), True),
    ("--src", ("--source", "--source-dir", "--source-directory"), True),
    ("--upgrade", (), False),
    ("--upgrade-strategy", (), True),
    ("--force-reinstall", (), False),
    ("--ignore-installed", (), False),
    ("--ignore-requires-python", (), False),
    ("--no-build-isolation", (), False),
    ("--use-pep517", (), False),
    ("--check-build-dependencies", (), False),
    ("--break-system-packages", (), False),
    ("--config-settings", (), True),
    ("--compile", (), False),
    ("--no-compile", (), False),
    ("--no-warn-script-location", (), False),
    ("--no-warn-conflicts", (), False),
    ("--require-hashes", (), False),
    ("--no-require-hashes", (), False),
    ("--progress-bar", (), True),
    ("--root-user-action", (), True),
    ("--report", (), True),
    ("--group", (), True),
    ("--no-clean", (), False),
    # package selection
    ("--pre", (), False),
    ("--all-releases", (), True),
    ("--only-final", (), True),
    ("--no-binary", (), True),
    ("--only-binary", (), True),
    ("--prefer-binary", (), False),
    # package index
    ("--index-url", ("--pypi-url",), True),
    ("--extra-index-url", (), True),
    ("--no-index", (), False),
    ("--refresh-package", (), True),
    ("--find-links", (), True),
    ("--uploaded-prior-to", (), True),
    # general
    ("--help", (), False),
    ("--debug", (), False),
    ("--isolated", (), False),
    ("--require-virtualenv", ("--require-venv",), False),
    ("--python", (), True),
    ("--verbose", (), False),
    ("--quiet", (), False),
    ("--log", ("--log-file", "--local-log"), True),
    ("--no-input", (), False),
    ("--keyring-provider", (), True),
    ("--proxy", (), True),
    ("--no-proxy-env", (), False),
    ("--retries", (), True),
    ("--timeout", ("--default-timeout",), True),
    ("--exists-action", (), True),
    ("--trusted-host", (), True),
    ("--cert", (), True),
    ("--client-cert", (), True),
    ("--cache-dir", (), True),
    ("--no-cache-dir", (), False),
    ("--disable-pip-version-check", (), False),
    ("--no-color", (), False),
    ("--no-python-version-warning", (), False),
    ("--use-feature", (), True),
    ("--use-deprecated", (), True),
    ("--resume-retries", (), True),
)


#: every spelling of a pip install long option -> its canonical name
PIP_LONG = {
    spelling: canonical
    for canonical, aliases, _value in _PIP_OPTIONS
    for spelling in (canonical, *aliases)
}


#: pip install options (canonical names) that take a value / are flags
PIP_VALUE_LONG = frozenset(c for c, _a, value in _PIP_OPTIONS if value)


PIP_FLAG_LONG = frozenset(c for c, _a, value in _PIP_OPTIONS if not value)


#: pip install's short options -> canonical long name
PIP_SHORT = {
    "-r": "--requirement",
    "-c": "--constraint",
    "-e": "--editable",
    "-t": "--target",
    "-C": "--config-settings",
    "-i": "--index-url",
    "-f": "--find-links",
    "-U": "--upgrade",
    "-I": "--ignore-installed",
    "-q": "--quiet",
    "-v": "--verbose",
    "-h": "--help",
}


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


#: Options about where packages come from (only a build of an allowed unverifiable source
#: gets them; the verified install never does): the index options and pip's network knobs.
SOURCE_VALUE = INDEX_VALUE | {"--timeout", "--retries"}


#: Options that shape an sdist build (given to the `pip wheel` call that builds verified sdists).
BUILD_VALUE = frozenset({"--config-settings", "--build-constraint"})


BUILD_FLAGS = frozenset({"--pre"})


DROPPED = frozenset({"--dry-run", "--quiet", "--verbose", "--isolated", "--report"})


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
    only_binary: list[str] = field(default_factory=list)
    dry_run: bool = False
    quiet: int = 0
    verbose: int = 0
    requirements: list[str] = field(default_factory=list)  # positional specifiers / URLs / paths
    editables: list[str] = field(default_factory=list)
    requirement_files: list[str] = field(default_factory=list)  # -r and -c files
    requirement_files_kinds: list[tuple[str, bool]] = field(default_factory=list)  # (f, is -c)
    python: str | None = None  # pip's --python: the environment to install into
    # for the resolution through the verifying index: the user's options and named
    # requirements without sources, requirement files (pip gets rewritten copies) or --python
    resolve_through: list[str] = field(default_factory=list)
    unread: list[tuple[str, str]] = field(default_factory=list)  # options naming files pip
    # would read itself (--group, --requirements-from-script, --build-constraint): refused

    @property
    def pip_global(self) -> list[str]:
        """pip's general options that must come before the subcommand (``--python``)."""
        return ["--python", self.python] if self.python else []

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


#: every long spelling safe-pip install knows (its own and pip's) -> canonical name. safe-pip's
#: own options take part in prefix matching: a prefix of one of each is ambiguous.
_ALL_LONG = {**PIP_LONG, **{o: o for o in (*OWN_VALUE, *OWN_FLAGS)}}


def _takes_value(name: str) -> bool:
    return name in OWN_VALUE or name in PIP_VALUE_LONG


def split_argv(argv: Sequence[str]) -> tuple[InstallOptions, PipArgs]:
    """Separate safe-pip's own options from pip's, and sort pip's. Raises ConfigError.

    Options are read as pip's optparse reads them (abbreviated long options, combined short
    options, attached values) and handed to pip in canonical form, so what safe-pip checks
    is exactly what pip does; an unknown or ambiguous option is refused."""
    values: dict[str, str] = {}  # InstallOptions field -> value (the last given wins)
    flags: set[str] = set()  # InstallOptions fields given
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
            pip.resolve_through.append(tok)
            pip.requirements.append(tok)
            continue
        if tok == "--":
            only_positional = True
            pip.resolve.append(tok)
            pip.resolve_no_index.append(tok)
            pip.resolve_through.append(tok)
            continue
        for name, inline in split_options(
            tok, _ALL_LONG, PIP_SHORT, _takes_value, where="safe-pip install"
        ):
            if name == "--help":
                flags.add("help")
                continue
            if name in OWN_FLAGS:
                flags.add(OWN_FLAGS[name])
                continue
            if name in OWN_VALUE or name in PIP_VALUE_LONG:
                if inline is None:
                    if i >= len(tokens):
                        raise ConfigError(f"option {name} needs a value (given {tok})")
                    inline = tokens[i]
                    i += 1
                if name in OWN_VALUE:
                    values[OWN_VALUE[name]] = inline
                else:
                    _pip_value(pip, name, inline, [name, inline])
                continue
            _pip_flag(pip, name, name)
    own = InstallOptions(
        policy=values.get("policy"),
        trust_root=values.get("trust_root"),
        home=values.get("home"),
        history=values.get("history"),
        report=values.get("report"),
        provenance_index=values.get("provenance_index"),
        min_release_age=values.get("min_release_age"),
        offline="offline" in flags,
        embedded_root="embedded_root" in flags,
        staging="staging" in flags,
        json="json" in flags,
        no_index_history="no_index_history" in flags,
        allow_unverifiable_sources="allow_unverifiable_sources" in flags,
        help="help" in flags,
    )
    return own, pip


#: Options naming a file pip reads itself, which safe-pip does not read: refused.
UNREAD_VALUE = frozenset({"--group", "--requirements-from-script", "--build-constraint"})


def _pip_value(pip: PipArgs, name: str, value: str, raw: list[str]) -> None:
    if name == "--report":
        return  # never reached: our own --report wins (see OWN_VALUE)
    if name == "--python":
        pip.python = value  # a general option: pip wants it before the subcommand
        return
    if name in UNREAD_VALUE:
        pip.unread.append((name, value))
        return
    pip.resolve.extend(raw)
    if name not in INDEX_VALUE:
        pip.resolve_no_index.extend(raw)
        if name not in ("--requirement", "--constraint"):
            pip.resolve_through.extend(raw)
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
    elif name == "--only-binary":
        pip.only_binary.append(value)
    elif name == "--editable":
        pip.editables.append(value)
    elif name in ("--requirement", "--constraint"):
        pip.requirement_files.append(value)
        pip.requirement_files_kinds.append((value, name == "--constraint"))


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
        pip.resolve_through.append(token)
    if name in BUILD_FLAGS:
        pip.build.append(name)
    if name == "--no-index":
        pip.no_index = True
    if name in INSTALL_FLAGS:
        pip.install.append(name)
    if name in SOURCE_FLAGS:
        pip.sources.append(name)
