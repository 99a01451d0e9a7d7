"""The test Sigstore instance and package builders, checked through the REAL verifiers.

Every check here goes through the unmodified `sigstore.verify.Verifier` (built from the
instance's trusted_root.json) and the real `pypi_attestations.Attestation.verify`,
after a JSON round trip, exactly like an attestation fetched from an index.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypi_attestations as pa
import pytest
import sigstore
from cryptography import x509
from sigstore.errors import VerificationError
from sigstore.models import TrustedRoot
from sigstore.verify import Verifier

from support.packages import build_sdist, build_wheel, sha256_file
from support.sigstore_ca import (
    SLSA_PROVENANCE_V1,
    GitHubIdentity,
    GitLabIdentity,
    GoogleIdentity,
    TestSigstore,
    attestation_dict,
    default_instance,
    provenance_json,
    publisher_table,
    swap_statement,
    tamper_inclusion_proof,
    tamper_integrated_time,
)

WHEEL = "demo_pkg-1.0-py3-none-any.whl"
DIGEST = hashlib.sha256(b"demo wheel bytes").hexdigest()
GH = GitHubIdentity(repository="example/demo-pkg", workflow="release.yml")
GH_PUB = pa.GitHubPublisher(repository="example/demo-pkg", workflow="release.yml")
DIST = pa.Distribution(name=WHEEL, digest=DIGEST)


@pytest.fixture(scope="module")
def ts() -> TestSigstore:
    return TestSigstore()


@pytest.fixture(scope="module")
def other() -> TestSigstore:
    """A second instance: its CA, CT log and Rekor are unknown to `ts`'s root."""
    return TestSigstore()


@pytest.fixture
def patched(ts: TestSigstore) -> Iterator[Verifier]:
    with ts.patch_pypi_attestations() as verifier:
        yield verifier


def roundtrip(att: pa.Attestation | dict[str, Any]) -> pa.Attestation:
    """Serialize and re-parse, as a consumer of an index would."""
    text = att.model_dump_json() if isinstance(att, pa.Attestation) else json.dumps(att)
    return pa.Attestation.model_validate_json(text)


def verify(att: pa.Attestation | dict[str, Any], publisher: Any = GH_PUB, dist: Any = DIST) -> str:
    predicate_type, _ = roundtrip(att).verify(publisher, dist)
    return predicate_type


# ---- positives -------------------------------------------------------------------------


def test_trusted_root_loads_from_file(ts: TestSigstore, tmp_path: Path) -> None:
    path = ts.write_trusted_root(tmp_path / "trusted_root.json")
    verifier = Verifier(trusted_root=TrustedRoot.from_file(str(path)))
    att = ts.attest(WHEEL, DIGEST, GH)
    verifier.verify_dsse(roundtrip(att).to_bundle(), GH_PUB._as_policy())
    # directory form
    assert ts.write_trusted_root(tmp_path) == tmp_path / "trusted_root.json"


@pytest.mark.usefixtures("patched")
def test_good_github(ts: TestSigstore) -> None:
    att = ts.attest(WHEEL, DIGEST, GH)
    assert verify(att) == "https://docs.pypi.org/attestations/publish/v1"
    claims = att.certificate_claims
    assert claims["1.3.6.1.4.1.57264.1.12"] == "https://github.com/example/demo-pkg"
    assert claims["1.3.6.1.4.1.57264.1.15"] == GH.repository_id
    assert claims["1.3.6.1.4.1.57264.1.17"] == GH.repository_owner_id
    assert claims["1.3.6.1.4.1.57264.1.16"] == "https://github.com/example"
    assert claims["1.3.6.1.4.1.57264.1.18"] == (
        "https://github.com/example/demo-pkg/.github/workflows/release.yml@refs/heads/main"
    )
    # The statement bytes are what pypi-attestations itself produces.
    assert json.loads(roundtrip(att).envelope.statement) == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": WHEEL, "digest": {"sha256": DIGEST}}],
        "predicateType": "https://docs.pypi.org/attestations/publish/v1",
        "predicate": None,
    }


@pytest.mark.usefixtures("patched")
def test_good_gitlab(ts: TestSigstore) -> None:
    ident = GitLabIdentity(repository="group/sub/demo", workflow_filepath="ci/release.yml")
    att = ts.attest(WHEEL, DIGEST, ident)
    pub = pa.GitLabPublisher(repository="group/sub/demo", workflow_filepath="ci/release.yml")
    assert verify(att, pub) == "https://docs.pypi.org/attestations/publish/v1"
    assert att.certificate_claims["1.3.6.1.4.1.57264.1.8"] == "https://gitlab.com"
    wrong = pa.GitLabPublisher(repository="group/sub/demo", workflow_filepath=".gitlab-ci.yml")
    with pytest.raises(pa.VerificationError, match="Build Config URI"):
        verify(att, wrong)


@pytest.mark.usefixtures("patched")
def test_good_google(ts: TestSigstore) -> None:
    att = ts.attest(WHEEL, DIGEST, GoogleIdentity())
    pub = pa.GooglePublisher(email="publisher@example.iam.gserviceaccount.com")
    assert verify(att, pub) == "https://docs.pypi.org/attestations/publish/v1"
    with pytest.raises(pa.VerificationError, match="SANs do not match"):
        verify(att, pa.GooglePublisher(email="someone@else.example"))


@pytest.mark.usefixtures("patched")
def test_slsa_predicate_and_sdist_subject(ts: TestSigstore) -> None:
    sdist = pa.Distribution(name="demo_pkg-1.0.tar.gz", digest=DIGEST)
    att = ts.attest(sdist.name, DIGEST, GH, predicate_type=SLSA_PROVENANCE_V1, predicate={})
    assert verify(att, GH_PUB, sdist) == SLSA_PROVENANCE_V1


@pytest.mark.usefixtures("patched")
def test_past_integrated_time_and_fresh_instances(ts: TestSigstore) -> None:
    att = ts.attest(WHEEL, DIGEST, GH, integrated_time=1_717_200_000)  # 2024-06-01
    verify(att)
    entry = roundtrip(att).verification_material.transparency_entries[0]
    assert entry["integratedTime"] == "1717200000"
    assert len(entry["inclusionProof"]["hashes"]) >= 2


def test_provenance_object_parses(ts: TestSigstore) -> None:
    atts = [ts.attest(WHEEL, DIGEST, GH)]
    prov = pa.Provenance.model_validate_json(provenance_json(atts, GH, environment="pypi"))
    bundle = prov.attestation_bundles[0]
    assert bundle.publisher == pa.GitHubPublisher(
        repository="example/demo-pkg", workflow="release.yml", environment="pypi"
    )
    assert bundle.attestations[0] == roundtrip(atts[0])
    assert publisher_table(GitLabIdentity()) == {
        "kind": "GitLab",
        "repository": "group/pkg",
        "workflow_filepath": ".gitlab-ci.yml",
    }
    assert publisher_table(GoogleIdentity(), "x") == {
        "kind": "Google",
        "email": "publisher@example.iam.gserviceaccount.com",
    }


def test_default_instance_is_cached() -> None:
    assert default_instance() is default_instance()


# ---- negatives: identity and subject (pypi-attestations' own checks) --------------------


@pytest.mark.usefixtures("patched")
@pytest.mark.parametrize(
    ("publisher", "message"),
    [
        (
            pa.GitHubPublisher(repository="example/other", workflow="release.yml"),
            "OIDCSourceRepositoryURI does not match",
        ),
        (
            pa.GitHubPublisher(repository="example/demo-pkg", workflow="publish.yml"),
            "Build Config URI .* does not match expected Trusted Publisher",
        ),
        (
            pa.GitLabPublisher(repository="example/demo-pkg", workflow_filepath="release.yml"),
            "OIDCIssuerV2 does not match",
        ),
    ],
)
def test_identity_mismatch(ts: TestSigstore, publisher: Any, message: str) -> None:
    with pytest.raises(pa.VerificationError, match=message):
        verify(ts.attest(WHEEL, DIGEST, GH), publisher)


@pytest.mark.usefixtures("patched")
def test_subject_mismatch(ts: TestSigstore) -> None:
    att = ts.attest(WHEEL, DIGEST, GH)
    tampered = pa.Distribution(name=WHEEL, digest=hashlib.sha256(b"evil").hexdigest())
    with pytest.raises(pa.VerificationError, match="subject does not match distribution digest"):
        verify(att, GH_PUB, tampered)
    other_name = pa.Distribution(name="demo_pkg-1.1-py3-none-any.whl", digest=DIGEST)
    with pytest.raises(pa.VerificationError, match="subject does not match distribution name"):
        verify(att, GH_PUB, other_name)


# ---- negatives: the Sigstore machinery -------------------------------------------------


@pytest.mark.usefixtures("patched")
def test_swapped_statement(ts: TestSigstore) -> None:
    a = ts.attest(WHEEL, DIGEST, GH)
    b = ts.attest(WHEEL, hashlib.sha256(b"evil").hexdigest(), GH)
    swapped = swap_statement(attestation_dict(a), attestation_dict(b))
    evil = pa.Distribution(name=WHEEL, digest=hashlib.sha256(b"evil").hexdigest())
    with pytest.raises(pa.VerificationError, match="DSSE: invalid signature"):
        verify(swapped, GH_PUB, evil)


@pytest.mark.usefixtures("patched")
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("ca", r"failed to build timestamp certificate chain: .*candidates exhausted"),
        ("ctlog", "failed to verify SCT on signing certificate: SCT verify failed"),
        ("tlog", "invalid log entry: checkpoint: invalid signature"),
    ],
)
def test_unknown_infrastructure(
    ts: TestSigstore, other: TestSigstore, kind: str, message: str
) -> None:
    att = ts.attest(
        WHEEL,
        DIGEST,
        GH,
        ca=other if kind == "ca" else None,
        ctlog=other if kind == "ctlog" else None,
        tlog=other if kind == "tlog" else None,
    )
    with pytest.raises(pa.VerificationError, match=message):
        verify(att)


@pytest.mark.usefixtures("patched")
@pytest.mark.parametrize("validity", [(-1200, -600), (60, 600)], ids=["expired", "not-yet"])
def test_certificate_not_valid_at_integrated_time(
    ts: TestSigstore, validity: tuple[int, int]
) -> None:
    att = ts.attest(WHEEL, DIGEST, GH, cert_validity=validity)
    with pytest.raises(pa.VerificationError, match="cert is not valid at validation time"):
        verify(att)


@pytest.mark.usefixtures("patched")
def test_edited_integrated_time(ts: TestSigstore) -> None:
    att = tamper_integrated_time(ts.attest(WHEEL, DIGEST, GH), 30)
    with pytest.raises(pa.VerificationError, match="SET: invalid inclusion promise"):
        verify(att)


@pytest.mark.usefixtures("patched")
def test_tampered_inclusion_proof(ts: TestSigstore) -> None:
    att = tamper_inclusion_proof(ts.attest(WHEEL, DIGEST, GH))
    with pytest.raises(pa.VerificationError, match="inclusion proof contains invalid root hash"):
        verify(att)


@pytest.mark.usefixtures("patched")
def test_claims_override_missing_build_config(ts: TestSigstore) -> None:
    """A certificate without claim 1.18: cryptography's ExtensionNotFound escapes verify()
    (docs/test-sigstore.md, "Fail closed"), which is why safe-pip must fail closed on any
    exception."""
    att = ts.attest(WHEEL, DIGEST, GH, claims_override={"1.3.6.1.4.1.57264.1.18": None})
    assert "1.3.6.1.4.1.57264.1.18" not in att.certificate_claims
    with pytest.raises(x509.ExtensionNotFound):
        verify(att)


def test_production_root_refuses(ts: TestSigstore) -> None:
    shipped = (
        Path(sigstore.__file__).parent
        / "_store"
        / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
        / "trusted_root.json"
    )
    verifier = Verifier(trusted_root=TrustedRoot.from_file(str(shipped)))
    att = roundtrip(ts.attest(WHEEL, DIGEST, GH))
    with pytest.raises(VerificationError, match="failed to build timestamp certificate chain"):
        verifier.verify_dsse(att.to_bundle(), GH_PUB._as_policy())


def test_instances_do_not_trust_each_other(ts: TestSigstore, other: TestSigstore) -> None:
    att = roundtrip(other.attest(WHEEL, DIGEST, GH))
    with pytest.raises(VerificationError):
        ts.verifier().verify_dsse(att.to_bundle(), GH_PUB._as_policy())


def test_attestation_speed(ts: TestSigstore) -> None:
    """Generating an attestation must stay in the millisecond range (median of 20). CPU time
    of this thread, not wall time: other processes on a loaded machine do not count."""
    samples = []
    for _ in range(20):
        start = time.thread_time()
        ts.attest(WHEEL, DIGEST, GH)
        samples.append(time.thread_time() - start)
    assert sorted(samples)[10] < 0.05


# ---- package builders ------------------------------------------------------------------


def _pip(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pip", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_wheel_is_reproducible_and_well_formed(tmp_path: Path) -> None:
    a = build_wheel(tmp_path / "a", "Demo.Pkg", "1.0", requires=["dep>=1"])
    b = build_wheel(tmp_path / "b", "Demo.Pkg", "1.0", requires=["dep>=1"])
    assert a.name == "demo_pkg-1.0-py3-none-any.whl"
    assert sha256_file(a) == sha256_file(b) == hashlib.sha256(a.read_bytes()).hexdigest()
    with zipfile.ZipFile(a) as zf:
        names = zf.namelist()
        metadata = zf.read("demo_pkg-1.0.dist-info/METADATA").decode()
        record = zf.read("demo_pkg-1.0.dist-info/RECORD").decode()
    assert "demo_pkg/__init__.py" in names
    assert "Requires-Dist: dep>=1" in metadata
    assert "demo_pkg/__init__.py,sha256=" in record
    multi = build_wheel(tmp_path / "c", "x", "1.0.0-RC1", tag="py2.py3-none-any")
    assert multi.name == "x-1.0.0rc1-py2.py3-none-any.whl"
    with zipfile.ZipFile(multi) as zf:
        wheel_file = zf.read("x-1.0.0rc1.dist-info/WHEEL").decode()
    assert "Tag: py2-none-any\nTag: py3-none-any\n" in wheel_file
    s1 = build_sdist(tmp_path / "a", "Demo.Pkg", "1.0")
    s2 = build_sdist(tmp_path / "b", "Demo.Pkg", "1.0")
    assert s1.name == "demo_pkg-1.0.tar.gz"
    assert sha256_file(s1) == sha256_file(s2)
    with tarfile.open(s1) as tf:
        assert "demo_pkg-1.0/pyproject.toml" in tf.getnames()


@pytest.mark.slow
def test_wheel_installs_with_real_pip(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "demo-pkg", "2.0", files={"demo_pkg/extra.py": "X = 1\n"})
    target = tmp_path / "target"
    proc = _pip(
        "install", "--isolated", "--no-index", "--target", str(target), str(wheel), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert (target / "demo_pkg" / "extra.py").read_text() == "X = 1\n"
    assert '__version__ = "2.0"' in (target / "demo_pkg" / "__init__.py").read_text()
    assert (target / "demo_pkg-2.0.dist-info" / "RECORD").exists()


@pytest.mark.slow
@pytest.mark.parametrize("isolation", [True, False], ids=["isolated-build", "no-isolation"])
def test_sdist_builds_and_installs_with_real_pip(tmp_path: Path, isolation: bool) -> None:
    sdist = build_sdist(tmp_path, "demo-sdist", "0.3", requires=[])
    target = tmp_path / "target"
    args = ["install", "--isolated", "--no-index", "--target", str(target), str(sdist)]
    if not isolation:
        args.append("--no-build-isolation")
    proc = _pip(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '__version__ = "0.3"' in (target / "demo_sdist" / "__init__.py").read_text()
    assert (target / "demo_sdist-0.3.dist-info" / "METADATA").exists()


@pytest.mark.slow
def test_sdist_build_requires_are_requested(tmp_path: Path) -> None:
    """With a build requirement and no index, pip must fail trying to get it."""
    sdist = build_sdist(tmp_path, "needs-build", "1.0", build_requires=["tiny-build-dep>=1"])
    proc = _pip(
        "install",
        "--isolated",
        "--no-index",
        "--target",
        str(tmp_path / "t"),
        str(sdist),
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert "tiny-build-dep" in proc.stderr + proc.stdout
