"""Verify PEP 740 provenance for one distribution file, with real Sigstore cryptography.

The flow for every attestation in the provenance:

1. parse it with pypi-attestations' models (provenance object, single attestation, or a
   Sigstore bundle converted with ``Attestation.from_bundle``);
2. ``sigstore.verify.Verifier.verify_dsse`` with the chosen trust root: certificate chain at the
   integrated time, SCT, transparency-log inclusion proof, checkpoint and SET, DSSE signature;
3. the in-toto statement: exactly one subject, whose filename parses and equals the file's, whose
   sha256 equals the sha256 *of the file's actual bytes*, with a known predicate type;
4. the identity read from the certificate, cross-checked against the provenance's publisher
   object (``environment`` is taken from there and labelled index-asserted).

Identity *policy* (who is allowed) is not decided here: see ``safe_pip.policy``. Any exception
anywhere is an INVALID result with a reason; nothing here raises.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from safe_pip.models import (
    KNOWN_PREDICATES,
    BuildContext,
    PublisherIdentity,
    VerificationResult,
    VerifyStatus,
)
from safe_pip.provenance.identity import (
    IdentityError,
    build_context_from_certificate,
    identity_from_certificate,
)
from safe_pip.provenance.rekor2 import (
    UNSUPPORTED_DSSE_V002,
    Rekor2Error,
    bundle_for,
    bundle_timestamps,
    check_dsse_v002_body,
    latest_timestamp,
    timestamps_of,
)

if TYPE_CHECKING:
    from cryptography.x509 import Certificate
    from pypi_attestations import Attestation
    from sigstore.models import Bundle
    from sigstore.verify import Verifier

MAX_PROVENANCE_BYTES = 2 * 1024 * 1024
MAX_ATTESTATIONS = 16
_IN_TOTO = "application/vnd.in-toto+json"
_STATEMENT_V1 = "https://in-toto.io/Statement/v1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class _Invalid(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class _Parsed:
    attestation: Attestation
    publisher: dict[str, Any] | None
    timestamps: tuple[bytes, ...] = ()  # RFC 3161 (pypi-attestations 0.0.30 drops them)


def _raw_attestations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The raw attestation objects of a provenance object, in the order the models read them."""
    out: list[dict[str, Any]] = []
    for bundle in doc.get("attestation_bundles") or []:
        for att in (bundle.get("attestations") or []) if isinstance(bundle, dict) else []:
            out.append(att if isinstance(att, dict) else {})
    return out


class _RecordIdentity:
    """A sigstore VerificationPolicy that accepts the certificate (identity policy is ours,
    applied afterwards on the identity extracted from this same, verified, certificate)."""

    def verify(self, cert: Certificate) -> None:
        return None


def _dist_identity_key(filename: str) -> tuple[object, ...]:
    """What makes two filenames "the same distribution" (as pypi-attestations compares)."""
    if filename.endswith(".whl"):
        name, version, build, tags = parse_wheel_filename(filename)
        return ("whl", name, version, build, tags)
    sname, sversion = parse_sdist_filename(filename)
    return ("sdist", sname, sversion)


def parse_provenance(data: bytes) -> list[_Parsed]:
    """Every attestation in ``data``, with the publisher object that came with it.

    Accepts a PEP 740 provenance object, a single PEP 740 attestation, or a Sigstore bundle.
    Raises _Invalid on anything else.
    """
    if len(data) > MAX_PROVENANCE_BYTES:
        raise _Invalid("malformed", f"provenance is larger than {MAX_PROVENANCE_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _Invalid("malformed", f"provenance is not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise _Invalid("malformed", "provenance is not a JSON object")

    from pydantic import ValidationError
    from pypi_attestations import Attestation, Provenance

    try:
        if "attestation_bundles" in doc:
            prov = Provenance.model_validate(doc)
            out = [
                _Parsed(att, bundle.publisher.model_dump(exclude_none=True))
                for bundle in prov.attestation_bundles
                for att in bundle.attestations
            ]
            raw = _raw_attestations(doc)
            if len(raw) != len(out):
                raise _Invalid("malformed", "provenance attestations could not be read")
            out = [
                replace(p, timestamps=timestamps_of(r.get("verification_material")))
                for p, r in zip(out, raw, strict=True)
            ]
        elif "verification_material" in doc and "envelope" in doc:
            out = [
                _Parsed(
                    Attestation.model_validate(doc),
                    None,
                    timestamps_of(doc.get("verification_material")),
                )
            ]
        elif str(doc.get("mediaType", "")).startswith("application/vnd.dev.sigstore.bundle"):
            from sigstore.models import Bundle

            bundle_obj = Bundle.from_json(data)
            out = [_Parsed(Attestation.from_bundle(bundle_obj), None, bundle_timestamps(doc))]
        else:
            raise _Invalid(
                "malformed",
                "not a PEP 740 provenance object, attestation or Sigstore bundle",
            )
    except _Invalid:
        raise
    except Rekor2Error as exc:
        raise _Invalid(exc.code, exc.reason) from None
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
        loc = ".".join(str(p) for p in first.get("loc", ()))
        raise _Invalid("malformed", f"provenance does not match PEP 740: {loc}: {first['msg']}")
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "DSSE" in msg or "dsse" in msg:
            raise _Invalid("not-a-dsse-bundle", f"Sigstore bundle is not a DSSE attestation: {msg}")
        raise _Invalid("malformed", f"cannot read provenance: {type(exc).__name__}: {msg}")
    if not out:
        raise _Invalid("malformed", "provenance contains no attestations")
    if len(out) > MAX_ATTESTATIONS:
        raise _Invalid(
            "malformed", f"provenance contains more than {MAX_ATTESTATIONS} attestations"
        )
    return out


# Reason codes for the Sigstore verifier's messages, most specific first. A message is
# "context: detail: detail ...", and details embed data (hashes as bytes reprs, base64
# checkpoints, certificate fields) that can spell any word: "...J2sCTThf..." once made an
# inclusion-proof failure an "invalid-sct". So only the message's words are read (up to its
# first data marker: "=", a quote, a bracket, a bytes literal), and words match whole.
_REASON_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\bcertificate chain\b|\bfulcio certificates not found\b"),
        "untrusted-certificate-chain",
    ),
    (re.compile(r"\bsct\b|\bctfe\b"), "invalid-sct"),
    (re.compile(r"\bset:|\binclusion promise\b"), "invalid-tlog-set"),
    (
        re.compile(r"\binclusion proof\b|\bcheckpoint\b|\brekor\b|\blog entry\b"),
        "invalid-tlog-entry",
    ),
    (re.compile(r"\bsignatures?\b"), "bad-signature"),
    (re.compile(r"\btime"), "invalid-time"),
)
_DATA_MARKER = re.compile(r"[=\'\"(\[{<]|\bb'")


def _classify(msg: str) -> str:
    """The reason code for a verifier message, read from its words, never its data."""
    words = _DATA_MARKER.split(msg.lower(), maxsplit=1)[0]
    for pattern, code in _REASON_RULES:
        if pattern.search(words):
            return code
    return "verification-failed"


def _statement_checks(payload_type: str, payload: bytes, filename: str, sha256: str) -> str:
    """The in-toto statement checks; returns the predicate type or raises _Invalid."""
    if payload_type != _IN_TOTO:
        raise _Invalid("malformed", f"DSSE payload type is {payload_type!r}, not in-toto")
    try:
        stmt = json.loads(payload)
    except ValueError as exc:
        raise _Invalid("malformed", f"statement is not JSON ({exc})") from exc
    if not isinstance(stmt, dict) or stmt.get("_type") != _STATEMENT_V1:
        raise _Invalid("malformed", "statement is not an in-toto Statement v1")
    subjects = stmt.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise _Invalid("subject-count", "statement must have exactly one subject")
    subject = subjects[0]
    if not isinstance(subject, dict):
        raise _Invalid("malformed", "statement subject is not an object")
    name = subject.get("name")
    if not isinstance(name, str) or not name:
        raise _Invalid("malformed", "statement subject has no name")
    try:
        subject_key = _dist_identity_key(name)
    except (ValueError, InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise _Invalid("name-mismatch", f"subject name {name!r} is not a dist filename: {exc}")
    if subject_key != _dist_identity_key(filename):
        raise _Invalid(
            "name-mismatch",
            f"attestation is for {name!r}, not for {filename!r}",
        )
    digest = subject.get("digest")
    attested = digest.get("sha256") if isinstance(digest, dict) else None
    if not isinstance(attested, str) or attested.lower() != sha256.lower():
        raise _Invalid(
            "digest-mismatch",
            f"attested sha256 {str(attested)[:16]}... does not match the file's bytes "
            f"({sha256[:16]}...)",
        )
    predicate_type = stmt.get("predicateType")
    if predicate_type not in KNOWN_PREDICATES:
        raise _Invalid("unknown-predicate", f"unknown predicate type {predicate_type!r}")
    return str(predicate_type)


def _cross_check(seen: PublisherIdentity, publisher: dict[str, Any] | None) -> PublisherIdentity:
    """Compare the index's publisher object with the certificate's identity.

    The certificate is authoritative. A publisher object that names another kind, repository
    or workflow means the index's metadata is lying: INVALID. ``environment`` is not in
    Fulcio certificates, so it is taken from the publisher object and marked index-asserted.
    """
    if publisher is None:
        return seen
    kind = publisher.get("kind")
    if kind != seen.kind:
        raise _Invalid(
            "publisher-mismatch",
            f"provenance says publisher kind {kind!r}, certificate says {seen.kind!r}",
        )

    def differs(key: str, cert_value: str | None, *, fold: bool) -> bool:
        claimed = publisher.get(key)
        if claimed in (None, ""):
            return False
        if cert_value is None:
            return True
        a, b = str(claimed), cert_value
        return (a.lower() != b.lower()) if fold else (a != b)

    if differs("repository", seen.repository, fold=True):
        raise _Invalid(
            "publisher-mismatch",
            f"provenance says repository {publisher.get('repository')!r}, certificate says "
            f"{seen.repository!r}",
        )
    if differs("workflow", seen.workflow, fold=False) or differs(
        "workflow_filepath", seen.workflow_filepath, fold=False
    ):
        raise _Invalid(
            "publisher-mismatch",
            "provenance's publisher workflow does not match the certificate's build config",
        )
    if differs("email", seen.email, fold=True):
        raise _Invalid("publisher-mismatch", "provenance's publisher email does not match")
    env = publisher.get("environment")
    if isinstance(env, str) and env:
        return replace(seen, environment=env, environment_source="index")
    return seen


def verify_provenance(
    filename: str, sha256: str, provenance: bytes, verifier: Verifier
) -> VerificationResult:
    """Verify ``provenance`` for the file ``filename`` whose bytes hash to ``sha256``.

    Returns VERIFIED or INVALID; never raises.
    """
    try:
        return _verify(filename, sha256.lower(), provenance, verifier)
    except _Invalid as exc:
        return VerificationResult(
            filename=filename,
            sha256=sha256,
            status=VerifyStatus.INVALID,
            reason=exc.reason,
            reason_code=exc.code,
            provenance=provenance,
        )
    except Exception as exc:  # fail closed on anything unexpected
        msg = str(exc).splitlines()[0] if str(exc) else ""
        return VerificationResult(
            filename=filename,
            sha256=sha256,
            status=VerifyStatus.INVALID,
            reason=f"verification failed: {type(exc).__name__}: {msg}"[:400],
            reason_code="verification-failed",
            provenance=provenance,
        )


def _verify(
    filename: str, sha256: str, provenance: bytes, verifier: Verifier
) -> VerificationResult:
    if not _HEX64.match(sha256):
        raise _Invalid("malformed", f"{sha256!r} is not a sha256 hex digest")
    try:
        _dist_identity_key(filename)
    except (ValueError, InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise _Invalid("name-mismatch", f"{filename!r} is not a wheel or sdist filename: {exc}")

    import sigstore.errors

    parsed = parse_provenance(provenance)
    identity: PublisherIdentity | None = None
    predicates: list[str] = []
    tlog_index: int | None = None
    integrated: int | None = None
    tsa_time: int | None = None
    tlog_kind: str | None = None
    build: BuildContext | None = None
    for item in parsed:
        att = item.attestation
        try:
            bundle = bundle_for(att, item.timestamps)
        except Exception as exc:
            raise _Invalid("malformed", f"cannot convert attestation to a Sigstore bundle: {exc}")
        try:
            payload_type, payload = _verify_dsse(verifier, bundle)
        except Rekor2Error as exc:
            raise _Invalid(exc.code, exc.reason) from exc
        except sigstore.errors.VerificationError as exc:
            msg = str(exc).splitlines()[0] if str(exc) else "verification error"
            raise _Invalid(_classify(msg), msg) from exc
        except Exception as exc:  # e.g. ExtensionNotFound, ValueError from sigstore
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise _Invalid(_classify(msg), f"{type(exc).__name__}: {msg}") from exc
        predicates.append(_statement_checks(payload_type, payload, filename, sha256))
        try:
            seen = identity_from_certificate(bundle.signing_certificate)
        except IdentityError as exc:
            raise _Invalid("bad-identity", f"certificate identity unreadable: {exc}") from exc
        seen = _cross_check(seen, item.publisher)
        try:
            build_ctx = build_context_from_certificate(bundle.signing_certificate)
        except IdentityError as exc:
            raise _Invalid("bad-identity", f"certificate build claims unreadable: {exc}") from exc
        if identity is None:
            identity, build = seen, build_ctx
        elif identity.to_table() != seen.to_table():
            raise _Invalid(
                "conflicting-publishers",
                f"attestations name different publishers: {identity.describe()} and "
                f"{seen.describe()}",
            )
        inner = bundle.log_entry._inner
        kv = inner.kind_version
        tlog_kind = f"{kv.kind}/{kv.version}"
        if inner.log_index is not None:
            tlog_index = int(inner.log_index)
        # As sigstore: the integrated time is a verified time only with an inclusion promise
        # (the log's signature over it) and for the v1 kinds; Rekor v2 writes 0.
        if inner.integrated_time and inner.inclusion_promise is not None and kv.version == "0.0.1":
            t = int(inner.integrated_time)
            integrated = t if integrated is None else max(integrated, t)
        try:
            stamp = latest_timestamp(item.timestamps)
        except Rekor2Error as exc:
            raise _Invalid(exc.code, exc.reason) from exc
        if stamp is not None:
            tsa_time = stamp if tsa_time is None else max(tsa_time, stamp)
    assert identity is not None
    return VerificationResult(
        filename=filename,
        sha256=sha256,
        status=VerifyStatus.VERIFIED,
        reason=f"verified: published by {identity.describe()}",
        reason_code="ok",
        identity=identity,
        predicate_types=tuple(dict.fromkeys(predicates)),
        tlog_index=tlog_index,
        integrated_time=integrated,
        tsa_time=tsa_time,
        tlog_kind=tlog_kind,
        build=build,
        provenance=provenance,
    )


def _verify_dsse(verifier: Verifier, bundle: Bundle) -> tuple[str, bytes]:
    """sigstore's ``verify_dsse``, completed for Rekor v2 ``dsse/0.0.2`` entries (see
    :mod:`safe_pip.provenance.rekor2`): sigstore raises :data:`UNSUPPORTED_DSSE_V002` only at its
    last step, after every other check passed, and the entry body is then checked here."""
    import sigstore.errors

    try:
        return verifier.verify_dsse(bundle, _RecordIdentity())
    except sigstore.errors.VerificationError as exc:
        kv = bundle.log_entry._inner.kind_version
        if str(exc) != UNSUPPORTED_DSSE_V002 or (kv.kind, kv.version) != ("dsse", "0.0.2"):
            raise
    check_dsse_v002_body(bundle)
    envelope = bundle._dsse_envelope
    assert envelope is not None  # checked by check_dsse_v002_body
    return envelope._inner.payload_type, envelope._inner.payload


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
