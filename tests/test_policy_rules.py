"""decide(): one table row per reason code and rule branch, the identity comparison rules, the
rename / transfer / re-creation diagnostics, and hypothesis properties (fail closed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet

from safe_pip.models import (
    Action,
    FileRef,
    PublisherIdentity,
    ReasonCode,
    VerificationResult,
    VerifyStatus,
)
from safe_pip.policy.file import (
    Defaults,
    PackageRule,
    Policy,
    UnsignedException,
    parse_policy,
)
from safe_pip.policy.history import HistoryRecord, ProjectHistory
from safe_pip.policy.rules import (
    classify_change,
    decide,
    history_records_for,
    identity_matches,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SHA = "ab" * 32
# Lab files were published a month before NOW (older than the default minimum release age):
# the release-age tests in tests/test_release_age.py choose their own times.
PUBLISHED = NOW - timedelta(days=30)
OTHER_SHA = "cd" * 32

A = PublisherIdentity(
    kind="GitHub",
    repository="acme/widget",
    workflow="release.yml",
    repository_id="100",
    repository_owner_id="10",
)
A_ENV = PublisherIdentity(
    kind="GitHub",
    repository="acme/widget",
    workflow="release.yml",
    environment="pypi",
    repository_id="100",
    repository_owner_id="10",
    environment_source="index",
)
EVIL = PublisherIdentity(
    kind="GitHub",
    repository="evil/widget",
    workflow="release.yml",
    repository_id="666",
    repository_owner_id="66",
)
OTHER_WORKFLOW = PublisherIdentity(
    kind="GitHub",
    repository="acme/widget",
    workflow="sneaky.yml",
    repository_id="100",
    repository_owner_id="10",
)
RENAMED = PublisherIdentity(
    kind="GitHub",
    repository="acme/widget-ng",
    workflow="release.yml",
    repository_id="100",
    repository_owner_id="10",
)
TRANSFERRED = PublisherIdentity(
    kind="GitHub",
    repository="newco/widget",
    workflow="release.yml",
    repository_id="100",
    repository_owner_id="20",
)
RECREATED = PublisherIdentity(
    kind="GitHub",
    repository="acme/widget",
    workflow="release.yml",
    repository_id="999",
    repository_owner_id="10",
)
OWNER_RECREATED = PublisherIdentity(
    kind="GitHub",
    repository="acme/widget",
    workflow="release.yml",
    repository_id="100",
    repository_owner_id="77",
)
NO_IDS = PublisherIdentity(kind="GitHub", repository="acme/widget", workflow="release.yml")
GITLAB = PublisherIdentity(
    kind="GitLab", repository="group/sub/widget", workflow_filepath=".gitlab-ci.yml"
)
GOOGLE = PublisherIdentity(kind="Google", email="builder@example.com")

POLICY_TEXT = """\
# test policy
[defaults]
require-attestation = true

[[package]]
name = "widget"
publishers = [
  { kind = "GitHub", repository = "acme/widget", workflow = "release.yml" },
]

[[unsigned]]
name = "six"
versions = "==1.16.0"
reason = "upstream does not attest"
expires = 2026-07-01

[[unsigned]]
name = "pinned"
versions = ">=1.0"
sha256 = ["SHA"]
reason = "reviewed bytes"
""".replace('"SHA"', f'"{SHA}"')


def ref(version: str = "1.0", project: str = "widget", sha: str | None = None) -> FileRef:
    return FileRef(
        project=project,
        version=version,
        filename=f"{project}-{version}-py3-none-any.whl",
        sha256=sha,
        index="https://pypi.org/simple/",
        upload_time=PUBLISHED.isoformat(),
    )


def verified(identity: PublisherIdentity | None, sha: str = SHA) -> VerificationResult:
    return VerificationResult(
        "f.whl",
        sha,
        VerifyStatus.VERIFIED,
        "ok",
        identity=identity,
        integrated_time=int(PUBLISHED.timestamp()),
    )


def unsigned(sha: str = SHA) -> VerificationResult:
    return VerificationResult("f.whl", sha, VerifyStatus.UNSIGNED, "no provenance", "no-provenance")


def invalid() -> VerificationResult:
    return VerificationResult("f.whl", SHA, VerifyStatus.INVALID, "bad signature", "bad-signature")


def error() -> VerificationResult:
    return VerificationResult("f.whl", SHA, VerifyStatus.ERROR, "timeout", "network")


def hist(
    project: str, *items: tuple[str, PublisherIdentity | None], source: str = "local"
) -> ProjectHistory:
    records = tuple(
        HistoryRecord(
            project=project,
            version=v,
            filename=f"{project}-{v}.tar.gz",
            sha256=f"{i:064x}",
            identity=ident,
            seen_at=NOW - timedelta(days=100 - i),
            index=None,
            source="index" if source == "index" else "local",
        )
        for i, (v, ident) in enumerate(items)
    )
    return ProjectHistory(project, records)


def policy(text: str = POLICY_TEXT, **defaults: Any) -> Policy:
    p = parse_policy(text, Path("safe-pip.toml"))
    if defaults:
        from dataclasses import replace

        p = replace(p, defaults=replace(p.defaults, **defaults))
    return p


NO_RULES = "[defaults]\n"


@dataclass
class Case:
    id: str
    result: VerificationResult
    action: Action
    code: ReasonCode
    project: str = "widget"
    version: str = "1.0"
    text: str = POLICY_TEXT
    history: tuple[tuple[str, PublisherIdentity | None], ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)
    now: datetime = NOW
    rule: str = ""
    reason: tuple[str, ...] = ()
    fix: str = ""
    ref_sha: str | None = None


CASES = [
    # ---- could not check / invalid: never allowed, whatever the policy says
    Case("error", error(), Action.REFUSE, ReasonCode.COULD_NOT_CHECK, rule="verification"),
    Case(
        "error-with-unsigned-exception",
        error(),
        Action.REFUSE,
        ReasonCode.COULD_NOT_CHECK,
        project="six",
        version="1.16.0",
    ),
    Case(
        "error-with-require-off",
        error(),
        Action.REFUSE,
        ReasonCode.COULD_NOT_CHECK,
        text=NO_RULES,
        defaults={"require_attestation": False},
    ),
    Case("invalid", invalid(), Action.REFUSE, ReasonCode.REFUSED_INVALID_ATTESTATION),
    Case(
        "invalid-with-unsigned-exception",
        invalid(),
        Action.REFUSE,
        ReasonCode.REFUSED_INVALID_ATTESTATION,
        project="six",
        version="1.16.0",
    ),
    Case(
        "index-sha-differs-from-bytes",
        verified(A),
        Action.REFUSE,
        ReasonCode.REFUSED_INVALID_ATTESTATION,
        ref_sha=OTHER_SHA,
        reason=("differs",),
    ),
    Case(
        "verified-without-identity",
        verified(None),
        Action.REFUSE,
        ReasonCode.COULD_NOT_CHECK,
    ),
    # ---- unsigned
    Case(
        "unsigned-exception",
        unsigned(),
        Action.ALLOW,
        ReasonCode.UNSIGNED_ALLOWED,
        project="six",
        version="1.16.0",
        rule="safe-pip.toml:11 [[unsigned]] six",
        reason=("upstream does not attest", "until 2026-07-01"),
    ),
    Case(
        "unsigned-exception-other-version",
        unsigned(),
        Action.REFUSE,
        ReasonCode.REFUSED_UNSIGNED,
        project="six",
        version="1.17.0",
        rule="defaults.require-attestation",
        reason=("covers ==1.16.0, not 1.17.0",),
        fix="safe-pip allow unsigned six --versions ==1.17.0 --sha256 " + SHA,
    ),
    Case(
        "unsigned-exception-day-before-expiry",
        unsigned(),
        Action.ALLOW,
        ReasonCode.UNSIGNED_ALLOWED,
        project="six",
        version="1.16.0",
        now=datetime(2026, 6, 30, 23, 59, tzinfo=timezone.utc),
    ),
    Case(
        "unsigned-exception-expired-on-its-date",
        unsigned(),
        Action.REFUSE,
        ReasonCode.REFUSED_UNSIGNED,
        project="six",
        version="1.16.0",
        now=datetime(2026, 7, 1, 0, 0, tzinfo=timezone.utc),
        reason=("expired on 2026-07-01",),
    ),
    Case(
        "unsigned-exception-expired-later",
        unsigned(),
        Action.REFUSE,
        ReasonCode.REFUSED_UNSIGNED,
        project="six",
        version="1.16.0",
        now=datetime(2027, 1, 1, tzinfo=timezone.utc),
        reason=("expired",),
    ),
    Case(
        "unsigned-exception-sha-pinned",
        unsigned(SHA),
        Action.ALLOW,
        ReasonCode.UNSIGNED_ALLOWED,
        project="pinned",
        version="2.0",
    ),
    Case(
        "unsigned-exception-sha-not-pinned",
        unsigned(OTHER_SHA),
        Action.REFUSE,
        ReasonCode.REFUSED_UNSIGNED,
        project="pinned",
        version="2.0",
        reason=("pins other sha256",),
    ),
    Case(
        "unsigned-exception-prerelease-not-covered",
        unsigned(SHA),
        Action.REFUSE,
        ReasonCode.REFUSED_UNSIGNED,
        project="pinned",
        version="2.0rc1",
    ),
    Case(
        "unsigned-exception-unparseable-version",
        unsigned(SHA),
        Action.REFUSE,
        ReasonCode.REFUSED_UNSIGNED,
        project="pinned",
        version="not a version",
    ),
    Case(
        "unsigned-downgrade",
        unsigned(),
        Action.REFUSE,
        ReasonCode.REFUSED_ATTESTATION_DOWNGRADE,
        project="gadget",
        version="3.0",
        history=(("1.0", A), ("2.0", A)),
        rule="history",
        reason=("attested by GitHub acme/widget", "1.0, 2.0"),
        fix="safe-pip allow unsigned gadget --versions ==3.0",
    ),
    Case(
        "unsigned-downgrade-warn",
        unsigned(),
        Action.WARN,
        ReasonCode.REFUSED_ATTESTATION_DOWNGRADE,
        project="gadget",
        history=(("1.0", A),),
        defaults={"on_attestation_downgrade": "warn", "require_attestation": False},
        rule="history; defaults.on-attestation-downgrade",
        reason=('on-attestation-downgrade = "warn"',),
    ),
    Case(
        "unsigned-downgrade-warn-does-not-override-require",
        unsigned(),
        Action.REFUSE,
        ReasonCode.REFUSED_ATTESTATION_DOWNGRADE,
        project="gadget",
        history=(("1.0", A),),
        defaults={"on_attestation_downgrade": "warn"},
        rule="history",
    ),
    Case(
        "unsigned-downgrade-warn-does-not-override-allowlist",
        unsigned(),
        Action.REFUSE,
        ReasonCode.REFUSED_ATTESTATION_DOWNGRADE,
        history=(("1.0", A),),
        defaults={"on_attestation_downgrade": "warn", "require_attestation": False},
    ),
    Case(
        "unsigned-downgrade-older-version-too",
        unsigned(),
        Action.REFUSE,
        ReasonCode.REFUSED_ATTESTATION_DOWNGRADE,
        project="gadget",
        version="0.1",
        history=(("0.1", None), ("1.0", A)),
    ),
    Case(
        "unsigned-downgrade-even-if-require-off",
        unsigned(),
        Action.REFUSE,
        ReasonCode.REFUSED_ATTESTATION_DOWNGRADE,
        project="gadget",
        history=(("1.0", A),),
        defaults={"require_attestation": False},
    ),
    Case(
        # issue 12: an exception by version no longer overrides attested history
        "version-exception-does-not-beat-downgrade",
        unsigned(),
        Action.REFUSE,
        ReasonCode.REFUSED_ATTESTATION_DOWNGRADE,
        project="six",
        version="1.16.0",
        history=(("1.15.0", A),),
        reason=("by version only, which does not override attested history",),
        fix="safe-pip allow unsigned six --versions ==1.16.0 --sha256 " + SHA,
    ),
    Case(
        "sha256-pinned-exception-beats-downgrade",
        unsigned(),
        Action.ALLOW,
        ReasonCode.UNSIGNED_ALLOWED,
        project="pinned",
        version="1.2",
        history=(("1.1", A),),
        reason=("sha256 pinned", "note: earlier"),
    ),
    Case(
        "unsigned-allowlisted-project",
        unsigned(),
        Action.REFUSE,
        ReasonCode.REFUSED_UNSIGNED,
        rule="safe-pip.toml:5 [[package]] widget",
        defaults={"require_attestation": False},
    ),
    Case(
        "unsigned-require",
        unsigned(),
        Action.REFUSE,
        ReasonCode.REFUSED_UNSIGNED,
        project="gadget",
        rule="defaults.require-attestation",
    ),
    Case(
        "unsigned-require-off",
        unsigned(),
        Action.ALLOW,
        ReasonCode.UNSIGNED_ALLOWED,
        project="gadget",
        defaults={"require_attestation": False},
        rule="defaults.require-attestation",
    ),
    Case(
        "unsigned-history-only-unsigned",
        unsigned(),
        Action.ALLOW,
        ReasonCode.UNSIGNED_ALLOWED,
        project="gadget",
        history=(("1.0", None),),
        defaults={"require_attestation": False},
    ),
    # ---- verified, allowlist
    Case(
        "allowlisted",
        verified(A),
        Action.ALLOW,
        ReasonCode.VERIFIED_ALLOWLISTED,
        rule="safe-pip.toml:5 [[package]] widget",
    ),
    Case(
        "allowlisted-case-insensitive-repo",
        verified(
            PublisherIdentity(kind="GitHub", repository="ACME/Widget", workflow="release.yml")
        ),
        Action.ALLOW,
        ReasonCode.VERIFIED_ALLOWLISTED,
    ),
    Case(
        "allowlist-other-repo",
        verified(EVIL),
        Action.REFUSE,
        ReasonCode.REFUSED_UNEXPECTED_PUBLISHER,
        rule="safe-pip.toml:5 [[package]] widget",
        reason=("evil/widget", "allows only GitHub acme/widget @ release.yml"),
        fix="safe-pip allow add widget --publisher github:evil/widget@release.yml",
    ),
    Case(
        "allowlist-other-repo-warn-does-not-apply",
        verified(EVIL),
        Action.REFUSE,
        ReasonCode.REFUSED_UNEXPECTED_PUBLISHER,
        defaults={"on_publisher_change": "warn"},
    ),
    Case(
        "allowlist-other-workflow",
        verified(OTHER_WORKFLOW),
        Action.REFUSE,
        ReasonCode.REFUSED_UNEXPECTED_PUBLISHER,
        reason=("workflow sneaky.yml instead of release.yml",),
    ),
    Case(
        "allowlist-renamed-repo-reported",
        verified(RENAMED),
        Action.REFUSE,
        ReasonCode.REFUSED_UNEXPECTED_PUBLISHER,
        history=(("0.9", A),),
        reason=("renamed to acme/widget-ng", "same repository id 100"),
    ),
    Case(
        "allowlist-matches-but-repo-recreated",
        verified(RECREATED),
        Action.REFUSE,
        ReasonCode.REFUSED_PUBLISHER_CHANGE,
        history=(("0.9", A),),
        rule="history; safe-pip.toml:5 [[package]] widget",
        reason=("re-created", "repository id 100", "repository id 999"),
        fix="safe-pip allow add widget --publisher github:acme/widget@release.yml "
        "--repository-id 999",
    ),
    Case(
        "allowlist-matches-history-without-ids",
        verified(A),
        Action.ALLOW,
        ReasonCode.VERIFIED_ALLOWLISTED,
        history=(("0.9", NO_IDS),),
    ),
    # ---- verified, history
    Case(
        "known",
        verified(A),
        Action.ALLOW,
        ReasonCode.VERIFIED_KNOWN,
        project="gadget",
        history=(("1.0", A),),
        rule="history",
    ),
    Case(
        "known-from-index-history",
        verified(A),
        Action.ALLOW,
        ReasonCode.VERIFIED_KNOWN,
        project="gadget",
        history=(("1.0", A),),
        reason=("read from the index",),
    ),
    Case(
        "known-cert-without-ids",
        verified(NO_IDS),
        Action.ALLOW,
        ReasonCode.VERIFIED_KNOWN,
        project="gadget",
        history=(("1.0", A),),
    ),
    Case(
        "known-either-of-two-publishers",
        verified(OTHER_WORKFLOW),
        Action.ALLOW,
        ReasonCode.VERIFIED_KNOWN,
        project="gadget",
        history=(("1.0", A), ("1.1", OTHER_WORKFLOW)),
    ),
    Case(
        "publisher-change-other-repo",
        verified(EVIL),
        Action.REFUSE,
        ReasonCode.REFUSED_PUBLISHER_CHANGE,
        project="gadget",
        history=(("1.0", A),),
        rule="history; defaults.on-publisher-change",
        reason=("publisher changed", "evil/widget"),
        fix="safe-pip allow add gadget --publisher github:evil/widget@release.yml",
    ),
    Case(
        "publisher-change-warn",
        verified(EVIL),
        Action.WARN,
        ReasonCode.REFUSED_PUBLISHER_CHANGE,
        project="gadget",
        history=(("1.0", A),),
        defaults={"on_publisher_change": "warn"},
    ),
    Case(
        "publisher-change-warn-not-when-first-use-off",
        verified(EVIL),
        Action.REFUSE,
        ReasonCode.REFUSED_PUBLISHER_CHANGE,
        project="gadget",
        history=(("1.0", A),),
        defaults={"on_publisher_change": "warn", "trust_on_first_use": False},
        rule="history",
    ),
    Case(
        "known-local-history-with-first-use-off",
        verified(A),
        Action.ALLOW,
        ReasonCode.VERIFIED_KNOWN,
        project="gadget",
        history=(("1.0", A),),
        defaults={"trust_on_first_use": False},
    ),
    Case(
        "known-only-from-index-with-first-use-off",
        verified(A),
        Action.REFUSE,
        ReasonCode.REFUSED_UNEXPECTED_PUBLISHER,
        project="gadget",
        history=(("1.0", A),),
        defaults={"trust_on_first_use": False},
        rule="defaults.trust-on-first-use",
        reason=("only read from the index",),
    ),
    Case(
        "publisher-change-workflow",
        verified(OTHER_WORKFLOW),
        Action.REFUSE,
        ReasonCode.REFUSED_PUBLISHER_CHANGE,
        project="gadget",
        history=(("1.0", A),),
        reason=("workflow sneaky.yml instead of release.yml",),
    ),
    Case(
        "publisher-change-environment-dropped",
        verified(A),
        Action.REFUSE,
        ReasonCode.REFUSED_PUBLISHER_CHANGE,
        project="gadget",
        history=(("1.0", A_ENV),),
        reason=("environment (none) instead of pypi", "asserted by the index"),
    ),
    Case(
        "publisher-change-environment-added-is-fine",
        verified(A_ENV),
        Action.ALLOW,
        ReasonCode.VERIFIED_KNOWN,
        project="gadget",
        history=(("1.0", A),),
    ),
    Case(
        "publisher-change-kind",
        verified(GOOGLE),
        Action.REFUSE,
        ReasonCode.REFUSED_PUBLISHER_CHANGE,
        project="gadget",
        history=(("1.0", A),),
        reason=("different kind of publisher: Google instead of GitHub",),
    ),
    Case(
        "renamed",
        verified(RENAMED),
        Action.REFUSE,
        ReasonCode.REFUSED_PUBLISHER_CHANGE,
        project="gadget",
        history=(("1.0", A),),
        reason=("renamed to acme/widget-ng", "same repository id 100 and owner id 10"),
        fix="safe-pip allow add gadget --publisher github:acme/widget-ng@release.yml",
    ),
    Case(
        "transferred",
        verified(TRANSFERRED),
        Action.REFUSE,
        ReasonCode.REFUSED_PUBLISHER_CHANGE,
        project="gadget",
        history=(("1.0", A),),
        reason=("transferred to newco/widget", "owner id 10", "owner id 20"),
    ),
    Case(
        "renamed-warn",
        verified(RENAMED),
        Action.WARN,
        ReasonCode.REFUSED_PUBLISHER_CHANGE,
        project="gadget",
        history=(("1.0", A),),
        defaults={"on_publisher_change": "warn"},
    ),
    Case(
        "recreated-repository",
        verified(RECREATED),
        Action.REFUSE,
        ReasonCode.REFUSED_PUBLISHER_CHANGE,
        project="gadget",
        history=(("1.0", A),),
        rule="history",
        reason=("re-created", "always refused"),
        fix="safe-pip allow add gadget --publisher github:acme/widget@release.yml "
        "--repository-id 999",
    ),
    Case(
        "recreated-owner-account",
        verified(OWNER_RECREATED),
        Action.REFUSE,
        ReasonCode.REFUSED_PUBLISHER_CHANGE,
        project="gadget",
        history=(("1.0", A),),
        reason=("owner id 10 before", "owner id 77 now"),
    ),
    Case(
        "recreated-is-refused-even-with-warn",
        verified(RECREATED),
        Action.REFUSE,
        ReasonCode.REFUSED_PUBLISHER_CHANGE,
        project="gadget",
        history=(("1.0", A),),
        defaults={"on_publisher_change": "warn"},
    ),
    Case(
        "recreated-accepted-after-both-in-history",
        verified(RECREATED),
        Action.ALLOW,
        ReasonCode.VERIFIED_KNOWN,
        project="gadget",
        history=(("1.0", A), ("2.0", RECREATED)),
    ),
    # ---- verified, nothing known
    Case(
        "first-use",
        verified(A),
        Action.ALLOW,
        ReasonCode.VERIFIED_FIRST_USE,
        project="gadget",
        rule="defaults.trust-on-first-use",
    ),
    Case(
        "first-use-after-unsigned-history",
        verified(A),
        Action.ALLOW,
        ReasonCode.VERIFIED_FIRST_USE,
        project="gadget",
        history=(("0.9", None),),
    ),
    Case(
        "first-use-off",
        verified(A),
        Action.REFUSE,
        ReasonCode.REFUSED_UNEXPECTED_PUBLISHER,
        project="gadget",
        defaults={"trust_on_first_use": False},
        rule="defaults.trust-on-first-use",
        fix="safe-pip allow add gadget --publisher github:acme/widget@release.yml",
    ),
    Case(
        "first-use-gitlab",
        verified(GITLAB),
        Action.ALLOW,
        ReasonCode.VERIFIED_FIRST_USE,
        project="gadget",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide_table(case: Case) -> None:
    pol = policy(case.text, **case.defaults)
    history = hist(case.project, *case.history, source="index" if "index" in case.id else "local")
    r = ref(case.version, case.project, case.ref_sha)
    verdict = decide(r, case.result, pol, history, case.now)
    assert verdict.code is case.code, verdict.reason
    assert verdict.action is case.action, verdict.reason
    assert verdict.project == case.project
    assert verdict.version == case.version
    assert verdict.sha256 == case.result.sha256
    assert verdict.verification is case.result
    if case.rule:
        assert verdict.rule == case.rule
    for fragment in case.reason:
        assert fragment in verdict.reason, verdict.reason
    if case.fix:
        assert verdict.fix.startswith(case.fix), verdict.fix
    if verdict.action is Action.REFUSE and case.code is not ReasonCode.COULD_NOT_CHECK:
        assert verdict.fix, "every refusal says how to proceed"


#: The reason codes decide() produces (install adds its own for sdists and unverifiable sources).
DECIDE_CODES = {
    ReasonCode.VERIFIED_ALLOWLISTED,
    ReasonCode.VERIFIED_FIRST_USE,
    ReasonCode.VERIFIED_KNOWN,
    ReasonCode.UNSIGNED_ALLOWED,
    ReasonCode.REFUSED_UNSIGNED,
    ReasonCode.REFUSED_UNEXPECTED_PUBLISHER,
    ReasonCode.REFUSED_PUBLISHER_CHANGE,
    ReasonCode.REFUSED_ATTESTATION_DOWNGRADE,
    ReasonCode.REFUSED_INVALID_ATTESTATION,
    ReasonCode.COULD_NOT_CHECK,
}


def test_every_reason_code_is_covered() -> None:
    assert {c.code for c in CASES} == DECIDE_CODES


def test_expected_lists_allowlist_and_history() -> None:
    pol = policy()
    v = decide(ref(), verified(EVIL), pol, hist("widget"), NOW)
    assert [e.repository for e in v.expected] == ["acme/widget"]
    v = decide(ref(project="gadget"), verified(EVIL), pol, hist("gadget", ("1", A)), NOW)
    assert v.expected == (A,)
    assert v.identity == EVIL


def test_history_project_mismatch_fails_closed() -> None:
    v = decide(ref(project="gadget"), verified(A), policy(), hist("other"), NOW)
    assert v.code is ReasonCode.COULD_NOT_CHECK
    assert not v.allowed


def test_fix_commands_are_shell_quoted() -> None:
    weird = PublisherIdentity(kind="Google", email="a;rm -rf ~@x.com")
    v = decide(
        ref(project="gadget"),
        verified(weird),
        policy(NO_RULES, trust_on_first_use=False),
        hist("gadget"),
        NOW,
    )
    assert "'google:a;rm -rf ~@x.com'" in v.fix


def test_naive_now_is_utc() -> None:
    v = decide(
        ref("1.16.0", "six"),
        unsigned(),
        policy(),
        hist("six"),
        datetime(2026, 7, 1, 0, 0),
    )
    assert v.code is ReasonCode.REFUSED_UNSIGNED


# ------------------------------------------------------------------ identity comparison

GH = PublisherIdentity(kind="GitHub", repository="acme/widget", workflow="release.yml")


def gh(**kw: str) -> PublisherIdentity:
    base = {"kind": "GitHub", "repository": "acme/widget", "workflow": "release.yml"}
    base.update(kw)
    return PublisherIdentity(**base)  # type: ignore[arg-type]


MATCH_CASES = [
    ("same", gh(), gh(), True),
    ("repo-case-insensitive", gh(repository="Acme/WIDGET"), gh(), True),
    ("other-repo", gh(repository="acme/widget2"), gh(), False),
    ("other-owner", gh(repository="evil/widget"), gh(), False),
    ("workflow-case-sensitive", gh(workflow="Release.yml"), gh(), False),
    ("workflow-other", gh(workflow="publish.yml"), gh(), False),
    ("workflow-basename", gh(workflow=".github/workflows/release.yml"), gh(), True),
    ("env-not-named-by-expected", gh(environment="pypi"), gh(), True),
    ("env-named-and-equal", gh(environment="pypi"), gh(environment="pypi"), True),
    ("env-named-case-insensitive", gh(environment="PyPI"), gh(environment="pypi"), True),
    ("env-named-missing", gh(), gh(environment="pypi"), False),
    ("env-named-other", gh(environment="staging"), gh(environment="pypi"), False),
    ("ids-pinned-equal", gh(repository_id="1"), gh(repository_id="1"), True),
    ("ids-pinned-other", gh(repository_id="2"), gh(repository_id="1"), False),
    ("ids-pinned-missing", gh(), gh(repository_id="1"), False),
    ("owner-id-pinned-other", gh(repository_owner_id="9"), gh(repository_owner_id="1"), False),
    ("ids-not-pinned", gh(repository_id="2"), gh(), True),
    ("kind-differs", GITLAB, gh(), False),
    (
        "kind-spelling",
        PublisherIdentity(kind="github", repository="acme/widget", workflow="release.yml"),
        gh(),
        False,
    ),
    ("gitlab-same", GITLAB, GITLAB, True),
    (
        "gitlab-repo-case",
        PublisherIdentity(
            kind="GitLab", repository="Group/Sub/Widget", workflow_filepath=".gitlab-ci.yml"
        ),
        GITLAB,
        True,
    ),
    (
        "gitlab-path-exact",
        PublisherIdentity(
            kind="GitLab", repository="group/sub/widget", workflow_filepath="ci/.gitlab-ci.yml"
        ),
        GITLAB,
        False,
    ),
    (
        "gitlab-env-case-sensitive",
        PublisherIdentity(
            kind="GitLab",
            repository="group/sub/widget",
            workflow_filepath=".gitlab-ci.yml",
            environment="PyPI",
        ),
        PublisherIdentity(
            kind="GitLab",
            repository="group/sub/widget",
            workflow_filepath=".gitlab-ci.yml",
            environment="pypi",
        ),
        False,
    ),
    ("google-same", GOOGLE, GOOGLE, True),
    ("google-case", PublisherIdentity(kind="Google", email="Builder@Example.com"), GOOGLE, True),
    ("google-other", PublisherIdentity(kind="Google", email="x@example.com"), GOOGLE, False),
    (
        "unknown-kind-never",
        PublisherIdentity(kind="Buildkite", repository="a/b"),
        PublisherIdentity(kind="Buildkite", repository="a/b"),
        False,
    ),
    (
        "github-without-workflow",
        PublisherIdentity(kind="GitHub", repository="acme/widget"),
        gh(),
        False,
    ),
]


@pytest.mark.parametrize(
    ("seen", "expected", "matches"),
    [c[1:] for c in MATCH_CASES],
    ids=[c[0] for c in MATCH_CASES],
)
def test_identity_matches(
    seen: PublisherIdentity, expected: PublisherIdentity, matches: bool
) -> None:
    assert identity_matches(seen, expected) is matches


@pytest.mark.parametrize(
    ("seen", "kind"),
    [
        (RENAMED, "renamed"),
        (TRANSFERRED, "transferred"),
        (RECREATED, "recreated"),
        (OWNER_RECREATED, "recreated"),
        (EVIL, "repository"),
        (OTHER_WORKFLOW, "workflow"),
        (GOOGLE, "kind"),
    ],
)
def test_classify_change(seen: PublisherIdentity, kind: str) -> None:
    change = classify_change(seen, [A])
    assert change is not None
    assert change.kind == kind
    assert change.known == A


def test_classify_change_without_known() -> None:
    assert classify_change(A, []) is None


# ------------------------------------------------------------------ what gets recorded


def test_history_records_only_for_plain_allow() -> None:
    pol = policy()
    r = ref(project="gadget")
    ok = decide(r, verified(A), pol, hist("gadget"), NOW)
    (rec,) = history_records_for(r, verified(A), ok, NOW)
    assert rec.identity == A
    assert rec.source == "local"
    assert rec.project == "gadget"
    warn = decide(
        r,
        verified(EVIL),
        policy(on_publisher_change="warn"),
        hist("gadget", ("1", A)),
        NOW,
    )
    assert warn.action is Action.WARN
    assert history_records_for(r, verified(EVIL), warn, NOW) == ()
    refused = decide(r, unsigned(), pol, hist("gadget"), NOW)
    assert history_records_for(r, unsigned(), refused, NOW) == ()
    allowed_unsigned = decide(r, unsigned(), policy(require_attestation=False), hist("gadget"), NOW)
    (rec,) = history_records_for(r, unsigned(), allowed_unsigned, NOW)
    assert rec.identity is None


# ------------------------------------------------------------------ properties

kinds = st.sampled_from(["GitHub", "GitLab", "Google", "Other"])
identities = st.builds(
    PublisherIdentity,
    kind=kinds,
    repository=st.sampled_from([None, "acme/widget", "Acme/Widget", "evil/widget"]),
    workflow=st.sampled_from([None, "release.yml", "Release.yml", "other.yml"]),
    workflow_filepath=st.sampled_from([None, ".gitlab-ci.yml"]),
    environment=st.sampled_from([None, "pypi", "PyPI"]),
    email=st.sampled_from([None, "a@example.com"]),
    repository_id=st.sampled_from([None, "1", "2"]),
    repository_owner_id=st.sampled_from([None, "10", "20"]),
)
versions = st.sampled_from(["1.0", "1.16.0", "2.0rc1", "bogus", "0.1"])
shas = st.sampled_from([SHA, OTHER_SHA])
statuses = st.sampled_from(list(VerifyStatus))
results = st.builds(
    VerificationResult,
    filename=st.just("f.whl"),
    sha256=st.one_of(shas, st.just("")),
    status=statuses,
    reason=st.text(max_size=20),
    identity=st.one_of(st.none(), identities),
)
defaults_st = st.builds(
    Defaults,
    require_attestation=st.booleans(),
    trust_on_first_use=st.booleans(),
    on_publisher_change=st.sampled_from(["error", "warn"]),
    on_attestation_downgrade=st.sampled_from(["error", "warn"]),
)
exceptions = st.builds(
    UnsignedException,
    name=st.just("widget"),
    versions=st.sampled_from([SpecifierSet("==1.0"), SpecifierSet(">=0.1"), SpecifierSet("<1")]),
    sha256=st.sampled_from([frozenset(), frozenset({SHA})]),
    reason=st.just("r"),
    expires=st.sampled_from([None, date(2026, 1, 1), date(2027, 1, 1)]),
    line=st.just(3),
)
policies = st.builds(
    Policy,
    defaults=defaults_st,
    packages=st.one_of(
        st.just({}),
        st.lists(identities, min_size=1, max_size=3).map(
            lambda ps: {"widget": PackageRule("widget", tuple(ps), 5)}
        ),
    ),
    unsigned=st.lists(exceptions, max_size=3).map(tuple),
    path=st.sampled_from([None, Path("safe-pip.toml")]),
)
histories = st.lists(
    st.tuples(versions, st.one_of(st.none(), identities), st.sampled_from(["local", "index"])),
    max_size=5,
).map(
    lambda items: ProjectHistory(
        "widget",
        tuple(
            HistoryRecord("widget", v, f"w-{i}.whl", SHA, ident, NOW, None, src)  # type: ignore[arg-type]
            for i, (v, ident, src) in enumerate(items)
        ),
    )
)
nows = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(timezone.utc)
)


@settings(max_examples=400, deadline=None)
@given(result=results, pol=policies, history=histories, version=versions, now=nows)
def test_decide_is_total_and_fails_closed(
    result: VerificationResult, pol: Policy, history: ProjectHistory, version: str, now: datetime
) -> None:
    verdict = decide(ref(version), result, pol, history, now)
    if result.status in (VerifyStatus.ERROR, VerifyStatus.INVALID) or not result.sha256:
        assert verdict.action is Action.REFUSE
    if result.status is VerifyStatus.ERROR:
        assert verdict.code is ReasonCode.COULD_NOT_CHECK
    if result.status is VerifyStatus.INVALID and result.sha256:
        assert verdict.code is ReasonCode.REFUSED_INVALID_ATTESTATION
    if result.status is VerifyStatus.VERIFIED and result.identity is None:
        assert verdict.action is Action.REFUSE
    if verdict.action is Action.WARN:
        d = pol.defaults
        assert (
            verdict.code is ReasonCode.REFUSED_PUBLISHER_CHANGE
            and d.on_publisher_change == "warn"
            and d.trust_on_first_use
            and "widget" not in pol.packages
        ) or (
            verdict.code is ReasonCode.REFUSED_ATTESTATION_DOWNGRADE
            and d.on_attestation_downgrade == "warn"
            and not d.require_attestation
            and "widget" not in pol.packages
        )
    # Allowed verified files are explained by an allowlist match, history or first use.
    if verdict.action is Action.ALLOW and result.status is VerifyStatus.VERIFIED:
        seen = result.identity
        assert seen is not None
        rule = pol.packages.get("widget")
        if rule is not None:
            assert verdict.code is ReasonCode.VERIFIED_ALLOWLISTED
            assert any(identity_matches(seen, p) for p in rule.publishers)
        elif history.was_attested():
            assert verdict.code is ReasonCode.VERIFIED_KNOWN
            assert pol.defaults.trust_on_first_use or "local" in history.sources()
        else:
            assert verdict.code is ReasonCode.VERIFIED_FIRST_USE
            assert pol.defaults.trust_on_first_use
    # Allowed unsigned files are explained by an unexpired exception or require-attestation off.
    if verdict.allowed and result.status is VerifyStatus.UNSIGNED:
        assert verdict.code in (
            ReasonCode.UNSIGNED_ALLOWED,
            ReasonCode.REFUSED_ATTESTATION_DOWNGRADE,
        )
        if verdict.code is ReasonCode.UNSIGNED_ALLOWED and not verdict.rule.startswith("defaults"):
            assert any(not u.expired(now.date()) for u in pol.unsigned)


@settings(max_examples=200, deadline=None)
@given(pol=policies, history=histories, extra=identities, now=nows)
def test_more_attested_history_never_allows_an_unsigned_file_it_refused(
    pol: Policy, history: ProjectHistory, extra: PublisherIdentity, now: datetime
) -> None:
    """Adding attested evidence to history never turns a refused unsigned file into allowed."""
    before = decide(ref("1.0"), unsigned(), pol, history, now)
    more = history.with_records(
        [HistoryRecord("widget", "0.5", "w-extra.whl", OTHER_SHA, extra, NOW, None, "index")]
    )
    after = decide(ref("1.0"), unsigned(), pol, more, now)
    if before.action is Action.REFUSE:
        assert after.action is Action.REFUSE
    if before.action is Action.WARN:
        assert after.action is not Action.ALLOW


@settings(max_examples=200, deadline=None)
@given(
    result=results,
    pol=policies,
    history=histories,
    now=nows,
    tighten=st.sampled_from(
        [
            {"require_attestation": True},
            {"trust_on_first_use": False},
            {"on_publisher_change": "error"},
            {"on_attestation_downgrade": "error"},
        ]
    ),
)
def test_tightening_a_default_never_allows_more(
    result: VerificationResult,
    pol: Policy,
    history: ProjectHistory,
    now: datetime,
    tighten: dict[str, Any],
) -> None:
    from dataclasses import replace

    loose = decide(ref("1.0"), result, pol, history, now)
    strict_policy = replace(pol, defaults=replace(pol.defaults, **tighten))
    strict = decide(ref("1.0"), result, strict_policy, history, now)
    rank = {Action.REFUSE: 0, Action.WARN: 1, Action.ALLOW: 2}
    assert rank[strict.action] <= rank[loose.action]


@settings(max_examples=200, deadline=None)
@given(seen=identities, expected=identities)
def test_identity_matches_properties(seen: PublisherIdentity, expected: PublisherIdentity) -> None:
    if identity_matches(seen, expected):
        assert seen.kind == expected.kind
        assert seen.kind in ("GitHub", "GitLab", "Google")
    # Reflexive for complete identities without pinned ids.
    complete = {
        "GitHub": seen.repository and seen.workflow,
        "GitLab": seen.repository and seen.workflow_filepath,
        "Google": seen.email,
    }.get(seen.kind)
    if complete:
        assert identity_matches(seen, seen)


@settings(max_examples=200, deadline=None)
@given(pol=policies, history=histories, version=versions, now=nows, ident=st.none() | identities)
def test_error_never_allows(
    pol: Policy,
    history: ProjectHistory,
    version: str,
    now: datetime,
    ident: PublisherIdentity | None,
) -> None:
    result = VerificationResult("f.whl", SHA, VerifyStatus.ERROR, "down", identity=ident)
    verdict = decide(ref(version), result, pol, history, now)
    assert verdict.action is Action.REFUSE
    assert verdict.code is ReasonCode.COULD_NOT_CHECK


@settings(max_examples=200, deadline=None)
@given(pol=policies, history=histories, version=versions, now=nows, ident=st.none() | identities)
def test_invalid_never_allows(
    pol: Policy,
    history: ProjectHistory,
    version: str,
    now: datetime,
    ident: PublisherIdentity | None,
) -> None:
    result = VerificationResult("f.whl", SHA, VerifyStatus.INVALID, "bad", identity=ident)
    verdict = decide(ref(version), result, pol, history, now)
    assert verdict.action is Action.REFUSE
    assert verdict.code is ReasonCode.REFUSED_INVALID_ATTESTATION
