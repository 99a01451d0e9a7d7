"""Requirements files with ``==`` pins and ``--hash`` options, as ``pip-compile
--generate-hashes`` (and ``uv pip compile``) write them.

Such a file names hashes, not files: :mod:`safe_pip.lock.locate` finds, on the index, the files
of each pinned version whose sha256 the requirement lists. ``-r``/``--requirement`` includes
are followed; ``-i``/``--index-url`` sets the index; other global options are ignored.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from safe_pip.errors import ConfigError
from safe_pip.sources.model import (
    Lock,
    LockedPackage,
    generated_by_uv_export,
    normalize_sha256,
)
from safe_pip.sources.pip_options import FILE_LONG, match_abbrev

_COMMENT = re.compile(r"(^|\s+)#.*$")
_HASH_OPT = re.compile(r"--hash[=\s]+(\S+)")
#: Global options that take a value (so the value is not read as a requirement).
_VALUE_OPTS = {
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--trusted-host",
    "-c",
    "--constraint",
    "-r",
    "--requirement",
    "--no-binary",
    "--only-binary",
    "--use-feature",
    "--config-settings",
}
_MAX_DEPTH = 10


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first physical line number, joined text) with comments stripped and ``\\`` joined."""
    out: list[tuple[int, str]] = []
    buf = ""
    start = 0
    for n, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw)
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            out.append((start, buf.strip()))
        buf = ""
    if buf.strip():
        out.append((start, buf.strip()))
    return out


def parse_requirements(
    text: str, path: Path, _depth: int = 0, _seen: set[Path] | None = None
) -> Lock:
    from packaging.requirements import InvalidRequirement, Requirement

    seen = _seen if _seen is not None else set()
    seen.add(path.resolve())
    index: str | None = None
    extra: list[str] = []
    packages: list[LockedPackage] = []
    for lineno, line in _logical_lines(text):
        where = f"{path}:{lineno}"
        if line.startswith("-"):
            try:
                words = shlex.split(line)
            except ValueError as exc:
                raise ConfigError(f"{where}: cannot parse options: {exc}") from exc
            opt, _, inline = words[0].partition("=")
            if opt.startswith("--"):
                # pip's optparse takes any unambiguous prefix (--requirem, --edit): read as
                # pip does (pip's own option table, shared with install)
                opt = FILE_LONG[match_abbrev(opt, FILE_LONG, where=where)]
            value = inline or (words[1] if len(words) > 1 else "")
            if opt in ("-e", "--editable"):
                packages.append(
                    LockedPackage(
                        name=value or line,
                        version="",
                        line=lineno,
                        unsupported="an editable install",
                        position=len(packages),
                    )
                )
            elif opt in ("-i", "--index-url"):
                index = value
            elif opt == "--extra-index-url":
                extra.append(value)
            elif opt in ("-r", "--requirement"):
                sub = (path.parent / value).resolve()
                if _depth >= _MAX_DEPTH or sub in seen:
                    raise ConfigError(f"{where}: -r {value}: include cycle or nesting too deep")
                try:
                    sub_text = sub.read_text(encoding="utf-8")
                except OSError as exc:
                    raise ConfigError(f"{where}: cannot read {value}: {exc.strerror}") from exc
                sub_lock = parse_requirements(sub_text, sub, _depth + 1, seen)
                packages.extend(sub_lock.packages)
                index = index or sub_lock.index
                extra.extend(sub_lock.extra_indexes)
            elif opt not in _VALUE_OPTS and not opt.startswith("--"):
                raise ConfigError(f"{where}: unknown option {opt}")
            continue
        hashes_raw = _HASH_OPT.findall(line)
        req_text = _HASH_OPT.sub("", line).strip()
        if " --" in f" {req_text}":
            req_text = req_text.split(" --", 1)[0].strip()  # other per-requirement options
        try:
            req = Requirement(req_text)
        except InvalidRequirement as exc:
            raise ConfigError(f"{where}: not a requirement: {exc}") from exc
        if req.url:
            packages.append(
                LockedPackage(
                    name=req.name,
                    version="",
                    line=lineno,
                    unsupported="a direct URL reference",
                    position=len(packages),
                )
            )
            continue
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator not in ("==", "===") or "*" in specs[0].version:
            raise ConfigError(
                f"{where}: {req.name} is not pinned to one version ({req.specifier or 'no pin'})",
                fix="lock with pip-compile --generate-hashes (or uv pip compile --generate-hashes)",
            )
        hashes: list[str] = []
        others: list[str] = []
        for h in hashes_raw:
            algo, _, digest = h.partition(":")
            if algo != "sha256":
                # pip installs a file when ANY listed hash matches, and PEP 740 attests sha256
                # only: an entry that lists another algorithm fails (unverifiable-hash).
                others.append(algo or h)
                continue
            sha = normalize_sha256(digest)
            if sha is None:
                raise ConfigError(f"{where}: {req.name}: malformed --hash {h!r}")
            hashes.append(sha)
        packages.append(
            LockedPackage(
                name=req.name,
                version=specs[0].version,
                line=lineno,
                hashes=tuple(dict.fromkeys(hashes)),
                other_hashes=tuple(dict.fromkeys(others)),
                position=len(packages),
                marker=str(req.marker) if req.marker else None,
            )
        )
    return Lock(
        path=path,
        format="requirements",
        packages=tuple(packages),
        index=index,
        extra_indexes=tuple(extra),
        generator="uv" if generated_by_uv_export(text) else None,
    )
