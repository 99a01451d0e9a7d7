"""Read the Trusted Publisher identity out of a (verified) Fulcio certificate.

Claims are Fulcio's X.509 extensions (OIDs 1.3.6.1.4.1.57264.1.*): 1.8 onwards are DER
UTF8Strings; 1.1 (legacy issuer) is raw bytes. The identity shape is PEP 740's publisher object
(see :class:`safe_pip.models.PublisherIdentity`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from safe_pip.models import GITHUB, GITLAB, GOOGLE, BuildContext, PublisherIdentity

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

_FULCIO = "1.3.6.1.4.1.57264.1."
OID_ISSUER_V1 = _FULCIO + "1"
OID_ISSUER_V2 = _FULCIO + "8"
OID_BUILD_SIGNER_URI = _FULCIO + "9"
OID_RUNNER_ENVIRONMENT = _FULCIO + "11"
OID_SOURCE_REPO_URI = _FULCIO + "12"
OID_SOURCE_REPO_DIGEST = _FULCIO + "13"
OID_SOURCE_REPO_REF = _FULCIO + "14"
OID_SOURCE_REPO_ID = _FULCIO + "15"
OID_SOURCE_REPO_OWNER_ID = _FULCIO + "17"
OID_BUILD_CONFIG_URI = _FULCIO + "18"
OID_BUILD_TRIGGER = _FULCIO + "20"
OID_RUN_INVOCATION_URI = _FULCIO + "21"

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
GOOGLE_ISSUER = "https://accounts.google.com"


class IdentityError(ValueError):
    """The certificate does not carry a Trusted Publisher identity we can read."""


def _der_utf8(value: bytes) -> str:
    """Decode a DER UTF8String (tag 0x0C) with a definite length."""
    if len(value) < 2 or value[0] != 0x0C:
        raise IdentityError("claim is not a DER UTF8String")
    length = value[1]
    offset = 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or len(value) < 2 + n:
            raise IdentityError("claim has a bad DER length")
        length = int.from_bytes(value[2 : 2 + n], "big")
        offset = 2 + n
    if offset + length != len(value):
        raise IdentityError("claim has a bad DER length")
    try:
        return value[offset:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IdentityError("claim is not UTF-8") from exc


def certificate_claims(cert: Certificate) -> dict[str, str]:
    """Every Fulcio claim in ``cert``, decoded, keyed by dotted OID."""
    from cryptography.x509 import UnrecognizedExtension

    claims: dict[str, str] = {}
    for ext in cert.extensions:
        oid = ext.oid.dotted_string
        if not oid.startswith(_FULCIO) or not isinstance(ext.value, UnrecognizedExtension):
            continue
        raw = ext.value.value
        suffix = int(oid[len(_FULCIO) :].split(".")[0]) if oid[len(_FULCIO) :].isdigit() else 0
        if 1 <= suffix <= 6:
            try:
                claims[oid] = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
        elif suffix >= 8:
            claims[oid] = _der_utf8(raw)
    return claims


def _san_values(cert: Certificate) -> tuple[list[str], list[str]]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return (
        list(san.get_values_for_type(x509.UniformResourceIdentifier)),
        list(san.get_values_for_type(x509.RFC822Name)),
    )


def _strip_prefix(value: str, prefix: str, what: str) -> str:
    if not value.startswith(prefix) or len(value) == len(prefix):
        raise IdentityError(f"{what} {value!r} does not start with {prefix!r}")
    return value[len(prefix) :]


def identity_from_certificate(cert: Certificate) -> PublisherIdentity:
    """The publisher identity a Fulcio certificate attests to.

    Raises IdentityError when a claim the issuer's identity needs is missing or malformed.
    """
    claims = certificate_claims(cert)
    issuer = claims.get(OID_ISSUER_V2) or claims.get(OID_ISSUER_V1)
    if not issuer:
        raise IdentityError("certificate has no OIDC issuer claim")
    uris, emails = _san_values(cert)

    if issuer == GITHUB_ISSUER:
        return _github(claims, issuer)
    if issuer == GITLAB_ISSUER:
        return _gitlab(claims, issuer)
    if issuer == GOOGLE_ISSUER:
        if len(emails) != 1:
            raise IdentityError("Google certificate must carry exactly one email SAN")
        return PublisherIdentity(kind=GOOGLE, email=emails[0], issuer=issuer)
    # Not a Trusted Publisher issuer safe-pip models (e.g. a personal identity signing by hand):
    # still report who signed, as kind "Other"; policy refuses it (no allowlist entry can name
    # it, so it is not trusted on first use either).
    who = emails[0] if emails else (uris[0] if uris else None)
    return PublisherIdentity(kind="Other", email=who, issuer=issuer)


def _strip_ref(path: str, claims: dict[str, str], config_uri: str) -> str:
    """``path@REF`` -> ``path``, where REF is the certificate's own source ref or digest
    (as pypi-attestations matches it), so a ref or a file name containing '@' cannot shift
    the split. A build config URI ending in neither is not a Trusted Publisher's."""
    for suffix in (claims.get(OID_SOURCE_REPO_REF), claims.get(OID_SOURCE_REPO_DIGEST)):
        if suffix and path.endswith("@" + suffix):
            return path[: -len(suffix) - 1]
    raise IdentityError(
        f"build config URI {config_uri!r} does not end with the certificate's source ref or digest"
    )


def _github(claims: dict[str, str], issuer: str) -> PublisherIdentity:
    repo_uri = claims.get(OID_SOURCE_REPO_URI)
    config_uri = claims.get(OID_BUILD_CONFIG_URI)
    if not repo_uri or not config_uri:
        raise IdentityError("GitHub certificate lacks the source repository or build config URI")
    repository = _strip_prefix(repo_uri, "https://github.com/", "source repository URI")
    # https://github.com/OWNER/REPO/.github/workflows/WORKFLOW.yml@REF
    path = _strip_prefix(config_uri, f"https://github.com/{repository}/", "build config URI")
    path = _strip_ref(path, claims, config_uri)
    if not path.startswith(".github/workflows/"):
        raise IdentityError(f"build config URI {config_uri!r} names no workflow file")
    workflow = path[len(".github/workflows/") :]
    if not workflow or "/" in workflow:
        raise IdentityError(f"build config URI {config_uri!r} names no workflow file")
    return PublisherIdentity(
        kind=GITHUB,
        repository=repository,
        workflow=workflow,
        repository_id=claims.get(OID_SOURCE_REPO_ID),
        repository_owner_id=claims.get(OID_SOURCE_REPO_OWNER_ID),
        ref=claims.get(OID_SOURCE_REPO_REF),
        issuer=issuer,
    )


def _gitlab(claims: dict[str, str], issuer: str) -> PublisherIdentity:
    repo_uri = claims.get(OID_SOURCE_REPO_URI)
    config_uri = claims.get(OID_BUILD_CONFIG_URI)
    if not repo_uri or not config_uri:
        raise IdentityError("GitLab certificate lacks the source repository or build config URI")
    repository = _strip_prefix(repo_uri, "https://gitlab.com/", "source repository URI")
    # https://gitlab.com/NAMESPACE/PROJECT//WORKFLOW_FILEPATH@REF
    path = _strip_prefix(config_uri, f"https://gitlab.com/{repository}//", "build config URI")
    filepath = _strip_ref(path, claims, config_uri)
    if not filepath:
        raise IdentityError(f"build config URI {config_uri!r} names no CI file")
    return PublisherIdentity(
        kind=GITLAB,
        repository=repository,
        workflow_filepath=filepath,
        repository_id=claims.get(OID_SOURCE_REPO_ID),
        repository_owner_id=claims.get(OID_SOURCE_REPO_OWNER_ID),
        ref=claims.get(OID_SOURCE_REPO_REF),
        issuer=issuer,
    )


def build_context_from_certificate(cert: Certificate) -> BuildContext | None:
    """The build claims of a (verified) Fulcio certificate: source ref and commit, trigger,
    runner environment, run invocation URI. None when it carries none of them (a Google or
    personal identity). Raises IdentityError for a claim that is not a DER UTF8String."""
    claims = certificate_claims(cert)
    build = BuildContext(
        source_ref=claims.get(OID_SOURCE_REPO_REF),
        source_commit=claims.get(OID_SOURCE_REPO_DIGEST),
        trigger=claims.get(OID_BUILD_TRIGGER),
        runner_environment=claims.get(OID_RUNNER_ENVIRONMENT),
        run_invocation=claims.get(OID_RUN_INVOCATION_URI),
    )
    return None if build.empty else build
