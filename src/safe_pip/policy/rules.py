"""``decide()``: policy + history + a verification result -> a Verdict. Pure: no I/O, no clock.

The order of rules (documented in docs/policy.md):

* ``ERROR`` (could not check) -> refuse, ``could-not-check``. Never allowed.
* ``INVALID`` (provenance exists but does not verify) -> refuse, ``refused-invalid-attestation``.
* ``UNSIGNED``:
  1. a matching, unexpired ``[[unsigned]]`` exception -> ``unsigned-allowed``;
  2. earlier releases were attested (history) -> ``refused-attestation-downgrade``;
  3. the project has a ``[[package]]`` rule (its publishers are expected) -> ``refused-unsigned``;
  4. ``require-attestation = true`` -> ``refused-unsigned``, else ``unsigned-allowed``.
  ``on-attestation-downgrade = "warn"`` turns (2) into a warning only where (3) and (4) would
  have allowed the file: it never overrides ``require-attestation`` or an allowlist entry.
* ``VERIFIED``:
  1. a ``[[package]]`` rule: the identity must match one of its publishers
     (``verified-allowlisted``) else ``refused-unexpected-publisher``;
  2. attested history: the history is a *sequence* in publication order (transparency-log
     integrated time, else the index's upload-time), with the file being decided placed at
     its own publication time. The first attested release establishes the publisher; every
     later file must be the same publisher (:func:`continuous`). The first file that is not
     is a change, wherever it is (in local history, in the index's releases, or the file
     itself): ``refused-publisher-change`` naming that release. No change: ``verified-known``.
     ``on-publisher-change = "warn"`` makes a change a warning, but only where first use would
     be trusted (``trust-on-first-use = true``);
  3. nothing known: ``verified-first-use`` when ``trust-on-first-use``, else
     ``refused-unexpected-publisher``.
  With ``trust-on-first-use = false``, history read from the index on first sight is not
  enough to allow (it would be trust on first use of the index); a record this machine
  allowed itself (``source = "local"``, including imported baselines) is.
  A repository re-created under a known name (same name, different numeric ids in the
  certificate) is always refused, whatever ``on-publisher-change`` says.

Monotone: adding attested history or tightening a default never turns a refusal into an allow.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from safe_pip.models import (
    GITHUB,
    GITLAB,
    GOOGLE,
    Action,
    FileRef,
    PublisherIdentity,
    ReasonCode,
    Verdict,
    VerificationResult,
    VerifyStatus,
)
from safe_pip.policy.age import (
    AgeCheck,
    attested_release_time,
    check_age,
    fmt_time,
    format_duration,
    unsigned_release_time,
)
from safe_pip.policy.build_context import build_context_changes
from safe_pip.policy.file import (
    PackageRule,
    Policy,
    UnsignedException,
    UnsignedProject,
    format_shorthand,
)
from safe_pip.policy.history import HistoryRecord, ProjectHistory
from safe_pip.policy.provenance_state import provenance_state

# ---------------------------------------------------------------------------------------------
# Identity comparison


def _fold_eq(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.casefold() == b.casefold()


def _basename(path: str | None) -> str | None:
    if path is None:
        return None
    return path.rsplit("/", 1)[-1]


def identity_matches(seen: PublisherIdentity, expected: PublisherIdentity) -> bool:
    """Whether the identity proven by an attestation (``seen``) is the ``expected`` publisher.

    Exact rules (docs/policy.md "Comparison rules"):

    * ``kind`` equal (exact spelling: GitHub, GitLab, Google);
    * GitHub: ``repository`` equal ignoring case (GitHub names are case-insensitive),
      ``workflow`` file name equal, case-sensitive (the base name is compared if a path is given);
    * GitLab: ``repository`` equal ignoring case, ``workflow_filepath`` equal exactly;
    * Google: ``email`` equal ignoring case;
    * ``environment`` only when ``expected`` names one: GitHub ignoring case (GitHub environment
      names are case-insensitive), GitLab exactly. A seen identity without an environment does not
      match an expected one that has it;
    * ``repository_id`` / ``repository_owner_id`` only when ``expected`` pins them: then ``seen``
      must carry the same ids (a certificate without them does not match).

    Unknown kinds never match (fail closed).
    """
    if seen.kind != expected.kind:
        return False
    if seen.kind == GITHUB:
        if not _fold_eq(seen.repository, expected.repository):
            return False
        if _basename(seen.workflow) != _basename(expected.workflow) or not seen.workflow:
            return False
        if expected.environment and not _fold_eq(seen.environment, expected.environment):
            return False
    elif seen.kind == GITLAB:
        if not _fold_eq(seen.repository, expected.repository):
            return False
        if not seen.workflow_filepath or seen.workflow_filepath != expected.workflow_filepath:
            return False
        if expected.environment and seen.environment != expected.environment:
            return False
    elif seen.kind == GOOGLE:
        if not _fold_eq(seen.email, expected.email):
            return False
    else:
        return False
    for key in ("repository_id", "repository_owner_id"):
        want = getattr(expected, key)
        if want and getattr(seen, key) != want:
            return False
    return True


def ids_consistent(a: PublisherIdentity, b: PublisherIdentity) -> bool:
    """False when both carry a numeric id (repository or owner) and the ids differ."""
    for key in ("repository_id", "repository_owner_id"):
        x, y = getattr(a, key), getattr(b, key)
        if x and y and x != y:
            return False
    return True


ChangeKind = Literal[
    "recreated", "renamed", "transferred", "repository", "workflow", "environment", "kind"
]


@dataclass(frozen=True)
class PublisherChange:
    """How a seen identity differs from a known one, for verdict reasons."""

    kind: ChangeKind
    known: PublisherIdentity
    detail: str


def _ids(identity: PublisherIdentity) -> str:
    parts = []
    if identity.repository_id:
        parts.append(f"repository id {identity.repository_id}")
    if identity.repository_owner_id:
        parts.append(f"owner id {identity.repository_owner_id}")
    return ", ".join(parts) if parts else "no ids"


def classify_change(
    seen: PublisherIdentity, known: Sequence[PublisherIdentity]
) -> PublisherChange | None:
    """Explain how ``seen`` differs from the ``known`` identities (history or allowlist).

    * ``renamed``: same numeric repository id and owner id, different name;
    * ``transferred``: same repository id, different owner id (and name);
    * ``recreated``: same names, different repository or owner id (resurrection suspected);
    * ``repository`` / ``workflow`` / ``environment`` / ``kind``: plain differences by name.
    Returns ``None`` when ``known`` is empty.
    """
    if not known:
        return None
    same_kind = [k for k in known if k.kind == seen.kind]
    for k in same_kind:
        if (
            seen.repository_id
            and seen.repository_id == k.repository_id
            and not _fold_eq(seen.repository, k.repository)
        ):
            if (
                seen.repository_owner_id
                and k.repository_owner_id
                and seen.repository_owner_id != k.repository_owner_id
            ):
                return PublisherChange(
                    "transferred",
                    k,
                    f"repository {k.repository} (owner id {k.repository_owner_id}) appears to "
                    f"have been transferred to {seen.repository} (owner id "
                    f"{seen.repository_owner_id}): same repository id {seen.repository_id}",
                )
            return PublisherChange(
                "renamed",
                k,
                f"repository {k.repository} appears to have been renamed to {seen.repository}: "
                f"same repository id {seen.repository_id}"
                + (f" and owner id {seen.repository_owner_id}" if seen.repository_owner_id else ""),
            )
    for k in same_kind:
        if identity_matches(seen, _names_only(k)) and not ids_consistent(seen, k):
            return PublisherChange(
                "recreated",
                k,
                f"{seen.repository or seen.email} has the same name as before but different "
                f"numeric ids ({_ids(k)} before, {_ids(seen)} now): the repository or its owner "
                "account was deleted and re-created, possibly by someone else",
            )
    for k in same_kind:
        if seen.kind in (GITHUB, GITLAB) and _fold_eq(seen.repository, k.repository):
            wf_seen = seen.workflow if seen.kind == GITHUB else seen.workflow_filepath
            wf_known = k.workflow if k.kind == GITHUB else k.workflow_filepath
            if (_basename(wf_seen) if seen.kind == GITHUB else wf_seen) != (
                _basename(wf_known) if k.kind == GITHUB else wf_known
            ):
                return PublisherChange(
                    "workflow",
                    k,
                    f"same repository {k.repository}, but workflow {wf_seen!s} instead of "
                    f"{wf_known!s}",
                )
            if k.environment:
                return PublisherChange(
                    "environment",
                    k,
                    f"same repository and workflow, but environment "
                    f"{seen.environment or '(none)'!s} instead of {k.environment} "
                    "(environment is asserted by the index, not the certificate)",
                )
    if same_kind:
        k = same_kind[0]
        what = "email" if seen.kind == GOOGLE else "repository"
        return PublisherChange(
            "repository",
            k,
            f"a different {what}: {seen.describe()} instead of {k.describe()}",
        )
    return PublisherChange(
        "kind", known[0], f"a different kind of publisher: {seen.kind} instead of {known[0].kind}"
    )


def continuous(seen: PublisherIdentity, known: PublisherIdentity) -> bool:
    """Whether ``seen`` is the same publisher as ``known`` (continuity, never a change): the
    same names by :func:`identity_matches` (case rules, a workflow path against its file name,
    ``environment`` only where ``known`` names one) and no conflicting numeric ids (a
    certificate with ids continues one without them)."""
    return identity_matches(seen, _names_only(known)) and ids_consistent(seen, known)


def _merge_ids(known: PublisherIdentity, seen: PublisherIdentity) -> PublisherIdentity:
    """``known`` with the numeric ids ``seen`` adds (so a later, other id is still caught)."""
    if (known.repository_id or not seen.repository_id) and (
        known.repository_owner_id or not seen.repository_owner_id
    ):
        return known
    return replace(
        known,
        repository_id=known.repository_id or seen.repository_id,
        repository_owner_id=known.repository_owner_id or seen.repository_owner_id,
    )


@dataclass(frozen=True)
class SequenceChange:
    """The first file of a history sequence whose publisher is not the one before it."""

    record: HistoryRecord  # where the change happened
    before: PublisherIdentity  # the publisher established by the files before it
    change: PublisherChange  # how ``record.identity`` differs from ``before``

    @property
    def after(self) -> PublisherIdentity:
        assert self.record.identity is not None
        return self.record.identity

    def where(self) -> str:
        """E.g. ``alpha 1.1.0 (alpha-1.1.0-py3-none-any.whl, published 2026-11-02 14:03 UTC
        per the transparency log, read from the index)``."""
        rec = self.record
        if rec.published_at is not None:
            per = "the transparency log" if rec.published_from == "log" else "the index"
            when = f"published {rec.published_at:%Y-%m-%d %H:%M} UTC per {per}"
        else:
            when = f"first seen {rec.seen_at:%Y-%m-%d %H:%M} UTC"
        origin = "read from the index" if rec.source == "index" else "seen on this machine"
        return f"{rec.project} {rec.version} ({rec.filename}, {when}, {origin})"


def sequence_change(
    records: Sequence[HistoryRecord], candidates: Sequence[HistoryRecord] = ()
) -> SequenceChange | None:
    """Walk ``records`` in publication order (:meth:`HistoryRecord.order_key`) and return the
    first attested file whose publisher is not :func:`continuous` with the one established
    before it; ``None`` when the sequence has one publisher.

    A stored record this machine allowed itself (``source="local"``, not one of the
    ``candidates`` being decided) that names another publisher than the one established by
    stored records before it is an explicit, audited decision, not a change: it was allowed
    by a ``[[package]]`` rule or imported with ``history import --accept-new-publishers``
    (first use trusts one publisher, and a publisher change is never recorded). From there
    on it is the established publisher.
    Unsigned files establish nothing (an unsigned release is an attestation downgrade,
    decided on its own)."""
    current: PublisherIdentity | None = None
    stored = False  # whether a stored record (not only candidates) established ``current``
    deciding = {id(c) for c in candidates}
    for rec in sorted(records, key=HistoryRecord.order_key):
        seen = rec.identity
        if seen is None:
            continue
        if current is None:
            current, stored = seen, id(rec) not in deciding
        elif continuous(seen, current):
            current = _merge_ids(current, seen)
            stored = stored or id(rec) not in deciding
        elif rec.source == "local" and id(rec) not in deciding and stored:
            # accepted here before (audited), against the publisher before it: the
            # publisher from now on
            current = seen
        else:
            change = classify_change(seen, [current])
            assert change is not None
            return SequenceChange(rec, current, change)
    return None


def publication_time(ref: FileRef, result: VerificationResult) -> tuple[datetime | None, str]:
    """When ``ref`` was published and where that comes from: the transparency log's
    integrated time of its verified attestation (``"log"``), else the index's upload-time
    (``"index"``), else ``(None, "")``."""
    if result.status is VerifyStatus.VERIFIED:
        try:
            # the log's integrated time, or (Rekor v2) the RFC 3161 timestamp: both verified
            signed = attested_release_time(result.integrated_time, result.tsa_time).time
        except (OverflowError, OSError, ValueError):
            signed = None
        if signed is not None:
            return signed, "log"
    if ref.upload_time:
        try:
            when = datetime.fromisoformat(ref.upload_time.strip().replace("Z", "+00:00"))
        except ValueError:
            return None, ""
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.astimezone(timezone.utc), "index"
    return None, ""


def candidate_record(ref: FileRef, result: VerificationResult, now: datetime) -> HistoryRecord:
    """The file being decided as a history record (``source="local"``), placed in the
    sequence at its publication time (else ``now``)."""
    when, source = publication_time(ref, result)
    identity = result.identity if result.status is VerifyStatus.VERIFIED else None
    return HistoryRecord(
        project=ref.project,
        version=ref.version,
        filename=result.filename or ref.filename,
        sha256=result.sha256 or (ref.sha256 or ""),
        identity=identity,
        seen_at=_today(now),
        index=ref.index,
        source="local",
        published_at=when,
        published_from="log" if source == "log" else ("index" if when else None),
        build=result.build if identity is not None else None,
    )


def _names_only(identity: PublisherIdentity) -> PublisherIdentity:
    return PublisherIdentity(
        kind=identity.kind,
        repository=identity.repository,
        workflow=identity.workflow,
        workflow_filepath=identity.workflow_filepath,
        environment=identity.environment,
        email=identity.email,
    )


# ---------------------------------------------------------------------------------------------
# Fix commands


def _q(value: str) -> str:
    return shlex.quote(value)


#: The reason the printed fixes give. Not a placeholder: running a fix as printed is the
#: review (the user read the refusal above it); ``allow review`` refuses placeholders.
FIX_REASON = "reviewed after a safe-pip refusal"


def _policy_arg(policy: Policy | None) -> str:
    """``--policy PATH`` when the policy was named on the command line: the fix must edit the
    file the next run reads (``$SAFE_PIP_POLICY`` and ./safe-pip.toml are found again)."""
    if policy is not None and policy.explicit and policy.path is not None:
        return f" --policy {_q(str(policy.path))}"
    return ""


def allow_add_command(
    project: str, identity: PublisherIdentity, policy: Policy | None = None
) -> str:
    """``safe-pip allow add`` for ``identity``, pinning the numeric ids the certificate
    carried (so the fix also accepts a re-created repository, and only that one)."""
    cmd = f"safe-pip allow add {_q(project)} --publisher {_q(format_shorthand(identity))}"
    if identity.environment and identity.kind in (GITHUB, GITLAB):
        cmd += f" --environment {_q(identity.environment)}"
    if identity.kind in (GITHUB, GITLAB):
        if identity.repository_id:
            cmd += f" --repository-id {_q(identity.repository_id)}"
        if identity.repository_owner_id:
            cmd += f" --owner-id {_q(identity.repository_owner_id)}"
    return cmd + _policy_arg(policy)


def allow_unsigned_command(
    project: str, version: str, sha256: str, policy: Policy | None = None
) -> str:
    cmd = f"safe-pip allow unsigned {_q(project)} --versions {_q('==' + version)}"
    if sha256:
        cmd += f" --sha256 {_q(sha256)}"
    return cmd + f" --reason {_q(FIX_REASON)}" + _policy_arg(policy)


# ---------------------------------------------------------------------------------------------
# decide()


def _describe(identities: Sequence[PublisherIdentity]) -> str:
    return " or ".join(i.describe() for i in identities) if identities else "(none)"


def _package_rule_label(policy: Policy, rule: PackageRule) -> str:
    return f"{policy.label(rule.line)} [[package]] {rule.name}"


def _unsigned_label(policy: Policy, exc: UnsignedException) -> str:
    return f"{policy.label(exc.line)} [[unsigned]] {exc.name}"


def _history_summary(history: ProjectHistory) -> str:
    versions = history.attested_versions()
    shown = ", ".join(versions[-3:]) if versions else ""
    more = f" (and {len(versions) - 3} earlier)" if len(versions) > 3 else ""
    sources = history.sources()
    where = (
        " (read from the index)"
        if sources == frozenset({"index"})
        else (" (seen on this machine)" if sources == frozenset({"local"}) else "")
    )
    return f"release(s) {shown}{more}{where}"


def _today(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)


def _version_in(exc: UnsignedException, version: str) -> bool:
    """PEP 440 containment, stricter in two ways (docs/policy.md "Unsigned exceptions"):
    pre-releases only when the specifier itself names one, and a version with a local label
    (``1.0+evil``) only when an ``==`` / ``===`` clause names it with that very label (PEP 440
    ``==1.0`` ignores local labels, so anyone could publish ``1.0+anything`` under it)."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    if parsed.local is not None and not any(
        _names_exactly(spec.operator, spec.version, parsed, version) for spec in exc.versions
    ):
        return False
    return exc.versions.contains(parsed, prereleases=bool(exc.versions.prereleases))


def _exception_mismatch(
    exc: UnsignedException, ref: FileRef, result: VerificationResult, today: date, where: str
) -> str | None:
    """Why the [[unsigned]] entry ``exc`` does not allow this file, or None when it does."""
    if not _version_in(exc, ref.version):
        return f"{where} covers {exc.versions or '(no versions)'}, not {ref.version}"
    if exc.sha256 and result.sha256.lower() not in exc.sha256:
        return f"{where} pins other sha256 digests than {result.sha256}"
    if exc.expired(today):
        return f"{where} expired on {exc.expires}"
    return None


def _allowing_exception(
    ref: FileRef, result: VerificationResult, policy: Policy, now: datetime
) -> UnsignedException | None:
    today = _today(now).astimezone(timezone.utc).date()
    for exc in policy.unsigned_for(ref.project):
        if _exception_mismatch(exc, ref, result, today, "") is None:
            return exc
    return None


def _with_build_context(
    ref: FileRef,
    result: VerificationResult,
    policy: Policy,
    history: ProjectHistory,
    verdict: Verdict,
) -> Verdict:
    """``verdict`` with the build claims compared to the history's (docs/policy.md "Build
    context"): a change is reported on an allowed file (WARN), or refused under
    ``on-build-context-change = "error"``; a refusal keeps its reason, the changes attached."""
    if result.status is not VerifyStatus.VERIFIED or result.build is None:
        return verdict
    changes = build_context_changes(
        ref.version, result.build, [(r.version, r.build) for r in history.attested_records()]
    )
    if not changes:
        return verdict
    out = replace(verdict, build_changes=changes)
    if verdict.action is Action.REFUSE:
        return out
    detail = "; ".join(c.describe() for c in changes)
    if policy.defaults.on_build_context_change == "error":
        return replace(
            out,
            action=Action.REFUSE,
            code=ReasonCode.REFUSED_BUILD_CONTEXT_CHANGE,
            reason=f"build context changed: {detail}; otherwise: {verdict.reason}",
            rule="defaults.on-build-context-change",
            fix=(
                "check the release's run in the project's CI; if the change is expected, run "
                'once with on-build-context-change = "warn" in [defaults]: the allowed release '
                "is recorded and becomes the project's history"
            ),
        )
    return replace(
        out,
        action=Action.WARN,
        reason=f"{verdict.reason}; build context changed: {detail}",
    )


def _with_release_age(
    ref: FileRef,
    result: VerificationResult,
    policy: Policy,
    history: ProjectHistory,
    now: datetime,
    verdict: Verdict,
) -> Verdict:
    """``verdict`` with the release's provenance state and the release-age rule applied.

    Only a file the other rules allowed (ALLOW or WARN) can be turned into ``refused-too-new``
    (or ``refused-age-unknown``); a refusal keeps its own, stronger, reason."""
    state = provenance_state(ref, result, history)
    if result.status is VerifyStatus.VERIFIED:
        release = attested_release_time(result.integrated_time, result.tsa_time)
        exception = None
    elif result.status is VerifyStatus.UNSIGNED:
        release = unsigned_release_time(ref.upload_time)
        exception = (
            _allowing_exception(ref, result, policy, now)
            if verdict.code is ReasonCode.UNSIGNED_ALLOWED
            else None
        )
    else:
        return replace(verdict, provenance_state=state)
    min_age, age_rule = policy.min_release_age_for(ref.project, exception)
    check = check_age(release, min_age, age_rule, now)
    out = replace(
        verdict,
        provenance_state=state,
        release_time=release.time.isoformat() if release.time else None,
        release_time_source=release.source,
        min_release_age=format_duration(min_age),
        acceptable_from=(
            check.acceptable_from.isoformat()
            if check.acceptable_from is not None and check.applies
            else None
        ),
    )
    if verdict.action is Action.REFUSE or not check.applies:
        return out
    name = canonicalize_name(ref.project)
    fix_now = (
        f"if you need it now, run once with --min-release-age 0, or set min-release-age in "
        f"the [[package]] or [[unsigned]] entry of {name}"
    )
    if check.unknown:
        warn = policy.defaults.on_unknown_release_age == "warn"
        reason = (
            f"its release age is unknown: it is not attested and the index gives no "
            f"upload-time, and {age_rule} requires {format_duration(min_age)}"
        )
        if warn:
            reason += ' (allowed because on-unknown-release-age = "warn")'
        return replace(
            out,
            action=Action.WARN if warn else Action.REFUSE,
            code=ReasonCode.REFUSED_AGE_UNKNOWN,
            reason=f"{reason}; otherwise: {verdict.reason}",
            rule=age_rule if not warn else f"{age_rule}; defaults.on-unknown-release-age",
            fix="" if warn else fix_now,
        )
    if check.too_new:
        assert check.acceptable_from is not None
        return replace(
            out,
            action=Action.REFUSE,
            code=ReasonCode.REFUSED_TOO_NEW,
            reason=(
                f"too new: published {release.describe()}, younger than the "
                f"{format_duration(min_age)} minimum release age ({age_rule}); acceptable "
                f"from {fmt_time(check.acceptable_from)}; otherwise: {verdict.reason}"
            ),
            rule=age_rule,
            fix=f"wait until {fmt_time(check.acceptable_from)}; {fix_now}",
        )
    return out


def _names_exactly(operator: str, spec_version: str, parsed: Version, raw: str) -> bool:
    if operator == "===":
        return spec_version.strip().lower() == raw.strip().lower()
    if operator != "==" or spec_version.endswith(".*"):
        return False
    try:
        return Version(spec_version) == parsed and Version(spec_version).local == parsed.local
    except InvalidVersion:
        return False


def decide(
    ref: FileRef,
    result: VerificationResult,
    policy: Policy,
    history: ProjectHistory,
    now: datetime,
) -> Verdict:
    """Decide whether the file ``ref`` with verification ``result`` may be installed.

    Pure and total: it never raises for any input; anything inconsistent is a refusal
    (``could-not-check``), never an allow.
    """
    try:
        verdict = _decide(ref, result, policy, history, now)
        verdict = _with_build_context(ref, result, policy, history, verdict)
        return _with_release_age(ref, result, policy, history, now, verdict)
    except Exception as exc:  # fail closed
        return _verdict(
            ref,
            result,
            Action.REFUSE,
            ReasonCode.COULD_NOT_CHECK,
            f"internal error while applying the policy ({type(exc).__name__}: {exc})",
            "policy",
        )


def _verdict(
    ref: FileRef,
    result: VerificationResult,
    action: Action,
    code: ReasonCode,
    reason: str,
    rule: str,
    *,
    expected: Sequence[PublisherIdentity] = (),
    fix: str = "",
) -> Verdict:
    return Verdict(
        project=ref.project,
        version=ref.version,
        filename=result.filename or ref.filename,
        sha256=result.sha256,
        action=action,
        code=code,
        reason=reason,
        rule=rule,
        identity=result.identity if result.status is VerifyStatus.VERIFIED else None,
        expected=tuple(expected),
        fix=fix,
        verification=result,
    )


def _decide(
    ref: FileRef,
    result: VerificationResult,
    policy: Policy,
    history: ProjectHistory,
    now: datetime,
) -> Verdict:
    name = canonicalize_name(ref.project)
    status = result.status

    def refuse_cnc(reason: str, rule: str = "verification", fix: str = "") -> Verdict:
        return _verdict(
            ref, result, Action.REFUSE, ReasonCode.COULD_NOT_CHECK, reason, rule, fix=fix
        )

    if status is VerifyStatus.ERROR:
        return refuse_cnc(
            f"could not check {result.filename or ref.filename}: {result.reason}",
            fix="retry once the index, network and trust root are reachable; nothing was allowed",
        )
    if history.project != name:
        return refuse_cnc(
            f"internal error: history for {history.project!r} given for {name!r}", "history"
        )
    if not result.sha256:
        return refuse_cnc("internal error: verification result has no sha256")
    if ref.sha256 and ref.sha256.lower() != result.sha256.lower():
        return _verdict(
            ref,
            result,
            Action.REFUSE,
            ReasonCode.REFUSED_INVALID_ATTESTATION,
            f"the downloaded file's sha256 {result.sha256} differs from the index's "
            f"{ref.sha256}: the file was changed in transit or by the index",
            "verification",
            fix="do not install; report it to the index operator",
        )
    if status is VerifyStatus.INVALID:
        return _verdict(
            ref,
            result,
            Action.REFUSE,
            ReasonCode.REFUSED_INVALID_ATTESTATION,
            f"the attestation for {result.filename or ref.filename} does not verify "
            f"({result.reason}); treated as an attack",
            "verification",
            fix="none: do not install; report it to the project's maintainers",
        )
    # The index's window may hold this very file: it is what is being decided, not history.
    own = (result.filename or ref.filename, result.sha256.lower())
    if any(r.source == "index" and (r.filename, r.sha256) == own for r in history.records):
        history = ProjectHistory(
            history.project,
            tuple(
                r
                for r in history.records
                if not (r.source == "index" and (r.filename, r.sha256) == own)
            ),
        )
    if status is VerifyStatus.UNSIGNED:
        return _decide_unsigned(ref, result, policy, history, now, name)
    if status is VerifyStatus.VERIFIED:
        if result.identity is None:
            return refuse_cnc("internal error: verified result without a publisher identity")
        return _decide_verified(ref, result, result.identity, policy, history, name, now)
    return refuse_cnc(f"unknown verification status {status!r}")


def _allowed_unsigned(
    ref: FileRef,
    result: VerificationResult,
    where: str,
    entry: UnsignedException | UnsignedProject,
    rule: str,
    note: str = "",
) -> Verdict:
    """An unsigned file allowed by the policy entry ``entry`` (described by ``where``): the
    verdict carries the entry's ``expires`` as ``allowed_until`` (00:00 UTC that day), so a
    kept verdict is decided again once the entry stopped applying."""
    reason = f"unsigned, allowed by {where}: {entry.reason}"
    until = None
    if entry.expires is not None:
        reason += f" (until {entry.expires})"
        until = datetime.combine(entry.expires, time(0), tzinfo=timezone.utc).isoformat()
    verdict = _verdict(ref, result, Action.ALLOW, ReasonCode.UNSIGNED_ALLOWED, reason + note, rule)
    return replace(verdict, allowed_until=until)


def _decide_unsigned(
    ref: FileRef,
    result: VerificationResult,
    policy: Policy,
    history: ProjectHistory,
    now: datetime,
    name: str,
) -> Verdict:
    """Unsigned files, in this order (docs/policy.md):

    1. an unexpired ``[[unsigned]]`` exception that pins this file's sha256 -> allowed (the
       only thing that overrides the history: someone reviewed these very bytes);
    2. the same (project, filename) was allowed before with other bytes -> ``refused-file-
       changed`` (unsigned file memory, like Go's checksum database);
    3. any release was attested (locally or on the index) -> ``refused-attestation-downgrade``;
    4. an unexpired ``[[unsigned]]`` exception by version -> allowed;
    5. an unexpired ``[[unsigned-project]]`` entry -> allowed;
    6. a ``[[package]]`` entry or ``require-attestation`` -> ``refused-unsigned``, else allowed.
    """
    today = _today(now).astimezone(timezone.utc).date()
    notes: list[str] = []
    sha = result.sha256.lower()
    filename = result.filename or ref.filename
    by_version: UnsignedException | None = None
    for exc in policy.unsigned_for(name):
        where = f"the [[unsigned]] exception at {policy.label(exc.line)}"
        note = _exception_mismatch(exc, ref, result, today, where)
        if note is not None:
            notes.append(note)
            continue
        if not exc.sha256:
            by_version = by_version or exc
            continue
        note = (
            f"; note: earlier {_history_summary(history)} were attested"
            if history.was_attested()
            else ""
        )
        return _allowed_unsigned(
            ref, result, f"{where} (sha256 pinned)", exc, _unsigned_label(policy, exc), note
        )
    fix = allow_unsigned_command(name, ref.version, result.sha256, policy)
    changed = [
        r
        for r in history.records
        if r.filename.lower() == filename.lower() and r.sha256.lower() != sha
    ]
    if changed:
        before = changed[0]
        seen = "read from the index" if before.source == "index" else "allowed on this machine"
        return _verdict(
            ref,
            result,
            Action.REFUSE,
            ReasonCode.REFUSED_FILE_CHANGED,
            f"{filename} was {seen} on {before.seen_at.date()} with sha256 {before.sha256}; "
            f"these bytes have sha256 {result.sha256}: the same file of the same release "
            "changed (a mirror or index swapped it, or the release was re-uploaded)",
            "history (unsigned file memory)",
            fix=fix,
        )
    if history.was_attested():
        # nothing but a sha256-pinned exception (rule 1) overrides attested history
        for exc in (by_version,) if by_version is not None else ():
            notes.append(
                f"the [[unsigned]] exception at {policy.label(exc.line)} covers "
                f"{exc.versions} by version only, which does not override attested history"
            )
        entry = policy.unsigned_projects.get(name)
        if entry is not None:
            notes.append(
                f"the [[unsigned-project]] entry at {policy.label(entry.line)} does not "
                "override attested history"
            )
    else:
        if by_version is not None:
            where = f"the [[unsigned]] exception at {policy.label(by_version.line)}"
            return _allowed_unsigned(
                ref, result, where, by_version, _unsigned_label(policy, by_version)
            )
        entry = policy.unsigned_projects.get(name)
        if entry is not None:
            where = f"the [[unsigned-project]] entry at {policy.label(entry.line)}"
            if entry.expired(today):
                notes.append(f"{where} expired on {entry.expires}")
            else:
                label = f"{policy.label(entry.line)} [[unsigned-project]] {entry.name}"
                return _allowed_unsigned(ref, result, where, entry, label)
    suffix = ("; " + "; ".join(notes)) if notes else ""
    rule = policy.packages.get(name)
    # Without history: refused when the project is allowlisted or attestation is required.
    otherwise_refused = rule is not None or policy.defaults.require_attestation
    if history.was_attested():
        known = history.attested_identities()
        # "warn" softens only the downgrade itself, never require-attestation or an allowlist.
        warn = policy.defaults.on_attestation_downgrade == "warn" and not otherwise_refused
        reason = (
            f"{ref.version} is unsigned but {_history_summary(history)} were attested by "
            f"{_describe(known)}: attestation downgrade{suffix}"
        )
        if warn:
            reason += ' (allowed because on-attestation-downgrade = "warn")'
        return _verdict(
            ref,
            result,
            Action.WARN if warn else Action.REFUSE,
            ReasonCode.REFUSED_ATTESTATION_DOWNGRADE,
            reason,
            "history" if otherwise_refused else "history; defaults.on-attestation-downgrade",
            expected=known,
            fix=fix,
        )
    if rule is not None:
        return _verdict(
            ref,
            result,
            Action.REFUSE,
            ReasonCode.REFUSED_UNSIGNED,
            f"unsigned, but {policy.label(rule.line)} expects {name} to be published by "
            f"{_describe(rule.publishers)}{suffix}",
            _package_rule_label(policy, rule),
            expected=rule.publishers,
            fix=fix,
        )
    if policy.defaults.require_attestation:
        return _verdict(
            ref,
            result,
            Action.REFUSE,
            ReasonCode.REFUSED_UNSIGNED,
            f"unsigned ({result.reason or 'no provenance'}) and require-attestation is on{suffix}",
            "defaults.require-attestation",
            fix=fix,
        )
    return _verdict(
        ref,
        result,
        Action.ALLOW,
        ReasonCode.UNSIGNED_ALLOWED,
        f"unsigned, allowed because require-attestation = false{suffix}",
        "defaults.require-attestation",
    )


def _recreated_against_history(
    seen: PublisherIdentity, history: ProjectHistory
) -> PublisherChange | None:
    """A "re-created repository" finding when history has the same names only with other ids."""
    same_names = [
        k for k in history.attested_identities() if identity_matches(seen, _names_only(k))
    ]
    if not same_names or any(ids_consistent(seen, k) for k in same_names):
        return None
    return classify_change(seen, same_names)


def _decide_verified(
    ref: FileRef,
    result: VerificationResult,
    seen: PublisherIdentity,
    policy: Policy,
    history: ProjectHistory,
    name: str,
    now: datetime,
) -> Verdict:
    if seen.kind not in (GITHUB, GITLAB, GOOGLE):
        # Signed, but not by a Trusted Publisher kind safe-pip can name in a policy (e.g. a
        # personal identity signing by hand, or a CI issuer it does not model): never trusted,
        # on first use or otherwise, since no allowlist entry could ever match it again.
        issuer = f" (issuer {seen.issuer})" if seen.issuer else ""
        return _verdict(
            ref,
            result,
            Action.REFUSE,
            ReasonCode.REFUSED_UNEXPECTED_PUBLISHER,
            f"signed by {seen.describe()}{issuer}, which is not a Trusted Publisher identity "
            "(GitHub, GitLab or Google) that a policy can name: safe-pip does not trust it",
            "trusted publisher kinds",
            fix="",
        )
    known = history.attested_identities()
    rule = policy.packages.get(name)
    if rule is not None:
        label = _package_rule_label(policy, rule)
        matched = [p for p in rule.publishers if identity_matches(seen, p)]
        if matched:
            pinned = any(p.repository_id or p.repository_owner_id for p in matched)
            recreated = None if pinned else _recreated_against_history(seen, history)
            if recreated is not None:
                return _verdict(
                    ref,
                    result,
                    Action.REFUSE,
                    ReasonCode.REFUSED_PUBLISHER_CHANGE,
                    f"signed by {seen.describe()}, which {label} allows by name, but "
                    f"{recreated.detail}",
                    f"history; {label}",
                    expected=matched,
                    fix=allow_add_command(name, seen, policy),
                )
            return _verdict(
                ref,
                result,
                Action.ALLOW,
                ReasonCode.VERIFIED_ALLOWLISTED,
                f"signed by {seen.describe()}, an allowed publisher",
                label,
                expected=rule.publishers,
            )
        change = classify_change(seen, known) if known else None
        if change is None or change.kind not in ("renamed", "transferred", "recreated"):
            change = classify_change(seen, rule.publishers)
        detail = f" ({change.detail})" if change else ""
        return _verdict(
            ref,
            result,
            Action.REFUSE,
            ReasonCode.REFUSED_UNEXPECTED_PUBLISHER,
            f"signed by {seen.describe()}, but {label} allows only "
            f"{_describe(rule.publishers)}{detail}",
            label,
            expected=rule.publishers,
            fix=allow_add_command(name, seen, policy),
        )
    tofu = policy.defaults.trust_on_first_use
    if known:
        candidate = candidate_record(ref, result, now)
        found = sequence_change((*history.records, candidate), (candidate,))
        if found is None:
            local = any(
                r.source == "local" and r.identity is not None and continuous(seen, r.identity)
                for r in history.attested_records()
            )
            if tofu or local:
                return _verdict(
                    ref,
                    result,
                    Action.ALLOW,
                    ReasonCode.VERIFIED_KNOWN,
                    f"signed by {seen.describe()}, the publisher of earlier "
                    f"{_history_summary(history)}",
                    "history",
                    expected=known,
                )
            return _verdict(
                ref,
                result,
                Action.REFUSE,
                ReasonCode.REFUSED_UNEXPECTED_PUBLISHER,
                f"signed by {seen.describe()}, the publisher of earlier "
                f"{_history_summary(history)}, but that history was only read from the index, "
                f"{name} has no [[package]] entry and trust-on-first-use is off",
                "defaults.trust-on-first-use",
                expected=known,
                fix=allow_add_command(name, seen, policy),
            )
        at_candidate = found.record is candidate or (
            found.record.filename == candidate.filename and found.record.sha256 == candidate.sha256
        )
        if at_candidate:
            matched = [k for k in known if identity_matches(seen, _names_only(k))]
            change = classify_change(seen, matched or [found.before])
            assert change is not None
        else:
            change = found.change
        is_recreated = change.kind == "recreated"
        # "warn" softens only the change itself: never a re-creation, and never what
        # trust-on-first-use = false would refuse anyway.
        warn = policy.defaults.on_publisher_change == "warn" and not is_recreated and tofu
        if at_candidate:
            reason = (
                f"publisher changed: signed by {seen.describe()}, but earlier "
                f"{_history_summary(history)} were published by {found.before.describe()}: "
                f"{change.detail}"
            )
        else:
            reason = (
                f"signed by {seen.describe()}, but {name}'s publisher changes in its history "
                f"at {found.where()}: {found.before.describe()} before, "
                f"{found.after.describe()} from there on ({change.detail}); a change anywhere "
                "in the history is a decision for you, whichever publisher signed this file"
            )
        if warn:
            reason += ' (allowed because on-publisher-change = "warn")'
        elif is_recreated:
            reason += "; this is always refused until you review it"
        return _verdict(
            ref,
            result,
            Action.WARN if warn else Action.REFUSE,
            ReasonCode.REFUSED_PUBLISHER_CHANGE,
            reason,
            "history" if is_recreated or not tofu else "history; defaults.on-publisher-change",
            expected=(found.before,) if not at_candidate else known,
            fix=allow_add_command(name, seen, policy),
        )
    if tofu:
        return _verdict(
            ref,
            result,
            Action.ALLOW,
            ReasonCode.VERIFIED_FIRST_USE,
            f"signed by {seen.describe()}; first time {name} is seen: trusted on first use "
            "(the expected publisher from now on, once a run records it)",
            "defaults.trust-on-first-use",
        )
    return _verdict(
        ref,
        result,
        Action.REFUSE,
        ReasonCode.REFUSED_UNEXPECTED_PUBLISHER,
        f"signed by {seen.describe()}, but {name} has no [[package]] entry and "
        "trust-on-first-use is off",
        "defaults.trust-on-first-use",
        fix=allow_add_command(name, seen, policy),
    )


# ---------------------------------------------------------------------------------------------
# What to remember


def history_records_for(
    ref: FileRef,
    result: VerificationResult,
    verdict: Verdict,
    now: datetime,
) -> tuple[HistoryRecord, ...]:
    """The history records to store for a decided file: only plain ALLOW verdicts are
    remembered (a verified file with its publisher, or an allowed unsigned file with
    ``identity=None``). WARN and REFUSE verdicts record nothing, so a warned publisher change
    keeps warning until the user accepts it with ``safe-pip allow add``."""
    if not result.sha256 or not (
        verdict.action is Action.ALLOW or (verdict.action is Action.WARN and _only_noted(verdict))
    ):
        return ()
    if result.status is VerifyStatus.VERIFIED and result.identity is not None:
        pass
    elif result.status is not VerifyStatus.UNSIGNED:
        return ()
    return (candidate_record(ref, result, now),)


#: Codes of verdicts the policy allowed outright.
ALLOWED_CODES = frozenset(
    {
        ReasonCode.VERIFIED_ALLOWLISTED,
        ReasonCode.VERIFIED_FIRST_USE,
        ReasonCode.VERIFIED_KNOWN,
        ReasonCode.UNSIGNED_ALLOWED,
    }
)


def _only_noted(verdict: Verdict) -> bool:
    """A WARN that only notes a build-context change on a file the policy allowed: recorded,
    so the changed build becomes the project's history (it warns once, not forever)."""
    return verdict.code in ALLOWED_CODES and bool(verdict.build_changes)


def smallest_min_age(policy: Policy, project: str, version: str) -> tuple[timedelta, str]:
    """The smallest minimum release age any rule could give a file of ``project`` at
    ``version`` (e.g. an [[unsigned]] entry covering that version), and the setting that
    gave it: what :func:`too_new_by_upload_time` compares with."""
    ages = [policy.min_release_age_for(project)]
    for exc in policy.unsigned_for(project):
        if exc.min_release_age is not None and _version_in(exc, version):
            ages.append(policy.min_release_age_for(project, exc))
    return min(ages, key=lambda a: a[0])


def too_new_by_upload_time(
    ref: FileRef,
    policy: Policy,
    now: datetime,
    *,
    min_age: tuple[timedelta, str] | None = None,
) -> AgeCheck | None:
    """The age check of ``ref`` by the index's ``upload-time`` alone, when that already shows
    it too new: a page may leave such a file out before verifying anything, so the resolver
    picks an older release. Lenient on purpose (the smallest minimum any rule could give the
    file, e.g. an [[unsigned]] entry covering its version): this only omits files, it never
    allows one; the verified file is still decided by :func:`decide`, whose age comes from the
    transparency log for an attested file. None when the file may be listed. ``min_age``:
    :func:`smallest_min_age` of the file's project and version, when the caller has it."""
    age, rule = min_age or smallest_min_age(policy, ref.project, ref.version)
    if age <= timedelta(0):
        return None
    release = unsigned_release_time(ref.upload_time)
    if release.time is None:
        return None
    check = check_age(release, age, rule, now)
    return check if check.too_new else None


# ---------------------------------------------------------------------------------------------
# One first-use decision, one publisher


def one_first_use_publisher(
    verdicts: Sequence[Verdict], policy: Policy | None = None
) -> list[Verdict]:
    """``verdicts`` (same order), where the files of a project trusted on first use in one
    decision name more than one publisher: then none of them is trusted. Each becomes
    ``refused-publisher-change`` naming every publisher and file, since first use trusts
    exactly one publisher and which one is the user's decision (``safe-pip allow add``)."""
    groups: dict[str, list[int]] = {}
    for i, v in enumerate(verdicts):
        if v.code is ReasonCode.VERIFIED_FIRST_USE and v.identity is not None and v.allowed:
            groups.setdefault(canonicalize_name(v.project), []).append(i)
    out = list(verdicts)
    for name, indexes in groups.items():
        publishers: list[PublisherIdentity] = []
        files: dict[int, list[str]] = {}
        for i in indexes:
            ident = verdicts[i].identity
            assert ident is not None
            for n, p in enumerate(publishers):
                if continuous(ident, p) and continuous(p, ident):
                    files[n].append(verdicts[i].filename)
                    break
            else:
                publishers.append(ident)
                files[len(publishers) - 1] = [verdicts[i].filename]
        if len(publishers) < 2:
            continue
        listed = "; ".join(
            f"{p.describe()} signed {', '.join(files[n])}" for n, p in enumerate(publishers)
        )
        reason = (
            f"first use of {name} would trust {len(publishers)} publishers at once ({listed}); "
            "one first-use decision trusts exactly one publisher, so none is trusted"
        )
        for i in indexes:
            out[i] = _refused_change(
                verdicts[i], reason, "history (first use)", tuple(publishers), policy
            )
    return out


def record_of(v: Verdict, now: datetime, index: str | None = None) -> HistoryRecord:
    """The history record of a decided file (``source="local"``): its publisher (None when
    unsigned), placed at its verified attestation's transparency-log time (else unknown)."""
    res = v.verification
    published: datetime | None = None
    if res is not None and res.verified:
        try:
            published = attested_release_time(res.integrated_time, res.tsa_time).time
        except (OverflowError, OSError, ValueError):
            published = None
    return HistoryRecord(
        project=v.project,
        version=v.version,
        filename=v.filename,
        sha256=v.sha256 or "0" * 64,
        identity=v.identity,
        seen_at=_today(now),
        index=index,
        source="local",
        published_at=published,
        published_from="log" if published is not None else None,
        build=res.build if res is not None and res.verified and v.identity is not None else None,
    )


def verdict_record(v: Verdict, now: datetime) -> HistoryRecord | None:
    """:func:`record_of` a verified file (None for a file without a verified publisher)."""
    res = v.verification
    if v.identity is None or res is None or not res.verified:
        return None
    return record_of(v, now)


def _refused_change(
    v: Verdict,
    reason: str,
    rule: str,
    expected: tuple[PublisherIdentity, ...],
    policy: Policy | None,
) -> Verdict:
    assert v.identity is not None
    return replace(
        v,
        action=Action.REFUSE,
        code=ReasonCode.REFUSED_PUBLISHER_CHANGE,
        reason=reason,
        rule=rule,
        expected=expected,
        fix=allow_add_command(canonicalize_name(v.project), v.identity, policy),
    )


def one_decision(
    verdicts: Sequence[Verdict],
    histories: Mapping[str, ProjectHistory],
    policy: Policy,
    now: datetime,
) -> list[Verdict]:
    """``verdicts`` (same order), decided together (one install, one lock, one served page):
    the files of a project are one window of its sequence, so its verified files are placed
    in its history (``histories``, by canonical name) together. Where that sequence changes
    publisher, every file of the project allowed on first use or as known is refused
    (``refused-publisher-change`` naming where), whichever publisher signed it: whichever
    file was decided first must not decide which publisher wins. Projects with a
    ``[[package]]`` rule are decided by the rule and left alone. Then
    :func:`one_first_use_publisher`."""
    groups: dict[str, list[int]] = {}
    for i, v in enumerate(verdicts):
        groups.setdefault(canonicalize_name(v.project), []).append(i)
    out = list(verdicts)
    for name, indexes in groups.items():
        history = histories.get(name)
        if history is None or policy.packages.get(name) is not None:
            continue
        cands = [r for r in (verdict_record(verdicts[i], now) for i in indexes) if r is not None]
        if len(cands) < 2 and not history.was_attested():
            continue
        found = sequence_change((*history.records, *cands), cands)
        if found is None:
            continue
        reason = (
            f"{name}'s files decided together change publisher at {found.where()}: "
            f"{found.before.describe()} before, {found.after.describe()} from there on "
            f"({found.change.detail}); one decision trusts one publisher, so none is trusted"
        )
        for i in indexes:
            v = verdicts[i]
            if not v.allowed or v.code not in (
                ReasonCode.VERIFIED_FIRST_USE,
                ReasonCode.VERIFIED_KNOWN,
            ):
                continue
            out[i] = _refused_change(v, reason, "history", (found.before,), policy)
    return one_first_use_publisher(out, policy)
