"""T01/T08: provenance removed from a release that had it, an unsigned release after attested
ones, and an unsigned file added later to an old, attested release. The history (local, or on
first sight the index's earlier releases) turns each into an attestation downgrade."""

from __future__ import annotations

from adversarial.conftest import Env, db_snapshot
from support.packages import build_wheel


def _record_attested(env: Env, version: str) -> list[dict[str, object]]:
    run = env.inspect(f"alpha=={version}", "--record", "--json")
    assert run.code == 0, run.text
    snap = db_snapshot()
    assert any(r["version"] == version and r["identity"] for r in snap)
    return snap


def test_provenance_removed_from_a_recorded_release(env: Env) -> None:
    wheel = env.pub.wheel("alpha", "1.0")
    before = _record_attested(env, "1.0")
    env.server.set_provenance("alpha", wheel.name, None)  # the index now says: no provenance

    run = env.inspect("alpha==1.0", "--record", "--json")

    assert run.code == 1, run.text
    [doc] = run.json()
    assert doc["code"] == "refused-attestation-downgrade"
    assert doc["verification_code"] == "no-provenance"
    assert "were attested by GitHub acme/alpha" in doc["reason"]
    assert db_snapshot() == before


def test_unsigned_new_release_after_locally_recorded_attested_one(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    before = _record_attested(env, "1.0")
    env.pub.wheel("alpha", "1.1", signed=False)

    run = env.inspect("alpha==1.1", "--record", "--json", "--no-index-history")

    assert run.code == 1, run.text
    [doc] = run.json()
    assert doc["code"] == "refused-attestation-downgrade"
    assert "seen on this machine" in doc["reason"]
    assert db_snapshot() == before


def test_unsigned_new_release_first_sight_uses_index_history(env: Env) -> None:
    """No local history at all: the index's earlier, attested releases are the history."""
    env.pub.wheel("alpha", "0.9")
    env.pub.wheel("alpha", "1.0")
    env.pub.wheel("alpha", "1.1", signed=False)

    run = env.inspect("alpha==1.1", "--record", "--json")

    assert run.code == 1, run.text
    [doc] = run.json()
    assert doc["code"] == "refused-attestation-downgrade"
    assert "read from the index" in doc["reason"]
    assert db_snapshot() == []


def test_unsigned_file_added_later_to_an_old_attested_release(env: Env) -> None:
    """1.0 was published (attested) and recorded; later an unsigned wheel for another platform
    appears in the same old release. It is refused; the original wheel still passes."""
    env.pub.wheel("alpha", "1.0")
    before = _record_attested(env, "1.0")
    late_dir = env.workdir / "late"
    late_dir.mkdir()
    late = build_wheel(late_dir, "alpha", "1.0", tag="cp312-cp312-manylinux_2_17_x86_64")
    env.server.add_file(late, project="alpha")  # no provenance

    run = env.inspect("alpha==1.0", "--record", "--json")

    assert run.code == 1, run.text
    docs = {d["filename"]: d for d in run.json()}
    assert docs[late.name]["code"] == "refused-attestation-downgrade"
    assert docs["alpha-1.0-py3-none-any.whl"]["code"] == "verified-known"
    # inspect --record records nothing when any file is refused? It records allowed files:
    # the known wheel may be re-recorded (same key), never the late unsigned file.
    after = db_snapshot()
    assert not any(r["filename"] == late.name for r in after)
    assert {(r["filename"], r["sha256"]) for r in after} == {
        (r["filename"], r["sha256"]) for r in before
    }


def test_attested_by_someone_else_after_history(env: Env) -> None:
    """Not a downgrade but the sibling attack: provenance replaced by a valid attestation
    from another repository. Refused as a publisher change, not recorded."""
    from support.sigstore_ca import GitHubIdentity

    env.pub.wheel("alpha", "1.0")
    before = _record_attested(env, "1.0")
    env.pub.wheel("alpha", "1.1", identity=GitHubIdentity(repository="evil/alpha"))

    run = env.inspect("alpha==1.1", "--record", "--json")

    assert run.code == 1, run.text
    [doc] = run.json()
    assert doc["code"] == "refused-publisher-change"
    assert db_snapshot() == before
