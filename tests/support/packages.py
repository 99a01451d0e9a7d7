"""Builders for tiny, real, reproducible distributions (wheels and sdists).

The wheels install with real `pip install`; the sdists build with real pip through a
tiny in-tree PEP 517 backend (`backend-path`), so no setuptools is needed. Contents
and timestamps are fixed, so the same arguments always give the same bytes.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import re
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from packaging.tags import parse_tag
from packaging.utils import canonicalize_name
from packaging.version import Version

__all__ = [
    "build_sdist",
    "build_wheel",
    "dist_filename_name",
    "module_name",
    "sha256_file",
]

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_TAR_MTIME = 315532800  # 1980-01-01T00:00:00Z


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def dist_filename_name(name: str) -> str:
    """The project name as it appears in wheel and sdist filenames (PEP 427 / PEP 625)."""
    return str(canonicalize_name(name)).replace("-", "_")


def module_name(name: str) -> str:
    """The importable top-level module a builder puts in the distribution."""
    return dist_filename_name(name)


def _version(version: str) -> str:
    """The normalized version (what build backends put in filenames and METADATA)."""
    return str(Version(version))


def _metadata(name: str, version: str, requires: Iterable[str]) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: Tiny test distribution {name} {version} built by safe-pip's tests",
    ]
    lines += [f"Requires-Dist: {req}" for req in requires]
    return "\n".join(lines) + "\n"


def _module_source(name: str, version: str) -> str:
    return f'"""{name} {version}: a tiny test package."""\n\n__version__ = "{version}"\n'


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _zip_write(zf: zipfile.ZipFile, arcname: str, data: bytes) -> None:
    info = zipfile.ZipInfo(arcname, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100644 & 0xFFFF) << 16
    zf.writestr(info, data)


def _wheel_bytes(
    name: str,
    version: str,
    files: dict[str, str],
    requires: Sequence[str],
    tag: str,
) -> bytes:
    dist_info = f"{dist_filename_name(name)}-{version}.dist-info"
    wheel_tags = "".join(f"Tag: {t}\n" for t in sorted(str(t) for t in parse_tag(tag)))
    pure = "true" if tag.endswith("-none-any") else "false"
    entries: list[tuple[str, bytes]] = [(p, c.encode()) for p, c in sorted(files.items())]
    entries += [
        (f"{dist_info}/METADATA", _metadata(name, version, requires).encode()),
        (
            f"{dist_info}/WHEEL",
            (
                "Wheel-Version: 1.0\nGenerator: safe-pip-tests\n"
                f"Root-Is-Purelib: {pure}\n{wheel_tags}"
            ).encode(),
        ),
        (f"{dist_info}/top_level.txt", f"{module_name(name)}\n".encode()),
    ]
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in entries)
    record += f"{dist_info}/RECORD,,\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, data in entries:
            _zip_write(zf, path, data)
        _zip_write(zf, f"{dist_info}/RECORD", record.encode())
    return buf.getvalue()


def build_wheel(
    dest_dir: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    files: dict[str, str] | None = None,
    tag: str = "py3-none-any",
) -> Path:
    """Write `{name}-{version}-{tag}.whl` into `dest_dir` and return its path.

    The wheel holds `<module>/__init__.py` (module = normalized project name, with
    `__version__`), any extra `files` (archive path -> text; they may replace the
    default module), and a proper `.dist-info` (METADATA with Requires-Dist, WHEEL,
    RECORD with sha256).
    """
    version = _version(version)
    content = {f"{module_name(name)}/__init__.py": _module_source(name, version)}
    content.update(files or {})
    data = _wheel_bytes(name, version, content, requires, tag)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{dist_filename_name(name)}-{version}-{tag}.whl"
    path.write_bytes(data)
    return path


# An in-tree PEP 517 backend: builds a wheel from the sdist's PKG-INFO and module
# directory with only the standard library (so no setuptools download is needed).
_BACKEND = r'''"""Tiny in-tree PEP 517 backend used by safe-pip's test sdists."""

import base64
import email.parser
import hashlib
import io
import os
import tarfile
import zipfile

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _meta():
    with open(os.path.join(_ROOT, "PKG-INFO"), encoding="utf-8") as f:
        text = f.read()
    return text, email.parser.Parser().parsestr(text)


def _norm(name):
    out = ""
    for ch in name.lower():
        out += "_" if ch in "-_." else ch
    while "__" in out:
        out = out.replace("__", "_")
    return out


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def _record_hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def _write(zf, arcname, data):
    info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100644 & 0xFFFF) << 16
    zf.writestr(info, data)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    text, meta = _meta()
    name, version = _norm(meta["Name"]), meta["Version"]
    dist_info = name + "-" + version + ".dist-info"
    entries = []
    pkg = os.path.join(_ROOT, name)
    for dirpath, _dirs, filenames in sorted(os.walk(pkg)):
        for fn in sorted(filenames):
            if fn.endswith(".pyc"):
                continue
            full = os.path.join(dirpath, fn)
            rel = os.path.relpath(full, _ROOT).replace(os.sep, "/")
            with open(full, "rb") as f:
                entries.append((rel, f.read()))
    metadata = "\n".join(
        line for line in text.splitlines() if not line.startswith("Metadata-Version")
    )
    metadata = "Metadata-Version: 2.1\n" + metadata + "\n"
    entries.append((dist_info + "/METADATA", metadata.encode()))
    entries.append((
        dist_info + "/WHEEL",
        b"Wheel-Version: 1.0\nGenerator: safe-pip-tests-backend\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    ))
    record = "".join(p + "," + _record_hash(d) + "," + str(len(d)) + "\n" for p, d in entries)
    record += dist_info + "/RECORD,,\n"
    filename = name + "-" + version + "-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        for p, d in entries:
            _write(zf, p, d)
        _write(zf, dist_info + "/RECORD", record.encode())
    return filename


def build_sdist(sdist_directory, config_settings=None):
    _text, meta = _meta()
    base = _norm(meta["Name"]) + "-" + meta["Version"]
    filename = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as tf:
        tf.add(_ROOT, arcname=base)
    return filename
'''


def _pyproject(
    name: str, version: str, requires: Sequence[str], build_requires: Sequence[str]
) -> str:
    def toml_list(items: Sequence[str]) -> str:
        return "[" + ", ".join(_toml_str(i) for i in items) + "]"

    return (
        "[build-system]\n"
        f"requires = {toml_list(build_requires)}\n"
        'build-backend = "tiny_backend"\n'
        'backend-path = ["_backend"]\n'
        "\n"
        "[project]\n"
        f"name = {_toml_str(name)}\n"
        f"version = {_toml_str(version)}\n"
        f"dependencies = {toml_list(requires)}\n"
    )


def _toml_str(value: str) -> str:
    if re.search(r'["\\\x00-\x1f]', value):
        raise ValueError(f"unsupported character in {value!r}")
    return f'"{value}"'


def build_sdist(
    dest_dir: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    build_requires: Sequence[str] = (),
) -> Path:
    """Write `{name}-{version}.tar.gz` (PEP 625 name) into `dest_dir` and return its path.

    It holds PKG-INFO, the module, and a pyproject.toml whose `[build-system] requires`
    is `build_requires` and whose backend is a tiny stdlib-only in-tree backend
    (`backend-path`), so `pip install` of it needs nothing else unless
    `build_requires` names something.
    """
    version = _version(version)
    base = f"{dist_filename_name(name)}-{version}"
    members: list[tuple[str, bytes]] = [
        ("PKG-INFO", _metadata(name, version, requires).encode()),
        ("pyproject.toml", _pyproject(name, version, requires, build_requires).encode()),
        ("_backend/tiny_backend.py", _BACKEND.encode()),
        (f"{module_name(name)}/__init__.py", _module_source(name, version).encode()),
    ]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for dirname in sorted({f"{base}/{p.rsplit('/', 1)[0]}" for p, _ in members if "/" in p}):
            _tar_add(tf, dirname, None)
        for path, data in sorted(members):
            _tar_add(tf, f"{base}/{path}", data)
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, filename="") as g:
        g.write(raw.getvalue())
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / f"{base}.tar.gz"
    out.write_bytes(gz.getvalue())
    return out


def _tar_add(tf: tarfile.TarFile, arcname: str, data: bytes | None) -> None:
    info = tarfile.TarInfo(arcname)
    info.mtime = _TAR_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if data is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tf.addfile(info)
    else:
        info.size = len(data)
        info.mode = 0o644
        tf.addfile(info, io.BytesIO(data))
