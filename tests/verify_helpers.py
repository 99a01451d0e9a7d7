"""Shared helpers of the ``safe-pip verify`` tests and benchmark: lockfiles written from what
a local IndexServer serves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from support.index_server import IndexServer
from support.packages import sha256_file


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pylock_text(
    server: IndexServer,
    projects: Sequence[str],
    *,
    identities: Mapping[str, Iterable[Mapping[str, str]]] | None = None,
    hash_override: Mapping[str, str] | None = None,
) -> str:
    """A pylock.toml naming every file the index serves for ``projects`` (wheels as
    [[packages.wheels]] tables, the sdist as [packages.sdist]), with optional
    attestation-identities per project and per-filename sha256 overrides."""
    identities = identities or {}
    hash_override = hash_override or {}
    out = ['lock-version = "1.0"', 'created-by = "safe-pip-tests"', 'requires-python = ">=3.10"']
    for name in projects:
        dists = server.dists(name)
        if not dists:
            raise ValueError(f"{name} is not on the index")
        version = dists[0].version
        out += ["", "[[packages]]", f"name = {_q(name)}", f"version = {_q(version)}"]
        out.append(f"index = {_q(server.index_url)}")
        sdists = [d for d in dists if not d.filename.endswith(".whl")]
        wheels = [d for d in dists if d.filename.endswith(".whl")]
        for d in sdists[:1]:
            sha = hash_override.get(d.filename, sha256_file(d.path))
            out += [
                "",
                "[packages.sdist]",
                f"name = {_q(d.filename)}",
                f"url = {_q(server.file_url(name, d.filename))}",
                f"hashes = {{ sha256 = {_q(sha)} }}",
            ]
        for d in wheels:
            sha = hash_override.get(d.filename, sha256_file(d.path))
            out += [
                "",
                "[[packages.wheels]]",
                f"name = {_q(d.filename)}",
                f"url = {_q(server.file_url(name, d.filename))}",
                f"hashes = {{ sha256 = {_q(sha)} }}",
            ]
        for table in identities.get(name, ()):
            out += ["", "[[packages.attestation-identities]]"]
            out += [f"{k} = {_q(v)}" for k, v in table.items()]
    return "\n".join(out) + "\n"


def requirements_text(server: IndexServer, projects: Sequence[str]) -> str:
    """pip-compile style: ``name==version \\`` then one ``--hash`` line per file."""
    out = [f"--index-url {server.index_url}", ""]
    for name in projects:
        dists = server.dists(name)
        version = dists[0].version
        out.append(f"{name}=={version} \\")
        hashes = [f"    --hash=sha256:{sha256_file(d.path)}" for d in dists]
        out += [h + " \\" for h in hashes[:-1]] + [hashes[-1]]
        out.append(f"    # via -r requirements.in ({name})")
    return "\n".join(out) + "\n"


def uv_lock_text(server: IndexServer, projects: Sequence[str]) -> str:
    out = ["version = 1", 'requires-python = ">=3.10"']
    for name in projects:
        dists = server.dists(name)
        version = dists[0].version
        out += [
            "",
            "[[package]]",
            f"name = {_q(name)}",
            f"version = {_q(version)}",
            f"source = {{ registry = {_q(server.index_url)} }}",
        ]
        sdists = [d for d in dists if not d.filename.endswith(".whl")]
        wheels = [d for d in dists if d.filename.endswith(".whl")]
        for d in sdists[:1]:
            out.append(
                f"sdist = {{ url = {_q(server.file_url(name, d.filename))}, "
                f'hash = "sha256:{sha256_file(d.path)}", size = {d.path.stat().st_size} }}'
            )
        if wheels:
            out.append("wheels = [")
            for d in wheels:
                out.append(
                    f"    {{ url = {_q(server.file_url(name, d.filename))}, "
                    f'hash = "sha256:{sha256_file(d.path)}", size = {d.path.stat().st_size} }},'
                )
            out.append("]")
    return "\n".join(out) + "\n"
