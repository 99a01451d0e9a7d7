"""Every printed fix is a command that, run exactly as printed, makes the next run pass.

One test per refusal kind whose fix is a command: the refusal comes from a real signed (or
unsigned) file on a loopback index, the fix is taken from the verdict's JSON, split as a shell
would split it and run through the CLI, and the same ``inspect`` then allows the file.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from safe_pip.cli import main
from support.index_server import IndexServer
from support.publish import Publisher
from support.sigstore_ca import GitHubIdentity, TestSigstore

A = GitHubIdentity(repository="acme/alpha", workflow="release.yml")
B = GitHubIdentity(repository="acme/alpha", workflow="nightly.yml")
EVIL = GitHubIdentity(
    repository="evil/alpha", workflow="release.yml", repository_id="6660", repository_owner_id="666"
)
RECREATED = GitHubIdentity(repository="acme/alpha", workflow="release.yml", repository_id="9999")


@pytest.fixture
def index(sigstore: TestSigstore, workdir: Path) -> Iterator[tuple[IndexServer, Publisher]]:
    with IndexServer(workdir / "index") as server:
        yield server, Publisher(sigstore, server, workdir / "build")


def _inspect(
    capsys: pytest.CaptureFixture[str],
    trust_root: Path,
    server: IndexServer,
    target: str,
    *extra: str,
) -> tuple[int, dict[str, object]]:
    code = main(
        [
            "inspect",
            target,
            "--trust-root",
            str(trust_root),
            "-i",
            server.index_url,
            "--json",
            *extra,
        ]
    )
    [doc] = json.loads(capsys.readouterr().out)
    return code, doc


def _fix_then_pass(
    capsys: pytest.CaptureFixture[str],
    trust_root: Path,
    server: IndexServer,
    target: str,
    code_expected: str,
    *extra: str,
) -> str:
    code, doc = _inspect(capsys, trust_root, server, target, *extra)
    assert (code, doc["code"]) == (1, code_expected), doc["reason"]
    fix = str(doc["fix"])
    argv = shlex.split(fix)
    assert argv[0] == "safe-pip", fix
    assert main(argv[1:]) == 0, fix
    capsys.readouterr()
    code, doc = _inspect(capsys, trust_root, server, target, *extra)
    assert code == 0, (fix, doc["reason"])
    assert doc["allowed"] is True
    return fix


def test_unsigned_fix(
    index: tuple[IndexServer, Publisher], trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, pub = index
    pub.wheel("gamma", "1.0", signed=False)
    fix = _fix_then_pass(capsys, trust_root, server, "gamma==1.0", "refused-unsigned")
    assert "--sha256" in fix


def test_unsigned_under_allowlist_fix(
    index: tuple[IndexServer, Publisher],
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, pub = index
    pub.wheel("gamma", "1.0", signed=False)
    (workdir / "safe-pip.toml").write_text(
        '[[package]]\nname = "gamma"\npublishers = [{ kind = "GitHub", repository = '
        '"acme/gamma", workflow = "release.yml" }]\n'
    )
    _fix_then_pass(capsys, trust_root, server, "gamma==1.0", "refused-unsigned")


def test_downgrade_fix(
    index: tuple[IndexServer, Publisher], trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, pub = index
    pub.wheel("alpha", "1.0", identity=A)
    pub.wheel("alpha", "1.1", signed=False)
    _fix_then_pass(capsys, trust_root, server, "alpha==1.1", "refused-attestation-downgrade")


def test_allowlist_mismatch_fix(
    index: tuple[IndexServer, Publisher],
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, pub = index
    pub.wheel("alpha", "1.0", identity=EVIL)
    (workdir / "safe-pip.toml").write_text(
        '[[package]]\nname = "alpha"\npublishers = [{ kind = "GitHub", repository = '
        '"acme/alpha", workflow = "release.yml" }]\n'
    )
    fix = _fix_then_pass(capsys, trust_root, server, "alpha==1.0", "refused-unexpected-publisher")
    assert "--repository-id 6660 --owner-id 666" in fix


def test_no_trust_on_first_use_fix(
    index: tuple[IndexServer, Publisher],
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, pub = index
    pub.wheel("alpha", "1.0", identity=A)
    (workdir / "safe-pip.toml").write_text("[defaults]\ntrust-on-first-use = false\n")
    _fix_then_pass(capsys, trust_root, server, "alpha==1.0", "refused-unexpected-publisher")


def test_publisher_change_fix(
    index: tuple[IndexServer, Publisher], trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, pub = index
    pub.wheel("alpha", "1.0", identity=A)
    pub.wheel("alpha", "2.0", identity=B)
    _fix_then_pass(capsys, trust_root, server, "alpha==2.0", "refused-publisher-change")


def test_recreated_repository_fix_with_local_and_index_history(
    index: tuple[IndexServer, Publisher], trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old fix (``history forget``) left the index's history saying the old ids: the
    refusal came back. Pinning the new ids clears it, and only for the new ids."""
    server, pub = index
    pub.wheel("alpha", "1.0", identity=A)
    assert _inspect(capsys, trust_root, server, "alpha==1.0", "--record")[0] == 0
    pub.wheel("alpha", "2.0", identity=RECREATED)
    fix = _fix_then_pass(capsys, trust_root, server, "alpha==2.0", "refused-publisher-change")
    assert "--repository-id 9999" in fix
    # the pin is an allowlist entry: the original ids (1001) no longer match it
    code, doc = _inspect(capsys, trust_root, server, "alpha==1.0")
    assert (code, doc["code"]) == (1, "refused-unexpected-publisher")


def test_recreated_under_name_only_allowlist_fix(
    index: tuple[IndexServer, Publisher],
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, pub = index
    (workdir / "safe-pip.toml").write_text(
        '[[package]]\nname = "alpha"\npublishers = [{ kind = "GitHub", repository = '
        '"acme/alpha", workflow = "release.yml" }]\n'
    )
    pub.wheel("alpha", "1.0", identity=A)
    pub.wheel("alpha", "2.0", identity=RECREATED)
    _fix_then_pass(capsys, trust_root, server, "alpha==2.0", "refused-publisher-change")
    text = (workdir / "safe-pip.toml").read_text()
    assert text.count("acme/alpha") == 1  # re-pinned in place, not a second publisher
    assert 'repository_id = "9999"' in text


def test_fix_names_an_explicit_policy_file(
    index: tuple[IndexServer, Publisher],
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, pub = index
    pub.wheel("gamma", "1.0", signed=False)
    team = workdir / "conf" / "team policy.toml"
    team.parent.mkdir()
    team.write_text("[defaults]\nrequire-attestation = true\n")
    fix = _fix_then_pass(
        capsys, trust_root, server, "gamma==1.0", "refused-unsigned", "--policy", str(team)
    )
    assert shlex.quote(str(team)) in fix
    assert not (workdir / "safe-pip.toml").exists()
