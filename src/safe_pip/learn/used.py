"""What a project uses, to learn from: a requirements file or ``pyproject.toml`` (resolved as
``install`` resolves, wheels only), a pylock.toml, or an installed environment."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from safe_pip.errors import ConfigError, CouldNotCheckError
from safe_pip.learn.proposals import Dependency

if TYPE_CHECKING:
    from safe_pip.learn.run import LearnOptions
    from safe_pip.options import RunOptions


@dataclass(frozen=True)
class Used:
    """A project the user's project uses."""

    name: str
    version: str | None
    dependency: Dependency = "unknown"


def _resolve(argv: list[str], index_url: str, what: str, args: RunOptions) -> list[Used]:
    """Resolve as ``install`` does (its requirement reading, pip through in-process verifying
    indexes behind a dead proxy, wheels only, so no package code runs) with a learning policy:
    unsigned files and any publisher pass (that is what is being learned), a file whose
    provenance does not verify does not. Direct = requested by the input."""
    import contextlib
    import os
    import tempfile

    from safe_pip.check import Checker, default_jobs
    from safe_pip.install.args import split_argv
    from safe_pip.install.requirements import (
        read_requirements,
        refuse_unverifiable,
        write_requirement_files,
    )
    from safe_pip.install.resolve import (
        DeadProxy,
        resolve,
        resolve_argv,
        sealed_env,
        start_verifying_indexes,
    )
    from safe_pip.install.sources import run_indexes
    from safe_pip.options import trust_from_args
    from safe_pip.policy.file import Defaults, Policy
    from safe_pip.text import clean

    _own, pip = split_argv([*argv, "--index-url", index_url])
    reading = read_requirements(pip, allow_unverifiable=False)
    refuse_unverifiable(reading, sdist_builds=False, blocker=None)
    upstreams = run_indexes(pip, reading.sources)
    learning = Policy(defaults=Defaults(require_attestation=False, index_history_depth=0))
    checker = Checker(
        trust=trust_from_args(args),
        policy=learning,
        store=None,
        jobs=default_jobs(),
        provenance_index=index_url,
        index_history=False,
    )
    with (
        tempfile.TemporaryDirectory(prefix="safe-pip-learn-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        os.chmod(work, 0o700)
        proxy = DeadProxy()
        stack.callback(proxy.close)
        indexes = stack.enter_context(
            # learning judges no history (store=None): each file's own publisher is learned
            # and compared with the history afterwards
            start_verifying_indexes(
                checker, upstreams, verbose=False, err=sys.stderr, page_sequence=False
            )
        )
        requirements, constraints = write_requirement_files(reading, work)
        report = work / "pip-report.json"
        pip_argv = resolve_argv(
            pip,
            report,
            wheels_only=True,
            index_urls=indexes.index_urls,
            requirements=requirements,
            constraints=constraints,
        )
        items, proc = resolve(pip_argv, report, sealed_env(proxy), verbose=False, err=sys.stderr)
        refused = [v for v in indexes.refusals(proc.stdout + proc.stderr) if not v.allowed]
    if refused or proc.returncode != 0 or not items:
        # a refused wheel is resolved through a stand-in (ADR 0007): pip may succeed with it
        if refused:
            from safe_pip.errors import RefusedError

            raise RefusedError(
                f"resolving {what}: "
                + clean("; ".join(f"{v.filename}: {v.reason}" for v in refused[:3]), limit=900),
                fix="nothing is learned from files whose provenance does not verify; report "
                "them to the project's maintainers",
            )
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
        detail = " / ".join(tail) or f"exit code {proc.returncode}"
        raise CouldNotCheckError(
            f"could not resolve {what} (wheels only, as install resolves): "
            + clean(detail, limit=600),
            fix="check the requirements and -i/--index-url; a project without wheels cannot "
            "be learned (safe-pip installs wheels only by default)",
        )
    return [
        Used(i.name, i.version, "direct" if i.requested else "transitive")
        for i in items
        if i.filename
    ]


def _from_pyproject(path: Path) -> list[str]:
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    project = data.get("project")
    deps = project.get("dependencies") if isinstance(project, dict) else None
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ConfigError(f"{path}: no [project] dependencies list to learn from")
    if not deps:
        raise ConfigError(f"{path}: [project] dependencies is empty: nothing to learn")
    return list(deps)


def _from_pylock(path: Path) -> list[Used]:
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        data = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
    except (OSError, ValueError, TOMLKitError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    packages = data.get("packages")
    if not isinstance(packages, list):
        raise ConfigError(f"{path}: no [[packages]] array")
    out: list[Used] = []
    for pkg in packages:
        if isinstance(pkg, dict) and isinstance(pkg.get("name"), str):
            version = pkg.get("version")
            out.append(Used(pkg["name"], version if isinstance(version, str) else None))
    return out


_ENV_SCRIPT = """\
import json, importlib.metadata as m
out = []
for d in m.distributions():
    name = d.metadata["Name"]
    if name:
        out.append([name, d.version, list(d.requires or [])])
print(json.dumps(out))
"""


def _from_python(python: str) -> list[Used]:
    """The distributions installed for ``python`` (run in its own process, so safe-pip's own
    environment is never what is learned); direct = required by no other distribution."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        proc = subprocess.run(
            [python, "-I", "-c", _ENV_SCRIPT],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"--python {python}: cannot run it ({exc})") from None
    try:
        rows = json.loads(proc.stdout)
    except ValueError:
        rows = None
    if proc.returncode != 0 or not isinstance(rows, list):
        raise ConfigError(
            f"--python {python}: could not list its distributions "
            f"({(proc.stderr or '').strip()[-300:] or proc.returncode})"
        )
    required: set[str] = set()
    seen: dict[str, tuple[str, str]] = {}
    for row in rows:
        if not (isinstance(row, list) and len(row) == 3):
            continue
        name, version, requires = row
        if not isinstance(name, str) or not isinstance(version, str):
            continue
        key = canonicalize_name(name)
        seen.setdefault(key, (name, version))
        for text in requires if isinstance(requires, list) else []:
            try:
                req = Requirement(str(text))
            except InvalidRequirement:
                continue
            if req.marker is not None and "extra" in str(req.marker):
                continue
            required.add(canonicalize_name(req.name))
    return sorted(
        (
            Used(name, version, "transitive" if key in required else "direct")
            for key, (name, version) in seen.items()
        ),
        key=lambda u: u.name.lower(),
    )


def used_projects(args: LearnOptions, index_url: str) -> list[Used]:
    import os

    if args.requirements:
        path = Path(args.requirements)
        if not path.is_file():
            raise ConfigError(f"{path}: no such requirements file")
        return _resolve(["-r", str(path)], index_url, str(path), args)
    if args.pyproject:
        path = Path(args.pyproject)
        return _resolve(_from_pyproject(path), index_url, f"{path} [project] dependencies", args)
    if args.pylock:
        return _from_pylock(Path(args.pylock))
    python = args.python
    if python is None:
        venv = os.environ.get("VIRTUAL_ENV")
        if not venv:
            raise ConfigError(
                "nothing to learn from: give -r FILE, --pyproject FILE, --pylock FILE or "
                "--python PATH (the interpreter of the environment to learn)"
            )
        python = str(Path(venv) / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
    return _from_python(python)
