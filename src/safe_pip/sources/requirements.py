"""Requirements files with ``==`` pins and ``--hash`` options, as ``pip-compile
--generate-hashes`` (and ``uv pip compile``) write them.

Such a file names hashes, not files: :mod:`safe_pip.lock.locate` finds, on the index, the files
of each pinned version whose sha256 the requirement lists. ``-r``/``--requirement`` includes
are followed; ``-i``/``--index-url`` sets the index; other global options are ignored. The file
is read as pip reads it (:mod:`safe_pip.sources.pip_options`, the reader ``safe-pip install``
uses): its PEP 263 coding line or byte order mark, continuations and comments, options as
pip's optparse takes them (``--ha=`` is ``--hash=``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from safe_pip.errors import ConfigError
from safe_pip.sources.model import (
    Lock,
    LockedPackage,
    generated_by_uv_export,
    normalize_sha256,
)
from safe_pip.sources.pip_options import (
    ENV_VAR,
    decode_requirement_file,
    requirement_file_lines,
    requirement_line_options,
)

_MAX_DEPTH = 10


def _expand(value: str) -> str:
    """An option's value with ``${VAR}`` replaced as pip would in this environment (an index
    URL holding credentials)."""
    import os

    for ref, name in ENV_VAR.findall(value):
        if os.environ.get(name):
            value = value.replace(ref, os.environ[name])
    return value


def parse_requirements(
    text: str,
    path: Path,
    _depth: int = 0,
    _seen: frozenset[Path] = frozenset(),
    *,
    constraint: bool = False,
) -> Lock:
    """The lock a requirements file (``constraint``: a ``-c`` constraints file) makes.

    pip installs a dependency pinned with ``--hash`` in a constraints file (pip 26 takes the
    hash from the constraint), so such entries are files to verify as well; a constraint
    without a hash only narrows what pip may pick and is left out."""
    from packaging.requirements import InvalidRequirement, Requirement

    seen = _seen | {path.resolve()}  # the files including this one: a cycle, not a diamond
    index: str | None = None
    extra: list[str] = []
    packages: list[LockedPackage] = []
    # read as pip reads it (the reader install uses): continuations, comments, pip's optparse
    # (abbreviations such as --ha=, combined short options); ${VAR} kept as written here
    for lineno, line in requirement_file_lines(text, None):
        where = f"{path}:{lineno}"
        args, options = requirement_line_options(line, where=where)
        editable = [value for name, value in options if name == "--editable"]
        if editable:
            packages.append(
                LockedPackage(
                    name=editable[0] or line,
                    version="",
                    line=lineno,
                    unsupported="an editable install",
                    position=len(packages),
                )
            )
            continue
        if not args:
            for name, value in options:
                value = _expand(value)
                if name == "--no-require-hashes":
                    raise ConfigError(
                        f"{where}: --no-require-hashes: pip (26.2+) then installs every "
                        "dependency this lock does not list, with no hash, so what it installs "
                        "is more than what safe-pip can verify here",
                        fix="remove --no-require-hashes and lock every dependency with its "
                        "--hash (pip-compile --generate-hashes, uv pip compile "
                        "--generate-hashes): pip then refuses a dependency the lock does not pin",
                    )
                if name == "--index-url":
                    index = value
                elif name == "--extra-index-url":
                    extra.append(value)
                elif name in ("--requirement", "--constraint"):
                    flag = "-r" if name == "--requirement" else "-c"
                    sub = (path.parent / value).resolve()
                    if _depth >= _MAX_DEPTH or sub in seen:
                        raise ConfigError(
                            f"{where}: {flag} {value}: include cycle or nesting too deep"
                        )
                    try:
                        sub_text = decode_requirement_file(sub.read_bytes())
                    except OSError as exc:
                        raise ConfigError(
                            f"{where}: cannot read {value}: {exc.strerror}",
                            fix="give nested files as local paths (relative to this file)",
                        ) from exc
                    sub_lock = parse_requirements(
                        sub_text,
                        sub,
                        _depth + 1,
                        seen,
                        constraint=constraint or name == "--constraint",
                    )
                    packages.extend(
                        p if p.source is not None else replace(p, source=sub)
                        for p in sub_lock.packages
                    )
                    index = index or sub_lock.index
                    extra.extend(sub_lock.extra_indexes)
            continue
        if constraint and not any(name == "--hash" for name, _v in options):
            # a name and specifier only narrows what pip may pick: it installs nothing itself
            try:
                if not Requirement(args.strip()).url and not ENV_VAR.search(line):
                    continue
            except InvalidRequirement:
                pass  # read below as any requirement is (a path, a URL: refused there)
        if ENV_VAR.search(line):
            raise ConfigError(
                f"{where}: the requirement {line!r} names an environment variable, which pip "
                "replaces from the environment it installs in: what it installs cannot be "
                "checked here",
                fix="write the requirement and its --hash options out in full",
            )
        hashes_raw = [value for name, value in options if name == "--hash"]
        req_text = args.strip()
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
