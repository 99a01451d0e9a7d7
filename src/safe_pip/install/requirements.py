"""Reading requirements the way pip reads them, before pip runs.

Every requirement safe-pip cannot verify (a direct URL, a local path or archive, a VCS URL, an
editable, ``--no-binary``, ``--only-binary :none:``, ``--find-links``, a requirement file given
as an http(s) URL) is refused here, wherever it is written: on the command line or in a
requirement or constraints file (local path, ``file:`` URL, nested ``-r`` / ``-c``), all of
them in one message. pip never reads the user's files: it gets rewritten copies holding only the
named requirements (with their ``--hash`` / ``--config-settings``) and the options that cannot
add a source; index options become upstreams of the verifying index (:func:`read_requirements`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from safe_pip.errors import ConfigError
from safe_pip.install.piprun import pip_env
from safe_pip.sources.pip_options import (
    decode_requirement_file,
    requirement_file_lines,
    requirement_line_options,
)

if TYPE_CHECKING:
    from safe_pip.install.args import PipArgs

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


@dataclass(frozen=True)
class FileSource:
    """An index option found inside a requirement or constraints file."""

    path: str
    option: str  # canonical long name
    value: str | None


# -- reading every requirement before pip runs -------------------------------------------------

_VCS_PREFIXES = ("git+", "hg+", "svn+", "bzr+")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
#: pip's ``is_archive_file`` extensions: a requirement ending so is read as a file, not a name.
_ARCHIVE_EXTS = (
    ".whl",
    ".zip",
    ".tar.gz",
    ".tgz",
    ".tar",
    ".tar.bz2",
    ".tbz",
    ".tar.xz",
    ".txz",
    ".tlz",
    ".tar.lz",
    ".tar.lzma",
)
#: Options of a requirement file that pip may keep reading (they add no source, run no build).
_FILE_HARMLESS = frozenset({"--pre", "--prefer-binary", "--require-hashes", "--use-feature"})
#: Per-requirement options (kept on their requirement line).
_LINE_OPTIONS = ("--hash", "--config-settings")
_MAX_DEPTH = 10
#: pip's ``_strip_extras``: a trailing ``[...]`` split off before a requirement is read as a path
_EXTRAS = re.compile(r"(?<=.)\[[^\]]+\]$")


@dataclass(frozen=True)
class Unverifiable:
    """One requirement form safe-pip cannot verify, and where it was written."""

    where: str  # "the command line", "requirement file x.txt line 3"
    form: str  # "a direct URL (name @ URL)", "--no-binary", ...
    text: str  # what was written

    def describe(self) -> str:
        if self.form.startswith("--"):  # an option: name it, then its value
            name, _sp, why = self.form.partition(" ")
            value = f" {self.text}" if self.text and self.text != name else ""
            return f"{self.where}: {name}{value} {why}".rstrip()
        return f"{self.where}: {self.text!r} is {self.form}"


@dataclass
class Reading:
    """What the requirements say, read before pip runs."""

    requirements: list[str] = field(default_factory=list)  # lines of the rewritten -r file
    constraints: list[str] = field(default_factory=list)  # lines of the rewritten -c file
    index_url: str | None = None  # the last --index-url of a requirement file (replaces -i)
    extra_index_urls: list[str] = field(default_factory=list)
    no_index: bool = False
    unverifiable: list[Unverifiable] = field(default_factory=list)
    allowed_unverifiable: list[Unverifiable] = field(default_factory=list)  # the flag's
    sdist_options: list[Unverifiable] = field(default_factory=list)  # --no-binary, ...
    sources: list[FileSource] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every file read, in order
    locks: list[Path] = field(default_factory=list)  # PEP 751 locks given with -r


def _split_marker(text: str) -> str:
    """The part of a requirement pip examines as a name, URL or path (markers split off)."""
    sep = "; " if _URL.match(text) or text.lower().startswith("file:") else ";"
    return text.split(sep, 1)[0].strip()


def requirement_form(text: str) -> str | None:
    """None for a named requirement (``name[extras] specifier ; marker``) safe-pip resolves
    through the verifying index, else the unverifiable form pip would read it as, in pip's
    order (``req.constructors.parse_req_from_line``): a URL, a local path or archive, a
    direct reference ``name @ URL``. Anything packaging cannot parse is refused too."""
    import os

    from packaging.requirements import InvalidRequirement, Requirement

    t = text.strip()
    low = t.lower()
    if low.startswith(_VCS_PREFIXES):
        return "a VCS URL"
    if _URL.match(t) or low.startswith("file:"):
        return "a URL"
    head = _split_marker(t)
    head_low = head.lower()
    looks_like_path = os.sep in head or bool(os.altsep and os.altsep in head)
    before_at = head.split("@", 1)[0].strip()
    if (looks_like_path or head.startswith(".")) and (
        "@" not in head or before_at.startswith((".", os.sep)) or os.sep in before_at
    ):
        return "a local path"
    # pip strips a trailing [extras] before its archive test (req.constructors._strip_extras):
    # ``evil-1.0.tar.gz[x]`` is the local file evil-1.0.tar.gz to pip, not a project name
    path_part = _EXTRAS.sub("", head_low)
    if path_part.endswith(_ARCHIVE_EXTS) and "@" not in head:
        return "a local archive file"
    try:
        req = Requirement(t)
    except InvalidRequirement:
        return "not a requirement safe-pip can read (packaging cannot parse it)"
    if req.url:
        if req.url.lower().startswith(_VCS_PREFIXES):
            return "a VCS URL (name @ VCS URL)"
        return "a direct URL (name @ URL)"
    # a name to packaging ('===' takes any string: name===x@dir/evil-1.0.tar.gz) that pip
    # reads as a local file or source tree whenever one is there (``_get_url_from_path``)
    if path_part.endswith(_ARCHIVE_EXTS):
        return "a local archive file"
    if looks_like_path:
        return "a local path"
    return None


def _allowed_with_flag(text: str, form: str) -> bool:
    """--allow-unverifiable-sources covers local source trees and VCS checkouts only."""
    if form.startswith("a VCS URL"):
        return True
    if form == "a local path":
        return Path(_split_marker(text)).is_dir()
    if form in ("a URL", "a direct URL (name @ URL)"):
        url = text.split("@", 1)[1].strip() if "@" in text and not _URL.match(text) else text
        url = _split_marker(url)
        if url.lower().startswith("file:"):
            try:
                return _file_url_path(url, where="").is_dir()
            except ConfigError:
                return False
    return False


def _file_url_path(url: str, *, where: str) -> Path:
    """The local path of a ``file:`` URL as pip reads one (``file:/p``, ``file:///p``,
    ``file://localhost/p``); another host is refused (pip reads none on POSIX)."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(
            f"{where}: {url} names the host {parts.netloc!r}; only local file: URLs can be read",
            fix="give the requirement file as a local path",
        )
    return Path(unquote(parts.path))


def _binary_option(name: str, value: str, where: str, out: Reading) -> bool:
    """Record a refused --no-binary / --only-binary :none: (True when refused)."""
    values = {v.strip() for v in value.split(",")}
    if name == "--no-binary" and values - {":none:"}:
        out.sdist_options.append(
            Unverifiable(where, "--no-binary (asks pip for sdists: unverified build code)", value)
        )
        return True
    if name == "--only-binary" and ":none:" in values:
        out.sdist_options.append(
            Unverifiable(
                where,
                "--only-binary :none: (undoes wheels-only: pip would build sdists)",
                value,
            )
        )
        return True
    return False


def _classify(text: str, where: str, out: Reading, *, allow: bool, editable: bool) -> bool:
    """Record ``text`` if it is an unverifiable form; True when it may go to pip."""
    form = requirement_form(text)
    if editable:
        form = f"an editable ({form or 'a named requirement'})"
    if form is None:
        return True
    inner = form.removeprefix("an editable (").removesuffix(")") if editable else form
    if allow and _allowed_with_flag(text, inner):
        out.allowed_unverifiable.append(Unverifiable(where, form, text))
        return True
    out.unverifiable.append(Unverifiable(where, form, text))
    return False


def _line_text(args: str, options: Sequence[tuple[str, str]]) -> str:
    import shlex

    extra = [f"{name}={shlex.quote(value)}" for name, value in options if name in _LINE_OPTIONS]
    return " ".join([args, *extra]).strip()


def _read_file(
    raw: str, base: Path | None, out: Reading, *, constraint: bool, allow: bool, depth: int
) -> None:
    """Read one requirement / constraints file (and its nested files) into ``out``."""
    kind = "constraints file" if constraint else "requirement file"
    if depth > _MAX_DEPTH:
        raise ConfigError(
            f"{kind} {raw}: nested more than {_MAX_DEPTH} levels deep (a -r / -c loop?)",
            fix="flatten the requirement files",
        )
    if _URL.match(raw) and not raw.lower().startswith("file:"):
        out.unverifiable.append(
            Unverifiable(
                f"{kind} {raw}" if base is None else f"a {kind} nested in {base}",
                "a requirement file read from a URL (safe-pip does not fetch requirement "
                "files; it could not check what pip would read)",
                raw,
            )
        )
        return
    if raw.lower().startswith("file:"):
        path = _file_url_path(raw, where=kind)
    else:
        path = Path(raw)
        if base is not None and not path.is_absolute():
            path = base / path
    name = path.name.lower()
    if name == "pylock.toml" or (name.startswith("pylock.") and name.endswith(".toml")):
        if constraint or depth:
            out.unverifiable.append(
                Unverifiable(
                    f"{kind} {path}",
                    "a PEP 751 lock used as a constraints or nested file (safe-pip installs a "
                    "lock only as itself: -r pylock.toml)",
                    raw,
                )
            )
        else:
            out.locks.append(path)
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the {kind} {path}: {exc.strerror or exc}",
            fix="check the path (relative paths in a nested file are relative to that file)",
        ) from None
    out.files.append(str(path))
    dest = out.constraints if constraint else out.requirements
    for number, line in requirement_file_lines(decode_requirement_file(data), pip_env()):
        where = f"{kind} {path} line {number}"
        args, options = requirement_line_options(line, where=where)
        editable = [v for name, v in options if name == "--editable"]
        if args or editable:  # a requirement line: pip applies only --hash / --config-settings
            text = editable[0] if editable else args
            if _classify(text, where, out, allow=allow, editable=bool(editable)):
                dest.append(("-e " if editable else "") + _line_text(text, options))
            continue
        for name, value in options:
            if name in _FILE_SOURCE_OPTIONS.values():
                out.sources.append(FileSource(str(path), name, value or None))
                if name == "--find-links":
                    out.unverifiable.append(
                        Unverifiable(
                            where,
                            "--find-links (pip would read those files directly, not through "
                            "the verifying index)",
                            value,
                        )
                    )
                elif name == "--index-url":
                    out.index_url = value
                elif name == "--extra-index-url":
                    out.extra_index_urls.append(value)
                elif name == "--no-index":
                    out.no_index = True
            elif name in _FILE_NESTED:
                _read_file(
                    value,
                    path.parent,
                    out,
                    constraint=name == "--constraint",
                    allow=allow,
                    depth=depth + 1,
                )
            elif name in ("--no-binary", "--only-binary"):
                if not _binary_option(name, value, where, out):
                    dest.append(f"{name}={value}")
            elif name in _FILE_HARMLESS:
                dest.append(f"{name}={value}" if value else name)
            # --trusted-host: only pip's TLS to an index, which pip no longer talks to;
            # --hash / --config-settings on a line of their own: pip rejects or ignores them


def read_requirements(pip: PipArgs, *, allow_unverifiable: bool) -> Reading:
    """Read the command line's requirements and every requirement / constraints file, as
    pip would. Raises ConfigError (exit 2) naming every unverifiable form found, before pip
    runs; ``--allow-unverifiable-sources`` lets local source trees and VCS URLs through."""
    out = Reading()
    where = "the command line"
    for text in pip.requirements:
        _classify(text, where, out, allow=allow_unverifiable, editable=False)
    for text in pip.editables:
        _classify(text, where, out, allow=allow_unverifiable, editable=True)
    for value in pip.no_binary:
        _binary_option("--no-binary", value, where, out)
    for value in pip.only_binary:
        _binary_option("--only-binary", value, where, out)
    for value in pip.find_links:
        out.unverifiable.append(
            Unverifiable(
                where,
                "--find-links (pip would read those files directly, not through the verifying "
                "index)",
                value,
            )
        )
    for raw, constraint in pip.requirement_files_kinds:
        _read_file(raw, None, out, constraint=constraint, allow=allow_unverifiable, depth=0)
    for name, value in pip.unread:
        out.unverifiable.append(
            Unverifiable(
                where, f"{name} (pip would read that file itself; safe-pip does not)", value
            )
        )
    if pip.no_index or out.no_index:
        out.unverifiable.append(
            Unverifiable(
                where if pip.no_index else "a requirement file",
                "--no-index (safe-pip resolves through its verifying index only, so it needs "
                "an index)",
                "--no-index",
            )
        )
    return out


def refuse_unverifiable(reading: Reading, *, sdist_builds: bool, blocker: str | None) -> None:
    """Raise ConfigError (exit 2, before pip runs) naming every unverifiable form read.
    ``--no-binary`` / ``--only-binary :none:`` are refused unless sdists are built through the
    verifying index in this run (allow-sdist, one index)."""
    found = list(reading.unverifiable)
    if not sdist_builds:
        found += reading.sdist_options
    if not found:
        return
    # one line: diagnostics are printed inert, so line breaks would show as '\n'
    lines = "; ".join(f"({n}) {u.describe()}" for n, u in enumerate(found, start=1))
    why = ""
    if reading.sdist_options and not sdist_builds and blocker:
        why = f" (allow-sdist = true is set, but {blocker})"
    raise ConfigError(
        f"{len(found)} requirement(s) or option(s) safe-pip cannot verify; nothing was "
        f"run: {lines}{why}",
        fix="install published wheels by name from an index (name==version); for a local "
        "source tree or a VCS checkout you trust, add --allow-unverifiable-sources; give "
        "requirement files as local paths; sdists only with allow-sdist = true in the policy "
        "and a single index",
    )


def write_requirement_files(reading: Reading, work: Path) -> tuple[Path | None, Path | None]:
    """pip's copies of what was read: (requirements file, constraints file), each None when
    empty. pip reads these, never the user's files (no re-read, no URL, no source option)."""
    out: list[Path | None] = []
    for name, lines in (
        ("requirements", reading.requirements),
        ("constraints", reading.constraints),
    ):
        if not lines:
            out.append(None)
            continue
        path = work / f"read-{name}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out.append(path)
    return out[0], out[1]
