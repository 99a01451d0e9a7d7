"""safe_pip.provenance.attestation: parse_provenance raises only its own _Invalid, and
verify_provenance never raises and never says VERIFIED for arbitrary or mutated provenance
(real verification with the test Sigstore trust root)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from property.conftest import json_values
from safe_pip.models import VerifyStatus
from safe_pip.provenance.attestation import _Invalid, parse_provenance, verify_provenance
from support.sigstore_ca import GitHubIdentity, TestSigstore, provenance_dict

FILENAME = "demo-1.0-py3-none-any.whl"
SHA = hashlib.sha256(b"demo bytes").hexdigest()
IDENT = GitHubIdentity(repository="acme/demo")


@pytest.fixture(scope="module")
def genuine(sigstore: TestSigstore) -> dict[str, Any]:
    return provenance_dict([sigstore.attest(FILENAME, SHA, IDENT)], IDENT)


def _never_verified(sigstore: TestSigstore, data: bytes) -> None:
    res = verify_provenance(FILENAME, SHA, data, sigstore.verifier())
    assert res.status is VerifyStatus.INVALID, res


def test_genuine_verifies(sigstore: TestSigstore, genuine: dict[str, Any]) -> None:
    res = verify_provenance(FILENAME, SHA, json.dumps(genuine).encode(), sigstore.verifier())
    assert res.status is VerifyStatus.VERIFIED


@given(st.binary(max_size=400))
def test_arbitrary_bytes(sigstore: TestSigstore, data: bytes) -> None:
    with contextlib.suppress(_Invalid):
        parse_provenance(data)
    _never_verified(sigstore, data)


@given(json_values())
def test_arbitrary_json(sigstore: TestSigstore, doc: object) -> None:
    _never_verified(sigstore, json.dumps(doc).encode())


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        node = node[p]
    return node


def _set(node: Any, path: tuple[Any, ...], value: Any) -> None:
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


# The publisher object is a claim the index makes: the identity comes from the certificate,
# and a claim that is dropped (null / "") or only names the environment changes nothing.
# Everything else is bound by the signature, the certificate or the log entry.
_BENIGN = {"environment", "publisher"}


@given(data=st.data())
def test_structural_mutations_never_verify(
    sigstore: TestSigstore, genuine: dict[str, Any], data: st.DataObject
) -> None:
    doc = json.loads(json.dumps(genuine))
    paths = [p for p in _paths(doc) if p and not _BENIGN & set(p)]
    path = data.draw(st.sampled_from(paths))
    old = _get(doc, path)
    new = data.draw(json_values(4).filter(lambda v: v != old))
    _set(doc, path, new)
    _never_verified(sigstore, json.dumps(doc).encode())


_SIGNED = [
    ("attestation_bundles", 0, "attestations", 0, "envelope", "signature"),
    ("attestation_bundles", 0, "attestations", 0, "envelope", "statement"),
    ("attestation_bundles", 0, "attestations", 0, "verification_material", "certificate"),
]


@given(data=st.data())
def test_bit_flips_in_signed_material_never_verify(
    sigstore: TestSigstore, genuine: dict[str, Any], data: st.DataObject
) -> None:
    doc = json.loads(json.dumps(genuine))
    path = data.draw(st.sampled_from(_SIGNED))
    raw = bytearray(base64.b64decode(_get(doc, path)))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= 1 << data.draw(st.integers(0, 7))
    _set(doc, path, base64.b64encode(bytes(raw)).decode())
    _never_verified(sigstore, json.dumps(doc).encode())


@given(
    key=st.sampled_from(["kind", "repository", "workflow"]),
    value=st.text(min_size=1, max_size=20),
)
def test_contradicting_publisher_claims_never_verify(
    sigstore: TestSigstore, genuine: dict[str, Any], key: str, value: str
) -> None:
    doc = json.loads(json.dumps(genuine))
    publisher = doc["attestation_bundles"][0]["publisher"]
    if publisher.get(key, "").lower() == value.lower():
        return
    publisher[key] = value
    _never_verified(sigstore, json.dumps(doc).encode())
