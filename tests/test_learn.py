"""``safe-pip allow learn`` then ``inspect``: the learned allowlist is what inspect enforces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safe_pip.cli import main
from support.index_server import IndexServer
from support.publish import Publisher
from support.sigstore_ca import GitHubIdentity, TestSigstore


def test_learn_then_inspect_round_trips(
    sigstore: TestSigstore, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = workdir / "safe-pip.toml"
    policy.write_text("# team policy\n[defaults]\nrequire-attestation = true  # keep\n")
    with IndexServer(workdir / "index") as server:
        pub = Publisher(sigstore, server, workdir / "build")
        pub.wheel("alpha", "1.0")
        pub.wheel("alpha", "2.0")
        pub.wheel(
            "beta", "1.0", identity=GitHubIdentity(repository="beta-org/beta", workflow="pub.yml")
        )
        pub.wheel("gamma", "1.0", signed=False)
        req = workdir / "requirements.txt"
        req.write_text("alpha==1.0\nbeta\n# comment\ngamma==1.0\n")
        common = ["--trust-root", str(trust_root), "-i", server.index_url, "--policy", str(policy)]
        code = main(["allow", "learn", "-r", str(req), *common, "--json"])
        assert code == 0
        doc = json.loads(capsys.readouterr().out)
        by_name = {p["name"]: p for p in doc["projects"]}
        assert by_name["alpha"]["publishers"] == [
            {"kind": "GitHub", "repository": "acme/alpha", "workflow": "release.yml"}
        ]
        assert by_name["beta"]["version"] == "1.0"
        assert by_name["gamma"]["unsigned_files"] == ["gamma-1.0-py3-none-any.whl"]

        text = policy.read_text()
        assert text.startswith("# team policy\n[defaults]\nrequire-attestation = true  # keep\n")
        assert 'name = "alpha"' in text
        assert 'repository = "beta-org/beta"' in text
        assert "gamma" not in text  # proposed for review, not allowed
        proposals = (workdir / "safe-pip.proposals.toml").read_text()
        assert 'name = "gamma"' in proposals
        assert 'kind = "unsigned-project"' in proposals

        inspect = ["--trust-root", str(trust_root), "-i", server.index_url, "--policy", str(policy)]
        assert main(["inspect", "alpha==2.0", *inspect, "--json"]) == 0
        [v] = json.loads(capsys.readouterr().out)
        assert v["code"] == "verified-allowlisted"
        assert main(["inspect", "gamma==1.0", *inspect, "--json"]) == 1
        [v] = json.loads(capsys.readouterr().out)
        assert v["code"] == "refused-unsigned"

        # a release by another publisher is now refused by the learned allowlist
        pub.wheel(
            "alpha", "3.0", identity=GitHubIdentity(repository="evil/alpha", workflow="release.yml")
        )
        assert main(["inspect", "alpha==3.0", *inspect, "--json"]) == 1
        [v] = json.loads(capsys.readouterr().out)
        assert v["code"] == "refused-unexpected-publisher"
        assert v["identity"]["repository"] == "evil/alpha"


def test_learn_dry_run_writes_nothing(
    sigstore: TestSigstore, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = workdir / "safe-pip.toml"
    with IndexServer(workdir / "index") as server:
        Publisher(sigstore, server, workdir / "build").wheel("alpha", "1.0")
        req = workdir / "r.txt"
        req.write_text("alpha\n")
        args = ["--trust-root", str(trust_root), "-i", server.index_url, "--policy", str(policy)]
        assert main(["allow", "learn", "-r", str(req), "--dry-run", *args]) == 0
        assert "would add alpha" in capsys.readouterr().out
        assert not policy.exists()


def test_learn_reports_invalid_provenance(
    sigstore: TestSigstore, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = workdir / "safe-pip.toml"
    with IndexServer(workdir / "index") as server:
        stored = Publisher(sigstore, server, workdir / "build").wheel("alpha", "1.0")
        # provenance for another file: must not be learned
        other = sigstore.attest("alpha-1.0-py3-none-any.whl", "0" * 64)
        from support.sigstore_ca import provenance_json

        server.set_provenance("alpha", stored.name, provenance_json([other], GitHubIdentity()))
        req = workdir / "r.txt"
        req.write_text("alpha==1.0\n")
        args = ["--trust-root", str(trust_root), "-i", server.index_url, "--policy", str(policy)]
        assert main(["allow", "learn", "-r", str(req), *args]) == 1
        captured = capsys.readouterr()
        assert "alpha-1.0-py3-none-any.whl" in captured.err
        assert "does not verify" in captured.err
        assert not policy.exists() or "alpha" not in policy.read_text()


def test_the_learn_face_runs_from_python_without_the_cli(
    sigstore: TestSigstore, trust_root: Path, workdir: Path
) -> None:
    """``learn_into_policy`` takes typed options (no argparse): ``dry_run`` writes nothing,
    and without it the publisher is written to the policy the options name."""
    from safe_pip.learn.run import LearnOptions, learn_into_policy

    policy = workdir / "safe-pip.toml"
    with IndexServer(workdir / "index") as server:
        Publisher(sigstore, server, workdir / "build").wheel("alpha", "1.0")
        req = workdir / "r.txt"
        req.write_text("alpha==1.0\n")
        options = LearnOptions(
            requirements=str(req),
            index_url=server.index_url,
            policy=str(policy),
            trust_root=str(trust_root),
            dry_run=True,
        )
        result = learn_into_policy(options)
        assert list(result.added) == ["alpha"]
        assert result.exit_code == 0
        assert not policy.exists()
        from dataclasses import replace

        result = learn_into_policy(replace(options, dry_run=False))
        assert list(result.added) == ["alpha"]
        assert 'repository = "acme/alpha"' in policy.read_text()
