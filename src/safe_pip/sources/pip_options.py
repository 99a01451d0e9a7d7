"""How pip reads options, for every reader that must read them as pip does: optparse's prefix
matching (:func:`match_abbrev`) and the options pip accepts inside a requirement file.

Shared by the requirements-lock reader (:mod:`safe_pip.sources.requirements`) and the install
face (:mod:`safe_pip.install.args`, :mod:`safe_pip.install.requirements`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

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


def split_options(
    token: str,
    long_names: Mapping[str, str],
    short_names: Mapping[str, str],
    takes_value: Callable[[str], bool],
    *,
    where: str,
) -> list[tuple[str, str | None]]:
    """One option token read the way optparse reads it: ``[(canonical name, inline value)]``.

    ``--name[=value]`` with ``--name`` any unambiguous prefix of a spelling in ``long_names``
    (spelling -> canonical name); ``-abc`` combined short options from ``short_names``, where
    a value-taking one ends the group and takes the rest of the token as its value
    (``-Ui URL`` -> ``-U``, ``-i`` (value from the next argument); ``-iURL`` -> ``-i URL``).
    An inline value of None means the value (if the option takes one) is the next argument.
    Raises ConfigError for unknown / ambiguous options and a value given to a flag."""
    if token.startswith("--"):
        opt, eq, value = token.partition("=")
        name = long_names[match_abbrev(opt, long_names, where=where)]
        if eq and not takes_value(name):
            raise ConfigError(f"{where}: option {name} takes no value (given {token})")
        return [(name, value if eq else None)]
    out: list[tuple[str, str | None]] = []
    for pos in range(1, len(token)):
        short = "-" + token[pos]
        if short not in short_names:
            raise ConfigError(
                f"{where}: unknown option {short}"
                + (f" in {token}" if len(token) > 2 else "")
                + " (safe-pip refuses options it cannot classify rather than pass them to pip)",
                fix="check the spelling (safe-pip install --help, pip install --help)",
            )
        name = short_names[short]
        if takes_value(name):
            rest = token[pos + 1 :]
            out.append((name, rest if rest else None))  # optparse keeps a leading '=' too
            break
        out.append((name, None))
    return out


#: as pip's req_file: comments, ${VAR} references, byte order marks, PEP 263 coding lines
COMMENT = re.compile(r"(^|\s+)#.*$")


ENV_VAR = re.compile(r"(?P<var>\$\{(?P<name>[A-Z0-9_]+)\})")


_PEP263 = re.compile(rb"coding[:=]\s*([-\w.]+)")


_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)


def decode_requirement_file(data: bytes) -> str:
    """The text pip reads from a requirement file's bytes (pip's ``_decode_req_file``)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    for line in data.split(b"\n")[:2]:
        if line[0:1] == b"#":
            m = _PEP263.search(line)
            if m is not None:
                try:
                    return data.decode(m.group(1).decode("ascii"), errors="replace")
                except LookupError:
                    break
    return data.decode("utf-8", errors="replace")


def requirement_file_lines(text: str, env: Mapping[str, str] | None) -> list[tuple[int, str]]:
    """(line number, logical line) as pip's req_file preprocesses a file: backslash
    continuations joined, comments dropped, blank lines skipped, ``${VAR}`` expanded from
    ``env`` (the environment pip runs with; None: left as written, for a reader that cannot
    know the environment of the pip that will read the file)."""
    joined: list[tuple[int, str]] = []
    pending: list[str] = []
    first = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.endswith("\\") or COMMENT.match(line):
            if COMMENT.match(line):
                line = " " + line
            if pending:
                pending.append(line)
                joined.append((first, "".join(pending)))
                pending = []
            else:
                joined.append((number, line))
        else:
            if not pending:
                first = number
            pending.append(line.strip("\\"))
    if pending:
        joined.append((first, "".join(pending)))
    out: list[tuple[int, str]] = []
    for number, line in joined:
        line = COMMENT.sub("", line).strip()
        if not line:
            continue
        if env is not None:
            for ref, name in ENV_VAR.findall(line):
                value = env.get(name)
                if value:
                    line = line.replace(ref, value)
        out.append((number, line))
    return out


def requirement_line_options(line: str, *, where: str) -> tuple[str, list[tuple[str, str]]]:
    """(requirement part, [(canonical option, value or "")]) of one logical line, read as pip
    reads it (``break_args_options``, ``shlex.split``, optparse over the file's option set).
    Raises ConfigError for an option pip's file parser would not take or that safe-pip cannot
    classify (unknown, ambiguous prefix, missing value)."""
    import shlex

    words = line.split(" ")
    args: list[str] = []
    for word in words:
        if word.startswith("-"):
            break
        args.append(word)
    options_str = " ".join(words[len(args) :])
    try:
        tokens = shlex.split(options_str)
    except ValueError as exc:
        raise ConfigError(f"{where}: cannot split the options {options_str!r}: {exc}") from exc
    found: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok == "--":
            break  # optparse: the rest are arguments
        if not tok.startswith("-") or tok == "-":
            continue  # optparse collects it as an argument; pip ignores those
        for name, inline in split_options(
            tok, FILE_LONG, FILE_SHORT, lambda n: n not in FILE_FLAGS, where=where
        ):
            if name in FILE_FLAGS:
                found.append((name, ""))
                continue
            if inline is None:
                if i >= len(tokens):
                    raise ConfigError(f"{where}: option {name} needs a value (given {tok})")
                inline = tokens[i]
                i += 1
            found.append((name, inline))
    return " ".join(args), found
