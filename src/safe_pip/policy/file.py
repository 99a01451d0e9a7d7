"""The policy file: find it, load and validate it (errors name file and line).

Where the policy comes from, first match wins (see :func:`load_policy`):

1. ``--policy PATH`` (a ``pyproject.toml`` path means its ``[tool.safe-pip]`` table);
2. ``$SAFE_PIP_POLICY``;
3. ``./safe-pip.toml``;
4. ``[tool.safe-pip]`` in ``./pyproject.toml``;
5. the built-in defaults (:meth:`Policy.default`).

A file that exists but is wrong is a :class:`~safe_pip.errors.ConfigError` whose message starts
with ``path:line:``. Nothing is ever silently defaulted: unknown keys, wrong types, bad
specifiers, bad identities and unknown publisher kinds are all errors.

Editing the file is :mod:`safe_pip.policy.edit`.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from safe_pip.errors import ConfigError
from safe_pip.models import GITHUB, GITLAB, GOOGLE, PublisherIdentity
from safe_pip.policy.age import (
    DEFAULT_INDEX_HISTORY_ANCHOR_AGE,
    DEFAULT_MIN_RELEASE_AGE,
    format_duration,
    parse_duration,
)

POLICY_FILENAME = "safe-pip.toml"
PYPROJECT_FILENAME = "pyproject.toml"
PYPROJECT_TABLE = ("tool", "safe-pip")
ENV_POLICY = "SAFE_PIP_POLICY"

OnChange = Literal["error", "warn"]

# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Defaults:
    """The ``[defaults]`` table."""

    require_attestation: bool = True
    trust_on_first_use: bool = True
    on_publisher_change: OnChange = "error"
    on_attestation_downgrade: OnChange = "error"
    allow_sdist: bool = False
    index_history_depth: int = 5  # how many earlier releases to read on first sight
    # ADR 0012 "Anchor": the window also holds the most recent release published (by the
    # index's upload-time) longer ago than this, so a burst of new releases cannot push every
    # release of the earlier publisher out of it; 0 disables
    index_history_anchor_age: timedelta = DEFAULT_INDEX_HISTORY_ANCHOR_AGE
    # docs/policy.md "Release age": files younger than this are refused-too-new
    min_release_age: timedelta = DEFAULT_MIN_RELEASE_AGE
    on_unknown_release_age: OnChange = "error"  # a file whose age nobody vouches for
    # docs/policy.md "Build context": a release built unlike the earlier ones
    on_build_context_change: OnChange = "warn"
    #: ``verify``: lock entries of local code (uv.lock ``editable`` / ``virtual`` sources: the
    #: project itself, workspace members) carry no provenance; reported either way, they fail
    #: the run unless this is true
    allow_local_sources: bool = False


@dataclass(frozen=True)
class PackageRule:
    """One ``[[package]]`` entry: the project's expected publishers."""

    name: str  # canonicalized
    publishers: tuple[PublisherIdentity, ...]
    line: int | None = None
    min_release_age: timedelta | None = None  # overrides defaults.min-release-age


@dataclass(frozen=True)
class UnsignedException:
    """One ``[[unsigned]]`` entry: unsigned files of ``name`` allowed for ``versions``."""

    name: str  # canonicalized
    versions: SpecifierSet
    sha256: frozenset[str] = frozenset()
    reason: str = ""
    expires: date | None = None
    line: int | None = None
    min_release_age: timedelta | None = None  # overrides defaults / [[package]]

    def expired(self, today: date) -> bool:
        """An exception stops applying on its ``expires`` date (00:00 UTC)."""
        return self.expires is not None and today >= self.expires


@dataclass(frozen=True)
class UnsignedProject:
    """One ``[[unsigned-project]]`` entry: this project publishes no attestations, so its new
    unsigned releases may pass, while its history still wins (docs/policy.md)."""

    name: str  # canonicalized
    reason: str
    expires: date | None = None
    line: int | None = None

    def expired(self, today: date) -> bool:
        return self.expires is not None and today >= self.expires


@dataclass(frozen=True)
class Policy:
    """A validated policy."""

    defaults: Defaults = field(default_factory=Defaults)
    packages: dict[str, PackageRule] = field(default_factory=dict)
    unsigned: tuple[UnsignedException, ...] = ()
    path: Path | None = None
    unsigned_projects: dict[str, UnsignedProject] = field(default_factory=dict)
    #: named by --policy (not found by the usual search): printed fixes must name it too
    explicit: bool = False
    #: ``--min-release-age`` for one run: replaces every release-age setting of the file.
    min_release_age_override: timedelta | None = None

    @classmethod
    def default(cls) -> Policy:
        return cls(defaults=Defaults(), packages={}, unsigned=(), path=None)

    def label(self, line: int | None = None) -> str:
        """``safe-pip.toml:12`` style location for verdict rules and messages."""
        name = self.path.name if self.path is not None else "built-in policy"
        return f"{name}:{line}" if line is not None and self.path is not None else name

    def unsigned_for(self, name: str) -> tuple[UnsignedException, ...]:
        canon = canonicalize_name(name)
        return tuple(u for u in self.unsigned if u.name == canon)

    def with_min_release_age(self, value: timedelta | None) -> Policy:
        """This policy with the command line's ``--min-release-age`` (None: unchanged)."""
        return self if value is None else replace(self, min_release_age_override=value)

    def min_release_age_for(
        self, name: str, exception: UnsignedException | None = None
    ) -> tuple[timedelta, str]:
        """(minimum age, the setting that gave it) for a file of ``name``; ``exception`` is
        the [[unsigned]] entry that allowed it, if any. Most specific wins: the command line,
        then the [[unsigned]] entry, then the [[package]] entry, then [defaults]."""
        if self.min_release_age_override is not None:
            return self.min_release_age_override, "--min-release-age"
        if exception is not None and exception.min_release_age is not None:
            return exception.min_release_age, f"[[unsigned]] at {self.label(exception.line)}"
        rule = self.packages.get(canonicalize_name(name))
        if rule is not None and rule.min_release_age is not None:
            return rule.min_release_age, f"[[package]] {rule.name} at {self.label(rule.line)}"
        where = "defaults.min-release-age"
        if self.path is None:
            where += f" (built-in {format_duration(self.defaults.min_release_age)})"
        return self.defaults.min_release_age, where


# ---------------------------------------------------------------------------------------------
# Publisher identities: tables and the command-line shorthand

_GITHUB_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_GITLAB_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_WORKFLOW = re.compile(r"^[^/\\\s]+\.ya?ml$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DIGITS = re.compile(r"^[0-9]{1,20}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

KIND_KEYS: dict[str, frozenset[str]] = {
    GITHUB: frozenset(
        {"repository", "workflow", "environment", "repository_id", "repository_owner_id"}
    ),
    GITLAB: frozenset(
        {"repository", "workflow_filepath", "environment", "repository_id", "repository_owner_id"}
    ),
    GOOGLE: frozenset({"email"}),
}
KIND_REQUIRED: dict[str, tuple[str, ...]] = {
    GITHUB: ("repository", "workflow"),
    GITLAB: ("repository", "workflow_filepath"),
    GOOGLE: ("email",),
}
_KIND_BY_FOLD = {k.casefold(): k for k in KIND_KEYS}


class IdentityError(ValueError):
    """A publisher identity table or shorthand is malformed. ``key`` names the bad key."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def _check_github_repository(value: str) -> None:
    if "://" in value or value.startswith("github.com"):
        raise IdentityError(f"repository {value!r} must be 'owner/repo', not a URL", "repository")
    parts = value.split("/")
    if (
        len(parts) != 2
        or not _GITHUB_OWNER.fullmatch(parts[0])
        or not _GITHUB_REPO.fullmatch(parts[1])
    ):
        raise IdentityError(
            f"GitHub repository {value!r} must be 'owner/repo' (e.g. 'pypa/sampleproject')",
            "repository",
        )
    if parts[1] in (".", ".."):
        raise IdentityError(f"GitHub repository {value!r} is not a repository name", "repository")


def _check_gitlab_repository(value: str) -> None:
    if "://" in value:
        raise IdentityError(
            f"repository {value!r} must be 'group/project', not a URL", "repository"
        )
    parts = value.split("/")
    if len(parts) < 2 or not all(_GITLAB_PART.fullmatch(p) for p in parts):
        raise IdentityError(
            f"GitLab repository {value!r} must be 'group[/subgroup...]/project'", "repository"
        )


def validate_identity_table(table: Mapping[str, Any]) -> PublisherIdentity:
    """Validate one PEP 740 publisher table as written in a policy file.

    GitHub needs ``repository`` ('owner/repo') and ``workflow`` (a file name ending in .yml or
    .yaml), GitLab ``repository`` ('group/.../project') and ``workflow_filepath``, Google
    ``email``; GitHub and GitLab may add ``environment``, and may pin ``repository_id`` /
    ``repository_owner_id`` (the numeric ids from the Fulcio certificate). Anything else is an
    :class:`IdentityError`.
    """
    kind = table.get("kind")
    if not isinstance(kind, str) or not kind:
        raise IdentityError('publisher needs kind = "GitHub", "GitLab" or "Google"', "kind")
    if kind not in KIND_KEYS:
        hint = _KIND_BY_FOLD.get(kind.casefold())
        extra = (
            f" (did you mean {hint!r}?)" if hint else ' (expected "GitHub", "GitLab" or "Google")'
        )
        raise IdentityError(f"unknown publisher kind {kind!r}{extra}", "kind")
    allowed = KIND_KEYS[kind]
    values: dict[str, str] = {}
    for key, value in table.items():
        if key == "kind":
            continue
        if key not in allowed:
            raise IdentityError(
                f"unknown key {key!r} for a {kind} publisher (allowed: kind, "
                + ", ".join(sorted(allowed))
                + ")",
                key,
            )
        if key in ("repository_id", "repository_owner_id") and isinstance(value, int):
            if isinstance(value, bool):
                raise IdentityError(f"{key} must be a number", key)
            value = str(value)
        if not isinstance(value, str):
            raise IdentityError(f"{key} must be a string", key)
        if not value or value != value.strip() or _CONTROL.search(value):
            raise IdentityError(f"{key} must be a non-empty string without spaces at the ends", key)
        values[key] = value
    for key in KIND_REQUIRED[kind]:
        if key not in values:
            raise IdentityError(f"a {kind} publisher needs {key!r}", key)
    if kind == GITHUB:
        _check_github_repository(values["repository"])
        if not _WORKFLOW.fullmatch(values["workflow"]):
            raise IdentityError(
                f"workflow {values['workflow']!r} must be the workflow's file name only, "
                "ending in .yml or .yaml (e.g. 'release.yml')",
                "workflow",
            )
    elif kind == GITLAB:
        _check_gitlab_repository(values["repository"])
        path = values["workflow_filepath"]
        if path.startswith("/") or ".." in path.split("/") or not re.search(r"\.ya?ml$", path):
            raise IdentityError(
                f"workflow_filepath {path!r} must be a relative path to a .yml/.yaml file "
                "(e.g. '.gitlab-ci.yml')",
                "workflow_filepath",
            )
    elif kind == GOOGLE and not _EMAIL.fullmatch(values["email"]):
        raise IdentityError(f"email {values['email']!r} is not an email address", "email")
    for key in ("repository_id", "repository_owner_id"):
        if key in values and not _DIGITS.fullmatch(values[key]):
            raise IdentityError(f'{key} must be the numeric id, e.g. "14899596"', key)
    return PublisherIdentity.from_table({"kind": kind, **values})


SHORTHAND_HELP = (
    "github:OWNER/REPO@WORKFLOW.yml | gitlab:GROUP/PROJECT@PATH/TO/.gitlab-ci.yml | google:EMAIL"
)


def parse_publisher_shorthand(text: str, *, environment: str | None = None) -> PublisherIdentity:
    """Parse ``github:owner/repo@release.yml``, ``gitlab:group/proj@.gitlab-ci.yml`` or
    ``google:someone@example.com`` into a validated identity. Raises :class:`IdentityError`."""
    prefix, sep, rest = text.partition(":")
    if not sep or not rest:
        raise IdentityError(f"publisher {text!r} must look like {SHORTHAND_HELP}")
    kind = _KIND_BY_FOLD.get(prefix.strip().casefold())
    if kind is None:
        raise IdentityError(
            f"publisher {text!r}: unknown kind {prefix!r} (use github:, gitlab: or google:)"
        )
    table: dict[str, str] = {"kind": kind}
    if kind == GOOGLE:
        table["email"] = rest
        if environment:
            raise IdentityError("--environment does not apply to a Google publisher")
    else:
        repo, at, workflow = rest.rpartition("@")
        if not at or not repo or not workflow:
            example = (
                "github:pypa/sampleproject@release.yml"
                if kind == GITHUB
                else ("gitlab:group/project@.gitlab-ci.yml")
            )
            raise IdentityError(
                f"publisher {text!r} must name the workflow after '@', e.g. {example}"
            )
        table["repository"] = repo
        table["workflow" if kind == GITHUB else "workflow_filepath"] = workflow
        if environment:
            table["environment"] = environment
    return validate_identity_table(table)


_PLACEHOLDER = re.compile(r"^\W*(REVIEW|TODO|FIXME|XXX|TBD|CHANGEME)\b", re.IGNORECASE)
_PLACEHOLDER_TEXTS = frozenset(
    {"why this unsigned release is acceptable", "why", "reason", "ok", "n/a", "na", "-", "."}
)


def is_placeholder_reason(text: str) -> bool:
    """A reason nobody wrote: ``REVIEW: ...`` (what ``allow learn`` proposes), TODO, FIXME,
    or the documentation's own example. Such a reason never makes an entry count."""
    t = text.strip()
    return not t or bool(_PLACEHOLDER.match(t)) or t.casefold() in _PLACEHOLDER_TEXTS


_PROJECT_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$", re.ASCII)


def validate_project_name(name: str) -> str:
    """A valid project name (PEP 508), canonicalized; :class:`ConfigError` otherwise."""
    if not _PROJECT_NAME.fullmatch(name):
        raise ConfigError(f"{name!r} is not a valid project name")
    return canonicalize_name(name)


def format_shorthand(identity: PublisherIdentity) -> str:
    """The shorthand for ``identity`` (without environment; see :func:`format_publisher_args`)."""
    if identity.kind == GOOGLE:
        return f"google:{identity.email or ''}"
    workflow = identity.workflow if identity.kind == GITHUB else identity.workflow_filepath
    return f"{identity.kind.lower()}:{identity.repository or ''}@{workflow or ''}"


# ---------------------------------------------------------------------------------------------
# Locating lines in TOML text


class _Locator:
    """Map TOML key paths to 1-based line numbers by scanning the (already valid) text.

    A path is a tuple of keys and array indices, e.g. ``("package", 0, "publishers", 1,
    "kind")``. Tables of arrays count their entries in order. :meth:`line` falls back to the
    nearest enclosing path it knows.
    """

    _BARE = re.compile(r"[A-Za-z0-9_-]+")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line_no = 1
        self.lines: dict[tuple[object, ...], int] = {}
        self._aot: dict[tuple[object, ...], int] = {}
        # The text was validated by tomlkit; on anything unexpected keep what was found.
        with contextlib.suppress(IndexError, ValueError):
            self._scan()

    def line(self, *path: object) -> int | None:
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return None

    # -- scanning helpers
    def _peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def _advance(self, n: int = 1) -> None:
        chunk = self.text[self.pos : self.pos + n]
        self.line_no += chunk.count("\n")
        self.pos += n

    def _skip_ws(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c in " \t\r" or (newlines and c == "\n"):
                self._advance()
            elif c == "#":
                end = self.text.find("\n", self.pos)
                self._advance((len(self.text) if end < 0 else end) - self.pos)
            else:
                return

    def _string(self) -> str:
        quote = self._peek(3) if self._peek(3) in ('"""', "'''") else self._peek()
        escapes = quote[0] == '"'
        self._advance(len(quote))
        start = self.pos
        while self.pos < len(self.text):
            if escapes and self._peek() == "\\":
                self._advance(2)
            elif self._peek(len(quote)) == quote:
                break
            else:
                self._advance()
        if len(quote) == 3:  # up to two quote characters may end the content
            while self._peek(4) == quote + quote[0]:
                self._advance()
        value = self.text[start : self.pos]
        self._advance(len(quote))
        if escapes and "\\" in value:
            value = value.encode("utf-8").decode("unicode_escape", errors="ignore")
        return value

    def _key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self._skip_ws(False)
            c = self._peek()
            if c in ('"', "'"):
                parts.append(self._string())
            else:
                m = self._BARE.match(self.text, self.pos)
                if not m:
                    raise ValueError("bad key")
                parts.append(m.group(0))
                self._advance(m.end() - self.pos)
            self._skip_ws(False)
            if self._peek() == ".":
                self._advance()
                continue
            return tuple(parts)

    def _resolve(self, parts: tuple[str, ...]) -> tuple[object, ...]:
        out: list[object] = []
        for part in parts:
            out.append(part)
            count = self._aot.get(tuple(out))
            if count is not None:
                out.append(count - 1)
        return tuple(out)

    def _value(self, path: tuple[object, ...]) -> None:
        self._skip_ws(False)
        c = self._peek()
        if c in ('"', "'"):
            self._string()
        elif c == "[":
            self._advance()
            index = 0
            while True:
                self._skip_ws(True)
                if self._peek() == "]":
                    self._advance()
                    return
                self.lines.setdefault((*path, index), self.line_no)
                self._value((*path, index))
                self._skip_ws(True)
                if self._peek() == ",":
                    self._advance()
                    index += 1
        elif c == "{":
            self._advance()
            while True:
                self._skip_ws(True)
                if self._peek() == "}":
                    self._advance()
                    return
                if self._peek() == ",":
                    self._advance()
                    continue
                line = self.line_no
                key = self._key()
                self.lines.setdefault((*path, *key), line)
                self._skip_ws(False)
                self._advance()  # '='
                self._value((*path, *key))
        else:
            while self.pos < len(self.text) and self.text[self.pos] not in ",]}\n#":
                self._advance()

    def _scan(self) -> None:
        current: tuple[object, ...] = ()
        while True:
            self._skip_ws(True)
            if self.pos >= len(self.text):
                return
            line = self.line_no
            if self._peek(2) == "[[":
                self._advance(2)
                parts = self._key()
                self._advance(2)  # ']]'
                parent = self._resolve(parts[:-1])
                aot_path = (*parent, parts[-1])
                count = self._aot.get(aot_path, 0)
                self._aot[aot_path] = count + 1
                current = (*aot_path, count)
                self.lines.setdefault(aot_path, line)
                self.lines[current] = line
            elif self._peek() == "[":
                self._advance()
                parts = self._key()
                self._advance()  # ']'
                current = self._resolve(parts)
                self.lines.setdefault(current, line)
            else:
                key = self._key()
                full = (*current, *key)
                self.lines.setdefault(full, line)
                self._skip_ws(False)
                self._advance()  # '='
                self._value(full)


# ---------------------------------------------------------------------------------------------
# Parsing and validation

DEFAULT_KEYS: dict[str, str] = {
    "require-attestation": "require_attestation",
    "trust-on-first-use": "trust_on_first_use",
    "on-publisher-change": "on_publisher_change",
    "on-attestation-downgrade": "on_attestation_downgrade",
    "allow-sdist": "allow_sdist",
    "index-history-depth": "index_history_depth",
    "index-history-anchor-age": "index_history_anchor_age",
    "min-release-age": "min_release_age",
    "on-unknown-release-age": "on_unknown_release_age",
    "on-build-context-change": "on_build_context_change",
    "allow-local-sources": "allow_local_sources",
}
_BOOL_DEFAULTS = {
    "require-attestation",
    "trust-on-first-use",
    "allow-sdist",
    "allow-local-sources",
}
_CHANGE_DEFAULTS = {
    "on-publisher-change",
    "on-attestation-downgrade",
    "on-unknown-release-age",
    "on-build-context-change",
}
_DURATION_DEFAULTS = {"min-release-age", "index-history-anchor-age"}
#: How each [defaults] key is written on the command line (``allow defaults KEY=VALUE``).
DEFAULT_KINDS: dict[str, str] = {
    k: "bool"
    if k in _BOOL_DEFAULTS
    else ("choice" if k in _CHANGE_DEFAULTS else ("duration" if k in _DURATION_DEFAULTS else "int"))
    for k in DEFAULT_KEYS
}
MAX_INDEX_HISTORY_DEPTH = 100
_TOP_KEYS = ("defaults", "package", "unsigned", "unsigned-project")
_UNSIGNED_PROJECT_KEYS = ("name", "reason", "expires")
_PACKAGE_KEYS = ("name", "publishers", "min-release-age")
_UNSIGNED_KEYS = ("name", "versions", "sha256", "reason", "expires", "min-release-age")


class _Errors:
    """Builds ``path:line: problem`` ConfigErrors."""

    def __init__(self, path: Path | None, locator: _Locator, prefix: tuple[object, ...]) -> None:
        self.path = path
        self.locator = locator
        self.prefix = prefix

    def line(self, *path: object) -> int | None:
        return self.locator.line(*self.prefix, *path)

    def error(self, problem: str, *path: object, fix: str | None = None) -> ConfigError:
        where = str(self.path) if self.path is not None else "<policy>"
        line = self.line(*path)
        loc = f"{where}:{line}" if line is not None else where
        return ConfigError(f"{loc}: {problem}", fix=fix)


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (date, datetime)):
        return "a date"
    return type(value).__name__


def _parse_defaults(raw: object, err: _Errors) -> Defaults:
    if not isinstance(raw, dict):
        raise err.error(f"[defaults] must be a table, not {_type_name(raw)}", "defaults")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in DEFAULT_KEYS:
            close = [k for k in DEFAULT_KEYS if k.replace("-", "_") == key or k == key.lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise err.error(
                f"unknown key {key!r} in [defaults]{hint}; known keys: " + ", ".join(DEFAULT_KEYS),
                "defaults",
                key,
            )
        if key in _BOOL_DEFAULTS:
            if not isinstance(value, bool):
                raise err.error(
                    f"defaults.{key} must be true or false, not {_type_name(value)}",
                    "defaults",
                    key,
                )
        elif key in _CHANGE_DEFAULTS:
            if value not in ("error", "warn"):
                raise err.error(
                    f'defaults.{key} must be "error" or "warn", not {value!r}', "defaults", key
                )
        elif key == "index-history-depth" and (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 0 <= value <= MAX_INDEX_HISTORY_DEPTH
        ):
            raise err.error(
                f"defaults.index-history-depth must be an integer from 0 to "
                f"{MAX_INDEX_HISTORY_DEPTH}, not {value!r}",
                "defaults",
                key,
            )
        elif key in _DURATION_DEFAULTS:
            value = _release_age(value, f"defaults.{key}", err, ("defaults", key))
        values[DEFAULT_KEYS[key]] = value
    return Defaults(**values)


def _release_age(value: object, what: str, err: _Errors, path: tuple[object, ...]) -> timedelta:
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return timedelta(0)
    if not isinstance(value, str):
        raise err.error(
            f'{what} must be a string like "3d" or "36h", not {_type_name(value)}', *path
        )
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise err.error(f"{what}: {exc}", *path) from None


def _check_keys(
    table: Mapping[str, Any],
    allowed: Sequence[str],
    what: str,
    err: _Errors,
    path: tuple[object, ...],
) -> None:
    for key in table:
        if key not in allowed:
            raise err.error(
                f"unknown key {key!r} in {what} (allowed: {', '.join(allowed)})", *path, key
            )


def _project_name(value: object, what: str, err: _Errors, path: tuple[object, ...]) -> str:
    if not isinstance(value, str) or not value.strip():
        raise err.error(f'{what} needs name = "PROJECT"', *path, "name")
    if not _PROJECT_NAME.fullmatch(value):
        raise err.error(f"{what}: {value!r} is not a valid project name", *path, "name")
    return canonicalize_name(value)


def _parse_package(raw: object, i: int, err: _Errors) -> PackageRule:
    path: tuple[object, ...] = ("package", i)
    if not isinstance(raw, dict):
        raise err.error(f"[[package]] entries must be tables, not {_type_name(raw)}", *path)
    _check_keys(raw, _PACKAGE_KEYS, "[[package]]", err, path)
    name = _project_name(raw.get("name"), "[[package]]", err, path)
    pubs = raw.get("publishers")
    if pubs is None:
        raise err.error(
            f'[[package]] {name} needs publishers = [{{ kind = "GitHub", repository = '
            f'"owner/repo", workflow = "release.yml" }}]',
            *path,
        )
    if not isinstance(pubs, list) or not pubs:
        raise err.error(
            f"[[package]] {name}: publishers must be a non-empty array of tables",
            *path,
            "publishers",
        )
    identities: list[PublisherIdentity] = []
    for j, table in enumerate(pubs):
        ppath = (*path, "publishers", j)
        if not isinstance(table, dict):
            raise err.error(
                f"[[package]] {name}: publishers[{j}] must be a table like "
                f'{{ kind = "GitHub", repository = "owner/repo", workflow = "release.yml" }}',
                *ppath,
            )
        try:
            identities.append(validate_identity_table(table))
        except IdentityError as exc:
            key_path = (*ppath, exc.key) if exc.key else ppath
            raise err.error(f"[[package]] {name}: publishers[{j}]: {exc}", *key_path) from None
    age = raw.get("min-release-age")
    return PackageRule(
        name=name,
        publishers=tuple(identities),
        line=err.line(*path),
        min_release_age=(
            None
            if age is None
            else _release_age(
                age, f"[[package]] {name}: min-release-age", err, (*path, "min-release-age")
            )
        ),
    )


def unsigned_versions(text: str) -> SpecifierSet:
    """The ``versions`` of an ``[[unsigned]]`` entry, strictly: a PEP 440 specifier set with
    at least one clause and no empty one (``","``, ``"==1.0,"`` or ``" "`` name no version,
    and ``packaging`` would read them as "every version"). Raises ValueError."""
    clauses = [c.strip() for c in text.split(",")]
    if not text.strip() or any(not c for c in clauses):
        raise ValueError(
            f"versions {text!r} has an empty clause, so it names no version (an empty "
            'specifier would allow every version); name them, e.g. "==1.16.0"'
        )
    try:
        versions = SpecifierSet(text)
    except InvalidSpecifier:
        raise ValueError(
            f'versions {text!r} is not a PEP 440 specifier (e.g. "==1.16.0" or ">=1.0,<2")'
        ) from None
    if len(versions) == 0:
        raise ValueError(f"versions {text!r} names no version")
    return versions


def _parse_unsigned(raw: object, i: int, err: _Errors) -> UnsignedException:
    path: tuple[object, ...] = ("unsigned", i)
    if not isinstance(raw, dict):
        raise err.error(f"[[unsigned]] entries must be tables, not {_type_name(raw)}", *path)
    _check_keys(raw, _UNSIGNED_KEYS, "[[unsigned]]", err, path)
    name = _project_name(raw.get("name"), "[[unsigned]]", err, path)
    versions_raw = raw.get("versions")
    if not isinstance(versions_raw, str) or not versions_raw.strip():
        raise err.error(
            f'[[unsigned]] {name} needs versions = "SPECIFIER" (e.g. "==1.16.0")',
            *path,
            "versions",
        )
    try:
        versions = unsigned_versions(versions_raw)
    except ValueError as exc:
        raise err.error(f"[[unsigned]] {name}: {exc}", *path, "versions") from None
    reason = raw.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise err.error(
            f'[[unsigned]] {name} needs reason = "why this unsigned release is acceptable"',
            *path,
            "reason",
        )
    if is_placeholder_reason(reason):
        raise err.error(
            f"[[unsigned]] {name}: reason {reason.strip()!r} is a placeholder, not a review: "
            "write why this unsigned release is acceptable, or accept or reject pending "
            "proposals with 'safe-pip allow review'",
            *path,
            "reason",
        )
    hashes: set[str] = set()
    sha = raw.get("sha256")
    if sha is not None:
        items = [sha] if isinstance(sha, str) else sha
        if not isinstance(items, list) or not items:
            raise err.error(
                f"[[unsigned]] {name}: sha256 must be a list of hex digests", *path, "sha256"
            )
        for h in items:
            if not isinstance(h, str) or not _SHA256.fullmatch(h.lower()):
                raise err.error(
                    f"[[unsigned]] {name}: sha256 {h!r} is not a 64-character hex digest",
                    *path,
                    "sha256",
                )
            hashes.add(h.lower())
    expires = raw.get("expires")
    if expires is not None and (isinstance(expires, datetime) or not isinstance(expires, date)):
        raise err.error(
            f"[[unsigned]] {name}: expires must be a TOML date without quotes, e.g. "
            f"expires = 2027-06-01 (got {expires!r})",
            *path,
            "expires",
        )
    return UnsignedException(
        name=name,
        versions=versions,
        sha256=frozenset(hashes),
        reason=reason.strip(),
        expires=expires,
        line=err.line(*path),
        min_release_age=(
            None
            if raw.get("min-release-age") is None
            else _release_age(
                raw.get("min-release-age"),
                f"[[unsigned]] {name}: min-release-age",
                err,
                (*path, "min-release-age"),
            )
        ),
    )


def unwrap_toml(doc: Any) -> Any:
    return doc.unwrap() if hasattr(doc, "unwrap") else doc


def parse_toml(text: str, path: Path | None) -> Any:
    import tomlkit
    from tomlkit.exceptions import ParseError

    where = str(path) if path is not None else "<policy>"
    try:
        return tomlkit.parse(text)
    except ParseError as exc:
        raise ConfigError(f"{where}:{exc.line}: invalid TOML: {exc}") from None
    except Exception as exc:  # tomlkit raises a few other types on odd input
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None


def parse_policy(text: str, path: Path | None = None, *, pyproject: bool = False) -> Policy:
    """Validate policy text. ``pyproject=True`` reads the ``[tool.safe-pip]`` table."""
    doc = parse_toml(text, path)
    data = unwrap_toml(doc)
    locator = _Locator(text)
    prefix: tuple[object, ...] = PYPROJECT_TABLE if pyproject else ()
    err = _Errors(path, locator, prefix)
    if pyproject:
        tool = data.get("tool", {})
        raw = tool.get("safe-pip") if isinstance(tool, dict) else None
        if raw is None:
            return replace(Policy.default(), path=path)
        if not isinstance(raw, dict):
            raise err.error("[tool.safe-pip] must be a table")
        data = raw
    for key in data:
        if key not in _TOP_KEYS:
            table = "[tool.safe-pip]" if pyproject else "the policy file"
            raise err.error(
                f"unknown key {key!r} in {table} (allowed: [defaults], [[package]], [[unsigned]], "
                "[[unsigned-project]])",
                key,
            )
    defaults = _parse_defaults(data["defaults"], err) if "defaults" in data else Defaults()
    packages: dict[str, PackageRule] = {}
    raw_pkgs = data.get("package", [])
    if not isinstance(raw_pkgs, list):
        raise err.error("'package' must be an array of tables: write [[package]]", "package")
    for i, raw in enumerate(raw_pkgs):
        rule = _parse_package(raw, i, err)
        if rule.name in packages:
            first = packages[rule.name].line
            raise err.error(
                f"[[package]] {rule.name} appears twice (first at line {first}); list all its "
                "publishers in one entry",
                "package",
                i,
            )
        packages[rule.name] = rule
    raw_unsigned = data.get("unsigned", [])
    if not isinstance(raw_unsigned, list):
        raise err.error("'unsigned' must be an array of tables: write [[unsigned]]", "unsigned")
    unsigned = tuple(_parse_unsigned(raw, i, err) for i, raw in enumerate(raw_unsigned))
    projects: dict[str, UnsignedProject] = {}
    raw_projects = data.get("unsigned-project", [])
    if not isinstance(raw_projects, list):
        raise err.error(
            "'unsigned-project' must be an array of tables: write [[unsigned-project]]",
            "unsigned-project",
        )
    for i, raw in enumerate(raw_projects):
        entry = _parse_unsigned_project(raw, i, err)
        if entry.name in projects:
            raise err.error(
                f"[[unsigned-project]] {entry.name} appears twice (first at line "
                f"{projects[entry.name].line})",
                "unsigned-project",
                i,
            )
        if entry.name in packages:
            raise err.error(
                f"[[unsigned-project]] {entry.name}: the project also has a [[package]] entry, "
                "which says it is attested; keep one of the two",
                "unsigned-project",
                i,
            )
        projects[entry.name] = entry
    return Policy(
        defaults=defaults,
        packages=packages,
        unsigned=unsigned,
        path=path,
        unsigned_projects=projects,
    )


def _parse_reason(raw: Mapping[str, Any], what: str, err: _Errors, path: tuple[object, ...]) -> str:
    reason = raw.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise err.error(f'{what} needs reason = "why this is acceptable"', *path, "reason")
    if is_placeholder_reason(reason):
        raise err.error(
            f"{what}: reason {reason.strip()!r} is a placeholder, not a review: write why "
            "this is acceptable, or accept or reject pending proposals with "
            "'safe-pip allow review'",
            *path,
            "reason",
        )
    return reason.strip()


def _parse_expires(
    raw: Mapping[str, Any], what: str, err: _Errors, path: tuple[object, ...]
) -> date | None:
    expires = raw.get("expires")
    if expires is not None and (isinstance(expires, datetime) or not isinstance(expires, date)):
        raise err.error(
            f"{what}: expires must be a TOML date without quotes, e.g. "
            f"expires = 2027-06-01 (got {expires!r})",
            *path,
            "expires",
        )
    return expires


def _parse_unsigned_project(raw: object, i: int, err: _Errors) -> UnsignedProject:
    path: tuple[object, ...] = ("unsigned-project", i)
    if not isinstance(raw, dict):
        raise err.error(
            f"[[unsigned-project]] entries must be tables, not {_type_name(raw)}", *path
        )
    _check_keys(raw, _UNSIGNED_PROJECT_KEYS, "[[unsigned-project]]", err, path)
    name = _project_name(raw.get("name"), "[[unsigned-project]]", err, path)
    what = f"[[unsigned-project]] {name}"
    return UnsignedProject(
        name=name,
        reason=_parse_reason(raw, what, err, path),
        expires=_parse_expires(raw, what, err, path),
        line=err.line(*path),
    )


def read_policy_text(path: Path) -> str:
    """The policy file's text. A file anyone on the machine can write (world-writable) is
    refused: whoever writes it chooses which publishers you trust (like the history
    database, which is refused when group or others can write it)."""
    import stat

    try:
        with path.open("rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            raw = fh.read()
        if sys.platform != "win32" and mode & stat.S_IWOTH:
            raise ConfigError(
                f"{path}: the policy file is writable by anyone on this machine (mode "
                f"{stat.filemode(mode)}); whoever writes it chooses which publishers you trust",
                fix=f"check it, then chmod o-w {path}",
            )
        return raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: policy file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: policy file is not UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read policy file: {exc.strerror or exc}") from None


def _has_tool_table(path: Path) -> bool:
    """Whether a pyproject.toml has a [tool.safe-pip] table (parse errors are reported).

    Read with tomllib first (a project's pyproject.toml is read on every run; tomlkit, which
    the policy itself needs for line numbers, takes ~10x as long); what tomllib cannot parse
    goes through tomlkit as before, so the same documents are refused with the same error."""
    text = read_policy_text(path)
    try:
        try:
            import tomllib
        except ModuleNotFoundError:  # pragma: no cover - Python 3.10
            import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]
        data = tomllib.loads(text)
    except Exception:
        data = unwrap_toml(parse_toml(text, path))
    tool = data.get("tool")
    return isinstance(tool, dict) and "safe-pip" in tool


@dataclass(frozen=True)
class PolicyLocation:
    """Which file (and whether its [tool.safe-pip] table) a policy comes from or goes to."""

    path: Path | None  # None: no file, built-in defaults
    pyproject: bool = False
    exists: bool = True


def find_policy(
    explicit: Path | None = None,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> PolicyLocation:
    """Where :func:`load_policy` reads from (``path=None`` means the built-in default)."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    if explicit is not None:
        p = explicit if explicit.is_absolute() else cwd / explicit
        return PolicyLocation(p, p.name == PYPROJECT_FILENAME, p.exists())
    from_env = env.get(ENV_POLICY)
    if from_env:
        p = Path(from_env)
        p = p if p.is_absolute() else cwd / p
        return PolicyLocation(p, p.name == PYPROJECT_FILENAME, p.exists())
    own = cwd / POLICY_FILENAME
    if own.exists():
        return PolicyLocation(own, False, True)
    pyproject = cwd / PYPROJECT_FILENAME
    if pyproject.is_file() and _has_tool_table(pyproject):
        return PolicyLocation(pyproject, True, True)
    return PolicyLocation(None)


def load_policy(
    explicit: Path | None = None,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Policy:
    """Load and validate the policy (see the module docstring for the search order).

    An explicit or ``$SAFE_PIP_POLICY`` path that does not exist is an error, not a default.
    """
    loc = find_policy(explicit, cwd=cwd, env=env)
    if loc.path is None:
        return Policy.default()
    if not loc.exists:
        source = "--policy" if explicit is not None else f"${ENV_POLICY}"
        raise ConfigError(
            f"{loc.path}: policy file not found (named by {source})",
            fix="create it with 'safe-pip allow add ...' or fix the path",
        )
    policy = parse_policy(read_policy_text(loc.path), loc.path, pyproject=loc.pyproject)
    return replace(policy, explicit=True) if explicit is not None else policy
