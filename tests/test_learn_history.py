"""``allow learn`` reads what is used (resolved), each project's index history, and is
idempotent; its proposals carry the learned release, date, direct/transitive and an honest
reason (issue 12)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safe_pip.cli import main
from safe_pip.learn.proposals import ProposalFile
from safe_pip.policy.file import load_policy
from support.index_server import IndexServer
from support.publish import Publisher
from support.sigstore_ca import GitHubIdentity, TestSigstore

RELEASE = GitHubIdentity(repository="acme/duo", workflow="release.yml")
NIGHTLY = GitHubIdentity(repository="acme/duo", workflow="nightly.yml")


@pytest.fixture
def lab(sigstore: TestSigstore, workdir: Path) -> Iterator[IndexServer]:
    with IndexServer(workdir / "index") as server:
        pub = Publisher(sigstore, server, workdir / "build")
        pub.wheel("app", "1.0", requires=["lib-a", "duo", "never", "latecomer", "fallen"])
        pub.wheel("lib-a", "1.0")
        pub.wheel("lib-a", "1.1")
        # two legitimate workflows, alternating
        for v, ident in (("1.0", RELEASE), ("1.1", NIGHTLY), ("1.2", RELEASE)):
            pub.wheel("duo", v, identity=ident)
        for v in ("1.0", "1.1"):
            pub.wheel("never", v, signed=False)
        # unsigned in use, attested from 2.0 on
        pub.wheel("latecomer", "1.0", signed=False)
        pub.wheel("latecomer", "2.0")
        # attested, then an unsigned release (the one in use)
        pub.wheel("fallen", "1.0")
        pub.wheel("fallen", "1.1", signed=False)
        yield server


def _learn(
    capsys: pytest.CaptureFixture[str], trust_root: Path, server: IndexServer, *source: str
) -> tuple[int, dict[str, Any]]:
    argv = ["allow", "learn", *source, "--trust-root", str(trust_root), "-i", server.index_url]
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert out, err
    return code, json.loads(out)


def _by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(p["name"]): p for p in doc["projects"]}


def test_learn_resolves_reads_history_and_is_idempotent(
    lab: IndexServer, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = workdir / "requirements.in"
    req.write_text("app\nlatecomer==1.0\nfallen==1.1\n")
    code, doc = _learn(capsys, trust_root, lab, "-r", str(req))
    assert code == 0, doc
    projects = _by_name(doc)
    # resolved: transitive dependencies are learned too, and said to be
    assert set(projects) == {"app", "lib-a", "duo", "never", "latecomer", "fallen"}
    assert projects["app"]["dependency"] == "direct"
    assert projects["lib-a"]["dependency"] == "transitive"
    assert projects["lib-a"]["version"] == "1.1"
    assert [w["version"] for w in projects["lib-a"]["window"]] == ["1.0", "1.1"]

    policy = load_policy(workdir / "safe-pip.toml")
    assert set(policy.packages) == {"app", "lib-a"}  # one publisher each: written
    (lib_a,) = policy.packages["lib-a"].publishers
    assert (lib_a.repository_id, lib_a.repository_owner_id) == ("1001", "2001")  # pinned

    proposals = {p.name: p for p in ProposalFile.load(workdir / "safe-pip.proposals.toml").pending}
    assert set(proposals) == {"duo", "never", "latecomer", "fallen"}
    duo = proposals["duo"]
    assert duo.kind == "publisher"
    assert {p.workflow for p in duo.publishers} == {"release.yml", "nightly.yml"}
    assert "alternate" in duo.evidence
    assert (duo.learned_version, duo.dependency) == ("1.2", "transitive")
    assert duo.learned_date  # the index's upload-time of the release
    assert proposals["never"].kind == "unsigned-project"
    assert "no release of never has ever been attested" in proposals["never"].evidence
    assert proposals["latecomer"].kind == "unsigned"
    assert "newer releases are attested (2.0 is): upgrade" in proposals["latecomer"].evidence
    assert proposals["fallen"].kind == "unsigned"
    assert "earlier releases were attested (1.0)" in proposals["fallen"].evidence
    assert "downgrade" in proposals["fallen"].evidence
    assert proposals["fallen"].sha256  # pinned to the files learn saw

    # a second run on the unchanged project changes nothing
    before = (
        (workdir / "safe-pip.toml").read_text(),
        (workdir / "safe-pip.proposals.toml").read_text(),
    )
    code, doc = _learn(capsys, trust_root, lab, "-r", str(req))
    assert code == 0
    assert doc["proposed"] == []
    after = (
        (workdir / "safe-pip.toml").read_text(),
        (workdir / "safe-pip.proposals.toml").read_text(),
    )
    assert after == before

    # one review command adopts; learning again after it proposes nothing
    assert main(["allow", "review", "--accept-all", "--reason", "lab adoption, reviewed"]) == 0
    capsys.readouterr()
    policy = load_policy(workdir / "safe-pip.toml")
    assert len(policy.packages["duo"].publishers) == 2
    text = (workdir / "safe-pip.toml").read_text()
    code, doc = _learn(capsys, trust_root, lab, "-r", str(req))
    assert code == 0
    assert doc["proposed"] == []
    assert (workdir / "safe-pip.toml").read_text() == text


def test_learn_from_pyproject_dependencies(
    lab: IndexServer, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pyproject = workdir / "pyproject.toml"
    pyproject.write_text('[project]\nname = "mine"\nversion = "0"\ndependencies = ["lib-a==1.0"]\n')
    code, doc = _learn(capsys, trust_root, lab, "--pyproject", str(pyproject))
    assert code == 0, doc
    assert _by_name(doc)["lib-a"]["version"] == "1.0"
    assert _by_name(doc)["lib-a"]["dependency"] == "direct"


def test_learn_another_python_environment(
    lab: IndexServer, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--python learns that interpreter's environment, not safe-pip's own."""
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    [site] = list(venv.glob("lib/python*/site-packages"))
    for name, version, requires in (("app", "1.0", ["lib-a"]), ("lib_a", "1.1", [])):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        meta = f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n"
        meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
        (info / "METADATA").write_text(meta)
    code, doc = _learn(capsys, trust_root, lab, "--python", str(venv / "bin" / "python"))
    assert code == 0, doc
    projects = _by_name(doc)
    assert set(projects) == {"app", "lib-a"}  # not pytest, not safe-pip
    assert projects["app"]["dependency"] == "direct"
    assert projects["lib-a"]["dependency"] == "transitive"
    assert projects["lib-a"]["version"] == "1.1"


def test_learn_without_a_source_says_what_to_give(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    assert main(["allow", "learn"]) == 2
    assert "--python PATH" in capsys.readouterr().err
