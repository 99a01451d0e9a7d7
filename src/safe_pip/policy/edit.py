"""Editing the policy file (``safe-pip allow ...``, ``allow learn``, ``allow review``).

Edits (:class:`PolicyDocument`) go through tomlkit so comments and layout survive, are
re-validated before writing, and are written atomically (temp file in the same directory,
fsync, ``os.replace``). Reading and validating the file is :mod:`safe_pip.policy.file`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from safe_pip.errors import ConfigError
from safe_pip.models import PublisherIdentity
from safe_pip.policy.file import (
    DEFAULT_KEYS,
    POLICY_FILENAME,
    Policy,
    PolicyLocation,
    UnsignedException,
    UnsignedProject,
    find_policy,
    parse_policy,
    parse_toml,
    read_policy_text,
    unwrap_toml,
)


def identity_key(identity: PublisherIdentity) -> tuple[tuple[str, str], ...]:
    """What a policy entry says about a publisher: its PEP 740 table plus the numeric id pins.
    Certificate-only facts (ref, issuer, where the environment came from) are not part of it,
    so the same publisher seen in two releases is the same entry."""
    values = dict(identity.to_table())
    for key in ("repository_id", "repository_owner_id"):
        value = getattr(identity, key)
        if value:
            values[key] = value
    return tuple(sorted(values.items()))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: temp file in the same directory, fsync, replace.

    An existing file's permission bits are kept.
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    mode: int | None = None
    with contextlib.suppress(FileNotFoundError):
        mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode if mode is not None else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):
        try:
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:  # pragma: no cover - some filesystems refuse
            return
        try:
            os.fsync(dfd)
        except OSError:  # pragma: no cover
            pass
        finally:
            os.close(dfd)


_NEW_FILE_HEADER = """\
# safe-pip policy: which publishers may ship each project, and which unsigned releases are
# accepted. Reference: docs/policy.md. Edit by hand or with 'safe-pip allow'.

"""


class PolicyDocument:
    """A policy file opened for editing; comments and layout are preserved.

    ``load`` validates the current content first (an invalid file is not edited), every
    mutation re-validates, and :meth:`save` writes atomically.
    """

    def __init__(self, location: PolicyLocation, text: str) -> None:
        import tomlkit

        if location.path is None:
            raise ValueError("PolicyDocument needs a path")
        self.location = location
        self.path: Path = location.path
        self.original_text = text
        self._doc = parse_toml(text, self.path) if text.strip() else tomlkit.document()
        self.policy = parse_policy(self.text, self.path, pyproject=location.pyproject)

    @classmethod
    def open(
        cls,
        explicit: Path | None = None,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> PolicyDocument:
        """Open the file :func:`load_policy` would read; ``./safe-pip.toml`` (new) when none."""
        loc = find_policy(explicit, cwd=cwd, env=env)
        if loc.path is None:
            path = (Path.cwd() if cwd is None else cwd) / POLICY_FILENAME
            loc = PolicyLocation(path, False, False)
        else:
            path = loc.path
        text = read_policy_text(path) if loc.exists else ""
        if not loc.exists and not loc.pyproject:
            text = _NEW_FILE_HEADER
        return cls(loc, text)

    @property
    def text(self) -> str:
        import tomlkit

        return tomlkit.dumps(self._doc)

    def _root(self, create: bool) -> Any:
        """The container holding defaults/package/unsigned (the doc or [tool.safe-pip])."""
        import tomlkit

        if not self.location.pyproject:
            return self._doc
        if "tool" not in self._doc:
            if not create:
                return None
            self._doc.add("tool", tomlkit.table(is_super_table=True))
        tool = self._doc["tool"]
        if "safe-pip" not in tool:
            if not create:
                return None
            tool.add("safe-pip", tomlkit.table(is_super_table=True))
        return tool["safe-pip"]

    def _revalidate(self) -> Policy:
        self.policy = parse_policy(self.text, self.path, pyproject=self.location.pyproject)
        return self.policy

    def _aot(self, key: str, create: bool) -> Any:
        import tomlkit

        root = self._root(create)
        if root is None:
            return None
        if key not in root:
            if not create:
                return None
            root.append(key, tomlkit.aot())
        return root[key]

    @staticmethod
    def _publisher_item(identity: PublisherIdentity) -> Any:
        """An inline table written as ``{ kind = "GitHub", repository = ..., ... }``."""
        import tomlkit

        values: dict[str, str] = dict(identity.to_table())
        for k in ("repository_id", "repository_owner_id"):
            value = getattr(identity, k)
            if value:
                values[k] = value
        body = ", ".join(f"{k} = {tomlkit.item(v).as_string()}" for k, v in values.items())
        return tomlkit.parse(f"x = {{ {body} }}\n")["x"]

    def add_package(
        self, name: str, publishers: Iterable[PublisherIdentity]
    ) -> list[PublisherIdentity]:
        """Add publishers for ``name`` (creating its [[package]] entry). Returns the
        publishers that changed the file: new ones, and listed ones whose numeric id pins
        (``repository_id``, ``repository_owner_id``) were added or replaced.

        Publishers are compared by :func:`identity_key` (table plus id pins), never by
        certificate-only facts, so adding what is already listed changes nothing."""
        import tomlkit

        canon = canonicalize_name(name)
        pubs: list[PublisherIdentity] = []
        for p in publishers:
            if all(identity_key(p) != identity_key(q) for q in pubs):
                pubs.append(p)
        if not pubs:
            raise ConfigError("allow add needs at least one --publisher")
        existing = self.policy.packages.get(canon)
        changed: list[PublisherIdentity] = []
        if existing is not None:
            aot = self._aot("package", create=False)
            for table in aot:
                if canonicalize_name(str(table.get("name", ""))) != canon:
                    continue
                arr = table["publishers"]
                have = list(existing.publishers)
                for p in pubs:
                    if any(identity_key(p) == identity_key(q) for q in have):
                        continue
                    pins = p.repository_id or p.repository_owner_id
                    same = [i for i, q in enumerate(have) if q.to_table() == p.to_table()]
                    if pins and same:
                        # the same publisher by name: pin (or re-pin) its numeric ids
                        for i in same:
                            arr[i] = self._publisher_item(p)
                            have[i] = p
                    else:
                        arr.append(self._publisher_item(p))
                        have.append(p)
                    changed.append(p)
                if changed and len(arr) > 1:
                    arr.multiline(True)
                break
        else:
            entry = tomlkit.table()
            entry["name"] = name
            arr = tomlkit.array()
            for p in pubs:
                changed.append(p)
                arr.append(self._publisher_item(p))
            if len(arr) > 1:
                arr.multiline(True)
            entry["publishers"] = arr
            entry.add(tomlkit.nl())
            self._aot("package", create=True).append(entry)
        self._revalidate()
        return changed

    def set_default(self, key: str, value: bool | str | int) -> bool:
        """Set ``[defaults] key = value`` (validated like a hand-written file). Returns
        whether the file changed."""
        import tomlkit

        if key not in DEFAULT_KEYS:
            raise ConfigError(f"unknown default {key!r}; known: " + ", ".join(DEFAULT_KEYS))
        root = self._root(create=True)
        if "defaults" not in root:
            root.add("defaults", tomlkit.table())  # a [defaults] header is valid anywhere
        defaults = root["defaults"]
        before = defaults.get(key)
        if (
            before is not None
            and unwrap_toml(before) == value
            and type(unwrap_toml(before)) is type(value)
        ):
            return False
        defaults[key] = value
        try:
            self._revalidate()
        except ConfigError:
            if before is None:
                del defaults[key]
            else:
                defaults[key] = before
            raise
        return True

    def remove_package(self, name: str) -> tuple[int, int]:
        """Remove ``name``'s [[package]] and [[unsigned]] entries: (packages, unsigned) removed."""
        canon = canonicalize_name(name)
        counts = []
        for key in ("package", "unsigned", "unsigned-project"):
            aot = self._aot(key, create=False)
            removed = 0
            if aot is not None:
                for idx in reversed(range(len(aot))):
                    if canonicalize_name(str(aot[idx].get("name", ""))) == canon:
                        del aot[idx]
                        removed += 1
                if len(aot) == 0:
                    root = self._root(create=False)
                    del root[key]
            counts.append(removed)
        self._revalidate()
        return counts[0], counts[1] + counts[2]

    def add_unsigned(
        self,
        name: str,
        *,
        versions: str,
        reason: str,
        expires: date | None = None,
        sha256: Sequence[str] = (),
    ) -> UnsignedException:
        """Append an [[unsigned]] entry (validated like a hand-written one)."""
        import tomlkit

        entry = tomlkit.table()
        entry["name"] = name
        entry["versions"] = versions
        if sha256:
            entry["sha256"] = [h.lower() for h in sha256]
        entry["reason"] = reason
        if expires is not None:
            entry["expires"] = expires
        entry.add(tomlkit.nl())
        aot = self._aot("unsigned", create=True)
        aot.append(entry)
        try:
            policy = self._revalidate()
        except ConfigError:
            del aot[len(aot) - 1]
            raise
        return policy.unsigned[-1]

    def add_unsigned_project(
        self, name: str, *, reason: str, expires: date | None = None
    ) -> UnsignedProject | None:
        """Add (or update) the ``[[unsigned-project]]`` entry for ``name``; None when an equal
        entry is already there."""
        import tomlkit

        canon = canonicalize_name(name)
        have = self.policy.unsigned_projects.get(canon)
        if have is not None and have.reason == reason.strip() and have.expires == expires:
            return None
        before = self.text
        aot = self._aot("unsigned-project", create=True)
        entry = None
        for table in aot:
            if canonicalize_name(str(table.get("name", ""))) == canon:
                entry = table
                break
        if entry is None:
            entry = tomlkit.table()
            entry["name"] = name
            entry["reason"] = reason.strip()
            if expires is not None:
                entry["expires"] = expires
            entry.add(tomlkit.nl())
            aot.append(entry)
        else:
            entry["reason"] = reason.strip()
            if expires is not None:
                entry["expires"] = expires
            elif "expires" in entry:
                del entry["expires"]
        try:
            policy = self._revalidate()
        except ConfigError:
            self._doc = parse_toml(before, self.path) if before.strip() else tomlkit.document()
            self._revalidate()
            raise
        return policy.unsigned_projects[canon]

    def changed(self) -> bool:
        return self.text != self.original_text

    def save(self) -> None:
        """Re-validate and write atomically."""
        text = self.text
        parse_policy(text, self.path, pyproject=self.location.pyproject)
        atomic_write_text(self.path, text)
        self.original_text = text
