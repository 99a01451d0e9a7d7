"""The outcome of one checked file: the policy's verdict, refused for an sdist-only package
under ``allow-sdist = false``, and tightened (never loosened) by the lock's
``attestation-identities``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from safe_pip.check import WARN_STATUSES
from safe_pip.lock.outcome import HASH_MISMATCH, LOCK_IDENTITY_RULE, FileOutcome, Status
from safe_pip.models import Action, ReasonCode, Verdict, VerifyStatus
from safe_pip.sources.model import LockedFile, LockedPackage

if TYPE_CHECKING:
    from safe_pip.policy.file import Policy


def _code_of(verdict: Verdict) -> tuple[str, str]:
    res = verdict.verification
    detail = res.reason_code if res is not None and res.reason_code != "ok" else ""
    if res is not None and res.reason_code == HASH_MISMATCH:
        return HASH_MISMATCH, ""
    return verdict.code.value, detail


def _status_of(verdict: Verdict) -> Status:
    if verdict.code is ReasonCode.COULD_NOT_CHECK:
        return "error"
    if verdict.action is Action.REFUSE:
        return "fail"
    if verdict.action is Action.WARN:
        return "warn"
    return "ok"


#: Codes of verdicts that allowed a verified file outright (policy allowlist, history, first use).
_VERIFIED_CODES = frozenset(
    {ReasonCode.VERIFIED_ALLOWLISTED, ReasonCode.VERIFIED_KNOWN, ReasonCode.VERIFIED_FIRST_USE}
)


def apply_lock_identities(
    lock: Path, pkg: LockedPackage, f: LockedFile, verdict: Verdict, index_sha: str | None
) -> FileOutcome:
    """The outcome for one file: the policy's verdict, tightened by the lock's identities.

    The lock's ``attestation-identities`` can only make the outcome stricter: a publisher that
    does not match them, or a file without provenance, fails; a match confirms a verdict the
    policy and the history allowed (rule ``pylock attestation-identities``) and leaves every
    refusal, warning and could-not-check as it was."""
    res = verdict.verification
    code, detail = _code_of(verdict)
    if verdict.code is ReasonCode.REFUSED_QUARANTINED:
        detail = ""  # the attestation was not looked at
    out = FileOutcome(
        lock=lock,
        package=pkg,
        filename=f.filename,
        kind=f.kind,
        line=f.line or pkg.line,
        lock_sha256=f.sha256,
        status=_status_of(verdict),
        code=code,
        detail=detail,
        reason=verdict.reason,
        fix=verdict.fix,
        rule=verdict.rule,
        index_sha256=index_sha,
        identity=verdict.identity or (res.identity if res else None),
        expected=verdict.expected,
        verdict=verdict,
    )
    expected = pkg.identities
    if not expected or res is None or verdict.code is ReasonCode.REFUSED_QUARANTINED:
        return out  # a quarantined project stays refused, whatever the lock expects
    out = replace(out, expected=expected)
    names = "; ".join(e.describe() for e in expected)
    if res.status is VerifyStatus.VERIFIED and res.identity is not None:
        from safe_pip.policy.rules import classify_change, identity_matches

        if any(identity_matches(res.identity, e) for e in expected):
            # A match only confirms what the policy and the history allowed: the lock names a
            # publisher by its names, which a re-created (or transferred, renamed) repository
            # also carries, so it can never lift a refusal, a softened refusal or a
            # could-not-check (docs/verify.md "What is checked").
            if verdict.action is Action.REFUSE or verdict.code is ReasonCode.COULD_NOT_CHECK:
                return replace(
                    out,
                    expected=verdict.expected or expected,
                    reason=f"{verdict.reason} (the lock's attestation-identities name this "
                    "publisher, but a lock entry does not override a refusal by the policy or "
                    "the history)",
                )
            if verdict.code not in _VERIFIED_CODES:  # a refusal the policy softened to a warning
                return replace(
                    out,
                    expected=verdict.expected or expected,
                    reason=f"{verdict.reason} (the lock's attestation-identities name this "
                    "publisher; the policy's warning stands)",
                )
            reason = f"verified: published by {res.identity.describe()}, as the lock expects"
            status: Status = "ok"
            if verdict.project_status in WARN_STATUSES:  # archived / deprecated: still warned
                status = "warn"
                reason += f" (policy: {verdict.reason})"
            return replace(
                out,
                status=status,
                code=ReasonCode.VERIFIED_ALLOWLISTED.value,
                detail="",
                reason=reason,
                rule=LOCK_IDENTITY_RULE,
                fix="",
            )
        change = classify_change(res.identity, expected)
        why = ""
        if change is not None and change.kind in ("recreated", "renamed", "transferred"):
            why = f" ({change.detail})"  # same names, other numeric ids: say so
        return replace(
            out,
            status="fail",
            code=ReasonCode.REFUSED_UNEXPECTED_PUBLISHER.value,
            detail="",
            reason=f"published by {res.identity.describe()}, but the lock's "
            f"attestation-identities expect {names}{why}",
            rule=LOCK_IDENTITY_RULE,
            fix="if the new publisher is legitimate (check the project's announcement), "
            "update attestation-identities for this package in the lock and review the change",
        )
    if res.status is VerifyStatus.UNSIGNED:
        return replace(
            out,
            status="fail",
            code=ReasonCode.REFUSED_UNSIGNED.value,
            detail="no-provenance",
            reason=f"the index has no provenance for this file, but the lock's "
            f"attestation-identities expect {names}",
            rule=LOCK_IDENTITY_RULE,
            fix="do not install it: an attested project stopped attesting (or the index hides "
            "its provenance)",
        )
    return out


def sdist_refusal(verdict: Verdict, pkg: LockedPackage, f: LockedFile, policy: Policy) -> Verdict:
    """``verdict``, refused (``refused-sdist``) when ``f`` is the sdist of a package the lock
    gives no wheel for and the policy does not allow sdists: installing that lock would build
    it, which install and serve refuse under ``allow-sdist = false`` (their verdicts and
    verify's agree). An sdist beside wheels is checked as it is (installers take the wheel)."""
    if (
        f.kind == "wheel"
        or f.filename.endswith(".whl")
        or policy.defaults.allow_sdist
        or not verdict.allowed
        or any(other.kind == "wheel" for other in pkg.files)
    ):
        return verdict
    return replace(
        verdict,
        action=Action.REFUSE,
        code=ReasonCode.REFUSED_SDIST,
        reason=f"{f.filename} is an sdist, the lock gives {pkg.name} {pkg.version} no wheel, "
        f"and the policy does not allow sdists (verified: {verdict.reason})",
        rule=policy.label() + " [defaults] allow-sdist",
        fix=f"lock a wheel of {pkg.name}, or set allow-sdist = true in [defaults] of the "
        "policy (install and serve then verify the sdist's build dependencies too)",
    )
