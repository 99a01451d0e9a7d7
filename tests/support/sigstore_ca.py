"""A private, hermetic "test Sigstore instance" for safe-pip's tests.

It mints, with `cryptography` only:

- a Fulcio-like CA (P-384 root + intermediate) issuing short-lived P-256 leaf
  certificates that carry the same Fulcio claim extensions as real GitHub,
  GitLab and Google certificates, with one embedded SCT;
- a CT log key (P-256) that signs those SCTs over the precertificate TBS;
- a Rekor-v1-like transparency log (P-256 key, RFC 6962 Merkle tree) that
  records `dsse/0.0.1` entries with an inclusion proof, a signed checkpoint
  and a signed entry timestamp (SET).

`TestSigstore.trusted_root_json()` lists exactly those keys, so the *unmodified*
`sigstore.verify.Verifier` accepts the attestations and the production root
refuses them. The statement and envelope are produced by sigstore's own DSSE
code and pypi-attestations' own `Attestation.sign` (through a duck-typed
signer), so the bytes are what real publishing produces.

Every fact this relies on is written down in docs/test-sigstore.md.
Nothing here is committed key material: every instance generates fresh keys.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import datetime as dt
import functools
import hashlib
import itertools
import json
import os
import struct
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from unittest import mock

import pypi_attestations
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sigstore import dsse
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore_models.trustroot import v1 as trustroot_v1

from support.tsa import TimestampAuthority

__all__ = [
    "LAB_SIGNING_AGE",
    "PUBLISH_V1",
    "SLSA_PROVENANCE_V1",
    "GitHubIdentity",
    "GitLabIdentity",
    "GoogleIdentity",
    "Identity",
    "TestSigstore",
    "default_instance",
    "provenance_dict",
    "provenance_json",
    "publisher_table",
    "swap_statement",
    "tamper_inclusion_proof",
    "tamper_integrated_time",
]

PUBLISH_V1 = "https://docs.pypi.org/attestations/publish/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"

_TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
_BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_FULCIO = "1.3.6.1.4.1.57264.1."
# Claims 1.1-1.6 are raw bytes; 1.8 onwards are DER UTF8String (as Fulcio encodes them).
_RAW_CLAIMS = frozenset(f"{_FULCIO}{i}" for i in range(1, 7))

#: Attestations are integrated this long before "now" unless a test passes
#: ``integrated_time``: lab releases are older than safe-pip's default minimum release age
#: (3 days), so tests about other rules are not refused-too-new. Release-age tests choose
#: their times explicitly.
LAB_SIGNING_AGE = 30 * 86400

#: Run ids for GitHub identities that name none: one per attestation.
_RUN_IDS = itertools.count(3001)

# CA and log keys are valid from here (must be <= now: sigstore compares validFor.start
# with the wall clock) until far in the future, so integrated times in the past verify.
_CA_NOT_BEFORE = dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc)
_CA_NOT_AFTER = dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)


# --------------------------------------------------------------------------------------
# Identities: the OIDC claims Fulcio would put in the certificate.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GitHubIdentity:
    """A GitHub Actions workflow run, as Fulcio encodes it (mirrors pypa/sampleproject's)."""

    repository: str = "example/pkg"  # "owner/name"
    workflow: str = "release.yml"  # file name under .github/workflows/
    ref: str = "refs/heads/main"
    repository_id: str = "1001"
    repository_owner_id: str = "2001"
    sha: str = "a" * 40
    workflow_name: str = "Release"
    trigger: str = "push"
    # None: every attestation gets a run of its own (a new run id per `attest`), as real
    # releases do; tests of "several versions signed by one run" pass the same run_id.
    run_id: str | None = None
    runner_environment: str = "github-hosted"
    visibility: str = "public"
    # For reusable workflows the build signer differs from the build config (the caller).
    build_signer_uri: str | None = None

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def build_config_uri(self) -> str:
        return f"https://github.com/{self.repository}/.github/workflows/{self.workflow}@{self.ref}"

    @property
    def issuer(self) -> str:
        return "https://token.actions.githubusercontent.com"

    def claims(self) -> dict[str, str]:
        """Fulcio claim OIDs (dotted) -> value, in the order a real certificate has them."""
        repo_uri = f"https://github.com/{self.repository}"
        return {
            f"{_FULCIO}1": self.issuer,
            f"{_FULCIO}2": self.trigger,
            f"{_FULCIO}3": self.sha,
            f"{_FULCIO}4": self.workflow_name,
            f"{_FULCIO}5": self.repository,
            f"{_FULCIO}6": self.ref,
            f"{_FULCIO}8": self.issuer,
            f"{_FULCIO}9": self.build_signer_uri or self.build_config_uri,
            f"{_FULCIO}10": self.sha,
            f"{_FULCIO}11": self.runner_environment,
            f"{_FULCIO}12": repo_uri,
            f"{_FULCIO}13": self.sha,
            f"{_FULCIO}14": self.ref,
            f"{_FULCIO}15": self.repository_id,
            f"{_FULCIO}16": f"https://github.com/{self.owner}",
            f"{_FULCIO}17": self.repository_owner_id,
            f"{_FULCIO}18": self.build_config_uri,
            f"{_FULCIO}19": self.sha,
            f"{_FULCIO}20": self.trigger,
            f"{_FULCIO}21": f"{repo_uri}/actions/runs/{self.run_id or '3001'}/attempts/1",
            f"{_FULCIO}22": self.visibility,
        }

    def san(self) -> x509.GeneralName:
        return x509.UniformResourceIdentifier(self.build_signer_uri or self.build_config_uri)


@dataclass(frozen=True)
class GitLabIdentity:
    """A GitLab CI/CD pipeline, as Fulcio encodes it (mirrors facutuesca/gitlab-oidc-project's)."""

    repository: str = "group/pkg"  # "namespace/project", namespace may contain subgroups
    workflow_filepath: str = ".gitlab-ci.yml"
    ref: str = "refs/heads/main"
    repository_id: str = "1002"
    repository_owner_id: str = "2002"
    sha: str = "b" * 40
    trigger: str = "push"
    job_id: str | None = None  # None: a job of its own per attestation (see GitHub run_id)
    runner_environment: str = "gitlab-hosted"
    visibility: str = "public"

    @property
    def owner(self) -> str:
        return self.repository.rsplit("/", 1)[0]

    @property
    def build_config_uri(self) -> str:
        # pypi_attestations' _GitLabTrustedPublisherPolicy expects exactly this shape.
        return f"https://gitlab.com/{self.repository}//{self.workflow_filepath}@{self.ref}"

    @property
    def issuer(self) -> str:
        return "https://gitlab.com"

    def claims(self) -> dict[str, str]:
        repo_uri = f"https://gitlab.com/{self.repository}"
        return {
            f"{_FULCIO}1": self.issuer,
            f"{_FULCIO}8": self.issuer,
            f"{_FULCIO}9": self.build_config_uri,
            f"{_FULCIO}10": self.sha,
            f"{_FULCIO}11": self.runner_environment,
            f"{_FULCIO}12": repo_uri,
            f"{_FULCIO}13": self.sha,
            f"{_FULCIO}14": self.ref,
            f"{_FULCIO}15": self.repository_id,
            f"{_FULCIO}16": f"https://gitlab.com/{self.owner}",
            f"{_FULCIO}17": self.repository_owner_id,
            f"{_FULCIO}18": self.build_config_uri,
            f"{_FULCIO}19": self.sha,
            f"{_FULCIO}20": self.trigger,
            f"{_FULCIO}21": f"{repo_uri}/-/jobs/{self.job_id or '3002'}",
            f"{_FULCIO}22": self.visibility,
        }

    def san(self) -> x509.GeneralName:
        return x509.UniformResourceIdentifier(self.build_config_uri)


@dataclass(frozen=True)
class GoogleIdentity:
    """A Google Cloud service account (SAN email, issuer accounts.google.com)."""

    email: str = "publisher@example.iam.gserviceaccount.com"

    @property
    def issuer(self) -> str:
        return "https://accounts.google.com"

    def claims(self) -> dict[str, str]:
        return {f"{_FULCIO}1": self.issuer, f"{_FULCIO}8": self.issuer}

    def san(self) -> x509.GeneralName:
        return x509.RFC822Name(self.email)


Identity = GitHubIdentity | GitLabIdentity | GoogleIdentity

DEFAULT_IDENTITY: Identity = GitHubIdentity()


# --------------------------------------------------------------------------------------
# Encoding helpers
# --------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_utf8(value: str) -> bytes:
    raw = value.encode()
    return b"\x0c" + _der_len(len(raw)) + raw


def _der_octet_string(raw: bytes) -> bytes:
    return b"\x04" + _der_len(len(raw)) + raw


def _spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _log_id(key: ec.EllipticCurvePublicKey) -> bytes:
    return hashlib.sha256(_spki_der(key)).digest()


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc)


# --------------------------------------------------------------------------------------
# RFC 6962 Merkle log
# --------------------------------------------------------------------------------------


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class _MerkleLog:
    def __init__(self) -> None:
        self.leaves: list[bytes] = []
        self._full: dict[tuple[int, int], bytes] = {}  # complete subtrees never change

    def append(self, data: bytes) -> int:
        self.leaves.append(_leaf_hash(data))
        return len(self.leaves) - 1

    def root(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 1:
            return self.leaves[lo]
        complete = n & (n - 1) == 0
        if complete and (lo, hi) in self._full:
            return self._full[(lo, hi)]
        k = _split(n)
        h = _node_hash(self.root(lo, lo + k), self.root(lo + k, hi))
        if complete:
            self._full[(lo, hi)] = h
        return h

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        """Audit path for leaf m in leaves[lo:hi], leaf-to-root order (RFC 6962 PATH)."""
        n = hi - lo
        if n == 1:
            return []
        k = _split(n)
        if m - lo < k:
            return [*self.path(m, lo, lo + k), self.root(lo + k, hi)]
        return [*self.path(m, lo + k, hi), self.root(lo, lo + k)]


# --------------------------------------------------------------------------------------
# The instance
# --------------------------------------------------------------------------------------


class _DuckSigner:
    """What `pypi_attestations.Attestation.sign` needs of a `sigstore.sign.Signer`."""

    def __init__(self, make_bundle: Any) -> None:
        self._make_bundle = make_bundle

    def sign_dsse(self, stmt: dsse.Statement) -> Bundle:
        return cast("Bundle", self._make_bundle(stmt))


class TestSigstore:
    """A private Fulcio + CT log + Rekor, with a trusted_root.json that lists only them."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        seed_entries: int = 6,
        ca_validity: tuple[dt.datetime, dt.datetime] | None = None,
        name: str | None = None,
    ) -> None:
        """Generate root + intermediate CA (P-384), CT log key and Rekor key (P-256).

        `ca_validity` overrides the CA certificates' (not_before, not_after); the
        trusted root's `validFor.start` stays at 2015 so the CA is never dropped.
        `seed_entries` filler entries make inclusion proofs non-trivial.
        """
        self.name = name or os.urandom(4).hex()
        not_before, not_after = ca_validity or (_CA_NOT_BEFORE, _CA_NOT_AFTER)

        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.intermediate_key = ec.generate_private_key(ec.SECP384R1())
        self.ctlog_key = ec.generate_private_key(ec.SECP256R1())
        self.rekor_key = ec.generate_private_key(ec.SECP256R1())

        org = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.test")
        root_name = x509.Name(
            [org, x509.NameAttribute(NameOID.COMMON_NAME, f"sigstore-test-{self.name}")]
        )
        inter_name = x509.Name(
            [
                org,
                x509.NameAttribute(NameOID.COMMON_NAME, f"sigstore-test-intermediate-{self.name}"),
            ]
        )
        root_pub = self.root_key.public_key()
        inter_pub = self.intermediate_key.public_key()
        ca_usage = x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        self.root_cert = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(ca_usage, critical=True)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_pub), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_pub), critical=False
            )
            .sign(self.root_key, hashes.SHA384())
        )
        self.intermediate_cert = (
            x509.CertificateBuilder()
            .subject_name(inter_name)
            .issuer_name(root_name)
            .public_key(inter_pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(ca_usage, critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_pub), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_pub), critical=False
            )
            .sign(self.root_key, hashes.SHA384())
        )
        self._inter_key_hash = hashlib.sha256(_spki_der(inter_pub)).digest()
        self.ctlog_id = _log_id(self.ctlog_key.public_key())
        self.rekor_id = _log_id(self.rekor_key.public_key())
        self.origin = f"rekor.sigstore.test - {int.from_bytes(self.rekor_id[:8], 'big')}"

        self.log = _MerkleLog()
        for i in range(seed_entries):
            self.log.append(f"seed entry {i} of {self.name}".encode())
        #: The RFC 3161 timestamp authority of this instance (Rekor v2 attestations carry its
        #: timestamps instead of an integrated time; see attest_v2).
        self.tsa = TimestampAuthority(self.name, not_before, not_after)

    # ---- trust root ------------------------------------------------------------------

    def trusted_root_dict(self) -> dict[str, Any]:
        """The trusted root as a JSON-ready dict (protobuf-JSON field names)."""
        start = {"start": _rfc3339(_CA_NOT_BEFORE)}

        def _key(key: ec.EllipticCurvePrivateKey, log_id: bytes, url: str) -> dict[str, Any]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(_spki_der(key.public_key())),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": start,
                },
                "logId": {"keyId": _b64(log_id)},
            }

        der = serialization.Encoding.DER
        return {
            "mediaType": _TRUSTED_ROOT_MEDIA_TYPE,
            "tlogs": [_key(self.rekor_key, self.rekor_id, "https://rekor.sigstore.test")],
            "certificateAuthorities": [
                {
                    "subject": {
                        "organization": "sigstore.test",
                        "commonName": f"sigstore-test-{self.name}",
                    },
                    "uri": "https://fulcio.sigstore.test",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(self.intermediate_cert.public_bytes(der))},
                            {"rawBytes": _b64(self.root_cert.public_bytes(der))},
                        ]
                    },
                    "validFor": start,
                }
            ],
            "ctlogs": [_key(self.ctlog_key, self.ctlog_id, "https://ctfe.sigstore.test")],
            "timestampAuthorities": [
                {
                    "subject": {
                        "organization": "sigstore.test",
                        "commonName": f"tsa-{self.name}",
                    },
                    "uri": "https://tsa.sigstore.test",
                    "certChain": {
                        "certificates": [{"rawBytes": _b64(c)} for c in self.tsa.chain_der()]
                    },
                    "validFor": start,
                }
            ],
        }

    def trusted_root_json(self) -> str:
        """`application/vnd.dev.sigstore.trustedroot+json;version=0.1` text."""
        return json.dumps(self.trusted_root_dict(), indent=2) + "\n"

    def write_trusted_root(self, path: Path) -> Path:
        """Write `trusted_root.json` to `path` (a file path, or a directory to put it in)."""
        path = Path(path)
        if path.is_dir():
            path = path / "trusted_root.json"
        path.write_text(self.trusted_root_json(), encoding="utf-8")
        return path

    def trusted_root(self) -> TrustedRoot:
        """The root as sigstore's `TrustedRoot` (via from_json: sigstore_models is strict)."""
        return TrustedRoot(trustroot_v1.TrustedRoot.from_json(self.trusted_root_json()))

    def verifier(self) -> Verifier:
        """A real `sigstore.verify.Verifier` trusting only this instance."""
        return Verifier(trusted_root=self.trusted_root())

    @contextlib.contextmanager
    def patch_pypi_attestations(self) -> Iterator[Verifier]:
        """Make `pypi_attestations.Attestation.verify` use this root (docs/test-sigstore.md,
        route 1).

        Both `staging=` values get this instance's verifier. Yields that verifier.
        """
        verifier = self.verifier()

        def _factory(*, offline: bool = False) -> Verifier:
            return verifier

        fake = mock.Mock(spec=["production", "staging"])
        fake.production.side_effect = _factory
        fake.staging.side_effect = _factory
        with mock.patch("pypi_attestations._impl.Verifier", fake):
            yield verifier

    # ---- Fulcio ----------------------------------------------------------------------

    def _issue_certificate(
        self,
        identity: Identity,
        leaf_public: ec.EllipticCurvePublicKey,
        not_before: int,
        not_after: int,
        ctlog: TestSigstore,
        claims_override: Mapping[str, str | bytes | None] | None,
    ) -> x509.Certificate:
        """Issue a leaf from *this* CA; its one SCT comes from `ctlog`'s CT log."""
        claims: dict[str, str | bytes | None] = dict(identity.claims())
        if claims_override:
            claims.update(claims_override)

        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate_cert.subject)
            .public_key(leaf_public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_utc(not_before))
            .not_valid_after(_utc(not_after))
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.intermediate_key.public_key()
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([identity.san()]), critical=True)
        )
        for oid, value in claims.items():
            if value is None:
                continue
            if isinstance(value, bytes):
                raw = value
            elif oid in _RAW_CLAIMS:
                raw = value.encode()
            else:
                raw = _der_utf8(value)
            builder = builder.add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), raw), critical=False
            )

        # The CT log signs the precertificate TBS, i.e. the final TBS without the SCT
        # list. cryptography can't strip a poison extension, so sign a throw-away cert
        # from the same builder (no poison, no SCT list) and take its TBS.
        tbs = builder.sign(self.intermediate_key, hashes.SHA384()).tbs_certificate_bytes
        sct = ctlog._sign_sct(tbs, self._inter_key_hash, not_before * 1000)
        sct_list = struct.pack(">H", len(sct) + 2) + struct.pack(">H", len(sct)) + sct
        cert = builder.add_extension(
            x509.UnrecognizedExtension(_SCT_LIST_OID, _der_octet_string(sct_list)),
            critical=False,
        ).sign(self.intermediate_key, hashes.SHA384())
        assert cert.tbs_precertificate_bytes == tbs
        return cert

    # ---- CT log ----------------------------------------------------------------------

    def _sign_sct(self, tbs: bytes, issuer_key_hash: bytes, timestamp_ms: int) -> bytes:
        """An RFC 6962 v1 SCT for a precert entry, signed by this instance's CT log."""
        signed = (
            struct.pack(">BBQH", 0, 0, timestamp_ms, 1)  # v1, certificate_timestamp, precert
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + b"\x00\x00"  # no extensions
        )
        sig = self.ctlog_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return (
            b"\x00"
            + self.ctlog_id
            + struct.pack(">QH", timestamp_ms, 0)
            + b"\x04\x03"  # sha256, ecdsa
            + struct.pack(">H", len(sig))
            + sig
        )

    # ---- Rekor -----------------------------------------------------------------------

    def _log_entry(self, body: bytes, integrated_time: int) -> dict[str, Any]:
        """Append `body` (canonicalized dsse/0.0.1) and return its TransparencyLogEntry JSON."""
        index = self.log.append(body)
        size = index + 1
        root = self.log.root(0, size)
        proof = self.log.path(index, 0, size)

        note = f"{self.origin}\n{size}\n{_b64(root)}\n"
        note_sig = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = f"{note}\n\u2014 rekor.sigstore.test {_b64(self.rekor_id[:4] + note_sig)}\n"

        set_payload = rfc8785.dumps(
            {
                "body": _b64(body),
                "integratedTime": integrated_time,
                "logID": self.rekor_id.hex(),
                "logIndex": index,
            }
        )
        set_sig = self.rekor_key.sign(set_payload, ec.ECDSA(hashes.SHA256()))
        # uint64 fields are JSON strings in protobuf-JSON (sigstore_models is strict).
        return {
            "logIndex": str(index),
            "logId": {"keyId": _b64(self.rekor_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(integrated_time),
            "inclusionPromise": {"signedEntryTimestamp": _b64(set_sig)},
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": _b64(root),
                "treeSize": str(size),
                "hashes": [_b64(h) for h in proof],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": _b64(body),
        }

    # ---- attestations ----------------------------------------------------------------

    def attest(
        self,
        filename: str,
        sha256: str,
        identity: Identity = DEFAULT_IDENTITY,
        *,
        predicate_type: str = PUBLISH_V1,
        predicate: dict[str, Any] | None = None,
        integrated_time: int | None = None,
        cert_validity: tuple[int, int] | None = None,
        ca: TestSigstore | None = None,
        ctlog: TestSigstore | None = None,
        tlog: TestSigstore | None = None,
        claims_override: Mapping[str, str | bytes | None] | None = None,
    ) -> pypi_attestations.Attestation:
        """A genuinely signed PEP 740 attestation for `filename` with digest `sha256`.

        - `integrated_time`: the Rekor integrated time (unix seconds, default
          `LAB_SIGNING_AGE` before now).
        - `cert_validity`: (not_before, not_after) offsets in seconds from the integrated
          time; default (-60, +540) like Fulcio's 10 minutes.
        - `ca` / `ctlog` / `tlog`: take the certificate / SCT / log entry from another
          instance (which this instance's trusted root does not list).
        - `claims_override`: dotted Fulcio OID -> str (encoded like Fulcio), bytes (raw
          extension value) or None (claim omitted). For odd-certificate tests.
        - `predicate_type` other than publish/v1 (or a `predicate`, or a filename that
          pypi-attestations refuses to sign) builds the statement with sigstore's
          StatementBuilder instead of `Attestation.sign`.
        """
        issuer_ca = ca or self
        ct = ctlog or self
        log = tlog or self
        itime = int(time.time()) - LAB_SIGNING_AGE if integrated_time is None else integrated_time
        nb_off, na_off = cert_validity or (-60, 540)

        if isinstance(identity, GitHubIdentity) and identity.run_id is None:
            identity = dataclasses.replace(identity, run_id=str(next(_RUN_IDS)))
        elif isinstance(identity, GitLabIdentity) and identity.job_id is None:
            identity = dataclasses.replace(identity, job_id=str(next(_RUN_IDS)))
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        cert = issuer_ca._issue_certificate(
            identity, leaf_key.public_key(), itime + nb_off, itime + na_off, ct, claims_override
        )

        def make_bundle(stmt: dsse.Statement) -> Bundle:
            envelope = dsse._sign(leaf_key, stmt)
            return _bundle(cert, envelope, log, itime)

        signer = _DuckSigner(make_bundle)
        subject = dsse.Subject(name=filename, digest=dsse.DigestSet(root={"sha256": sha256}))
        if predicate_type == PUBLISH_V1 and predicate is None:
            try:
                dist = pypi_attestations.Distribution(name=filename, digest=sha256)
            except ValueError:
                pass  # not a valid dist filename: fall through to the manual statement
            else:
                return pypi_attestations.Attestation.sign(cast("Any", signer), dist)
        builder = dsse.StatementBuilder().subjects([subject]).predicate_type(predicate_type)
        if predicate is not None:
            builder = builder.predicate(predicate)
        return pypi_attestations.Attestation.from_bundle(signer.sign_dsse(builder.build()))

    def attest_v2(
        self,
        filename: str,
        sha256: str,
        identity: Identity = DEFAULT_IDENTITY,
        *,
        signed_time: int | None = None,
        tsa: TestSigstore | None = None,
        timestamps: int = 1,
    ) -> dict[str, Any]:
        """A PEP 740 attestation as Rekor v2 makes them: a ``dsse/0.0.2`` entry with a
        checkpoint and no integrated time or inclusion promise (``integratedTime`` "0"), plus
        ``timestamps`` RFC 3161 timestamps of the DSSE signature at ``signed_time`` (default
        LAB_SIGNING_AGE ago) from this instance's TSA (or ``tsa``'s, which this root does not
        list). Returned as the attestation JSON dict (pypi-attestations' model drops the
        timestamps)."""
        when = int(time.time()) - LAB_SIGNING_AGE if signed_time is None else signed_time
        authority = (tsa or self).tsa
        if isinstance(identity, GitHubIdentity) and identity.run_id is None:
            identity = dataclasses.replace(identity, run_id=str(next(_RUN_IDS)))
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue_certificate(
            identity, leaf_key.public_key(), when - 60, when + 540, self, None
        )
        stamps: list[bytes] = []

        def make_bundle(stmt: dsse.Statement) -> Bundle:
            envelope = dsse._sign(leaf_key, stmt)
            inner = envelope._inner
            sig = inner.signatures[0].sig
            der = cert.public_bytes(serialization.Encoding.DER)
            body = rfc8785.dumps(
                {
                    "apiVersion": "0.0.2",
                    "kind": "dsse",
                    "spec": {
                        "dsseV002": {
                            "payloadHash": {
                                "algorithm": "SHA2_256",
                                "digest": _b64(hashlib.sha256(inner.payload).digest()),
                            },
                            "signatures": [
                                {
                                    "content": _b64(sig),
                                    "verifier": {
                                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                        "x509Certificate": {"rawBytes": _b64(der)},
                                    },
                                }
                            ],
                        }
                    },
                }
            )
            entry = self._log_entry(body, 0)
            del entry["inclusionPromise"]
            entry["integratedTime"] = "0"
            entry["kindVersion"] = {"kind": "dsse", "version": "0.0.2"}
            for i in range(timestamps):
                stamps.append(authority.timestamp(sig, _utc(when + i)))
            bundle = {
                "mediaType": _BUNDLE_MEDIA_TYPE,
                "verificationMaterial": {
                    "certificate": {"rawBytes": _b64(der)},
                    "tlogEntries": [entry],
                    "timestampVerificationData": {
                        "rfc3161Timestamps": [{"signedTimestamp": _b64(t)} for t in stamps]
                    },
                },
                "dsseEnvelope": json.loads(envelope.to_json()),
            }
            return Bundle.from_json(json.dumps(bundle))

        dist = pypi_attestations.Distribution(name=filename, digest=sha256)
        att = pypi_attestations.Attestation.sign(cast("Any", _DuckSigner(make_bundle)), dist)
        doc = attestation_dict(att)
        doc["verification_material"]["timestamps"] = [_b64(t) for t in stamps]
        return doc

    def attest_file(
        self, path: Path, identity: Identity = DEFAULT_IDENTITY, **kw: Any
    ) -> pypi_attestations.Attestation:
        """`attest(path.name, sha256(path bytes), identity, **kw)`."""
        path = Path(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return self.attest(path.name, digest, identity, **kw)


def _bundle(
    cert: x509.Certificate, envelope: dsse.Envelope, log: TestSigstore, itime: int
) -> Bundle:
    """Record `envelope` in `log` and assemble a v0.3 Sigstore bundle."""
    inner = envelope._inner
    sig = inner.signatures[0].sig
    pem = cert.public_bytes(serialization.Encoding.PEM)
    envelope_json = envelope.to_json().encode()
    body = rfc8785.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(envelope_json).hexdigest(),
                },
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(inner.payload).hexdigest(),
                },
                # The verifier is base64 of the PEM (not DER), as Rekor stores it.
                "signatures": [{"signature": _b64(sig), "verifier": _b64(pem)}],
            },
        }
    )
    entry = log._log_entry(body, itime)
    bundle = {
        "mediaType": _BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
            "tlogEntries": [entry],
        },
        "dsseEnvelope": json.loads(envelope.to_json()),
    }
    return Bundle.from_json(json.dumps(bundle))


@functools.lru_cache(maxsize=1)
def default_instance() -> TestSigstore:
    """A shared instance for tests that don't need their own keys."""
    return TestSigstore(name="default")


# --------------------------------------------------------------------------------------
# PEP 740 objects
# --------------------------------------------------------------------------------------


def publisher_table(identity: Identity, environment: str | None = None) -> dict[str, str]:
    """The PEP 740 publisher object for `identity` (environment omitted when None).

    PyPI's Integrity API always sends `environment` (`""` when unset): pass `""` to mimic it.
    """
    table: dict[str, str]
    if isinstance(identity, GitHubIdentity):
        table = {"kind": "GitHub", "repository": identity.repository, "workflow": identity.workflow}
    elif isinstance(identity, GitLabIdentity):
        table = {
            "kind": "GitLab",
            "repository": identity.repository,
            "workflow_filepath": identity.workflow_filepath,
        }
    else:
        return {"kind": "Google", "email": identity.email}
    if environment is not None:
        table["environment"] = environment
    return table


def attestation_dict(att: pypi_attestations.Attestation) -> dict[str, Any]:
    """The attestation as the JSON object PyPI serves."""
    return cast("dict[str, Any]", json.loads(att.model_dump_json()))


def provenance_dict(
    attestations: list[pypi_attestations.Attestation] | list[dict[str, Any]],
    identity: Identity,
    environment: str | None = None,
) -> dict[str, Any]:
    """A PEP 740 provenance object with one attestation bundle."""
    return {
        "version": 1,
        "attestation_bundles": [
            {
                "publisher": publisher_table(identity, environment),
                "attestations": [_as_dict(a) for a in attestations],
            }
        ],
    }


def provenance_json(
    attestations: list[pypi_attestations.Attestation] | list[dict[str, Any]],
    identity: Identity,
    environment: str | None = None,
) -> bytes:
    """`provenance_dict(...)` serialized, ready to serve from a provenance URL."""
    return json.dumps(provenance_dict(attestations, identity, environment)).encode()


# --------------------------------------------------------------------------------------
# Tampering (input: an attestation JSON dict; output: a modified deep copy)
# --------------------------------------------------------------------------------------


def _as_dict(att: dict[str, Any] | pypi_attestations.Attestation) -> dict[str, Any]:
    if isinstance(att, pypi_attestations.Attestation):
        return attestation_dict(att)
    return copy.deepcopy(att)


def tamper_integrated_time(
    att_json: dict[str, Any] | pypi_attestations.Attestation, delta: int
) -> dict[str, Any]:
    """Shift the tlog entry's integratedTime by `delta` seconds (the SET no longer matches)."""
    out = _as_dict(att_json)
    entry = out["verification_material"]["transparency_entries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + delta)
    return out


def tamper_inclusion_proof(
    att_json: dict[str, Any] | pypi_attestations.Attestation,
) -> dict[str, Any]:
    """Flip one bit of the first audit-path hash (the computed root no longer matches)."""
    out = _as_dict(att_json)
    proof = out["verification_material"]["transparency_entries"][0]["inclusionProof"]
    if not proof["hashes"]:
        raise ValueError("inclusion proof has no hashes to tamper with (seed_entries=0?)")
    raw = bytearray(base64.b64decode(proof["hashes"][0]))
    raw[0] ^= 0x01
    proof["hashes"][0] = _b64(bytes(raw))
    return out


def swap_statement(
    att_json: dict[str, Any] | pypi_attestations.Attestation,
    other_att_json: dict[str, Any] | pypi_attestations.Attestation,
) -> dict[str, Any]:
    """Attestation A with B's statement: A's certificate, signature and log entry."""
    out = _as_dict(att_json)
    out["envelope"]["statement"] = _as_dict(other_att_json)["envelope"]["statement"]
    return out
