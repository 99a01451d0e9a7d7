"""Reading requirement and constraints files the way pip reads them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from safe_pip.errors import (
    ConfigError,
)

if TYPE_CHECKING:
    from safe_pip.install.args import PipArgs

from safe_pip.install.args import PipArgs, split_options
from safe_pip.install.piprun import pip_env

#: Options of a requirement file that add or replace where pip fetches from.
_FILE_SOURCE_OPTIONS = {
    "-i": "--index-url",
    "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links",
    "--find-links": "--find-links",
    "--no-index": "--no-index",
}


_FILE_NESTED = ("--requirement", "--constraint")


#: The options pip accepts inside requirement / constraints files (pip 26.3,
#: ``req_file.SUPPORTED_OPTIONS + SUPPORTED_OPTIONS_REQ``): spelling -> canonical name. pip
#: reads them with optparse too (any unambiguous prefix, within this smaller set).
_FILE_LONG = {
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


_FILE_SHORT = {
    "-i": "--index-url",
    "-c": "--constraint",
    "-r": "--requirement",
    "-e": "--editable",
    "-f": "--find-links",
    "-C": "--config-settings",
}


_FILE_FLAGS = frozenset(
    {"--no-index", "--prefer-binary", "--require-hashes", "--no-require-hashes", "--pre"}
)


#: as pip's req_file: comments, ${VAR} references, byte order marks, PEP 263 coding lines
_COMMENT = re.compile(r"(^|\s+)#.*$")


_ENV_VAR = re.compile(r"(?P<var>\$\{(?P<name>[A-Z0-9_]+)\})")


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


@dataclass(frozen=True)
class FileSource:
    """An index option found inside a requirement or constraints file."""

    path: str
    option: str  # canonical long name
    value: str | None


def _decode_requirement_file(data: bytes) -> str:
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


def requirement_file_lines(text: str) -> list[tuple[int, str]]:
    """(line number, logical line) as pip's req_file preprocesses a file: backslash
    continuations joined, comments dropped, blank lines skipped, ``${VAR}`` expanded from the
    environment pip runs with."""
    joined: list[tuple[int, str]] = []
    pending: list[str] = []
    first = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.endswith("\\") or _COMMENT.match(line):
            if _COMMENT.match(line):
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
    env = pip_env()
    out: list[tuple[int, str]] = []
    for number, line in joined:
        line = _COMMENT.sub("", line).strip()
        if not line:
            continue
        for ref, name in _ENV_VAR.findall(line):
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
            tok, _FILE_LONG, _FILE_SHORT, lambda n: n not in _FILE_FLAGS, where=where
        ):
            if name in _FILE_FLAGS:
                found.append((name, ""))
                continue
            if inline is None:
                if i >= len(tokens):
                    raise ConfigError(f"{where}: option {name} needs a value (given {tok})")
                inline = tokens[i]
                i += 1
            found.append((name, inline))
    return " ".join(args), found


def requirement_file_sources(paths: Sequence[str], *, _depth: int = 0) -> list[FileSource]:
    """Index options set inside requirement / constraints files (pip honours them: they add
    indexes safe-pip would not otherwise know about). Lines are read as pip reads them,
    abbreviated options included (``--extra=URL`` is ``--extra-index-url``); an option that
    cannot be classified raises ConfigError. Nested -r / -c files are followed; a file given
    as a URL counts as a source of unknown options. Unreadable files are skipped (pip
    reports them)."""
    found: list[FileSource] = []
    for raw in paths:
        if "://" in raw and not raw.startswith("file:"):
            found.append(FileSource(raw, "(read from a URL)", None))
            continue
        path = Path(raw.removeprefix("file://")) if raw.startswith("file:") else Path(raw)
        try:
            text = _decode_requirement_file(path.read_bytes())
        except OSError:
            continue
        nested: list[str] = []
        for number, line in requirement_file_lines(text):
            args, options = requirement_line_options(
                line, where=f"requirement file {path} line {number}"
            )
            if args or any(name == "--editable" for name, _v in options):
                continue  # a requirement line: pip applies only --hash / --config-settings
            for name, value in options:
                if name in _FILE_SOURCE_OPTIONS:
                    found.append(FileSource(str(path), name, value or None))
                elif name in _FILE_NESTED and value and _depth < 10:
                    nested.append(value if "://" in value else str(path.parent / value))
        if nested:
            found += requirement_file_sources(nested, _depth=_depth + 1)
    return found


def effective_indexes(pip: PipArgs, file_sources: Sequence[FileSource]) -> list[str]:
    """The indexes pip searches: the command line's, with requirement files' options applied
    (a file's --index-url replaces the primary index, as in pip)."""
    if pip.no_index or any(f.option == "--no-index" for f in file_sources):
        return []
    primary = pip.index_url
    extras = list(pip.extra_index_urls)
    for f in file_sources:
        if f.option == "--index-url" and f.value:
            primary = f.value
        elif f.option == "--extra-index-url" and f.value:
            extras.append(f.value)
    out: list[str] = []
    for url in [primary, *extras]:
        if url and url not in out:
            out.append(url)
    return out


def sdist_build_blocker(pip: PipArgs, file_sources: Sequence[FileSource]) -> str | None:
    """Why sdists cannot be built through the verifying index in this run (None: they can).

    The verifying index fronts exactly one upstream index, and pip must have no other source:
    build dependencies fetched from another index or a --find-links directory would skip
    verification, and with several indexes pip takes the highest version across them
    (dependency confusion, THREATS T11), which build dependencies are not checked for."""
    if pip.no_index:
        return "--no-index leaves no index to fetch build dependencies through"
    if pip.extra_index_urls:
        return "more than one index is configured (--extra-index-url)"
    if pip.find_links:
        return "--find-links is given (pip would take build dependencies from it unverified)"
    if file_sources:
        f = file_sources[0]
        if f.value is None and f.option not in _FILE_SOURCE_OPTIONS.values():
            return f"the requirement file {f.path} is read from a URL (it could set indexes)"
        return (
            f"the requirement file {f.path} sets {f.option} (pip would fetch from it, "
            "build dependencies included, outside the verifying index)"
        )
    return None
