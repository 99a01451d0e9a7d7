"""Pending allowlist proposals: what ``allow learn`` suggests and ``allow review`` decides.

Proposals live beside the policy file, never inside it, so that nothing a human has not
reviewed can take effect: ``safe-pip.toml`` -> ``safe-pip.proposals.toml`` (``team.toml`` ->
``team.proposals.toml``; a ``pyproject.toml`` policy -> ``safe-pip.proposals.toml`` in the same
directory). Each proposal says what it would add to the policy and where it came from: the
release it was learned from, its upload date, whether the project is a direct or transitive
dependency, and why (``evidence``).

Kinds:

* ``publisher``: a ``[[package]]`` entry with ``publishers``;
* ``unsigned``: an ``[[unsigned]]`` exception for ``versions`` (with ``sha256`` pins);
* ``unsigned-project``: an ``[[unsigned-project]]`` entry (the project publishes no
  attestations).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from packaging.utils import canonicalize_name

from safe_pip.errors import ConfigError
from safe_pip.models import PublisherIdentity
from safe_pip.policy.edit import PolicyDocument, atomic_write_text, identity_key
from safe_pip.policy.file import PYPROJECT_FILENAME, IdentityError, validate_identity_table

Kind = Literal["publisher", "unsigned", "unsigned-project"]
Dependency = Literal["direct", "transitive", "unknown"]
KINDS: tuple[Kind, ...] = ("publisher", "unsigned", "unsigned-project")

_HEADER = """\
# Pending proposals from 'safe-pip allow learn'. Nothing here takes effect: review them with
# 'safe-pip allow review' (accept or reject each with a reason), which moves accepted ones into
# the policy file and logs every decision in the audit log.

"""


@dataclass(frozen=True)
class Proposal:
    kind: Kind
    name: str
    publishers: tuple[PublisherIdentity, ...] = ()
    versions: str = ""
    sha256: tuple[str, ...] = ()
    learned_version: str = ""
    learned_date: str = ""  # the learned release's upload date (ISO), when the index said
    dependency: Dependency = "unknown"
    evidence: str = ""  # why: e.g. "no release has ever been attested (12 read)"
    proposed: str = ""  # ISO date of the learn run
    #: (filename, sha256) of the unsigned files learn saw: accepting the proposal records them
    #: in the history, whose unsigned file memory then refuses other bytes under those names
    files: tuple[tuple[str, str], ...] = ()
    rejected: str = ""  # the reason, once rejected: kept so that learn does not propose it again

    @property
    def key(self) -> tuple[object, ...]:
        """Two proposals with the same key propose the same policy change."""
        pubs = tuple(sorted(identity_key(p) for p in self.publishers))
        return (self.kind, canonicalize_name(self.name), pubs, self.versions, self.sha256)

    def summary(self) -> str:
        """What accepting it adds to the policy, in one line."""
        if self.kind == "publisher":
            who = "; ".join(p.describe_with_ids() for p in self.publishers)
            return f"[[package]] {self.name}: {who}"
        if self.kind == "unsigned":
            pins = f", {len(self.sha256)} sha256 pinned" if self.sha256 else ""
            return f"[[unsigned]] {self.name} {self.versions}{pins}"
        return f"[[unsigned-project]] {self.name}: publishes no attestations"

    def origin(self) -> str:
        parts = []
        if self.learned_version:
            parts.append(f"learned from {self.name} {self.learned_version}")
        if self.learned_date:
            parts.append(f"released {self.learned_date}")
        if self.dependency != "unknown":
            parts.append(f"{self.dependency} dependency")
        if self.proposed:
            parts.append(f"proposed {self.proposed}")
        return ", ".join(parts)

    def to_table(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.publishers:
            out["publishers"] = [dict(identity_key(p)) for p in self.publishers]
        if self.versions:
            out["versions"] = self.versions
        if self.sha256:
            out["sha256"] = list(self.sha256)
        for key, value in (
            ("learned-version", self.learned_version),
            ("learned-date", self.learned_date),
            ("dependency", self.dependency),
            ("evidence", self.evidence),
            ("proposed", self.proposed),
        ):
            if value:
                out[key] = value
        if self.files:
            out["files"] = [{"filename": f, "sha256": h} for f, h in self.files]
        if self.rejected:
            out["rejected"] = self.rejected
        return out

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> Proposal:
        kind = table.get("kind")
        if kind not in KINDS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
        name = table.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: needs name")
        pubs: list[PublisherIdentity] = []
        for t in table.get("publishers", []) or []:
            try:
                pubs.append(validate_identity_table(t))
            except (IdentityError, AttributeError, TypeError) as exc:
                raise ConfigError(f"{where}: publishers: {exc}") from None
        if kind == "publisher" and not pubs:
            raise ConfigError(f"{where}: a publisher proposal needs publishers")
        versions = table.get("versions", "")
        if kind == "unsigned" and not (isinstance(versions, str) and versions):
            raise ConfigError(f"{where}: an unsigned proposal needs versions")
        sha = table.get("sha256", [])
        if not isinstance(sha, list) or not all(isinstance(h, str) for h in sha):
            raise ConfigError(f"{where}: sha256 must be a list of hex digests")
        dep = table.get("dependency", "unknown")
        files: list[tuple[str, str]] = []
        for f in table.get("files", []) or []:
            if not (
                isinstance(f, dict)
                and isinstance(f.get("filename"), str)
                and isinstance(f.get("sha256"), str)
            ):
                raise ConfigError(f"{where}: files must be tables with filename and sha256")
            files.append((f["filename"], f["sha256"].lower()))
        return cls(
            kind=kind,
            name=name,
            publishers=tuple(pubs),
            versions=str(versions),
            sha256=tuple(h.lower() for h in sha),
            learned_version=str(table.get("learned-version", "")),
            learned_date=str(table.get("learned-date", "")),
            dependency=dep if dep in ("direct", "transitive") else "unknown",
            evidence=str(table.get("evidence", "")),
            proposed=str(table.get("proposed", "")),
            files=tuple(files),
            rejected=str(table.get("rejected", "")),
        )


def _check_private(path: Path) -> None:
    """Refuse a proposals file another user owns or could write: what review accepts from it
    goes into the policy (publishers) and the history (the unsigned files' sha256), and
    ``--accept-all`` takes every proposal in it, so it must be as much yours as the policy."""
    import os
    import stat

    if not hasattr(os, "getuid"):
        return
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the proposals: {exc.strerror or exc}") from None
    if st.st_uid != os.getuid():
        raise ConfigError(
            f"{path}: the proposals file is owned by uid {st.st_uid}, not by you "
            f"(uid {os.getuid()}); another user could have written its proposals",
            fix=f"review it, then move it aside (mv {path} {path}.foreign) and run "
            "safe-pip allow learn again",
        )
    if st.st_mode & 0o022:
        raise ConfigError(
            f"{path}: the proposals file is writable by group or others (mode "
            f"{stat.filemode(st.st_mode)}); another user could have written its proposals",
            fix=f"check its proposals, then chmod go-w {path}",
        )


def proposals_path(policy_path: Path) -> Path:
    """Where the proposals for the policy at ``policy_path`` live."""
    if policy_path.name == PYPROJECT_FILENAME:
        return policy_path.with_name("safe-pip.proposals.toml")
    return policy_path.with_name(f"{policy_path.stem}.proposals.toml")


@dataclass
class ProposalFile:
    path: Path
    proposals: list[Proposal] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> ProposalFile:
        import tomlkit
        from tomlkit.exceptions import TOMLKitError

        if not path.exists():
            return cls(path)
        _check_private(path)
        try:
            data = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
        except (OSError, UnicodeDecodeError, TOMLKitError) as exc:
            raise ConfigError(f"{path}: cannot read the proposals: {exc}") from None
        raw = data.get("proposal", [])
        if not isinstance(raw, list):
            raise ConfigError(f"{path}: 'proposal' must be an array of tables ([[proposal]])")
        out = cls(path)
        for i, table in enumerate(raw):
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: proposal {i + 1} is not a table")
            out.proposals.append(Proposal.from_table(table, f"{path}: proposal {i + 1}"))
        return out

    @property
    def pending(self) -> list[Proposal]:
        return [p for p in self.proposals if not p.rejected]

    def add(self, proposals: Iterable[Proposal]) -> list[Proposal]:
        """Add the proposals not pending or rejected already (same key). Returns the new
        ones."""
        have = {p.key for p in self.proposals}
        new = []
        for p in proposals:
            if p.key not in have:
                have.add(p.key)
                self.proposals.append(p)
                new.append(p)
        return new

    def save(self) -> None:
        import tomlkit

        if not self.proposals:  # nothing pending or rejected: no file
            if self.path.exists():
                self.path.unlink()
            return
        doc = tomlkit.document()
        aot = tomlkit.aot()
        for p in self.proposals:
            aot.append(p.to_table())
        doc["proposal"] = aot
        atomic_write_text(self.path, _HEADER + tomlkit.dumps(doc))


def already_in_policy(proposal: Proposal, doc: PolicyDocument, today: date) -> bool:
    """Whether accepting ``proposal`` would change nothing in the policy."""
    policy = doc.policy
    name = canonicalize_name(proposal.name)
    if proposal.kind == "publisher":
        rule = policy.packages.get(name)
        if rule is None:
            return False
        have = {identity_key(p) for p in rule.publishers}
        return all(identity_key(p) in have for p in proposal.publishers)
    if proposal.kind == "unsigned-project":
        entry = policy.unsigned_projects.get(name)
        return entry is not None and not entry.expired(today)
    for exc in policy.unsigned_for(name):
        if (
            str(exc.versions) == str(_spec(proposal.versions))
            and set(proposal.sha256) <= set(exc.sha256 or proposal.sha256)
            and not exc.expired(today)
        ):
            return True
    return False


def _spec(text: str) -> object:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return text


def apply(proposal: Proposal, doc: PolicyDocument, reason: str) -> None:
    """Write an accepted proposal into the policy document (validated, not yet saved)."""
    if proposal.kind == "publisher":
        doc.add_package(proposal.name, proposal.publishers)
    elif proposal.kind == "unsigned":
        doc.add_unsigned(
            proposal.name, versions=proposal.versions, reason=reason, sha256=proposal.sha256
        )
    else:
        doc.add_unsigned_project(proposal.name, reason=reason)
