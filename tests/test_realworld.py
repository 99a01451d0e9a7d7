"""Every real PEP 740 case in fixtures/realworld (or $SAFE_PIP_REALWORLD) reaches its expected
result, offline, with the production trust root shipped inside sigstore (and staging material is
refused under it).

Each case's ``case.json`` names the attestation, the dist (or its name and digest), the identity
the case checks against, and the expected result. A case "verifies" when safe-pip's verification
passes *and* the verified identity matches the case's identity under safe-pip's own comparison
rules; any other outcome is a failure.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from safe_pip.models import PublisherIdentity, VerificationResult
from safe_pip.policy.rules import identity_matches
from safe_pip.provenance.attestation import verify_provenance
from safe_pip.provenance.trust import TrustConfig, load_verifier
from support.fixtures import realworld_cases, realworld_dir

CASES = realworld_cases()


def test_corpus_is_present() -> None:
    """The corpus ships in the repository: a clone runs every case, none is skipped."""
    assert len(CASES) >= 27, realworld_dir()


def _load(case: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((case / "case.json").read_text())
    return data


def _dist(case: Path, c: dict[str, Any]) -> tuple[str, str]:
    """(filename presented, sha256 of the real bytes) as the case presents them."""
    name = c.get("dist_name_presented") or c["subject_name"]
    dist_file = c.get("dist_file")
    if dist_file and (case / dist_file).is_file():
        return name, hashlib.sha256((case / dist_file).read_bytes()).hexdigest()
    sha = c.get("dist_sha256_actual") or c["subject_sha256"]
    return name, sha


def _identity_ok(result: VerificationResult, expected: dict[str, Any]) -> bool:
    seen = result.identity
    assert seen is not None
    if expected.get("kind") == "sigstore-identity":
        return bool(seen.email == expected["identity"] and seen.issuer == expected["issuer"])
    table = {k: v for k, v in expected.items() if v}
    return identity_matches(seen, PublisherIdentity.from_table(table))


def _outcome(case: Path, staging: bool) -> tuple[str, VerificationResult]:
    c = _load(case)
    filename, sha = _dist(case, c)
    provenance = (case / c["attestation_file"]).read_bytes()
    verifier = load_verifier(TrustConfig(mode="staging" if staging else "offline"))
    result = verify_provenance(filename, sha, provenance, verifier)
    if not result.verified:
        return "fails", result
    return ("verifies" if _identity_ok(result, c["publisher_identity"]) else "fails"), result


@pytest.mark.parametrize("case", CASES, ids=[p.name for p in CASES])
def test_case_under_production_root(case: Path) -> None:
    c = _load(case)
    outcome, result = _outcome(case, staging=False)
    if c["kind"] in ("positive", "gap"):
        assert outcome == "verifies", f"{case.name}: {result.reason}"
        assert result.integrated_time is not None
        assert result.tlog_index is not None
    else:
        # negative cases, and staging material under the production root, are refused
        assert outcome == "fails", f"{case.name} should be refused: {result.reason}"
    if c["kind"] == "gap":
        # pypi-attestations accepts a SLSA predicate where a publish one may be expected;
        # safe-pip reports which predicate it saw.
        assert result.predicate_types == ("https://slsa.dev/provenance/v1",)


@pytest.mark.parametrize(
    "case",
    [p for p in CASES if p.name.startswith("stg-")],
    ids=[p.name for p in CASES if p.name.startswith("stg-")],
)
def test_staging_case_under_staging_root(case: Path) -> None:
    c = _load(case)
    outcome, result = _outcome(case, staging=True)
    # stg-01 is staging material presented to the production root: under staging it verifies.
    positive = c["kind"] == "positive-staging" or "staging-vs-production" in case.name
    expected = "verifies" if positive else "fails"
    assert outcome == expected, f"{case.name}: {result.reason}"


def test_expected_failure_reasons() -> None:
    """Refusals give the specific reason, not a generic failure."""
    by_name = {p.name: p for p in CASES}
    expectations = {
        "neg-01-wrong-dist-other-version": "name-mismatch",
        "neg-08-tampered-statement-digest": "bad-signature",
        "neg-10-tampered-signature": "bad-signature",
        "neg-12-tampered-tlog-integrated-time": "invalid-tlog-set",
        "neg-14-no-transparency-entries": "malformed",
        "neg-15-legacy-pre-dsse-attestation-format": "malformed",
        "neg-16-sigstore-messagesignature-bundle-for-wheel": "not-a-dsse-bundle",
        "neg-17-sigstore-messagesignature-bundle-rfc8785-0.0.2": "not-a-dsse-bundle",
        "stg-01-rfc8785-0.1.2-wheel-staging-vs-production": "untrusted-certificate-chain",
    }
    checked = 0
    for name, code in expectations.items():
        if name not in by_name:
            continue
        _, result = _outcome(by_name[name], staging=False)
        assert result.reason_code == code, f"{name}: {result.reason_code} ({result.reason})"
        checked += 1
    assert checked > 0
    staged = by_name.get("stg-03-spt3g-1.0-wheel-staging-synthetic-digest")
    if staged is not None:
        _o, result = _outcome(staged, staging=True)
        assert result.reason_code == "digest-mismatch"
