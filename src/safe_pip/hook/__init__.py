"""The hook face (``safe-pip hook``): point pip and uv at a ``safe-pip serve``, and undo it.
May import check, options and the rooms below them (today it needs only errors).

What is written, per scope (``user``, ``venv``, ``global``):

- pip: the pip.conf / pip.ini pip reads at that level. ``index-url`` is the server, and in
  ``[global]`` and every command section that takes index options (and any section another
  level sets a source in) ``extra-index-url``, ``find-links`` are set empty and ``no-index``
  false. pip reads levels global < user < site (venv) < ``PIP_CONFIG_FILE`` < ``PIP_*``
  variables, key by key, so this overrides every lower level's sources; a higher level or a
  variable that sets one is refused at install (``--force`` writes anyway) and named by
  ``status``.
- uv: the user or system ``uv.toml`` (uv has no per-environment configuration). uv
  *concatenates* arrays across levels, so another level's indexes cannot be switched off from
  here: install refuses while one sets any (``--force`` writes anyway) and ``status`` names it.

Every file written gets a manifest beside it (``<file>.safe-pip-hook.json``) holding the
original bytes (or that there was none) and the sha256 of what was written; ``uninstall``
puts the original bytes back exactly, and refuses when the file changed since (``--force``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from safe_pip.errors import SafePipError

Scope = Literal["user", "venv", "global"]
SCOPES: tuple[Scope, ...] = ("user", "venv", "global")
MANIFEST_SUFFIX = ".safe-pip-hook.json"
MARK = "safe-pip hook"

#: pip options that add or remove a place pip takes packages from (``pypi-url`` is pip's other
#: spelling of ``--index-url``: the later of the two in a section wins, so it is a source too).
PIP_SOURCE_KEYS = ("index-url", "pypi-url", "extra-index-url", "find-links", "no-index")
#: pip's [global] and the commands that take index options.
PIP_SECTIONS = ("global", "install", "download", "wheel", "lock", "index")
#: environment variables that give pip a source, or stop it reading our file.
PIP_ENV = (
    "PIP_INDEX_URL",
    "PIP_PYPI_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_NO_INDEX",
    "PIP_CONFIG_FILE",
    "PIP_ISOLATED",
)
#: uv settings (top level and in [pip]) that add a source (``torch-backend``: uv takes every
#: PyTorch-ecosystem package from download.pytorch.org instead of the configured index;
#: ``sources``: a project's ``[tool.uv.sources]``, a git, URL or path source per package).
UV_SOURCE_KEYS = (
    "index",
    "index-url",
    "extra-index-url",
    "find-links",
    "no-index",
    "torch-backend",
    "sources",
)
UV_ENV = (
    "UV_INDEX",
    "UV_DEFAULT_INDEX",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_TORCH_BACKEND",
    "UV_CONFIG_FILE",
    "UV_NO_CONFIG",
)


#: The machine's configuration directory (Linux, BSD): pip reads ``pip.conf`` there last of the
#: global level, uv its ``uv/uv.toml`` when no ``$XDG_CONFIG_DIRS`` one exists. Tests relocate
#: it; nothing else changes it.
SYSTEM_CONFIG_DIR = Path("/etc")


class HookError(SafePipError):
    """The hook cannot be installed or removed as asked (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Source:
    """Another place pip or uv would take packages from."""

    tool: Literal["pip", "uv"]
    where: str  # a file path or an environment variable
    key: str
    value: str

    def describe(self) -> str:
        return f"{self.tool}: {self.where}: {self.key} = {self.value}"


@dataclass
class Target:
    """One configuration file the hook writes."""

    tool: Literal["pip", "uv"]
    scope: Scope
    path: Path

    @property
    def manifest(self) -> Path:
        return self.path.with_name(self.path.name + MANIFEST_SUFFIX)


@dataclass
class Plan:
    targets: list[Target]
    notes: list[str] = field(default_factory=list)


# -- where pip and uv read configuration ---------------------------------------------------------


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def _xdg_config_home(env: Mapping[str, str]) -> Path:
    value = env.get("XDG_CONFIG_HOME")
    return Path(value) if value and os.path.isabs(value) else _home(env) / ".config"


def _xdg_config_dirs(env: Mapping[str, str]) -> list[Path]:
    dirs = [Path(p) for p in (env.get("XDG_CONFIG_DIRS") or "").split(os.pathsep) if p]
    return dirs or [Path("/etc/xdg")]


def pip_files(scope: Scope, env: Mapping[str, str], venv: Path | None = None) -> list[Path]:
    """The files pip reads at ``scope``, in pip's order (a later one wins)."""
    win = sys.platform == "win32"
    name = "pip.ini" if win else "pip.conf"
    if scope == "venv":
        assert venv is not None
        return [venv / name]
    if scope == "user":
        if win:
            return [Path(env.get("APPDATA") or _home(env)) / "pip" / name]
        legacy = _home(env) / ".pip" / name
        if sys.platform == "darwin":
            mac = _home(env) / "Library" / "Application Support" / "pip" / name
            return [legacy, mac, _xdg_config_home(env) / "pip" / name]
        return [legacy, _xdg_config_home(env) / "pip" / name]
    if win:
        return [Path(env.get("PROGRAMDATA") or r"C:\ProgramData") / "pip" / name]
    if sys.platform == "darwin":
        return [Path("/Library/Application Support/pip") / name]
    return [d / "pip" / name for d in _xdg_config_dirs(env)] + [SYSTEM_CONFIG_DIR / name]


def uv_file(scope: Scope, env: Mapping[str, str]) -> Path | None:
    """The uv.toml uv reads at ``scope`` (None: uv has no such level)."""
    if scope == "venv":
        return None
    if scope == "user":
        if sys.platform == "win32":
            return Path(env.get("APPDATA") or _home(env)) / "uv" / "uv.toml"
        return _xdg_config_home(env) / "uv" / "uv.toml"
    if sys.platform == "win32":
        return Path(env.get("SYSTEMDRIVE", "C:") + "\\") / "ProgramData" / "uv" / "uv.toml"
    for d in _xdg_config_dirs(env):  # uv reads the first system file found, XDG first
        if (d / "uv" / "uv.toml").is_file():
            return d / "uv" / "uv.toml"
    return SYSTEM_CONFIG_DIR / "uv" / "uv.toml"


def venv_python(venv: Path) -> Path:
    if sys.platform == "win32":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def plan(scope: Scope, env: Mapping[str, str] | None = None, venv: Path | None = None) -> Plan:
    e = _env(env)
    p = Plan([Target("pip", scope, pip_files(scope, e, venv)[-1])])
    uv = uv_file(scope, e)
    if uv is None:
        p.notes.append(
            "uv has no per-environment configuration: uv is not hooked for --venv (use --user "
            "or --global, or `[[tool.uv.index]]` in the project's pyproject.toml)"
        )
    else:
        p.targets.append(Target("uv", scope, uv))
    return p


# -- reading other levels ------------------------------------------------------------------------


def _norm_pip_key(key: str) -> str:
    return key.strip().lower().lstrip("-").replace("_", "-")


_SECTION = re.compile(r"^\s*\[(?P<name>[^\]]*)\]\s*$")
_KEY = re.compile(r"^(?P<key>[^\s=:#;][^=:]*?)\s*[=:](?P<value>.*)$")


def _pip_items(text: str) -> list[tuple[str, str, str]]:
    """(section, normalized key, value) of a pip config file (continuation lines joined)."""
    out: list[tuple[str, str, str]] = []
    section = ""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        m = _SECTION.match(line)
        if m:
            section = m.group("name").strip().lower()
            continue
        if line[:1] in (" ", "\t") and out:
            s, k, v = out[-1]
            out[-1] = (s, k, (v + " " + line.strip()).strip())
            continue
        m = _KEY.match(line)
        if m:
            out.append((section, _norm_pip_key(m.group("key")), m.group("value").strip()))
    return out


def pip_sources(path: Path, *, ours: str | None = None) -> list[Source]:
    """Source settings in one pip config file (empty values and our own index-url are not
    sources)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found = []
    for section, key, value in _pip_items(text):
        if key not in PIP_SOURCE_KEYS or not value:
            continue
        if key == "no-index" and value.lower() in ("0", "false", "no", "off"):
            continue
        if key == "index-url" and ours is not None and value.rstrip("/") == ours.rstrip("/"):
            continue
        found.append(Source("pip", str(path), f"{section}.{key}", value))
    return found


def _toml(path: Path) -> dict[str, Any] | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
    except (OSError, ValueError):
        return None
    return data


def uv_sources(path: Path, *, ours: str | None = None) -> list[Source]:
    data = _toml(path)
    if data is None:
        return []
    if path.name == "pyproject.toml":
        tool = data.get("tool")
        data = tool.get("uv") if isinstance(tool, dict) else None
        if not isinstance(data, dict):
            return []
    found: list[Source] = []
    for prefix, table in (("", data), ("pip.", data.get("pip"))):
        if not isinstance(table, dict):
            continue
        for key in UV_SOURCE_KEYS:
            value = table.get(key)
            if value in (None, False, [], ""):
                continue
            if key == "index" and isinstance(value, list) and ours is not None:
                value = [
                    i
                    for i in value
                    if not (
                        isinstance(i, dict)
                        and str(i.get("url", "")).rstrip("/") == ours.rstrip("/")
                        and i.get("name") == "safe-pip"
                    )
                ]
                if not value:
                    continue
            found.append(Source("uv", str(path), prefix + key, json.dumps(value)))
    return found


def env_sources(env: Mapping[str, str] | None = None) -> list[Source]:
    e = _env(env)
    out = []
    for var in PIP_ENV:
        value = e.get(var)
        if value is None or (var == "PIP_NO_INDEX" and value.lower() in ("0", "false", "no")):
            continue
        out.append(Source("pip", "environment", var, value))
    for var in UV_ENV:
        value = e.get(var)
        if value is None or (var in ("UV_NO_INDEX", "UV_NO_CONFIG") and value in ("0", "false")):
            continue
        out.append(Source("uv", "environment", var, value))
    return out


def uv_project_files(cwd: Path) -> list[Path]:
    """The project-level file uv would read in ``cwd`` (uv.toml wins over pyproject.toml)."""
    for d in (cwd, *cwd.parents):
        if (d / "uv.toml").is_file():
            return [d / "uv.toml"]
        pp = d / "pyproject.toml"
        if pp.is_file():
            data = _toml(pp)
            tool = data.get("tool") if data else None
            if isinstance(tool, dict) and "uv" in tool:
                return [pp]
    return []


def higher_sources(
    scope: Scope, env: Mapping[str, str] | None = None, venv: Path | None = None
) -> list[Source]:
    """Sources a hook at ``scope`` cannot switch off: pip levels above it, the environment,
    and (arrays concatenate in uv) every other uv level."""
    e = _env(env)
    found = env_sources(e)
    order: list[Scope] = ["global", "user", "venv"]
    above = order[order.index(scope) + 1 :]
    for level in above:
        if level == "venv":
            active = e.get("VIRTUAL_ENV")
            if not active:
                continue
            files = pip_files("venv", e, Path(active))
        else:
            files = pip_files(level, e)
        for f in files:
            found += pip_sources(f)
    if scope != "venv":
        uv_levels: tuple[Scope, ...] = ("user", "global")
        for level in uv_levels:
            uv = uv_file(level, e) if level != scope else None
            if uv is not None:
                found += uv_sources(uv)
    return found


# -- writing ---------------------------------------------------------------------------------


def _pip_block(url: str) -> list[str]:
    return [f"index-url = {url}", "extra-index-url =", "find-links =", "no-index = false"]


def edit_pip_conf(original: str, url: str, extra_sections: Iterable[str] = ()) -> str:
    """``original`` with every source key removed and ours set in each managed section."""
    nl = "\r\n" if "\r\n" in original else "\n"
    sections = list(dict.fromkeys([*PIP_SECTIONS, *extra_sections]))
    out: list[str] = []
    seen: set[str] = set()
    skipping = False
    for line in original.splitlines():
        m = _SECTION.match(line)
        if m:
            skipping = False
            out.append(line)
            name = m.group("name").strip().lower()
            if name in sections and name not in seen:
                seen.add(name)
                out.append(f"# {MARK}: every package through {url}; other sources off")
                out.extend(_pip_block(url))
            continue
        if skipping and line[:1] in (" ", "\t") and line.strip():
            continue  # continuation of a removed key
        skipping = False
        km = _KEY.match(line) if not line.lstrip().startswith(("#", ";")) else None
        if km and line[:1] not in (" ", "\t") and _norm_pip_key(km.group("key")) in PIP_SOURCE_KEYS:
            skipping = True
            continue
        out.append(line)
    missing = [s for s in sections if s not in seen]
    if missing:
        if out and out[-1].strip():
            out.append("")
        if not original:
            out.append(f"# Written by `{MARK} install`; `safe-pip hook uninstall` removes it.")
        for s in missing:
            out.append(f"[{s}]")
            out.append(f"# {MARK}: every package through {url}; other sources off")
            out.extend(_pip_block(url))
    return nl.join(out) + nl


def edit_uv_toml(original: str, url: str) -> str:
    import tomlkit

    doc = tomlkit.parse(original) if original.strip() else tomlkit.document()
    if not original.strip():
        doc.add(
            tomlkit.comment(f"Written by `{MARK} install`; `safe-pip hook uninstall` removes it.")
        )
    for key in UV_SOURCE_KEYS:
        if key in doc:
            del doc[key]
    pip_table = doc.get("pip")
    if isinstance(pip_table, dict):
        for key in UV_SOURCE_KEYS:
            if key in pip_table:
                del pip_table[key]
    index = tomlkit.aot()
    entry = tomlkit.table()
    entry.add("name", "safe-pip")
    entry.add("url", url)
    entry.add("default", True)
    index.append(entry)
    doc["index"] = index
    return tomlkit.dumps(doc)


@dataclass(frozen=True)
class Written:
    target: Target
    existed: bool


def _atomic_write(path: Path, data: bytes, mode: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.safe-pip-tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


def install(
    url: str,
    scope: Scope,
    *,
    venv: Path | None = None,
    env: Mapping[str, str] | None = None,
    force: bool = False,
) -> tuple[list[Written], list[Source], list[str]]:
    """Write the hook for ``scope``. Returns what was written, the sources that remain
    (only with ``force``; otherwise they raise HookError) and notes."""
    e = _env(env)
    if scope == "venv" and (venv is None or not venv_python(venv).exists()):
        raise HookError(
            f"{venv}: not a virtual environment (no {venv_python(venv or Path('.')).name})",
            fix="pass the directory of a virtual environment: --venv PATH/TO/.venv",
        )
    remaining = higher_sources(scope, e, venv)
    if remaining and not force:
        lines = "\n  ".join(s.describe() for s in remaining)
        raise HookError(
            f"other package sources would bypass the hook:\n  {lines}",
            fix="remove these settings (or unset the variables) and run again; "
            "--force writes the hook anyway (`safe-pip hook status` keeps naming them)",
        )
    p = plan(scope, e, venv)
    # sections other pip levels set sources in are switched off in ours too
    extra: list[str] = []
    for level in SCOPES:
        if level == "venv" and scope != "venv":
            continue
        for f in pip_files(level, e, venv):
            for s in pip_sources(f):
                extra.append(s.key.split(".", 1)[0])
    for t in p.targets:
        if t.path.is_symlink():
            raise HookError(
                f"{t.path} is a symbolic link; the hook would replace the link with a file",
                fix=f"edit the file it points to by hand, or replace the link with a copy of "
                f"it and run again ({os.path.realpath(t.path)})",
            )
    written: list[Written] = []
    for t in p.targets:
        manifest = _read_manifest(t)
        if manifest is not None:
            existed = bool(manifest["existed"])
            original = base64.b64decode(manifest["original"]) if existed else b""
            mode = manifest.get("mode")
        else:
            existed = t.path.is_file()
            try:
                original = t.path.read_bytes() if existed else b""
                mode = t.path.stat().st_mode & 0o7777 if existed else None
            except OSError as exc:
                raise HookError(f"cannot read {t.path}: {exc.strerror or exc}") from None
        text = original.decode("utf-8", "surrogateescape")
        new = edit_pip_conf(text, url, extra) if t.tool == "pip" else edit_uv_toml(text, url)
        data = new.encode("utf-8", "surrogateescape")
        try:
            if manifest is None:
                _atomic_write(
                    t.manifest,
                    json.dumps(
                        {
                            "version": 1,
                            "tool": t.tool,
                            "path": str(t.path),
                            "existed": existed,
                            "original": base64.b64encode(original).decode(),
                            "mode": mode,
                            "index_url": url,
                            "written_sha256": hashlib.sha256(data).hexdigest(),
                        },
                        indent=2,
                    ).encode(),
                    0o644,
                )
            else:
                manifest["written_sha256"] = hashlib.sha256(data).hexdigest()
                manifest["index_url"] = url
                _atomic_write(t.manifest, json.dumps(manifest, indent=2).encode(), 0o644)
            _atomic_write(t.path, data, mode if mode is not None else 0o644)
        except OSError as exc:
            raise HookError(
                f"cannot write {t.path}: {exc.strerror or exc}",
                fix="run with the rights to write there (--global usually needs root), or "
                "choose --user / --venv PATH",
            ) from None
        written.append(Written(t, existed))
    return written, remaining, p.notes


def _read_manifest(t: Target) -> dict[str, Any] | None:
    try:
        raw = t.manifest.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HookError(f"cannot read {t.manifest}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("unknown format")
        base64.b64decode(data["original"], validate=True)
        return data
    except (ValueError, KeyError, TypeError) as exc:
        raise HookError(
            f"{t.manifest}: not a safe-pip hook manifest ({exc})",
            fix=f"restore {t.path} by hand, then delete {t.manifest}",
        ) from None


def uninstall(
    scope: Scope,
    *,
    venv: Path | None = None,
    env: Mapping[str, str] | None = None,
    force: bool = False,
) -> list[tuple[Target, str]]:
    """Put back each file the hook wrote at ``scope``, byte for byte. Returns (target, what
    was done) for each file; raises HookError when a file changed since (unless ``force``)."""
    p = plan(scope, _env(env), venv)
    done: list[tuple[Target, str]] = []
    todo = [(t, m) for t in p.targets if (m := _read_manifest(t)) is not None]
    for t, m in todo:
        try:
            current = t.path.read_bytes()
        except FileNotFoundError:
            current = None
        except OSError as exc:
            raise HookError(f"cannot read {t.path}: {exc.strerror or exc}") from None
        changed = current is None or hashlib.sha256(current).hexdigest() != m["written_sha256"]
        if changed and not force:
            raise HookError(
                f"{t.path} changed since `safe-pip hook install` wrote it; not restoring over "
                "the changes",
                fix="undo the changes, or pass --force to put back the file as it was before "
                "the hook (the later changes are lost)",
            )
    for t, m in todo:
        try:
            if m["existed"]:
                _atomic_write(t.path, base64.b64decode(m["original"]), m.get("mode"))
                what = "restored"
            else:
                t.path.unlink(missing_ok=True)
                what = "removed (there was none before)"
            t.manifest.unlink()
        except OSError as exc:
            raise HookError(f"cannot restore {t.path}: {exc.strerror or exc}") from None
        done.append((t, what))
    return done


# -- status ----------------------------------------------------------------------------------


@dataclass
class Status:
    scope: Scope
    files: list[dict[str, Any]]
    remaining: list[Source]
    pip_effective: dict[str, str] | None
    index_url: str | None
    index_answer: str | None
    index_ok: bool
    notes: list[str]

    @property
    def hooked(self) -> bool:
        return any(f["hooked"] for f in self.files if f["tool"] == "pip")


def pip_effective(python: Path, env: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """``pip config list`` of ``python``, as pip itself merges files and variables (None: that
    interpreter has no pip)."""
    try:
        proc = subprocess.run(
            [str(python), "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(_env(env)),
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            out[name.strip()] = value.strip().strip("'\"")
    return out


def _probe(url: str) -> tuple[bool, str]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, method="GET")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=5) as resp:
            return resp.status == 200, f"answers HTTP {resp.status}"
    except urllib.error.HTTPError as err:
        return False, f"answers HTTP {err.code}"
    except (OSError, ValueError) as exc:
        return False, f"does not answer ({getattr(exc, 'reason', exc)})"


def status(
    scope: Scope,
    *,
    venv: Path | None = None,
    env: Mapping[str, str] | None = None,
    python: Path | None = None,
    cwd: Path | None = None,
) -> Status:
    e = _env(env)
    p = plan(scope, e, venv)
    files: list[dict[str, Any]] = []
    url: str | None = None
    for t in p.targets:
        m = _read_manifest(t)
        intact = False
        if m is not None:
            url = url or str(m.get("index_url"))
            try:
                intact = hashlib.sha256(t.path.read_bytes()).hexdigest() == m["written_sha256"]
            except OSError:
                intact = False
        files.append(
            {
                "tool": t.tool,
                "scope": scope,
                "path": str(t.path),
                "exists": t.path.is_file(),
                "hooked": m is not None,
                "unchanged": intact,
                "index_url": m.get("index_url") if m else None,
            }
        )
    remaining: list[Source] = list(env_sources(e))
    # every pip level, as pip reads them
    for level in SCOPES:
        if level == "venv":
            root = (
                venv
                if scope == "venv"
                else (Path(e["VIRTUAL_ENV"]) if e.get("VIRTUAL_ENV") else None)
            )
            if root is None:
                continue
            fl = pip_files("venv", e, root)
        else:
            fl = pip_files(level, e)
        for f in fl:
            remaining += pip_sources(f, ours=url)
    uv_levels: tuple[Scope, ...] = ("user", "global")
    for level in uv_levels:
        uv = uv_file(level, e)
        if uv is not None:
            remaining += uv_sources(uv, ours=url)
    for f in uv_project_files(cwd or Path.cwd()):
        remaining += uv_sources(f, ours=url)
    # pip's own view decides for pip: a lower level's source our file overrides is not one
    py = python or (venv_python(venv) if venv is not None else None)
    effective = pip_effective(py, e) if py is not None else None
    if effective is not None:
        remaining = [s for s in remaining if s.tool != "pip"]
        for name, value in effective.items():
            key = name.rsplit(".", 1)[-1]
            if key not in PIP_SOURCE_KEYS or not value:
                continue
            if key == "no-index" and value.lower() in ("0", "false", "no", "off"):
                continue
            if key == "index-url" and url is not None and value.rstrip("/") == url.rstrip("/"):
                continue
            if name.startswith(":env:"):
                var = "PIP_" + key.upper().replace("-", "_")
                remaining.append(Source("pip", "environment", var, value))
            else:
                remaining.append(Source("pip", "pip config", name, value))
        if not any(n.rsplit(".", 1)[-1] == "index-url" for n in effective):
            remaining.append(Source("pip", "pip config", "index-url", "(pip's default: PyPI)"))
    ok, answer = _probe(url) if url else (False, None)
    return Status(scope, files, remaining, effective, url, answer, ok, p.notes)
