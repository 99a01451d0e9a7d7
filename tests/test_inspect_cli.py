"""``safe-pip inspect`` end to end: real verification, a real loopback index, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from safe_pip.cli import main
from support.fixtures import realworld_dir
from support.index_server import Fault, IndexServer
from support.packages import build_wheel, sha256_file
from support.publish import Publisher
from support.sigstore_ca import GitHubIdentity, TestSigstore, provenance_json


def _json_out(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert isinstance(doc, list)
    return doc


def test_local_file_with_provenance(
    sigstore: TestSigstore, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = build_wheel(workdir, "demo", "1.0")
    ident = GitHubIdentity(repository="acme/demo", workflow="release.yml")
    prov = workdir / "demo.provenance"
    prov.write_bytes(provenance_json([sigstore.attest_file(wheel, ident)], ident))
    code = main(
        [
            "inspect",
            str(wheel),
            "--provenance",
            str(prov),
            "--no-index-history",
            "--trust-root",
            str(trust_root),
            "--json",
        ]
    )
    assert code == 0
    [doc] = _json_out(capsys)
    assert doc["filename"] == wheel.name
    assert doc["sha256"] == sha256_file(wheel)
    assert doc["verified"] is True
    assert doc["identity"] == {
        "kind": "GitHub",
        "repository": "acme/demo",
        "workflow": "release.yml",
        "repository_id": "1001",
        "repository_owner_id": "2001",
        "ref": "refs/heads/main",
        "issuer": "https://token.actions.githubusercontent.com",
    }
    assert doc["code"] == "verified-first-use"
    assert doc["tlog_index"] is not None


def test_tampered_local_file_is_refused(
    sigstore: TestSigstore, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = build_wheel(workdir, "demo", "1.0")
    ident = GitHubIdentity(repository="acme/demo")
    prov = workdir / "demo.provenance"
    prov.write_bytes(provenance_json([sigstore.attest_file(wheel, ident)], ident))
    with wheel.open("ab") as fh:
        fh.write(b"\0")
    code = main(
        [
            "inspect",
            str(wheel),
            "--provenance",
            str(prov),
            "--no-index-history",
            "--trust-root",
            str(trust_root),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "refused-invalid-attestation" in out
    assert "does not match the file's bytes" in out


def test_text_output_names_identity_and_log(
    sigstore: TestSigstore, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = build_wheel(workdir, "demo", "1.0")
    ident = GitHubIdentity(repository="acme/demo")
    prov = workdir / "p.json"
    prov.write_bytes(provenance_json([sigstore.attest_file(wheel, ident)], ident))
    assert (
        main(
            [
                "inspect",
                str(wheel),
                "--provenance",
                str(prov),
                "--no-index-history",
                "--trust-root",
                str(trust_root),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "identity: GitHub acme/demo @ release.yml" in out
    assert "tlog:     index" in out
    assert "predicate: https://docs.pypi.org/attestations/publish/v1" in out


def test_release_on_local_index(
    sigstore: TestSigstore,
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with IndexServer(workdir / "index") as server:
        pub = Publisher(sigstore, server, workdir / "build")
        pub.wheel("alpha", "1.0")
        pub.sdist("alpha", "1.0")
        pub.wheel("beta", "2.0", signed=False)
        args = ["--trust-root", str(trust_root), "-i", server.index_url, "--json"]
        assert main(["inspect", "alpha==1.0", *args]) == 0
        docs = _json_out(capsys)
        assert sorted(str(d["filename"]) for d in docs) == [
            "alpha-1.0-py3-none-any.whl",
            "alpha-1.0.tar.gz",
        ]
        assert all(d["verified"] for d in docs)
        assert main(["inspect", "beta==2.0", *args]) == 1
        [doc] = _json_out(capsys)
        assert doc["verified"] is False
        assert doc["code"] == "refused-unsigned"
        # the reason says where provenance was looked for
        assert "lists no provenance, and the provenance index" in str(doc["reason"])
        assert doc["identity"] is None


def test_index_failure_is_could_not_check(
    sigstore: TestSigstore, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with IndexServer(workdir / "index") as server:
        pub = Publisher(sigstore, server, workdir / "build")
        stored = pub.wheel("alpha", "1.0")
        path = f"/provenance/alpha/{stored.name}"
        server.faults[path] = Fault(status=503)
        code = main(
            ["inspect", "alpha==1.0", "--trust-root", str(trust_root), "-i", server.index_url]
        )
        captured = capsys.readouterr()
        assert code == 3
        assert "could-not-check" in captured.out
        server.faults[path] = Fault(status=403)
        assert (
            main(["inspect", "alpha==1.0", "--trust-root", str(trust_root), "-i", server.index_url])
            == 3
        )


def test_bad_inputs_are_one_line_errors(
    trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = build_wheel(workdir, "demo", "1.0")
    assert (
        main(
            ["inspect", str(wheel), "--provenance", "missing.json", "--trust-root", str(trust_root)]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "cannot read provenance missing.json" in err
    assert "Traceback" not in err
    bad = workdir / "bad.json"
    bad.write_text('{"version": 1, "attestation_bundles": "nope"}')
    assert (
        main(
            [
                "inspect",
                str(wheel),
                "--provenance",
                str(bad),
                "--no-index-history",
                "--trust-root",
                str(trust_root),
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "provenance does not match PEP 740" in out
    bad_root = workdir / "root.json"
    bad_root.write_text("[]")
    assert (
        main(
            [
                "inspect",
                str(wheel),
                "--provenance",
                str(bad),
                "--no-index-history",
                "--trust-root",
                str(bad_root),
            ]
        )
        == 2
    )
    assert "not a valid Sigstore trusted_root.json" in capsys.readouterr().err
    assert main(["inspect", "not a requirement!"]) == 2


def test_sampleproject_real_attestation_offline(capsys: pytest.CaptureFixture[str]) -> None:
    case = realworld_dir() / "pos-10-sampleproject-4.0.0-wheel"
    wheel = case / "sampleproject-4.0.0-py3-none-any.whl"
    prov = case / "docs-sampleproject-4.0.0-py3-none-any.whl.attestation.json"
    code = main(
        [
            "inspect",
            str(wheel),
            "--provenance",
            str(prov),
            "--no-index-history",
            "--offline",
            "--json",
        ]
    )
    assert code == 0
    [doc] = _json_out(capsys)
    assert doc["verified"] is True
    identity = doc["identity"]
    assert isinstance(identity, dict)
    assert identity["kind"] == "GitHub"
    assert identity["repository"] == "pypa/sampleproject"
    assert identity["workflow"] == "release.yml"


def test_help_imports_nothing_heavy() -> None:
    """`safe-pip --help` must not import sigstore, requests or pypi-attestations (start-up)."""
    code = (
        "import sys, contextlib, io\n"
        "from safe_pip.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "heavy = [m for m in ('sigstore', 'requests', 'pypi_attestations', 'pydantic') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_console_script_runs(trust_root: Path, workdir: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "safe_pip",
            "inspect",
            "nope-1.0-py3-none-any.whl",
            "--trust-root",
            str(trust_root),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr
