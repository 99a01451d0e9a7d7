"""``safe-pip verify`` end to end: a local index, test-signed packages, the real verifier."""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import os
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safe_pip.cli import main
from support.index_server import IndexServer
from support.packages import build_wheel, sha256_file
from support.publish import Publisher, default_identity
from support.sigstore_ca import GitHubIdentity, TestSigstore, provenance_json
from verify_helpers import pylock_text, requirements_text, uv_lock_text

GOOD = [f"pkg{i:02d}" for i in range(20)]
SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"


def _ident(name: str) -> dict[str, str]:
    return {"kind": "GitHub", "repository": f"acme/{name}", "workflow": "release.yml"}


@pytest.fixture(scope="module")
def index(
    sigstore: TestSigstore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IndexServer]:
    """20 good projects (some with an sdist and a second wheel) and four bad ones."""
    root = tmp_path_factory.mktemp("verify-index")
    with IndexServer(root / "index") as server:
        pub = Publisher(sigstore, server, root / "build")
        for i, name in enumerate(GOOD):
            pub.wheel(name, "1.0")
            if i % 4 == 0:
                pub.sdist(name, "1.0")
            if i % 5 == 0:  # a platform wheel: verified too, whatever the platform
                path = build_wheel(root / "extra" / name, name, "1.0", tag="cp311-cp311-win_amd64")
                ident = default_identity(name)
                att = sigstore.attest(path.name, sha256_file(path), ident)
                server.add_file(path, project=name, provenance=provenance_json([att], ident))
        pub.wheel("hijacked", "1.0", identity=GitHubIdentity(repository="evil/hijacked"))
        pub.wheel("nosig", "1.0", signed=False)
        pub.wheel("tampered", "1.0")
        pub.wheel("badhash", "1.0")
        dist = server.dists("tampered")[0]
        prov = json.loads(dist.provenance_path.read_bytes())
        env = prov["attestation_bundles"][0]["attestations"][0]["envelope"]
        sig = bytearray(base64.b64decode(env["signature"]))
        sig[-1] ^= 0x01
        env["signature"] = base64.b64encode(bytes(sig)).decode()
        server.set_provenance("tampered", dist.filename, json.dumps(prov).encode())
        yield server


def _run(
    args: list[str], capsys: pytest.CaptureFixture[str], trust_root: Path
) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["verify", *args, "--trust-root", str(trust_root)])
    out, err = capsys.readouterr()
    return code, out, err


def _files(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for lock in doc["locks"] for f in lock["files"]]


def _line_of(text: str, needle: str) -> int:
    for n, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return n
    raise AssertionError(needle)


def test_pylock_of_20_packages_with_identities_passes(
    index: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = workdir / "pylock.toml"
    lock.write_text(pylock_text(index, GOOD, identities={n: [_ident(n)] for n in GOOD}))
    code, out, err = _run([str(lock), "--format", "json"], capsys, trust_root)
    assert code == 0, out + err
    doc = json.loads(out)
    files = _files(doc)
    expected = sum(len(index.dists(n)) for n in GOOD)
    assert len(files) == expected > 20  # every wheel and sdist, not one per package
    assert all(f["status"] == "ok" and f["verified"] for f in files)
    assert {f["rule"] for f in files} == {"pylock attestation-identities"}
    assert any(f["filename"].endswith("win_amd64.whl") for f in files)
    assert any(f["kind"] == "sdist" for f in files)
    assert doc["schema"] == "safe-pip-verify/1"
    assert doc["exit_code"] == 0


def _bad_lock(index: IndexServer, workdir: Path) -> tuple[Path, str]:
    names = [*GOOD, "hijacked", "nosig", "tampered", "badhash"]
    bad_file = index.dists("badhash")[0].filename
    text = pylock_text(
        index,
        names,
        identities={n: [_ident(n)] for n in names},
        hash_override={bad_file: "ab" * 32},
    )
    lock = workdir / "pylock.toml"
    lock.write_text(text)
    return lock, text


def test_each_problem_fails_with_its_own_reason_and_line(
    index: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock, text = _bad_lock(index, workdir)
    code, out, err = _run([str(lock), "--format", "json"], capsys, trust_root)
    assert code == 1, err
    files = {f["package"]: f for f in _files(json.loads(out))}
    bad = {n: f for n, f in files.items() if f["status"] != "ok"}
    assert set(bad) == {"hijacked", "nosig", "tampered", "badhash"}
    assert bad["hijacked"]["code"] == "refused-unexpected-publisher"
    assert bad["hijacked"]["identity"]["repository"] == "evil/hijacked"
    assert bad["hijacked"]["expected"] == [_ident("hijacked")]
    assert bad["nosig"]["code"] == "refused-unsigned"
    assert bad["tampered"]["code"] == "refused-invalid-attestation"
    assert bad["tampered"]["detail"] == "bad-signature"
    assert bad["badhash"]["code"] == "hash-mismatch"
    assert bad["badhash"]["index_sha256"] == sha256_file(index.dists("badhash")[0].path)
    for name, f in bad.items():
        sha = f["sha256"]
        assert f["line"] == _line_of(text, sha), name  # the lock line naming that file
        assert f["reason"]
        assert f["fix"]
    # the text report lists all four at once, with lock:line
    code, out, _ = _run([str(lock)], capsys, trust_root)
    assert code == 1
    for name in bad:
        assert f"pylock.toml:{bad[name]['line']}" in out
    assert "4 refused" in out


def test_the_lock_face_runs_from_python_without_the_cli(
    index: IndexServer, workdir: Path, trust_root: Path
) -> None:
    """``run_verify`` takes typed options (no argparse) and returns the run the command
    renders: the same outcomes as ``safe-pip verify``."""
    from safe_pip.lock.run import LockRunOptions, run_verify

    lock, _ = _bad_lock(index, workdir)
    result = run_verify(
        LockRunOptions(
            locks=(str(lock),),
            progress=False,
            trust_root=str(trust_root),
        )
    )
    assert result.exit_code == 1
    bad = {o.package.name: o.code for r in result.reports for o in r.outcomes if o.status != "ok"}
    assert bad == {
        "hijacked": "refused-unexpected-publisher",
        "nosig": "refused-unsigned",
        "tampered": "refused-invalid-attestation",
        "badhash": "hash-mismatch",
    }


def test_sarif_validates_and_points_at_lock_lines(
    index: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import jsonschema

    lock, text = _bad_lock(index, workdir)
    sarif_path = workdir / "out.sarif"
    code, _, err = _run(
        [str(lock), "--format", "sarif", "--output", str(sarif_path)], capsys, trust_root
    )
    assert code == 1
    assert "4 refused" in err
    doc = json.loads(sarif_path.read_text())
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    jsonschema.Draft4Validator(schema).validate(doc)
    results = doc["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {
        "refused-unexpected-publisher",
        "refused-unsigned",
        "refused-invalid-attestation",
        "hash-mismatch",
    }
    rules = [r["id"] for r in doc["runs"][0]["tool"]["driver"]["rules"]]
    for r in results:
        loc = r["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"] == "pylock.toml"
        assert text.splitlines()[loc["region"]["startLine"] - 1].strip()
        assert rules[r["ruleIndex"]] == r["ruleId"]
        assert r["level"] == "error"


def test_junit_one_testcase_per_file(
    index: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock, _ = _bad_lock(index, workdir)
    code, out, _ = _run([str(lock), "--format", "junit"], capsys, trust_root)
    assert code == 1
    root = ET.fromstring(out)  # noqa: S314 - our own output
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    cases = suites[0].findall("testcase")
    n_files = sum(len(index.dists(n)) for n in [*GOOD, "hijacked", "nosig", "tampered", "badhash"])
    assert len(cases) == n_files == int(suites[0].get("tests", "0"))
    failures = [c for c in cases if c.find("failure") is not None]
    assert len(failures) == 4 == int(suites[0].get("failures", "-1"))
    for c in failures:
        f = c.find("failure")
        assert f is not None
        assert f.get("type")
        assert f.get("message")
        assert f.text
        assert c.get("classname", "").startswith("pylock.toml.")
        assert c.get("name", "").endswith(".whl")
        assert int(c.get("line", "0")) > 0


def test_write_identities_round_trip(
    index: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = GOOD[:6]
    original = pylock_text(index, names, identities={"pkg00": [_ident("pkg00")]})
    original = original.replace(
        '[[packages]]\nname = "pkg03"', '# a comment kept\n[[packages]]\nname = "pkg03"'
    )
    lock = workdir / "pylock.toml"
    lock.write_bytes(original.encode())
    code, out, err = _run(["--write-identities", str(lock)], capsys, trust_root)
    assert code == 0, out + err
    assert "wrote attestation-identities for 5 package(s)" in out
    new = lock.read_text()
    # Only insertions: every original byte is still there, in order.
    ops = difflib.SequenceMatcher(a=original, b=new, autojunk=False).get_opcodes()
    assert {op[0] for op in ops} <= {"equal", "insert"}
    header = "[[packages.attestation-identities]]"
    assert new.count(header) - original.count(header) == 5
    from packaging.pylock import Pylock

    from safe_pip.sources.pylock import load_toml

    parsed = Pylock.from_dict(load_toml(new, lock))
    ids = {"repository_id": "1001", "repository_owner_id": "2001"}  # default_identity's
    for pkg in parsed.packages:  # written ones carry the ids the certificates proved
        want = _ident(pkg.name) if pkg.name == "pkg00" else {**_ident(pkg.name), **ids}
        assert list(pkg.attestation_identities or []) == [want]
    # and verify passes against the written identities
    code, out, _ = _run([str(lock), "--format", "json"], capsys, trust_root)
    assert code == 0
    assert {f["rule"] for f in _files(json.loads(out))} == {"pylock attestation-identities"}
    # a second --write-identities changes nothing
    _run(["--write-identities", str(lock)], capsys, trust_root)
    assert lock.read_text() == new


def test_write_identities_skips_failed_packages(
    index: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = workdir / "pylock.toml"
    lock.write_text(pylock_text(index, ["pkg01", "nosig"]))
    code, _, _ = _run(["--write-identities", str(lock)], capsys, trust_root)
    assert code == 1  # nosig is refused by the default policy (require-attestation)
    text = lock.read_text()
    assert text.count("[[packages.attestation-identities]]") == 1
    assert text.index("[[packages.attestation-identities]]") < text.index('name = "nosig"')


def test_evidence_saved_then_verified_offline_without_sockets(
    index: IndexServer,
    workdir: Path,
    trust_root: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = GOOD[:8]
    lock = workdir / "pylock.toml"
    lock.write_text(pylock_text(index, names, identities={n: [_ident(n)] for n in names}))
    evidence = workdir / "evidence"
    code, _, err = _run([str(lock), "--save-evidence", str(evidence)], capsys, trust_root)
    assert code == 0, err
    manifest = json.loads((evidence / "safe-pip-evidence.json").read_text())
    assert len(manifest["files"]) == sum(len(index.dists(n)) for n in names)
    assert (evidence / "trusted_root.json").read_bytes() == trust_root.read_bytes()

    def no_network(*_a: object, **_k: object) -> None:
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    code, out, err = _run(
        [str(lock), "--offline", "--evidence", str(evidence), "--format", "json"],
        capsys,
        trust_root,
    )
    assert code == 0, out + err
    assert all(f["status"] == "ok" and f["verified"] for f in _files(json.loads(out)))

    # a lock entry the evidence does not cover cannot be checked (exit 3), never allowed
    lock.write_text(pylock_text(index, [*names, "pkg10"]))
    code, out, _ = _run([str(lock), "--offline", "--evidence", str(evidence)], capsys, trust_root)
    assert code == 3
    assert "could-not-check" in out


def test_cache_serves_warm_runs_and_is_reverified(
    index: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    names = GOOD[:5]
    lock = workdir / "pylock.toml"
    lock.write_text(pylock_text(index, names, identities={n: [_ident(n)] for n in names}))
    before = sum(1 for p in index.requests_log if p.startswith("/provenance/"))
    assert _run([str(lock)], capsys, trust_root)[0] == 0
    cold = sum(1 for p in index.requests_log if p.startswith("/provenance/")) - before
    # every file; no index-history read: the lock pins each project's attestation-identities
    assert cold == sum(len(index.dists(n)) for n in names)
    assert _run([str(lock)], capsys, trust_root)[0] == 0
    warm = sum(1 for p in index.requests_log if p.startswith("/provenance/")) - before - cold
    assert warm == 0
    # poison the cache: the cached material is verified again, so the check fails closed
    cache = Path(os.environ["SAFE_PIP_HOME"]) / "cache" / "provenance"
    entries = sorted(cache.rglob("*.json"))
    assert entries
    victim = entries[0]
    sha = victim.stem
    good_other = json.loads(entries[1].read_text())
    victim.write_text(json.dumps(good_other))  # valid provenance, but for another file
    code, out, _ = _run([str(lock), "--format", "json"], capsys, trust_root)
    assert code == 1
    failed = [f for f in _files(json.loads(out)) if f["status"] != "ok"]
    assert [f["sha256"] for f in failed] == [sha]
    assert failed[0]["code"] == "refused-invalid-attestation"
    # --no-cache goes back to the index
    assert _run([str(lock), "--no-cache"], capsys, trust_root)[0] == 0


def test_requirements_with_hashes(
    index: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = workdir / "requirements.txt"
    req.write_text(requirements_text(index, ["pkg00", "pkg05", "nosig"]))
    code, out, _ = _run([str(req), "--format", "json"], capsys, trust_root)
    assert code == 1
    files = _files(json.loads(out))
    assert len(files) == sum(len(index.dists(n)) for n in ["pkg00", "pkg05", "nosig"])
    bad = [f for f in files if f["status"] != "ok"]
    assert [(f["package"], f["code"]) for f in bad] == [("nosig", "refused-unsigned")]
    assert bad[0]["line"] == _line_of(req.read_text(), "nosig==")


def test_uv_lock(
    index: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = workdir / "uv.lock"
    lock.write_text(uv_lock_text(index, ["pkg00", "pkg05", "tampered"]))
    code, out, _ = _run([str(lock), "--format", "json"], capsys, trust_root)
    assert code == 1
    files = _files(json.loads(out))
    bad = [f for f in files if f["status"] != "ok"]
    assert [(f["package"], f["code"]) for f in bad] == [("tampered", "refused-invalid-attestation")]
    assert bad[0]["line"] == _line_of(lock.read_text(), bad[0]["sha256"])


def test_bad_lockfile_is_exit_2(
    workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = workdir / "pylock.toml"
    lock.write_text('lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nversion = "1"\n')
    code, _, err = _run([str(lock)], capsys, trust_root)
    assert code == 2
    assert "pylock.toml" in err
    assert "Traceback" not in err
    req = workdir / "requirements.txt"
    req.write_text("alpha>=1.0\n")
    code, _, err = _run([str(req)], capsys, trust_root)
    assert code == 2
    assert "not pinned" in err


def test_index_down_is_exit_3(
    index: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = workdir / "pylock.toml"
    lock.write_text(pylock_text(index, ["pkg01"]))
    with IndexServer(workdir / "empty") as other:
        other_url = other.index_url
    code, out, _ = _run(
        [str(lock), "--index-url", other_url, "--format", "json"], capsys, trust_root
    )
    assert code == 3
    assert {f["status"] for f in _files(json.loads(out))} == {"error"}


def test_download_mode_hashes_the_bytes(
    index: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = workdir / "pylock.toml"
    lock.write_text(pylock_text(index, ["pkg00", "pkg04"]))
    before = sum(1 for p in index.requests_log if p.startswith("/files/"))
    code, out, err = _run([str(lock), "--download", "--format", "json"], capsys, trust_root)
    assert code == 0, out + err
    fetched = sum(1 for p in index.requests_log if p.startswith("/files/")) - before
    n_files = len(index.dists("pkg00")) + len(index.dists("pkg04"))
    assert fetched == len(_files(json.loads(out))) == n_files


def test_requirements_offline_from_evidence(
    index: IndexServer,
    workdir: Path,
    trust_root: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    req = workdir / "requirements.txt"
    req.write_text(requirements_text(index, ["pkg00", "pkg05"]))
    evidence = workdir / "ev"
    assert _run([str(req), "--save-evidence", str(evidence)], capsys, trust_root)[0] == 0

    def no_network(*_a: object, **_k: object) -> None:
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    code, out, _ = _run(
        [str(req), "--evidence", str(evidence), "--format", "json"], capsys, trust_root
    )
    assert code == 0
    files = _files(json.loads(out))
    assert len(files) == len(index.dists("pkg00")) + len(index.dists("pkg05"))
    assert all(f["verified"] for f in files)


# -- a lock's attestation-identities only ever confirm ---------------------------------------


@pytest.fixture
def recreated(sigstore: TestSigstore, tmp_path: Path) -> Iterator[IndexServer]:
    """``rec`` 1.0 from acme/rec (ids 1001/2001); 2.0 from a re-created acme/rec (9999/9998)."""
    with IndexServer(tmp_path / "rec-index") as server:
        pub = Publisher(sigstore, server, tmp_path / "rec-build")
        old = GitHubIdentity(
            repository="acme/rec", repository_id="1001", repository_owner_id="2001"
        )
        new = GitHubIdentity(
            repository="acme/rec", repository_id="9999", repository_owner_id="9998"
        )
        pub.wheel("rec", "1.0", identity=old)
        pub.wheel("rec", "2.0", identity=new)
        yield server


def _rec_pylock(server: IndexServer, version: str, identity: dict[str, str]) -> str:
    dist = next(d for d in server.dists("rec") if d.version == version)
    sha = sha256_file(dist.path)
    lines = [
        'lock-version = "1.0"',
        'created-by = "safe-pip-tests"',
        "",
        "[[packages]]",
        'name = "rec"',
        f'version = "{version}"',
        f'index = "{server.index_url}"',
        "",
        "[[packages.wheels]]",
        f'name = "{dist.filename}"',
        f'url = "{server.file_url("rec", dist.filename)}"',
        f'hashes = {{ sha256 = "{sha}" }}',
        "",
        "[[packages.attestation-identities]]",
        *(f'{k} = "{v}"' for k, v in identity.items()),
    ]
    return "\n".join(lines) + "\n"


def test_lock_identity_match_does_not_override_a_recreated_repository(
    recreated: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    # 1.0 recorded here before 2.0 appeared (its window would already show the re-creation)
    record = [
        "inspect",
        "rec==1.0",
        "--index-url",
        recreated.index_url,
        "--record",
        "--no-index-history",
    ]
    code = main([*record, "--trust-root", str(trust_root)])
    assert code == 0, capsys.readouterr()
    lock = workdir / "pylock.toml"
    lock.write_text(_rec_pylock(recreated, "2.0", _ident("rec")))
    code, out, err = _run([str(lock), "--format", "json"], capsys, trust_root)
    assert code == 1, out + err
    (f,) = _files(json.loads(out))
    assert f["status"] == "fail"
    assert f["code"] == "refused-publisher-change"
    assert "re-created" in f["reason"]
    assert "attestation-identities" in f["reason"]  # the match is noted, not obeyed
    assert f["rule"] != "pylock attestation-identities"


def test_written_identities_pin_the_ids_and_catch_a_recreated_repository(
    recreated: IndexServer,
    sigstore: TestSigstore,
    workdir: Path,
    trust_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lock = workdir / "pylock.toml"
    lock.write_text(_rec_pylock(recreated, "1.0", {}).split("\n[[packages.attestation")[0])
    # written before 2.0 appeared (its window would already show the re-creation)
    code, out, err = _run(
        ["--write-identities", str(lock), "--no-index-history"], capsys, trust_root
    )
    assert code == 0, out + err
    from packaging.pylock import Pylock

    from safe_pip.sources.pylock import load_toml

    (pkg,) = Pylock.from_dict(load_toml(lock.read_text(), lock)).packages  # still PEP 751
    (table,) = pkg.attestation_identities or []
    assert dict(table) == {**_ident("rec"), "repository_id": "1001", "repository_owner_id": "2001"}

    # An index that only has the re-created repository's release: no history to compare with
    # (a fresh CI runner), so only the lock's pinned ids can tell.
    with IndexServer(workdir / "fresh-index") as fresh:
        new = GitHubIdentity(
            repository="acme/rec", repository_id="9999", repository_owner_id="9998"
        )
        Publisher(sigstore, fresh, workdir / "fresh-build").wheel("rec", "2.0", identity=new)
        lock.write_text(_rec_pylock(fresh, "2.0", dict(table)))
        code, out, err = _run([str(lock), "--format", "json"], capsys, trust_root)
        assert code == 1, out + err
        (f,) = _files(json.loads(out))
        assert f["code"] == "refused-unexpected-publisher"
        assert "re-created" in f["reason"]
        assert f["expected"] == [dict(table)]
        code, out, _ = _run([str(lock)], capsys, trust_root)
        assert "expected: GitHub acme/rec @ release.yml (repository id 1001, owner id 2001)" in out
        # names only (what --write-identities used to write): trusted on first use
        lock.write_text(_rec_pylock(fresh, "2.0", _ident("rec")))
        assert _run([str(lock)], capsys, trust_root)[0] == 0


# -- every lock entry must pin its sha256 ---------------------------------------------------


def test_requirements_without_hash_fail_at_their_line(
    index: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = workdir / "requirements.txt"
    text = requirements_text(index, ["pkg00"]) + "pkg01==1.0\n"
    req.write_text(text)
    code, out, err = _run([str(req), "--format", "json"], capsys, trust_root)
    assert code == 1, out + err
    files = _files(json.loads(out))
    bad = [f for f in files if f["status"] != "ok"]
    assert [(f["package"], f["code"], f["kind"]) for f in bad] == [
        ("pkg01", "no-hash-pinned", "entry")
    ]
    assert bad[0]["line"] == _line_of(text, "pkg01==1.0")
    assert "--hash" in bad[0]["reason"]
    assert "--generate-hashes" in bad[0]["fix"]
    assert not bad[0]["verified"]
    assert {f["package"] for f in files if f["status"] == "ok"} == {"pkg00"}
    # the reviewer's repro: one unhashed pin is not "1 verified"
    req.write_text(f"--index-url {index.index_url}\npkg01==1.0\n")
    code, out, _ = _run([str(req)], capsys, trust_root)
    assert code == 1
    assert "requirements.txt:2" in out
    assert "no-hash-pinned" in out
    assert "0 verified" in out
    # offline from evidence: the same failure (exit 1), not "could not check"
    evidence = workdir / "ev"
    hashed = workdir / "hashed.txt"
    hashed.write_text(requirements_text(index, ["pkg00"]))
    assert _run([str(hashed), "--save-evidence", str(evidence)], capsys, trust_root)[0] == 0
    code, out, _ = _run([str(req), "--evidence", str(evidence)], capsys, trust_root)
    assert code == 1
    assert "no-hash-pinned" in out


def test_sarif_has_a_rule_for_no_hash_pinned(
    index: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import jsonschema

    req = workdir / "requirements.txt"
    req.write_text(f"--index-url {index.index_url}\npkg01==1.0\n")
    code, out, _ = _run([str(req), "--format", "sarif"], capsys, trust_root)
    assert code == 1
    doc = json.loads(out)
    jsonschema.Draft4Validator(json.loads(SCHEMA.read_text())).validate(doc)
    (result,) = doc["runs"][0]["results"]
    assert result["ruleId"] == "no-hash-pinned"
    rules = {r["id"]: r for r in doc["runs"][0]["tool"]["driver"]["rules"]}
    assert "generate-hashes" in rules["no-hash-pinned"]["help"]["text"]
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 2


def test_uv_lock_and_pylock_files_without_sha256_fail(
    index: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ["pkg00", "pkg01"]
    uv = workdir / "uv.lock"
    wheel = index.dists("pkg01")[0]
    uv_text = uv_lock_text(index, names).replace(f'hash = "sha256:{sha256_file(wheel.path)}", ', "")
    uv.write_text(uv_text)
    code, out, err = _run([str(uv), "--format", "json"], capsys, trust_root)
    assert code == 1, out + err
    bad = [f for f in _files(json.loads(out)) if f["status"] != "ok"]
    assert [(f["filename"], f["code"]) for f in bad] == [(wheel.filename, "no-hash-pinned")]
    assert bad[0]["line"] == _line_of(uv_text, wheel.filename)
    assert bad[0]["sha256"] is None

    # pylock: PEP 751 requires hashes, but sha512 alone cannot be matched to a PEP 740 subject
    # (and an installer would take any file with that sha512): unverifiable-hash
    lock = workdir / "pylock.toml"
    py_text = pylock_text(index, names).replace(
        f'sha256 = "{sha256_file(wheel.path)}"', f'sha512 = "{"0" * 128}"'
    )
    lock.write_text(py_text)
    code, out, err = _run([str(lock), "--format", "json"], capsys, trust_root)
    assert code == 1, out + err
    bad = [f for f in _files(json.loads(out)) if f["status"] != "ok"]
    assert [(f["filename"], f["code"]) for f in bad] == [(wheel.filename, "unverifiable-hash")]
    assert bad[0]["line"] == _line_of(py_text, f'name = "{wheel.filename}"')


# -- hashes of other algorithms: the installer accepts ANY listed hash ---------------------


def _sha512(path: Path) -> str:
    return hashlib.sha512(path.read_bytes()).hexdigest()


def test_requirements_with_a_non_sha256_hash_fail_at_their_line(
    index: IndexServer,
    workdir: Path,
    trust_root: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """``--hash=sha256:<attested> --hash=sha512:<other bytes>``: pip --require-hashes installs
    a file matching EITHER, so the sha512 file would go in unverified. The entry fails (even
    offline from evidence); several sha256 hashes on one requirement are each checked."""
    other = build_wheel(tmp_path / "other", "pkg01", "1.0", tag="py311-none-any")
    text = requirements_text(index, ["pkg00", "pkg01"])
    pkg01_hash = f"--hash=sha256:{sha256_file(index.dists('pkg01')[0].path)}"
    assert pkg01_hash in text
    req = workdir / "requirements.txt"
    req.write_text(text.replace(pkg01_hash, f"{pkg01_hash} --hash=sha512:{_sha512(other)}"))
    code, out, _ = _run([str(req), "--format", "json"], capsys, trust_root)
    assert code == 1
    files = _files(json.loads(out))
    ok = [f for f in files if f["status"] == "ok"]
    assert len(ok) == len(index.dists("pkg00")) > 1  # several sha256 on one line: all checked
    bad = [f for f in files if f["status"] != "ok"]
    assert [(f["package"], f["code"], f["kind"]) for f in bad] == [
        ("pkg01", "unverifiable-hash", "entry")
    ]
    assert bad[0]["line"] == _line_of(text, "pkg01==")
    assert "sha512" in bad[0]["reason"]
    assert "ANY" in bad[0]["reason"]
    assert "sha256" in bad[0]["fix"]

    # offline from evidence: the same failure
    evidence = workdir / "ev"
    clean = workdir / "clean.txt"
    clean.write_text(text)
    assert _run([str(clean), "--save-evidence", str(evidence)], capsys, trust_root)[0] == 0
    code, out, _ = _run(
        [str(req), "--evidence", str(evidence), "--format", "json"], capsys, trust_root
    )
    assert code == 1
    bad = [f for f in _files(json.loads(out)) if f["status"] != "ok"]
    assert [(f["package"], f["code"]) for f in bad] == [("pkg01", "unverifiable-hash")]

    # SARIF: its own rule, valid against the schema, pointing at the line
    import jsonschema

    code, out, _ = _run([str(req), "--format", "sarif"], capsys, trust_root)
    doc = json.loads(out)
    jsonschema.Draft4Validator(json.loads(SCHEMA.read_text())).validate(doc)
    (result,) = doc["runs"][0]["results"]
    assert result["ruleId"] == "unverifiable-hash"
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == bad[0]["line"]
    rules = {r["id"]: r for r in doc["runs"][0]["tool"]["driver"]["rules"]}
    assert rules["unverifiable-hash"]["name"] == "UnverifiableHash"


def test_pylock_and_uv_lock_files_with_a_non_sha256_hash_fail(
    index: IndexServer,
    workdir: Path,
    trust_root: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """uv installs a pylock file whose sha512 matches even when its sha256 does not."""
    names = ["pkg00", "pkg01"]
    wheel = index.dists("pkg01")[0]
    other = build_wheel(tmp_path / "other", "pkg01", "1.0")
    lock = workdir / "pylock.toml"
    sha = sha256_file(wheel.path)
    py_text = pylock_text(index, names).replace(
        f'sha256 = "{sha}"', f'sha256 = "{sha}", sha512 = "{_sha512(other)}"'
    )
    lock.write_text(py_text)
    code, out, err = _run([str(lock), "--format", "json"], capsys, trust_root)
    assert code == 1, out + err
    files = _files(json.loads(out))
    bad = [f for f in files if f["status"] != "ok"]
    assert [(f["filename"], f["code"]) for f in bad] == [(wheel.filename, "unverifiable-hash")]
    assert bad[0]["line"] == _line_of(py_text, sha)  # the file's hashes line
    assert len(files) == len(index.dists("pkg00")) + 1

    uv = workdir / "uv.lock"
    uv_text = uv_lock_text(index, names).replace(f'"sha256:{sha}"', f'"sha512:{_sha512(other)}"')
    uv.write_text(uv_text)
    code, out, err = _run([str(uv), "--format", "json"], capsys, trust_root)
    assert code == 1, out + err
    bad = [f for f in _files(json.loads(out)) if f["status"] != "ok"]
    assert [(f["filename"], f["code"]) for f in bad] == [(wheel.filename, "unverifiable-hash")]
    assert bad[0]["line"] == _line_of(uv_text, wheel.filename)


# -- a file's name must be of its entry's project and version --------------------------------


@pytest.fixture
def versions(sigstore: TestSigstore, tmp_path: Path) -> Iterator[IndexServer]:
    """foo 1.0 (unsigned, allowed by an exception), 1.5 (attested), 2.0 (unsigned)."""
    with IndexServer(tmp_path / "versions") as server:
        pub = Publisher(sigstore, server, tmp_path / "vbuild")
        pub.wheel("foo", "1.0", signed=False)
        pub.wheel("foo", "1.5")
        pub.wheel("foo", "2.0", signed=False)
        yield server


def _uv_entry(server: IndexServer, version: str, filename: str, project: str = "foo") -> str:
    dist = next(d for d in server.dists(project) if d.filename == filename)
    return (
        f'\n[[package]]\nname = "foo"\nversion = "{version}"\n'
        f'source = {{ registry = "{server.index_url}" }}\n'
        f'wheels = [\n    {{ url = "{server.file_url(project, filename)}", '
        f'hash = "sha256:{sha256_file(dist.path)}" }},\n]\n'
    )


def test_uv_lock_file_of_another_version_fails(
    versions: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A uv.lock entry ``version = "1.0"`` naming the unsigned foo-2.0 wheel must not borrow
    the ``[[unsigned]] versions = "==1.0"`` exception: it fails with name-version-mismatch.
    (foo 1.5 is attested, so only an exception pinning 1.0's sha256 allows 1.0: issue 12.)"""
    w10, w20 = "foo-1.0-py3-none-any.whl", "foo-2.0-py3-none-any.whl"
    sha10 = sha256_file(next(d for d in versions.dists("foo") if d.filename == w10).path)
    (workdir / "safe-pip.toml").write_text(
        '[[unsigned]]\nname = "foo"\nversions = "==1.0"\nreason = "reviewed 1.0"\n'
        f'sha256 = ["{sha10}"]\n'
    )
    uv = workdir / "uv.lock"
    text = 'version = 1\nrequires-python = ">=3.10"\n' + _uv_entry(versions, "1.0", w20)
    uv.write_text(text)
    code, out, err = _run([str(uv), "--format", "json"], capsys, trust_root)
    assert code == 1, out + err
    (f,) = _files(json.loads(out))
    assert (f["filename"], f["status"], f["code"]) == (w20, "fail", "name-version-mismatch")
    assert f["line"] == _line_of(text, w20)
    assert "foo==1.0" in f["reason"]
    assert "version 2.0" in f["reason"]

    # the same version spelled differently is the same version: the exception applies
    uv.write_text('version = 1\nrequires-python = ">=3.10"\n' + _uv_entry(versions, "1.0.0", w10))
    code, out, err = _run([str(uv), "--format", "json"], capsys, trust_root)
    assert code == 0, out + err
    (f,) = _files(json.loads(out))
    assert f["code"] == "unsigned-allowed"


def test_evidence_naming_a_file_of_another_version_fails(
    versions: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The backstop where files are planned: a requirements file's files come from the index
    or the evidence by sha256; evidence that names a file of another version for the pinned
    sha256 fails with name-version-mismatch instead of being decided as the pin's version."""
    w10 = versions.dists("foo")[0]
    assert w10.filename == "foo-1.0-py3-none-any.whl"
    (workdir / "safe-pip.toml").write_text(  # sha256-pinned: foo 1.5 is attested (issue 12)
        '[[unsigned]]\nname = "foo"\nversions = "==1.0"\nreason = "reviewed 1.0"\n'
        f'sha256 = ["{sha256_file(w10.path)}"]\n'
    )
    req = workdir / "requirements.txt"
    req.write_text(
        f"--index-url {versions.index_url}\nfoo==1.0 --hash=sha256:{sha256_file(w10.path)}\n"
    )
    evidence = workdir / "ev"
    assert _run([str(req), "--save-evidence", str(evidence)], capsys, trust_root)[0] == 0
    manifest = evidence / "safe-pip-evidence.json"
    doc = json.loads(manifest.read_text())
    (entry,) = doc["files"].values()
    assert entry["status"] == "unsigned"
    entry["filename"] = "foo-2.0-py3-none-any.whl"
    manifest.write_text(json.dumps(doc))
    code, out, err = _run(
        [str(req), "--evidence", str(evidence), "--format", "json"], capsys, trust_root
    )
    assert code == 1, out + err
    (f,) = _files(json.loads(out))
    assert (f["code"], f["line"]) == ("name-version-mismatch", 2)


def test_summaries_split_verified_unsigned_allowed_and_refused(
    index: IndexServer, workdir: Path, trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unsigned file the policy allows is never counted as verified: text, JSON, SARIF
    and JUnit all say verified / unsigned but allowed / refused."""
    names = ["pkg01", "nosig", "hijacked"]
    lock = workdir / "pylock.toml"
    lock.write_text(pylock_text(index, names, identities={"hijacked": [_ident("hijacked")]}))
    (workdir / "safe-pip.toml").write_text(
        '[[unsigned]]\nname = "nosig"\nversions = "==1.0"\nreason = "vendored, reviewed"\n'
    )
    n_good = len(index.dists("pkg01"))
    code, out, _ = _run([str(lock), "--format", "json"], capsys, trust_root)
    assert code == 1
    summary = json.loads(out)["summary"]
    assert (summary["verified"], summary["unsigned_allowed"], summary["refused"]) == (
        n_good,
        1,
        1,
    )
    code, out, _ = _run([str(lock)], capsys, trust_root)
    last = out.splitlines()[-1]
    assert f"{n_good + 2} file(s): {n_good} verified, 1 unsigned but allowed, 1 refused" in last
    code, out, _ = _run([str(lock), "--quiet"], capsys, trust_root)
    assert out.splitlines() == [last.split(" (")[0] + " (" + out.split(" (", 1)[1].strip()]
    assert len(out.splitlines()) == 1
    code, out, _ = _run([str(lock), "--format", "sarif"], capsys, trust_root)
    assert json.loads(out)["runs"][0]["properties"]["summary"]["unsigned_allowed"] == 1
    code, out, _ = _run([str(lock), "--format", "junit"], capsys, trust_root)
    root = ET.fromstring(out)  # noqa: S314 - our own output
    assert root.get("skipped") == "1"
    skipped = [c for c in root.iter("testcase") if c.find("skipped") is not None]
    assert [c.get("name") for c in skipped] == [index.dists("nosig")[0].filename]
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["safe-pip.verified"] == str(n_good)
    assert props["safe-pip.unsigned_allowed"] == "1"


# -- a requirements lock is read as pip reads it (the forms pip takes that verify must see) ----


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    """Real pip (this interpreter's), isolated from pip's configuration."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return subprocess.run(
        [sys.executable, "-m", "pip", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def _pip_download(req: Path, links: Path, dest: Path) -> list[str]:
    """What real pip takes from ``req`` (offline, from ``links`` only): the file names."""
    proc = _pip(
        "download",
        "--no-index",
        "--find-links",
        str(links),
        "--no-deps",
        "--dest",
        str(dest),
        "-r",
        str(req),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return sorted(p.name for p in dest.iterdir())


def test_requirements_lock_is_read_as_pip_reads_it(
    index: IndexServer,
    workdir: Path,
    trust_root: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Two forms real pip reads in a hashed requirements file that verify read otherwise, so
    a file pip installs went unverified (exit 0): an abbreviated ``--ha=sha512:...`` (pip's
    optparse takes any unambiguous prefix: a second hash pip accepts the other bytes by), and
    a PEP 263 ``coding: utf-7`` line (pip decodes the file with it: ``+AAo-`` is a line break,
    so a requirement hidden in a comment is one pip installs). Each fails at its line now."""
    import shutil

    pkg02 = index.dists("pkg02")[0]
    pkg01 = index.dists("pkg01")[0]
    nosig = index.dists("nosig")[0]
    other = build_wheel(tmp_path / "other", "pkg01", "1.0", tag="py311-none-any")
    links = tmp_path / "links"
    links.mkdir()
    for path in (pkg02.path, nosig.path, other):
        shutil.copy(path, links / path.name)

    # 1. --ha=sha512: pip takes the unverified wheel by its sha512
    abbrev = workdir / "abbrev.txt"
    abbrev.write_text(
        f"--index-url {index.index_url}\n"
        f"pkg01==1.0 --hash=sha256:{sha256_file(pkg01.path)} --ha=sha512:{_sha512(other)}\n"
    )
    assert _pip_download(abbrev, links, tmp_path / "dl1") == [other.name]
    code, out, err = _run([str(abbrev), "--format", "json"], capsys, trust_root)
    assert code == 1, out + err
    bad = [f for f in _files(json.loads(out)) if f["status"] != "ok"]
    assert [(f["package"], f["code"], f["line"]) for f in bad] == [
        ("pkg01", "unverifiable-hash", 2)
    ]
    assert "sha512" in bad[0]["reason"]

    # 2. coding: utf-7: the line pip reads after '+AAo-' is an unsigned file
    utf7 = workdir / "utf7.txt"
    utf7.write_bytes(
        (
            "# -*- coding: utf-7 -*-\n"
            f"--index-url {index.index_url}\n"
            f"pkg02==1.0 --hash=sha256:{sha256_file(pkg02.path)}\n"
            f"# reviewed +AAo-nosig==1.0 --hash=sha256:{sha256_file(nosig.path)}\n"
        ).encode("ascii")
    )
    assert _pip_download(utf7, links, tmp_path / "dl2") == sorted([pkg02.filename, nosig.filename])
    code, out, err = _run([str(utf7), "--format", "json"], capsys, trust_root)
    assert code == 1, out + err
    bad = [f for f in _files(json.loads(out)) if f["status"] != "ok"]
    assert [(f["package"], f["filename"], f["code"]) for f in bad] == [
        ("nosig", nosig.filename, "refused-unsigned")
    ]


def test_requirements_lock_constraints_files_are_verified(
    sigstore: TestSigstore,
    workdir: Path,
    trust_root: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A hashed pin in a ``-c`` constraints file is a file pip installs: pip 26 takes the
    hash of a dependency from the constraint (the requirement itself names only ``app``), so
    ``app``'s dependency ``nosig`` went in unverified while verify, which skipped ``-c``,
    passed. Constraints with hashes are verified like requirements now; unhashed ones only
    narrow what pip may pick and are left alone."""

    with IndexServer(tmp_path / "cidx") as server:
        pub = Publisher(sigstore, server, tmp_path / "cbuild")
        app = pub.wheel("app", "1.0", requires=["nosig"])
        nosig = pub.wheel("nosig", "1.0", signed=False)
        constraints = workdir / "constraints.txt"
        constraints.write_text(f"nosig==1.0 --hash=sha256:{sha256_file(nosig)}\nunrelated==2.0\n")
        req = workdir / "requirements.txt"
        req.write_text(
            f"--index-url {server.index_url}\n-c constraints.txt\n"
            f"app==1.0 --hash=sha256:{sha256_file(app)}\n"
        )
        proc = _pip("download", "--no-cache-dir", "-d", str(tmp_path / "dl"), "-r", str(req))
        pip_major = int(_pip("--version").stdout.split()[1].split(".")[0])
        if pip_major >= 26:  # older pip refuses the dependency's hash from a constraint
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert nosig.name in {p.name for p in (tmp_path / "dl").iterdir()}

        code, out, err = _run([str(req), "--format", "json"], capsys, trust_root)
        assert code == 1, out + err
        files = _files(json.loads(out))
        assert {(f["package"], f["status"]) for f in files} == {
            ("app", "ok"),
            ("nosig", "fail"),
        }
        bad = next(f for f in files if f["package"] == "nosig")
        assert bad["code"] == "refused-unsigned"
        # reported at its own file and line, in every format
        assert (bad["lock"], bad["file"], bad["line"]) == (str(req), str(constraints), 1)
        code, out, _ = _run([str(req), "--format", "sarif"], capsys, trust_root)
        (result,) = json.loads(out)["runs"][0]["results"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"].endswith("constraints.txt")
        assert location["region"]["startLine"] == 1
        code, out, _ = _run([str(req), "--format", "text"], capsys, trust_root)
        assert "constraints.txt:1" in out


def test_requirements_lock_that_switches_off_hash_checking_is_refused(
    sigstore: TestSigstore,
    workdir: Path,
    trust_root: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """``--no-require-hashes`` in a lock (pip 26.2+) lets pip install every dependency the lock
    does not list, with no hash: ``app``'s dependency ``nosig`` went in unverified while
    verify, which checks what the lock lists, passed. Such a lock is exit 2, at its line."""
    with IndexServer(tmp_path / "nidx") as server:
        pub = Publisher(sigstore, server, tmp_path / "nbuild")
        app = pub.wheel("app", "1.0", requires=["nosig"])
        nosig = pub.wheel("nosig", "1.0", signed=False)
        req = workdir / "requirements.txt"
        req.write_text(
            f"--index-url {server.index_url}\n--no-require-hashes\n"
            f"app==1.0 --hash=sha256:{sha256_file(app)}\n"
        )
        version = _pip("--version").stdout.split()[1].split(".")
        if (int(version[0]), int(version[1])) >= (26, 2):  # the option is pip 26.2's
            proc = _pip("download", "--no-cache-dir", "-d", str(tmp_path / "dl"), "-r", str(req))
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert nosig.name in {p.name for p in (tmp_path / "dl").iterdir()}

        code, out, err = _run([str(req)], capsys, trust_root)
        assert code == 2, out + err
        assert f"{req}:2" in err
        assert "--no-require-hashes" in err
        assert "remove" in err
        req.write_text(req.read_text().replace("--no-require-hashes\n", ""))
        assert _run([str(req)], capsys, trust_root)[0] == 0
