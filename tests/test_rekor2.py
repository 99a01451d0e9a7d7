"""Newer Sigstore material: a real Rekor v2 (dsse/0.0.2, checkpoint only) attestation with an
RFC 3161 timestamp, from pypi-attestations' own test assets (tests/data/README.md), verified
with the real sigstore verifier and the staging root shipped in the sigstore package."""

from __future__ import annotations

import base64
import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from safe_pip.models import FileRef, ReasonCode, VerifyStatus
from safe_pip.policy.file import Policy
from safe_pip.policy.history import ProjectHistory
from safe_pip.policy.rules import decide
from safe_pip.provenance.attestation import verify_provenance
from safe_pip.provenance.rekor2 import Rekor2Error, check_dsse_v002_body
from safe_pip.provenance.trust import TrustConfig, load_verifier
from support.sigstore_ca import GitHubIdentity, TestSigstore, provenance_json

ASSET = (
    Path(__file__).parent
    / "data"
    / "rekor2"
    / "pypi_attestations-0.0.19.tar.gz.publish.attestation.with_rekor2_timestamp"
)
FILENAME = "pypi_attestations-0.0.19.tar.gz"
DIGEST = "9bb1add04b1b4e182be6b0b80931593f7a291eb49d69b4fd728a5d4cbcdc4bd3"
STAMP = int(datetime(2025, 10, 10, 8, 23, 41, tzinfo=timezone.utc).timestamp())


@pytest.fixture(scope="module")
def staging() -> Any:
    return load_verifier(TrustConfig(mode="staging"))


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(ASSET.read_bytes())
    return doc


def _verify(staging: Any, doc: dict[str, Any], digest: str = DIGEST) -> Any:
    return verify_provenance(FILENAME, digest, json.dumps(doc).encode(), staging)


def test_rekor_v2_entry_with_timestamp_verifies(staging: Any) -> None:
    res = verify_provenance(FILENAME, DIGEST, ASSET.read_bytes(), staging)
    assert res.status is VerifyStatus.VERIFIED, res.reason
    assert res.tlog_kind == "dsse/0.0.2"
    assert res.integrated_time is None  # Rekor v2 writes 0: no log time
    assert res.tsa_time == STAMP  # the time comes from the timestamp authority
    assert res.identity is not None
    assert res.identity.email == "jku@goto.fi"


def test_its_age_is_the_timestamp_and_a_personal_signer_is_refused(staging: Any) -> None:
    res = verify_provenance(FILENAME, DIGEST, ASSET.read_bytes(), staging)
    ref = FileRef(project="pypi-attestations", version="0.0.19", filename=FILENAME)
    now = datetime.fromtimestamp(STAMP, tz=timezone.utc) + timedelta(days=400)
    v = decide(ref, res, Policy.default(), ProjectHistory.empty("pypi-attestations"), now)
    # signed by a person through GitHub's OAuth login, not by a Trusted Publisher
    assert v.code is ReasonCode.REFUSED_UNEXPECTED_PUBLISHER
    assert "not a Trusted Publisher" in v.reason
    assert v.release_time_source == "timestamp-authority"
    assert v.release_time == datetime.fromtimestamp(STAMP, tz=timezone.utc).isoformat()


def test_production_root_refuses_the_staging_attestation() -> None:
    res = verify_provenance(
        FILENAME, DIGEST, ASSET.read_bytes(), load_verifier(TrustConfig(mode="offline"))
    )
    assert res.status is VerifyStatus.INVALID


def test_without_its_timestamp_there_is_no_verified_time(staging: Any) -> None:
    doc = _doc()
    del doc["verification_material"]["timestamps"]
    res = _verify(staging, doc)
    assert res.status is VerifyStatus.INVALID
    assert "inclusion promise or signed timestamp" in res.reason


def test_a_tampered_timestamp_is_refused(staging: Any) -> None:
    doc = _doc()
    raw = bytearray(base64.b64decode(doc["verification_material"]["timestamps"][0]))
    raw[-10] ^= 0x01  # inside the TSA's signature
    doc["verification_material"]["timestamps"][0] = base64.b64encode(bytes(raw)).decode()
    res = _verify(staging, doc)
    assert res.status is VerifyStatus.INVALID
    assert res.reason_code in ("invalid-time", "verification-failed", "malformed"), res.reason


def test_not_base64_timestamp_is_malformed(staging: Any) -> None:
    doc = _doc()
    doc["verification_material"]["timestamps"] = ["***"]
    res = _verify(staging, doc)
    assert res.status is VerifyStatus.INVALID
    assert res.reason_code == "malformed"
    assert "base64" in res.reason


def test_other_digest_is_refused(staging: Any) -> None:
    res = _verify(staging, _doc(), "00" * 32)
    assert res.status is VerifyStatus.INVALID
    assert res.reason_code == "digest-mismatch"


def test_edited_log_body_breaks_the_inclusion_proof(staging: Any) -> None:
    doc = _doc()
    entry = doc["verification_material"]["transparency_entries"][0]
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    body["spec"]["dsseV002"]["payloadHash"]["digest"] = base64.b64encode(b"\0" * 32).decode()
    entry["canonicalizedBody"] = base64.b64encode(json.dumps(body).encode()).decode()
    res = _verify(staging, doc)
    assert res.status is VerifyStatus.INVALID
    assert res.reason_code == "invalid-tlog-entry"


def _bundle_with_body(edit: Any) -> Any:
    """The asset's bundle with its log body edited (not re-proven): for the entry-body step
    alone, which runs only after sigstore verified the inclusion proof of the real body."""
    from pypi_attestations import Attestation

    from safe_pip.provenance.rekor2 import bundle_for, timestamps_of

    doc = _doc()
    entry = doc["verification_material"]["transparency_entries"][0]
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    edit(body)
    entry["canonicalizedBody"] = base64.b64encode(json.dumps(body).encode()).decode()
    att = Attestation.model_validate(doc)
    return bundle_for(att, timestamps_of(doc["verification_material"]))


def test_entry_body_step_accepts_the_real_body() -> None:
    check_dsse_v002_body(_bundle_with_body(lambda body: None))


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def edit(body: Any) -> None:
        node = body
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


SPEC = ("spec", "dsseV002")


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_set((*SPEC, "payloadHash", "digest"), base64.b64encode(b"1" * 32).decode()), "payload"),
        (_set((*SPEC, "payloadHash", "algorithm"), "SHA2_384"), "SHA2_256"),
        (
            _set((*SPEC, "signatures", 0, "content"), base64.b64encode(b"sig").decode()),
            "signature",
        ),
        (
            _set(
                (*SPEC, "signatures", 0, "verifier", "x509Certificate", "rawBytes"),
                base64.b64encode(b"cert").decode(),
            ),
            "certificate",
        ),
        (_set((*SPEC, "signatures", 0, "verifier", "keyDetails"), "PKIX_ED25519"), "key details"),
        (_set(("kind",), "hashedrekord"), "body is"),
        (_set((*SPEC, "extra"), 1), "fields"),
        (lambda body: body["spec"]["dsseV002"]["signatures"].append({}), "exactly one"),
    ],
)
def test_entry_body_step_refuses_each_mismatch(edit: Any, words: str) -> None:
    with pytest.raises(Rekor2Error) as info:
        check_dsse_v002_body(_bundle_with_body(copy.deepcopy(edit)))
    assert words in info.value.reason
    assert info.value.code == "invalid-tlog-entry"


# ---- the test Sigstore instance makes them too ---------------------------------------------

LAB_FILE = "pkg-1.0-py3-none-any.whl"
LAB_SHA = "ab" * 32


def test_lab_rekor_v2_attestation_verifies_with_its_timestamp(sigstore: TestSigstore) -> None:
    when = int(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp())
    doc = sigstore.attest_v2(
        LAB_FILE, LAB_SHA, GitHubIdentity(repository="acme/pkg"), signed_time=when
    )
    prov = provenance_json([doc], GitHubIdentity(repository="acme/pkg"))
    res = verify_provenance(LAB_FILE, LAB_SHA, prov, sigstore.verifier())
    assert res.status is VerifyStatus.VERIFIED, res.reason
    assert (res.tlog_kind, res.integrated_time, res.tsa_time) == ("dsse/0.0.2", None, when)
    assert res.identity is not None
    assert res.identity.repository == "acme/pkg"


def test_lab_rekor_v2_age_comes_from_the_timestamp(sigstore: TestSigstore) -> None:
    now = datetime.now(timezone.utc)
    young = int((now - timedelta(hours=5)).timestamp())
    doc = sigstore.attest_v2(LAB_FILE, LAB_SHA, signed_time=young)
    res = verify_provenance(LAB_FILE, LAB_SHA, json.dumps(doc).encode(), sigstore.verifier())
    ref = FileRef(project="pkg", version="1.0", filename=LAB_FILE)
    v = decide(ref, res, Policy.default(), ProjectHistory.empty("pkg"), now)
    assert v.code is ReasonCode.REFUSED_TOO_NEW
    assert v.release_time_source == "timestamp-authority"
    assert "RFC 3161 timestamp" in v.reason


def test_lab_the_latest_of_several_timestamps_counts(sigstore: TestSigstore) -> None:
    doc = sigstore.attest_v2(LAB_FILE, LAB_SHA, signed_time=1_760_000_000, timestamps=3)
    res = verify_provenance(LAB_FILE, LAB_SHA, json.dumps(doc).encode(), sigstore.verifier())
    assert res.status is VerifyStatus.VERIFIED, res.reason
    assert res.tsa_time == 1_760_000_002


def test_lab_timestamp_from_an_unknown_authority_is_refused(sigstore: TestSigstore) -> None:
    other = TestSigstore(name="other-tsa")
    doc = sigstore.attest_v2(LAB_FILE, LAB_SHA, tsa=other)
    res = verify_provenance(LAB_FILE, LAB_SHA, json.dumps(doc).encode(), sigstore.verifier())
    assert res.status is VerifyStatus.INVALID
    assert "not enough sources of verified time" in res.reason


def test_lab_timestamp_of_another_signature_is_refused(sigstore: TestSigstore) -> None:
    a = sigstore.attest_v2(LAB_FILE, LAB_SHA)
    b = sigstore.attest_v2(LAB_FILE, LAB_SHA)
    a["verification_material"]["timestamps"] = b["verification_material"]["timestamps"]
    res = verify_provenance(LAB_FILE, LAB_SHA, json.dumps(a).encode(), sigstore.verifier())
    assert res.status is VerifyStatus.INVALID


def test_lab_rekor_v2_entry_in_an_unknown_log_is_refused(sigstore: TestSigstore) -> None:
    other = TestSigstore(name="other-log")
    doc = other.attest_v2(LAB_FILE, LAB_SHA, tsa=sigstore)
    res = verify_provenance(LAB_FILE, LAB_SHA, json.dumps(doc).encode(), sigstore.verifier())
    assert res.status is VerifyStatus.INVALID


def test_inspect_end_to_end_with_a_rekor_v2_attestation(
    sigstore: TestSigstore, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safe_pip.cli import main
    from support.index_server import IndexServer
    from support.packages import build_wheel, sha256_file

    ident = GitHubIdentity(repository="acme/newlog")
    with IndexServer(workdir / "index") as server:
        path = build_wheel(workdir / "build", "newlog", "1.0")
        doc = sigstore.attest_v2(path.name, sha256_file(path), ident)
        server.add_file(path, project="newlog", provenance=provenance_json([doc], ident))
        args = ["inspect", "newlog==1.0", "-i", server.index_url, "--trust-root", str(trust_root)]
        assert main([*args, "--json"]) == 0
        (out,) = json.loads(capsys.readouterr().out)
    assert out["code"] == "verified-first-use"
    assert out["tlog_kind"] == "dsse/0.0.2"
    assert out["release_time_source"] == "timestamp-authority"
    assert out["integrated_time"] is None
