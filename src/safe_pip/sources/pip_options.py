"""How pip reads options, for every reader that must read them as pip does: optparse's prefix
matching (:func:`match_abbrev`) and the options pip accepts inside a requirement file.

Shared by the requirements-lock reader (:mod:`safe_pip.sources.requirements`) and the install
face (:mod:`safe_pip.install.args`, :mod:`safe_pip.install.requirements`).
"""

from __future__ import annotations

from collections.abc import Iterable

from safe_pip.errors import ConfigError

#: The options pip accepts inside requirement / constraints files (pip 26.3,
#: ``req_file.SUPPORTED_OPTIONS + SUPPORTED_OPTIONS_REQ``): spelling -> canonical name. pip
#: reads them with optparse too (any unambiguous prefix, within this smaller set).
FILE_LONG = {
    "--index-url": "--index-url",
    "--pypi-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "--no-index": "--no-index",
    "--constraint": "--constraint",
    "--requirement": "--requirement",
    "--editable": "--editable",
    "--find-links": "--find-links",
    "--no-binary": "--no-binary",
    "--only-binary": "--only-binary",
    "--prefer-binary": "--prefer-binary",
    "--require-hashes": "--require-hashes",
    "--no-require-hashes": "--no-require-hashes",
    "--pre": "--pre",
    "--all-releases": "--all-releases",
    "--only-final": "--only-final",
    "--trusted-host": "--trusted-host",
    "--use-feature": "--use-feature",
    "--hash": "--hash",
    "--config-settings": "--config-settings",
}


FILE_SHORT = {
    "-i": "--index-url",
    "-c": "--constraint",
    "-r": "--requirement",
    "-e": "--editable",
    "-f": "--find-links",
    "-C": "--config-settings",
}


FILE_FLAGS = frozenset(
    {"--no-index", "--prefer-binary", "--require-hashes", "--no-require-hashes", "--pre"}
)


def match_abbrev(opt: str, known: Iterable[str], *, where: str) -> str:
    """The option ``opt`` names, exactly as optparse reads it (``OptionParser._match_abbrev``):
    an exact spelling wins, else ``opt`` must be the prefix of exactly one known spelling.
    Raises ConfigError for an ambiguous prefix or an unknown option (never passed on: pip
    would read it with its own rules, unseen by safe-pip). ``where`` names the place for the
    message ("safe-pip install", "requirement file x.txt line 3")."""
    spellings = set(known)
    if opt in spellings:
        return opt
    matches = sorted(s for s in spellings if s.startswith(opt))
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ConfigError(
            f"{where}: option {opt} is ambiguous: it could mean {', '.join(matches)}",
            fix="spell the option out in full",
        )
    raise ConfigError(
        f"{where}: unknown option {opt} (safe-pip refuses options it cannot classify "
        "rather than pass them to pip unchecked)",
        fix="check the spelling (safe-pip install --help, pip install --help)",
    )
