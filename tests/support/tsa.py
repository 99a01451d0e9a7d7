"""A test RFC 3161 timestamp authority: a P-384 root, a P-256 TSA certificate (EKU timeStamping,
critical) and hand-encoded DER TimeStampResp / CMS SignedData / TSTInfo, so the test Sigstore
instance can make what Rekor v2 attestations carry (tests/support/sigstore_ca.py,
``TestSigstore.attest_v2``). Only ``cryptography``; verified by sigstore through rfc3161-client.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# -- minimal DER ------------------------------------------------------------------------------


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _len(len(content)) + content


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def set_of(*items: bytes) -> bytes:
    return tlv(0x31, b"".join(sorted(items)))  # DER: SET OF sorted by encoding


def integer(value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return tlv(0x02, raw)


def octets(value: bytes) -> bytes:
    return tlv(0x04, value)


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([parts[0] * 40 + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def explicit(n: int, content: bytes) -> bytes:
    return tlv(0xA0 + n, content)


def gentime(when: dt.datetime) -> bytes:
    return tlv(0x18, when.astimezone(dt.timezone.utc).strftime("%Y%m%d%H%M%SZ").encode())


SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
SIGNED_DATA = "1.2.840.113549.1.7.2"
TST_INFO = "1.2.840.113549.1.9.16.1.4"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"
POLICY = "1.3.6.1.4.1.57264.2"  # sigstore's TSA policy id

_SERIALS = itertools.count(1000)


class TimestampAuthority:
    """Signs RFC 3161 timestamps over a message (sigstore timestamps the DSSE signature)."""

    __test__ = False

    def __init__(self, name: str, not_before: dt.datetime, not_after: dt.datetime) -> None:
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.key = ec.generate_private_key(ec.SECP256R1())
        root_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.test"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"tsa-root-{name}"),
            ]
        )
        self.root_cert = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(self.root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.root_key, hashes.SHA384())
        )
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.test"),
                        x509.NameAttribute(NameOID.COMMON_NAME, f"tsa-{name}"),
                    ]
                )
            )
            .issuer_name(root_name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
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
            .sign(self.root_key, hashes.SHA384())
        )

    def chain_der(self) -> list[bytes]:
        """[TSA certificate, root], as the trusted root's ``certChain`` lists them."""
        der = serialization.Encoding.DER
        return [self.cert.public_bytes(der), self.root_cert.public_bytes(der)]

    def timestamp(self, message: bytes, when: dt.datetime) -> bytes:
        """A DER TimeStampResp (status granted) over sha256(``message``) at ``when``."""
        alg = seq(oid(SHA256))
        tst_info = seq(
            integer(1),
            oid(POLICY),
            seq(alg, octets(hashlib.sha256(message).digest())),
            integer(next(_SERIALS)),
            gentime(when),
        )
        cert_der = self.cert.public_bytes(serialization.Encoding.DER)
        ess = seq(seq(seq(octets(hashlib.sha256(cert_der).digest()))))
        attrs = [
            seq(oid(CONTENT_TYPE), set_of(oid(TST_INFO))),
            seq(oid(MESSAGE_DIGEST), set_of(octets(hashlib.sha256(tst_info).digest()))),
            seq(oid(SIGNING_CERTIFICATE_V2), set_of(ess)),
        ]
        signed_attrs = set_of(*attrs)  # signed as a SET, sent as [0] IMPLICIT
        signature = self.key.sign(signed_attrs, ec.ECDSA(hashes.SHA256()))
        issuer = self.cert.issuer.public_bytes()
        signer_info = seq(
            integer(1),
            seq(issuer, integer(self.cert.serial_number)),
            alg,
            b"\xa0" + signed_attrs[1:],
            seq(oid(ECDSA_SHA256)),
            octets(signature),
        )
        signed_data = seq(
            integer(3),
            set_of(alg),
            seq(oid(TST_INFO), explicit(0, octets(tst_info))),
            tlv(0xA0, cert_der),  # certificates [0] IMPLICIT SET OF Certificate
            set_of(signer_info),
        )
        token = seq(oid(SIGNED_DATA), explicit(0, signed_data))
        return seq(seq(integer(0)), token)
