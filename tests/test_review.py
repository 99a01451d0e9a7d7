"""``safe-pip allow review``: learn proposes, review decides (with a reason, audited)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from safe_pip.cli import main
from safe_pip.learn.proposals import Proposal, ProposalFile
from safe_pip.policy.file import load_policy
from safe_pip.store.sqlite import SQLiteHistoryStore
from support.index_server import IndexServer
from support.publish import Publisher
from support.sigstore_ca import TestSigstore


def _audit(name: str) -> list[tuple[str, str]]:
    with SQLiteHistoryStore.open(Path(os.environ["SAFE_PIP_HOME"]) / "history.sqlite3") as store:
        return [(a.action, a.reason) for a in store.audit_log(name)]


def test_learn_then_one_review_command_adopts(
    sigstore: TestSigstore, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with IndexServer(workdir / "index") as server:
        pub = Publisher(sigstore, server, workdir / "build")
        pub.wheel("alpha", "1.0")
        pub.wheel("gamma", "1.0", signed=False)
        (workdir / "requirements.txt").write_text("alpha==1.0\ngamma==1.0\n")
        common = ["--trust-root", str(trust_root), "-i", server.index_url]
        assert main(["allow", "learn", "-r", "requirements.txt", *common]) == 0
        assert "allow review" in capsys.readouterr().out
        assert main(["allow", "review", "--list", "--json"]) == 0
        [pending] = json.loads(capsys.readouterr().out)["pending"]
        assert (pending["kind"], pending["name"], pending["learned-version"]) == (
            "unsigned-project",
            "gamma",
            "1.0",
        )
        assert pending["dependency"] == "direct"
        assert "has ever been attested" in pending["evidence"]
        # gamma is refused until the proposal is accepted
        assert main(["inspect", "gamma==1.0", *common, "--json"]) == 1
        capsys.readouterr()
        # a placeholder is not a reason
        for bad in (["--reason", "REVIEW: upstream publishes no attestations"], []):
            assert main(["allow", "review", "--accept-all", *bad]) == 2
        assert "gamma" not in (workdir / "safe-pip.toml").read_text()
        reason = "vendored C extension, no CI upstream; checked 2026-11-29"
        assert main(["allow", "review", "--accept-all", "--reason", reason]) == 0
        assert "1 accepted, 0 rejected, 0 still pending" in capsys.readouterr().out
        entry = load_policy(workdir / "safe-pip.toml").unsigned_projects["gamma"]
        assert entry.reason == reason
        assert not (workdir / "safe-pip.proposals.toml").exists()
        assert _audit("gamma") == [("review-accept", reason)]
        assert main(["inspect", "gamma==1.0", *common, "--json"]) == 0
        capsys.readouterr()
        # the bytes learn saw are remembered: a mirror swapping them is refused
        pub.wheel("gamma", "1.0", signed=False, files={"gamma/__init__.py": "EVIL = 1\n"})
        assert main(["inspect", "gamma==1.0", *common, "--json"]) == 1
        assert json.loads(capsys.readouterr().out)[0]["code"] == "refused-file-changed"
        # a new unsigned release of gamma passes without another entry
        pub.wheel("gamma", "1.1", signed=False)
        assert main(["inspect", "gamma==1.1", *common, "--json"]) == 0
        capsys.readouterr()
        # nothing is left to review
        assert main(["allow", "review"]) == 0
        assert "no pending proposals" in capsys.readouterr().out


def _proposals(workdir: Path, *items: Proposal) -> None:
    pf = ProposalFile(workdir / "safe-pip.proposals.toml")
    pf.add(items)
    pf.save()


def test_interactive_review_reprompts_placeholders_and_logs_rejections(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _proposals(
        workdir,
        Proposal("unsigned-project", "six", learned_version="1.16.0", dependency="transitive",
                 evidence="no release has ever been attested (5 read on the index)"),
        Proposal("unsigned", "left-pad", versions="==1.0", sha256=("ab" * 32,)),
        Proposal("unsigned", "later", versions="==2.0"),
    )  # fmt: skip
    answers = "a\nREVIEW: decide\nTODO\nsix is frozen upstream\nr\npin an attested fork\ns\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(answers))
    assert main(["allow", "review"]) == 0
    out = capsys.readouterr().out
    assert "[1/3] [[unsigned-project]] six: publishes no attestations" in out
    assert "learned from six 1.16.0, transitive dependency" in out
    assert "why: no release has ever been attested" in out
    assert out.count("a placeholder (REVIEW:, TODO, ...) is not one") == 2
    assert "1 accepted, 1 rejected, 1 still pending" in out
    policy = load_policy(workdir / "safe-pip.toml")
    assert policy.unsigned_projects["six"].reason == "six is frozen upstream"
    assert policy.unsigned == ()
    assert _audit("six") == [("review-accept", "six is frozen upstream")]
    assert _audit("left-pad") == [("review-reject", "pin an attested fork")]
    left = ProposalFile.load(workdir / "safe-pip.proposals.toml")
    assert [p.name for p in left.pending] == ["later"]
    # a rejected proposal is remembered, so learning again does not propose it again
    [rejected] = [p for p in left.proposals if p.rejected]
    assert (rejected.name, rejected.rejected) == ("left-pad", "pin an attested fork")
    assert left.add([Proposal("unsigned", "left-pad", versions="==1.0", sha256=("ab" * 32,))]) == []


def test_review_without_answers_or_with_stray_reason_is_a_usage_error(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _proposals(workdir, Proposal("unsigned", "x", versions="==1"))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["allow", "review"]) == 2
    assert "--accept-all" in capsys.readouterr().err
    assert main(["allow", "review", "--reason", "why not"]) == 2
    assert main(["allow", "review", "--only", "other", "--reject-all", "--reason", "no"]) == 0
    assert "no pending proposals" in capsys.readouterr().out
    assert len(ProposalFile.load(workdir / "safe-pip.proposals.toml").proposals) == 1


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX ownership")
def test_a_proposals_file_others_could_write_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--accept-all`` takes every proposal into the policy (and the history): a proposals
    file group or others can write (or another user owns) could hold theirs. Refused (exit 2)
    with a fix that works as printed; nothing is written to the policy."""
    _proposals(
        workdir,
        Proposal("unsigned-project", "gamma", evidence="no release has ever been attested"),
    )
    path = workdir / "safe-pip.proposals.toml"
    path.chmod(0o666)
    reason = "vendored C extension, no CI upstream; checked 2026-11-29"
    assert main(["allow", "review", "--accept-all", "--reason", reason]) == 2
    err = capsys.readouterr().err
    assert "writable by group or others" in err
    assert f"chmod go-w {path}" in err
    assert not (workdir / "safe-pip.toml").exists()
    os.system(f"chmod go-w {path}")  # noqa: S605 - the printed fix, as printed
    assert main(["allow", "review", "--accept-all", "--reason", reason]) == 0
    assert "gamma" in load_policy(workdir / "safe-pip.toml").unsigned_projects
