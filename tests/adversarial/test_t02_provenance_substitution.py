"""T02: the index serves genuine provenance, but for another file (another version, the sdist
instead of the wheel, another project, other bytes), or advertises a provenance URL that names
another file. Each is refused, and nothing is recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adversarial.conftest import Env, db_snapshot
from support.index_server import Fault
from support.packages import build_wheel


def _prov(env: Env, project: str, filename: str) -> bytes:
    return (env.server.root / project / (filename + ".provenance")).read_bytes()


@pytest.mark.parametrize("source", ["other-version", "sdist-for-wheel", "other-project"])
def test_provenance_of_another_file_is_refused(env: Env, source: str) -> None:
    target = env.pub.wheel("alpha", "1.1")
    if source == "other-version":
        donor = env.pub.wheel("alpha", "1.0")
        prov = _prov(env, "alpha", donor.name)
    elif source == "sdist-for-wheel":
        donor = env.pub.sdist("alpha", "1.1")
        prov = _prov(env, "alpha", donor.name)
        (env.server.root / "alpha" / donor.name).unlink()  # only the wheel is on the index
        (env.server.root / "alpha" / (donor.name + ".provenance")).unlink()
    else:
        donor = env.pub.wheel("beta", "1.1")
        prov = _prov(env, "beta", donor.name)
    env.server.set_provenance("alpha", target.name, prov)
    before = db_snapshot()

    run = env.inspect("alpha==1.1", "--json", "--record", "--no-index-history")

    assert run.code == 1, run.text
    [doc] = [d for d in run.json() if d["filename"] == target.name]
    assert doc["code"] == "refused-invalid-attestation"
    assert doc["verification_code"] == "name-mismatch"
    assert doc["allowed"] is False
    assert db_snapshot() == before


def test_provenance_for_other_bytes_of_the_same_filename_is_refused(env: Env) -> None:
    """Same filename, different bytes: the attested digest is not the file's digest."""
    target = env.pub.wheel("alpha", "1.0")
    other_dir = env.workdir / "other"
    other_dir.mkdir()
    other = build_wheel(other_dir, "alpha", "1.0", files={"alpha/evil.py": "x = 1\n"})
    assert other.name == target.name
    env.server.set_provenance("alpha", target.name, _signed_for(env, other))
    before = db_snapshot()

    run = env.inspect("alpha==1.0", "--json", "--record", "--no-index-history")

    assert run.code == 1, run.text
    [doc] = run.json()
    assert doc["code"] == "refused-invalid-attestation"
    assert doc["verification_code"] == "digest-mismatch"
    assert db_snapshot() == before


def _signed_for(env: Env, path: Path) -> bytes:
    from support.publish import default_identity
    from support.sigstore_ca import provenance_json

    ident = default_identity("alpha")
    return provenance_json([env.pub.sigstore.attest_file(path, ident)], ident)


def test_provenance_url_naming_another_file_is_not_fetched(env: Env) -> None:
    """The page points alpha 1.1's provenance at alpha 1.0's (a genuine, verifying one): the
    URL is refused before any request, so the donor provenance is never read."""
    old = env.pub.wheel("alpha", "1.0")
    new = env.pub.wheel("alpha", "1.1")
    page = json.loads(env.server.project_json("alpha"))
    donor_url = env.server.provenance_url("alpha", old.name)
    page["files"] = [f for f in page["files"] if f["filename"] == new.name]
    page["files"][0]["provenance"] = donor_url
    env.server.faults["/simple/alpha/"] = Fault(
        body=json.dumps(page).encode(), content_type="application/vnd.pypi.simple.v1+json"
    )
    before = db_snapshot()

    run = env.inspect("alpha==1.1", "--json", "--record", "--no-index-history")

    assert run.code == 3, run.text
    [doc] = run.json()
    assert doc["code"] == "could-not-check"
    assert "does not name the file" in doc["reason"]
    assert env.server.hits(f"/provenance/alpha/{old.name}") == 0
    assert db_snapshot() == before


def test_provenance_url_on_another_host_is_not_fetched(env: Env) -> None:
    """A provenance URL on another origin (a decoy index) is refused without a request."""
    from support.index_server import IndexServer

    new = env.pub.wheel("alpha", "1.1")
    with IndexServer(env.workdir / "decoy") as decoy:
        decoy.add_file(new, project="alpha", provenance=_prov(env, "alpha", new.name))
        page = json.loads(env.server.project_json("alpha"))
        page["files"][0]["provenance"] = decoy.provenance_url("alpha", new.name)
        env.server.faults["/simple/alpha/"] = Fault(
            body=json.dumps(page).encode(), content_type="application/vnd.pypi.simple.v1+json"
        )
        run = env.inspect("alpha==1.1", "--json", "--record", "--no-index-history")
        assert run.code == 3, run.text
        [doc] = run.json()
        assert doc["code"] == "could-not-check"
        assert "not on the file's index" in doc["reason"]
        assert decoy.requests_log == []
    assert db_snapshot() == []
