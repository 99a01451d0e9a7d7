"""Newer Sigstore material: RFC 3161 timestamps and Rekor v2 ``dsse/0.0.2`` entries.

pypi-attestations 0.0.30 drops an attestation's ``timestamps`` when it converts it to a
Sigstore bundle, and Rekor v2 entries carry no integrated time and no inclusion promise: such
a bundle has no verified time at all and sigstore refuses it at load. :func:`bundle_for` builds
the bundle with the timestamps kept, so sigstore's ``Verifier`` checks them against the trust
root's timestamp authorities.

sigstore-python 4.5 verifies everything about a ``dsse/0.0.2`` entry (time from the timestamp
authority, certificate chain at that time, SCT, inclusion proof and signed checkpoint, DSSE
signature) and then stops at its last step, the consistency of the log entry's body with the
bundle, which it implements for Rekor v2's ``hashedrekord/0.0.2`` only ("Unsupported DSSE log
entry type: dsse/0.0.2", raised after every other check passed). :func:`check_dsse_v002_body`
is that last step for ``dsse/0.0.2`` (rekor-tiles' DSSE entry): the entry must record exactly
this envelope's payload hash, its one signature and the signing certificate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.x509 import Certificate
    from pypi_attestations import Attestation
    from sigstore.models import Bundle

#: Exactly what sigstore 4.5 raises when it reaches the entry-body step with a dsse/0.0.2 entry.
UNSUPPORTED_DSSE_V002 = "Unsupported DSSE log entry type: dsse/0.0.2"
_BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
_IN_TOTO = "application/vnd.in-toto+json"
MAX_TIMESTAMPS = 32  # sigstore's own limit


class Rekor2Error(ValueError):
    """The entry or a timestamp does not match the bundle (``code`` names the problem)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _b64decode(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise Rekor2Error("malformed", f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Rekor2Error("malformed", f"{what} is not base64 ({exc})") from None


def timestamps_of(verification_material: object) -> tuple[bytes, ...]:
    """The RFC 3161 timestamps (DER) of a PEP 740 attestation's ``verification_material``."""
    if not isinstance(verification_material, dict):
        return ()
    raw = verification_material.get("timestamps")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise Rekor2Error("malformed", "verification_material.timestamps is not a list")
    if len(raw) > MAX_TIMESTAMPS:
        raise Rekor2Error("malformed", f"more than {MAX_TIMESTAMPS} RFC 3161 timestamps")
    return tuple(_b64decode(t, "an RFC 3161 timestamp") for t in raw)


def bundle_timestamps(doc: dict[str, Any]) -> tuple[bytes, ...]:
    """The RFC 3161 timestamps (DER) of a Sigstore bundle given as JSON."""
    vm = doc.get("verificationMaterial")
    tvd = vm.get("timestampVerificationData") if isinstance(vm, dict) else None
    items = tvd.get("rfc3161Timestamps") if isinstance(tvd, dict) else None
    if not isinstance(items, list):
        return ()
    return tuple(
        _b64decode(i.get("signedTimestamp") if isinstance(i, dict) else None, "a timestamp")
        for i in items[: MAX_TIMESTAMPS + 1]
    )


def bundle_for(att: Attestation, timestamps: Sequence[bytes]) -> Bundle:
    """The v0.3 Sigstore bundle of ``att`` (as ``Attestation.to_bundle`` builds it: the first
    transparency entry, payload type in-toto), with ``timestamps`` kept."""
    from sigstore.models import Bundle

    if not timestamps:
        return att.to_bundle()
    vm = att.verification_material
    entry = vm.transparency_entries[0]
    doc = {
        "mediaType": _BUNDLE_V03,
        "verificationMaterial": {
            "certificate": {"rawBytes": base64.b64encode(vm.certificate).decode()},
            "tlogEntries": [entry],
            "timestampVerificationData": {
                "rfc3161Timestamps": [
                    {"signedTimestamp": base64.b64encode(t).decode()} for t in timestamps
                ]
            },
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(att.envelope.statement).decode(),
            "payloadType": _IN_TOTO,
            "signatures": [{"sig": base64.b64encode(att.envelope.signature).decode()}],
        },
    }
    return Bundle.from_json(json.dumps(doc))


def latest_timestamp(timestamps: Sequence[bytes]) -> int | None:
    """The latest ``genTime`` among ``timestamps`` (epoch seconds), None when there are none.

    sigstore has verified at least one of them when the bundle verified (and ignores the
    others); the latest is the conservative release time: an unverifiable extra timestamp can
    only make a file look younger, never older."""
    if not timestamps:
        return None
    from rfc3161_client import decode_timestamp_response

    latest: int | None = None
    for raw in timestamps:
        try:
            gen = decode_timestamp_response(raw).tst_info.gen_time
        except Exception as exc:
            raise Rekor2Error("malformed", f"unreadable RFC 3161 timestamp: {exc}") from None
        value = int(gen.timestamp())
        latest = value if latest is None else max(latest, value)
    return latest


_KEY_DETAILS = {"secp256r1": "PKIX_ECDSA_P256_SHA_256", "secp384r1": "PKIX_ECDSA_P384_SHA_384"}


def _key_details(cert: Certificate) -> str | None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _KEY_DETAILS.get(key.curve.name)
    return None


def check_dsse_v002_body(bundle: Bundle) -> None:
    """The entry-body step for a Rekor v2 ``dsse/0.0.2`` entry. Raises Rekor2Error.

    Call only after sigstore's ``verify_dsse`` raised :data:`UNSUPPORTED_DSSE_V002` (every
    other check passed; the body is the log's, proven by the inclusion proof)."""
    from cryptography.hazmat.primitives import serialization

    inner = bundle.log_entry._inner
    kv = inner.kind_version
    if (kv.kind, kv.version) != ("dsse", "0.0.2"):
        raise Rekor2Error("invalid-tlog-entry", f"not a dsse/0.0.2 entry ({kv.kind}/{kv.version})")
    envelope = bundle._dsse_envelope
    if envelope is None or len(envelope._inner.signatures) != 1:
        raise Rekor2Error("invalid-tlog-entry", "a DSSE envelope with one signature is needed")
    try:
        body = json.loads(inner.canonicalized_body)  # the models hold it base64-decoded
    except ValueError as exc:
        raise Rekor2Error("invalid-tlog-entry", f"log entry body is not JSON ({exc})") from None

    def bad(what: str) -> Rekor2Error:
        return Rekor2Error(
            "invalid-tlog-entry",
            f"Rekor v2 dsse/0.0.2 entry is inconsistent with the attestation: {what}",
        )

    if not isinstance(body, dict) or set(body) != {"apiVersion", "kind", "spec"}:
        raise bad("unexpected body fields")
    if body["apiVersion"] != "0.0.2" or body["kind"] != "dsse":
        raise bad(f"body is {body.get('kind')!r} {body.get('apiVersion')!r}")
    spec = body["spec"]
    if not isinstance(spec, dict) or set(spec) != {"dsseV002"}:
        raise bad("spec is not dsseV002")
    entry = spec["dsseV002"]
    if not isinstance(entry, dict) or set(entry) != {"payloadHash", "signatures"}:
        raise bad("unexpected dsseV002 fields")
    payload_hash = entry["payloadHash"]
    if not isinstance(payload_hash, dict) or payload_hash.get("algorithm") != "SHA2_256":
        raise bad("payload hash is not SHA2_256")
    payload = envelope._inner.payload
    if _b64decode(payload_hash.get("digest"), "payload digest") != hashlib.sha256(payload).digest():
        raise bad("the logged payload hash is not the statement's")
    sigs = entry["signatures"]
    if not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(sigs[0], dict):
        raise bad("the entry must record exactly one signature")
    sig = sigs[0]
    if set(sig) != {"content", "verifier"}:
        raise bad("unexpected signature fields")
    if _b64decode(sig["content"], "signature") != envelope._inner.signatures[0].sig:
        raise bad("the logged signature is not the envelope's")
    verifier = sig["verifier"]
    if not isinstance(verifier, dict) or set(verifier) != {"keyDetails", "x509Certificate"}:
        raise bad("the logged verifier is not a certificate")
    cert = bundle.signing_certificate
    raw = verifier["x509Certificate"]
    if not isinstance(raw, dict) or set(raw) != {"rawBytes"}:
        raise bad("malformed logged certificate")
    if _b64decode(raw["rawBytes"], "certificate") != cert.public_bytes(serialization.Encoding.DER):
        raise bad("the logged certificate is not the signing certificate")
    if verifier["keyDetails"] != _key_details(cert):
        raise bad(f"key details {verifier['keyDetails']!r} do not match the certificate's key")
