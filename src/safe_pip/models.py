"""Plain data shared by every face of safe-pip.

Everything here is a frozen dataclass with no I/O. The identity shape is PEP 740's publisher
object, which is also PEP 751's ``attestation-identities`` table: the policy file, the history,
lockfiles and JSON reports all use :meth:`PublisherIdentity.to_table`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal

#: The predicate types PyPI accepts for PEP 740 attestations.
PUBLISH_V1 = "https://docs.pypi.org/attestations/publish/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
KNOWN_PREDICATES = frozenset({PUBLISH_V1, SLSA_PROVENANCE_V1})

#: Publisher kinds as PEP 740 spells them.
GITHUB = "GitHub"
GITLAB = "GitLab"
GOOGLE = "Google"

EnvironmentSource = Literal["certificate", "index"]


@dataclass(frozen=True)
class PublisherIdentity:
    """A Trusted Publisher, in the shape of PEP 740's publisher object.

    Only ``kind`` plus the kind's own keys (``repository``/``workflow``/``environment`` for
    GitHub, ``repository``/``workflow_filepath``/``environment`` for GitLab, ``email`` for
    Google) take part in :meth:`to_table`. The remaining fields are facts read from the
    certificate that policy uses to tell a renamed repository from a re-created one.
    """

    kind: str
    repository: str | None = None
    workflow: str | None = None
    workflow_filepath: str | None = None
    environment: str | None = None
    email: str | None = None
    # Facts from the certificate (not part of the PEP 740 table).
    repository_id: str | None = None
    repository_owner_id: str | None = None
    ref: str | None = None
    issuer: str | None = None
    environment_source: EnvironmentSource | None = None

    def to_table(self) -> dict[str, str]:
        """The PEP 740 / PEP 751 publisher table (only keys that have values)."""
        out: dict[str, str] = {"kind": self.kind}
        for key in ("repository", "workflow", "workflow_filepath", "environment", "email"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out

    def to_json(self) -> dict[str, Any]:
        """The table plus the certificate facts, for reports and history."""
        out: dict[str, Any] = dict(self.to_table())
        for key in ("repository_id", "repository_owner_id", "ref", "issuer", "environment_source"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> PublisherIdentity:
        """Build from a PEP 740 publisher object / PEP 751 identity table (extra keys kept
        where we know them, ignored otherwise). Raises ValueError on a malformed table."""
        kind = table.get("kind")
        if not isinstance(kind, str) or not kind:
            raise ValueError("publisher identity needs a string 'kind'")
        known = {
            "repository",
            "workflow",
            "workflow_filepath",
            "environment",
            "email",
            "repository_id",
            "repository_owner_id",
            "ref",
            "issuer",
        }
        values: dict[str, str | None] = {}
        for key in known:
            value = table.get(key)
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise ValueError(f"publisher identity key {key!r} must be a string")
            values[key] = value
        source = table.get("environment_source")
        env_source: EnvironmentSource | None = None
        if source in ("certificate", "index"):
            env_source = source
        return cls(kind=kind, environment_source=env_source, **values)

    def describe_with_ids(self) -> str:
        """:meth:`describe` plus the numeric ids, which tell a re-created repository from the
        original one when the names are the same."""
        ids = [
            f"{label} {value}"
            for label, value in (
                ("repository id", self.repository_id),
                ("owner id", self.repository_owner_id),
            )
            if value
        ]
        return self.describe() + (f" ({', '.join(ids)})" if ids else "")

    def describe(self) -> str:
        """A short human-readable form, e.g. ``GitHub pypa/sampleproject @ release.yml``."""
        if self.kind == GOOGLE or (self.email and not self.repository):
            issuer = f" (issuer {self.issuer})" if self.kind not in (GOOGLE, GITHUB, GITLAB) else ""
            return f"{self.kind} {self.email or '?'}{issuer}"
        parts = [self.kind, self.repository or "?"]
        wf = self.workflow or self.workflow_filepath
        if wf:
            parts.append(f"@ {wf}")
        if self.environment:
            tag = " (index-asserted)" if self.environment_source == "index" else ""
            parts.append(f"[env {self.environment}{tag}]")
        return " ".join(parts)


@dataclass(frozen=True)
class FileRef:
    """One distribution file to check: where it is and what the index claims about it."""

    project: str  # as the index / lock spells it; compare with packaging.utils.canonicalize_name
    version: str
    filename: str
    url: str | None = None
    sha256: str | None = None  # the index's (or lock's) claim; the file's real bytes decide
    index: str | None = None  # the index URL it came from
    provenance_url: str | None = None  # PEP 740 provenance URL from the simple page, if any
    yanked: bool | str = False
    upload_time: str | None = None
    local_path: str | None = None  # a file already on disk (inspect, wheelhouse)
    size: int | None = None  # the index's declared size in bytes (PEP 691 `size`); caps downloads
    # PEP 792 status of the project on the page the file came from (None: none given = active)
    project_status: str | None = None
    project_status_reason: str | None = None
    #: Whether the page the file was listed on serves PEP 740 provenance at all (False: a
    #: mirror that drops it, see ProjectPage.serves_provenance; None: not from a page).
    index_serves_provenance: bool | None = field(default=None, compare=False)


@dataclass(frozen=True)
class BuildContext:
    """The build claims a Fulcio certificate carries about the run that signed a release
    (OIDs 1.3.6.1.4.1.57264.1.11, .13, .14, .20, .21). Recorded in the history and compared
    across releases (docs/policy.md "Build context"); not part of the publisher identity."""

    source_ref: str | None = None  # e.g. refs/tags/v1.2.0 or refs/heads/main
    source_commit: str | None = None  # the commit the run built
    trigger: str | None = None  # the event: push, release, workflow_dispatch, ...
    runner_environment: str | None = None  # github-hosted | self-hosted
    run_invocation: str | None = None  # https://github.com/o/r/actions/runs/N/attempts/M

    KEYS = ("source_ref", "source_commit", "trigger", "runner_environment", "run_invocation")

    def to_json(self) -> dict[str, str]:
        return {k: v for k in self.KEYS if (v := getattr(self, k))}

    @classmethod
    def from_json(cls, doc: object) -> BuildContext | None:
        """From :meth:`to_json` output; None for anything that is not such an object."""
        if not isinstance(doc, dict):
            return None
        values = {k: doc[k] for k in cls.KEYS if isinstance(doc.get(k), str) and doc[k]}
        return cls(**values) if values else None

    @property
    def empty(self) -> bool:
        return not self.to_json()


@dataclass(frozen=True)
class BuildChange:
    """One build claim that differs from the project's history."""

    claim: str  # source-ref | trigger | runner-environment | run-invocation
    old: tuple[str, ...]  # the values earlier releases had (or the other versions of the run)
    new: str

    def describe(self) -> str:
        if self.claim == "run-invocation":
            return f"run {self.new} also signed version(s) {', '.join(self.old)}"
        label = self.claim.replace("-", " ")
        return f"{label} {self.new} (earlier releases: {', '.join(self.old)})"

    def to_json(self) -> dict[str, object]:
        return {"claim": self.claim, "old": list(self.old), "new": self.new}


class VerifyStatus(str, enum.Enum):
    """Outcome of cryptographic verification of one file (no policy applied)."""

    VERIFIED = "verified"  # a valid attestation binds these bytes to ``identity``
    UNSIGNED = "unsigned"  # the index says there is no provenance for the file (404)
    INVALID = "invalid"  # provenance exists but does not verify: treat as an attack
    ERROR = "error"  # could not check (network, index, trust root): never "unsigned"


@dataclass(frozen=True)
class VerificationResult:
    """What verification proved about one file's bytes."""

    filename: str
    sha256: str  # of the file's actual bytes
    status: VerifyStatus
    reason: str  # human-readable; "ok" style text when verified
    reason_code: str = "ok"  # short stable code: ok, no-provenance, digest-mismatch, ...
    identity: PublisherIdentity | None = None
    predicate_types: tuple[str, ...] = ()
    tlog_index: int | None = None
    integrated_time: int | None = None  # epoch seconds, from the transparency log (Rekor v1)
    # epoch seconds, the latest RFC 3161 timestamp in the bundle (Rekor v2 has no integrated
    # time; sigstore verified at least one timestamp against the trust root's TSAs)
    tsa_time: int | None = None
    tlog_kind: str | None = None  # e.g. "dsse/0.0.1" (Rekor v1) or "dsse/0.0.2" (Rekor v2)
    build: BuildContext | None = None  # the certificate's build claims
    provenance: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def verified(self) -> bool:
        return self.status is VerifyStatus.VERIFIED


class ReasonCode(str, enum.Enum):
    """Why a verdict was reached. Stable strings: scripts depend on them."""

    VERIFIED_ALLOWLISTED = "verified-allowlisted"
    VERIFIED_FIRST_USE = "verified-first-use"
    VERIFIED_KNOWN = "verified-known"
    UNSIGNED_ALLOWED = "unsigned-allowed"
    REFUSED_UNSIGNED = "refused-unsigned"
    REFUSED_UNEXPECTED_PUBLISHER = "refused-unexpected-publisher"
    REFUSED_PUBLISHER_CHANGE = "refused-publisher-change"
    REFUSED_ATTESTATION_DOWNGRADE = "refused-attestation-downgrade"
    REFUSED_INVALID_ATTESTATION = "refused-invalid-attestation"
    # an unsigned file whose (project, filename) was allowed before with other bytes
    REFUSED_FILE_CHANGED = "refused-file-changed"
    COULD_NOT_CHECK = "could-not-check"
    # install: files that are not published wheels (see docs/adr/0003-no-sdists-by-default.md)
    REFUSED_SDIST = "refused-sdist"
    REFUSED_UNVERIFIABLE_SOURCE = "refused-unverifiable-source"
    UNVERIFIABLE_ALLOWED = "unverifiable-allowed"
    # install: a project on more than one configured index (docs/adr/0005-dependency-confusion.md)
    REFUSED_INDEX_CONFUSION = "refused-index-confusion"
    # the index marks the project quarantined (PEP 792; threat T25)
    REFUSED_QUARANTINED = "refused-quarantined"
    # release age (docs/policy.md "Release age")
    REFUSED_TOO_NEW = "refused-too-new"
    REFUSED_AGE_UNKNOWN = "refused-age-unknown"
    # build claims against the history, under on-build-context-change = "error"
    REFUSED_BUILD_CONTEXT_CHANGE = "refused-build-context-change"
    # a wheel whose metadata requires ``name @ URL``: pip would fetch (or build) that URL
    # outside any index, with nothing to verify (install, serve)
    REFUSED_DIRECT_URL_DEPENDENCY = "refused-direct-url-dependency"
    # a wheel that is not a valid wheel of the project and version it claims (not one
    # .dist-info, METADATA naming another project or version): installers skip or misread it
    REFUSED_INVALID_WHEEL = "refused-invalid-wheel"
    # install: the bytes the index sent do not hash to the sha256 it lists and the
    # provenance attests (a file swapped after signing, or altered on the way)
    REFUSED_HASH_MISMATCH = "refused-hash-mismatch"


#: PyPI's per-release provenance states (warehouse ``Release.provenance_status``), shown as
#: "<state> provenance": no, full, partial, inconsistent, lost, changed.
PROVENANCE_STATES = ("no", "full", "partial", "inconsistent", "lost", "changed")


class Action(str, enum.Enum):
    ALLOW = "allow"
    WARN = "warn"  # allowed, but the user must be told
    REFUSE = "refuse"


@dataclass(frozen=True)
class Verdict:
    """The decision about one file: allow, warn (allowed) or refuse, and why."""

    project: str
    version: str
    filename: str
    sha256: str
    action: Action
    code: ReasonCode
    reason: str
    rule: str  # which rule decided, e.g. "[[package]] sampleproject" or "history"
    identity: PublisherIdentity | None = None
    expected: tuple[PublisherIdentity, ...] = ()
    fix: str = ""  # how to allow it, if the user decides to
    verification: VerificationResult | None = field(default=None, compare=False)
    # PEP 792 status the index gave the project, when not active (threat T25)
    project_status: str | None = None
    project_status_reason: str | None = None
    # release age: when the file became public (ISO 8601 UTC), who says so, the minimum age
    # that applied ("3d"), and from when the file is acceptable (None: no rule or unknown)
    release_time: str | None = None
    release_time_source: str | None = None
    min_release_age: str | None = None
    acceptable_from: str | None = None
    # PyPI's name for the release's provenance (PROVENANCE_STATES), None when unverifiable
    provenance_state: str | None = None
    # how the certificate's build claims differ from the project's history
    build_changes: tuple[BuildChange, ...] = ()
    # an allow that stops applying at this time (ISO 8601 UTC): the ``expires`` date of the
    # [[unsigned]] / [[unsigned-project]] entry that allowed it. A kept verdict is decided
    # again from then on (serve's verdict cache).
    allowed_until: str | None = None

    @property
    def allowed(self) -> bool:
        return self.action is not Action.REFUSE

    def to_json(self) -> dict[str, Any]:
        v = self.verification
        return {
            "project": self.project,
            "version": self.version,
            "filename": self.filename,
            "sha256": self.sha256,
            "verdict": self.action.value,
            "allowed": self.allowed,
            "code": self.code.value,
            "reason": self.reason,
            "rule": self.rule,
            "identity": self.identity.to_json() if self.identity else None,
            "expected": [e.to_table() for e in self.expected],
            "fix": self.fix,
            "verified": bool(v and v.verified),
            "predicate_types": list(v.predicate_types) if v else [],
            "tlog_index": v.tlog_index if v else None,
            "integrated_time": v.integrated_time if v else None,
            "project_status": self.project_status,
            "project_status_reason": self.project_status_reason,
            "release_time": self.release_time,
            "release_time_source": self.release_time_source,
            "min_release_age": self.min_release_age,
            "acceptable_from": self.acceptable_from,
            "provenance_state": self.provenance_state,
            "tsa_time": v.tsa_time if v else None,
            "tlog_kind": v.tlog_kind if v else None,
            "build": v.build.to_json() if v and v.build else None,
            "build_changes": [c.to_json() for c in self.build_changes],
            "allowed_until": self.allowed_until,
        }
