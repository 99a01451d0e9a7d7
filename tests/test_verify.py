"""The verification core against genuinely signed test attestations, through the real
sigstore verifier (tests/support/sigstore_ca.py mints them; nothing here is mocked)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from safe_pip.errors import ConfigError
from safe_pip.models import (
    GITHUB,
    PUBLISH_V1,
    SLSA_PROVENANCE_V1,
    PublisherIdentity,
    VerificationResult,
    VerifyStatus,
)
from safe_pip.policy.rules import identity_matches
from safe_pip.provenance.attestation import verify_provenance
from safe_pip.provenance.trust import TrustConfig, load_verifier
from support.sigstore_ca import (
    GitHubIdentity,
    GitLabIdentity,
    GoogleIdentity,
    TestSigstore,
    attestation_dict,
    provenance_json,
    swap_statement,
    tamper_inclusion_proof,
    tamper_integrated_time,
)

FILENAME = "demo-1.0-py3-none-any.whl"
SHA = hashlib.sha256(b"demo wheel bytes").hexdigest()
GH = GitHubIdentity(repository="acme/demo", workflow="release.yml")


def _verify(
    sigstore: TestSigstore,
    trust_root: Path,
    data: bytes | dict[str, Any],
    *,
    filename: str = FILENAME,
    sha: str = SHA,
) -> VerificationResult:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    verifier = load_verifier(TrustConfig(mode="custom", path=trust_root))
    return verify_provenance(filename, sha, raw, verifier)


def _att(sigstore: TestSigstore, **kw: Any) -> dict[str, Any]:
    identity = kw.pop("identity", GH)
    filename = kw.pop("filename", FILENAME)
    sha = kw.pop("sha", SHA)
    return attestation_dict(sigstore.attest(filename, sha, identity, **kw))


def test_good_github_attestation_verifies(sigstore: TestSigstore, trust_root: Path) -> None:
    now = int(time.time())
    res = _verify(sigstore, trust_root, _att(sigstore, integrated_time=now))
    assert res.status is VerifyStatus.VERIFIED, res.reason
    ident = res.identity
    assert ident is not None
    assert ident.to_table() == {
        "kind": "GitHub",
        "repository": "acme/demo",
        "workflow": "release.yml",
    }
    assert ident.repository_id == GH.repository_id
    assert ident.repository_owner_id == GH.repository_owner_id
    assert ident.ref == "refs/heads/main"
    assert res.predicate_types == (PUBLISH_V1,)
    assert res.integrated_time == now
    assert res.tlog_index is not None


def test_provenance_object_and_index_asserted_environment(
    sigstore: TestSigstore, trust_root: Path
) -> None:
    att = sigstore.attest(FILENAME, SHA, GH)
    res = _verify(sigstore, trust_root, provenance_json([att], GH, environment="pypi"))
    assert res.verified, res.reason
    assert res.identity is not None
    assert res.identity.environment == "pypi"
    assert res.identity.environment_source == "index"


def test_sigstore_bundle_form_is_accepted(sigstore: TestSigstore, trust_root: Path) -> None:
    att = sigstore.attest(FILENAME, SHA, GH)
    bundle_json = att.to_bundle().to_json()
    res = _verify(sigstore, trust_root, bundle_json.encode())
    assert res.verified, res.reason


def _bundle_dict(sigstore: TestSigstore) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(sigstore.attest(FILENAME, SHA, GH).to_bundle().to_json())
    return doc


def test_a_bundle_without_a_dsse_envelope_is_named_so(
    sigstore: TestSigstore, trust_root: Path
) -> None:
    doc = _bundle_dict(sigstore)
    del doc["dsseEnvelope"]
    doc["messageSignature"] = {
        "messageDigest": {"algorithm": "SHA2_256", "digest": "q" * 43 + "="},
        "signature": "c2ln",
    }
    res = _verify(sigstore, trust_root, doc)
    assert (res.status, res.reason_code) == (VerifyStatus.INVALID, "not-a-dsse-bundle")


def test_gitlab_and_google_identities(sigstore: TestSigstore, trust_root: Path) -> None:
    gl = GitLabIdentity(repository="group/sub/demo", workflow_filepath="ci/release.yml")
    res = _verify(sigstore, trust_root, _att(sigstore, identity=gl))
    assert res.verified, res.reason
    assert res.identity is not None
    assert res.identity.to_table() == {
        "kind": "GitLab",
        "repository": "group/sub/demo",
        "workflow_filepath": "ci/release.yml",
    }
    goog = GoogleIdentity(email="pub@demo.iam.gserviceaccount.com")
    res = _verify(sigstore, trust_root, _att(sigstore, identity=goog))
    assert res.verified, res.reason
    assert res.identity is not None
    assert res.identity.to_table() == {"kind": "Google", "email": goog.email}


def test_slsa_predicate_is_reported(sigstore: TestSigstore, trust_root: Path) -> None:
    res = _verify(sigstore, trust_root, _att(sigstore, predicate_type=SLSA_PROVENANCE_V1))
    assert res.verified, res.reason
    assert res.predicate_types == (SLSA_PROVENANCE_V1,)


def test_unknown_predicate_refused(sigstore: TestSigstore, trust_root: Path) -> None:
    res = _verify(sigstore, trust_root, _att(sigstore, predicate_type="https://evil/v1"))
    assert res.status is VerifyStatus.INVALID
    assert res.reason_code == "unknown-predicate"


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        (GitHubIdentity(repository="evil/demo", workflow="release.yml"), "repository"),
        (GitHubIdentity(repository="acme/demo", workflow="other.yml"), "workflow"),
        (GitLabIdentity(repository="acme/demo", workflow_filepath="release.yml"), "issuer"),
    ],
)
def test_wrong_publisher_verifies_but_does_not_match(
    sigstore: TestSigstore,
    trust_root: Path,
    identity: GitHubIdentity | GitLabIdentity,
    expected: str,
) -> None:
    """The crypto is valid; the identity is not the expected one (policy refuses it)."""
    res = _verify(sigstore, trust_root, _att(sigstore, identity=identity))
    assert res.verified, res.reason
    assert res.identity is not None
    want = PublisherIdentity(kind=GITHUB, repository="acme/demo", workflow="release.yml")
    assert not identity_matches(res.identity, want), expected


def test_tampered_file_refused(sigstore: TestSigstore, trust_root: Path) -> None:
    other = hashlib.sha256(b"tampered").hexdigest()
    res = _verify(sigstore, trust_root, _att(sigstore), sha=other)
    assert res.status is VerifyStatus.INVALID
    assert res.reason_code == "digest-mismatch"


def test_other_filename_refused(sigstore: TestSigstore, trust_root: Path) -> None:
    res = _verify(sigstore, trust_root, _att(sigstore), filename="demo-1.1-py3-none-any.whl")
    assert res.reason_code == "name-mismatch"
    res = _verify(sigstore, trust_root, _att(sigstore), filename="other-1.0-py3-none-any.whl")
    assert res.reason_code == "name-mismatch"


def test_swapped_statement_refused(sigstore: TestSigstore, trust_root: Path) -> None:
    a = _att(sigstore)
    b = _att(sigstore, sha=hashlib.sha256(b"b").hexdigest())
    res = _verify(sigstore, trust_root, swap_statement(a, b), sha=hashlib.sha256(b"b").hexdigest())
    assert res.status is VerifyStatus.INVALID
    assert res.reason_code == "bad-signature", res.reason


def test_unknown_ca_refused(sigstore: TestSigstore, trust_root: Path) -> None:
    rogue = TestSigstore()
    res = _verify(sigstore, trust_root, _att(sigstore, ca=rogue))
    assert res.reason_code == "untrusted-certificate-chain", res.reason


def test_certificate_expired_at_integrated_time_refused(
    sigstore: TestSigstore, trust_root: Path
) -> None:
    res = _verify(sigstore, trust_root, _att(sigstore, cert_validity=(-1200, -600)))
    assert res.reason_code == "untrusted-certificate-chain", res.reason
    assert "not valid at validation time" in res.reason


def test_unknown_ct_log_refused(sigstore: TestSigstore, trust_root: Path) -> None:
    res = _verify(sigstore, trust_root, _att(sigstore, ctlog=TestSigstore()))
    assert res.reason_code == "invalid-sct", res.reason


def test_unknown_transparency_log_refused(sigstore: TestSigstore, trust_root: Path) -> None:
    res = _verify(sigstore, trust_root, _att(sigstore, tlog=TestSigstore()))
    assert res.reason_code == "invalid-tlog-entry", res.reason


def test_edited_integrated_time_refused(sigstore: TestSigstore, trust_root: Path) -> None:
    res = _verify(sigstore, trust_root, tamper_integrated_time(_att(sigstore), 30))
    assert res.reason_code == "invalid-tlog-set", res.reason


def test_tampered_inclusion_proof_refused(sigstore: TestSigstore, trust_root: Path) -> None:
    res = _verify(sigstore, trust_root, tamper_inclusion_proof(_att(sigstore)))
    assert res.reason_code == "invalid-tlog-entry", res.reason
    assert "inclusion proof" in res.reason


def test_production_root_refuses_test_attestations(sigstore: TestSigstore) -> None:
    raw = json.dumps(_att(sigstore)).encode()
    res = verify_provenance(FILENAME, SHA, raw, load_verifier(TrustConfig(mode="offline")))
    assert res.status is VerifyStatus.INVALID
    assert res.reason_code == "untrusted-certificate-chain", res.reason


def test_publisher_object_contradicting_certificate_refused(
    sigstore: TestSigstore, trust_root: Path
) -> None:
    att = sigstore.attest(FILENAME, SHA, GH)
    lie = provenance_json([att], GitHubIdentity(repository="acme/other", workflow="release.yml"))
    res = _verify(sigstore, trust_root, lie)
    assert res.reason_code == "publisher-mismatch"


def test_conflicting_publishers_in_one_provenance_refused(
    sigstore: TestSigstore, trust_root: Path
) -> None:
    a = sigstore.attest(FILENAME, SHA, GH)
    other = GitHubIdentity(repository="acme/fork", workflow="release.yml")
    b = sigstore.attest(FILENAME, SHA, other)
    doc = json.loads(provenance_json([a], GH))
    doc["attestation_bundles"].append(
        json.loads(provenance_json([b], other))["attestation_bundles"][0]
    )
    res = _verify(sigstore, trust_root, doc)
    assert res.reason_code == "conflicting-publishers"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b'{"version": 2, "attestation_bundles": []}',
        b'{"version": 1, "attestation_bundles": []}',
        b'{"version": 1, "attestation_bundles": '
        b'[{"publisher": {"kind": "GitHub"}, "attestations": []}]}',
        b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}',
        b'{"verification_material": {}, "envelope": {}}',
        b"[" * 100_000,
        b'{"a": "' + b"x" * (3 * 1024 * 1024) + b'"}',
    ],
)
def test_malformed_provenance_is_refused_without_traceback(trust_root: Path, raw: bytes) -> None:
    verifier = load_verifier(TrustConfig(mode="custom", path=trust_root))
    res = verify_provenance(FILENAME, SHA, raw, verifier)
    assert res.status is VerifyStatus.INVALID
    assert res.reason


def test_truncated_attestation_refused(sigstore: TestSigstore, trust_root: Path) -> None:
    raw = json.dumps(_att(sigstore)).encode()
    res = _verify(sigstore, trust_root, raw[: len(raw) // 2])
    assert res.status is VerifyStatus.INVALID
    assert res.reason_code == "malformed"


def test_malformed_trust_root_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "trusted_root.json"
    bad.write_text('{"mediaType": "nope"}')
    with pytest.raises(ConfigError, match=r"not a valid Sigstore trusted_root\.json"):
        load_verifier(TrustConfig(mode="custom", path=bad))
    with pytest.raises(ConfigError, match="cannot read trust root"):
        load_verifier(TrustConfig(mode="custom", path=tmp_path / "missing.json"))


def test_refs_and_file_names_with_at_signs_parse_exactly(
    sigstore: TestSigstore, trust_root: Path
) -> None:
    """The build config URI is split at the certificate's own ref, not at an '@'."""
    gh = GitHubIdentity(repository="acme/demo", workflow="rel@ase.yml", ref="refs/heads/a@b")
    res = _verify(sigstore, trust_root, _att(sigstore, identity=gh))
    assert res.verified, res.reason
    assert res.identity is not None
    assert res.identity.workflow == "rel@ase.yml"
    gl = GitLabIdentity(repository="group/demo", workflow_filepath="ci.yml", ref="refs/heads/x@y")
    res = _verify(sigstore, trust_root, _att(sigstore, identity=gl))
    assert res.verified, res.reason
    assert res.identity is not None
    assert res.identity.workflow_filepath == "ci.yml"


# The verifier's messages embed data: bytes reprs of hashes, base64 checkpoints. CI once read
# "...J2sCTThf..." inside a checkpoint signature as "SCT" and reported a tampered inclusion
# proof as invalid-sct. The reason code comes from the message's words, never its data.
_PROOF_MSG = (
    "invalid log entry: inclusion proof contains invalid root hash: expected log_index=529 "
    "root_hash=b'\\x99q$\\xe8' tree_size=530 hashes=[b'I\\xec]'] checkpoint=Checkpoint("
    "envelope='rekor.sigstore.test - 1627\\n530\\nmXEk6KRg\\n\\n— rekor.sigstore.test "
    "4eMlEDBFAiEAzOsMG3EXdhH/bB9reSzeN2+ZP/mktNEiH/J2sCTThfYCID1hIYO4Frl8qBIDqgH7zmruv5h9je"
    "\\n'), calculated 7507743a3fa9"
)


@pytest.mark.parametrize(
    ("msg", "code"),
    [
        (_PROOF_MSG, "invalid-tlog-entry"),
        ("SCT verify failed: signature mismatch", "invalid-sct"),
        ("failed to verify SCT on signing certificate: bad", "invalid-sct"),
        ("CTFE keys not found in trusted root", "invalid-sct"),
        ("SET: invalid inclusion promise: missing", "invalid-tlog-set"),
        ("invalid log entry: SET: invalid inclusion promise: keyring: x", "invalid-tlog-set"),
        ("checkpoint: invalid signature: x", "invalid-tlog-entry"),
        ("DSSE: invalid signature", "bad-signature"),
        ("Signature is invalid for input", "bad-signature"),
        ("not enough sources of verified time", "invalid-time"),
        ("Invalid Timestamp Response", "invalid-time"),
        ("failed to build certificate chain: no issuer", "untrusted-certificate-chain"),
        ("something else: data='sct set time signature rekor'", "verification-failed"),
    ],
)
def test_reason_code_comes_from_words_not_data(msg: str, code: str) -> None:
    from safe_pip.provenance.attestation import _classify

    assert _classify(msg) == code


def test_reason_code_ignores_any_base64_in_data() -> None:
    import base64
    import random

    from safe_pip.provenance.attestation import _classify

    rng = random.Random(740)
    for _ in range(2000):
        blob = base64.b64encode(rng.randbytes(72)).decode()
        msg = _PROOF_MSG.replace("4eMlEDBFAiEA", blob)
        assert _classify(msg) == "invalid-tlog-entry", blob
