"""Unsigned projects, not unsigned versions; unsigned file memory (issue 12).

``[[unsigned-project]]`` lets a project's new unsigned releases pass without an entry per
version, while history still wins: once any release is attested (on this machine or on the
index), an unsigned one is an attestation downgrade unless a sha256-pinned exception names the
file. And the history remembers the bytes of every unsigned file it allowed: the same (project,
filename) with other bytes is ``refused-file-changed``.
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
from support.sigstore_ca import TestSigstore

POLICY = """\
[[unsigned-project]]
name = "gamma"
reason = "upstream publishes no attestations; reviewed 2026-11-29"
"""


@pytest.fixture
def lab(sigstore: TestSigstore, workdir: Path) -> Iterator[tuple[IndexServer, Publisher]]:
    (workdir / "safe-pip.toml").write_text(POLICY)
    with IndexServer(workdir / "index") as server:
        yield server, Publisher(sigstore, server, workdir / "build")


def _inspect(
    capsys: pytest.CaptureFixture[str],
    trust_root: Path,
    server: IndexServer,
    target: str,
    *extra: str,
) -> tuple[int, dict[str, object]]:
    argv = ["inspect", target, "--trust-root", str(trust_root), "-i", server.index_url, "--json"]
    code = main([*argv, *extra])
    [doc] = json.loads(capsys.readouterr().out)
    return code, doc


def test_new_unsigned_releases_pass_without_an_entry_per_version(
    lab: tuple[IndexServer, Publisher], trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, pub = lab
    for version in ("1.0", "1.1", "2.0"):
        pub.wheel("gamma", version, signed=False)
        code, doc = _inspect(capsys, trust_root, server, f"gamma=={version}", "--record")
        assert (code, doc["code"]) == (0, "unsigned-allowed"), doc["reason"]
        assert "[[unsigned-project]]" in str(doc["rule"])


def test_unsigned_file_memory_refuses_swapped_bytes(
    lab: tuple[IndexServer, Publisher], trust_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, pub = lab
    pub.wheel("gamma", "1.0", signed=False)
    assert _inspect(capsys, trust_root, server, "gamma==1.0", "--record")[0] == 0
    # a mirror swaps the bytes of the same file
    pub.wheel("gamma", "1.0", signed=False, files={"gamma/__init__.py": "EVIL = 1\n"})
    code, doc = _inspect(capsys, trust_root, server, "gamma==1.0")
    assert (code, doc["code"]) == (1, "refused-file-changed"), doc["reason"]
    assert "gamma-1.0-py3-none-any.whl" in str(doc["reason"])
    # the printed fix (pinning the new bytes after review) makes the next run pass
    argv = shlex.split(str(doc["fix"]))
    assert argv[0] == "safe-pip"
    assert "--sha256" in argv
    assert main(argv[1:]) == 0
    capsys.readouterr()
    assert _inspect(capsys, trust_root, server, "gamma==1.0")[0] == 0


def test_history_wins_once_the_project_attests(
    lab: tuple[IndexServer, Publisher],
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, pub = lab
    pub.wheel("gamma", "1.0", signed=False)
    assert _inspect(capsys, trust_root, server, "gamma==1.0", "--record")[0] == 0
    pub.wheel("gamma", "2.0")  # the project starts attesting
    code, doc = _inspect(capsys, trust_root, server, "gamma==2.0", "--record")
    assert code == 0, doc["reason"]
    pub.wheel("gamma", "2.1", signed=False)  # ... and then ships an unsigned release
    code, doc = _inspect(capsys, trust_root, server, "gamma==2.1")
    assert (code, doc["code"]) == (1, "refused-attestation-downgrade"), doc["reason"]
    assert "[[unsigned-project]] entry" in str(doc["reason"])
    # an exception by version does not override it either
    (workdir / "safe-pip.toml").write_text(
        POLICY + '\n[[unsigned]]\nname = "gamma"\nversions = "==2.1"\nreason = "hotfix"\n'
    )
    code, doc = _inspect(capsys, trust_root, server, "gamma==2.1")
    assert (code, doc["code"]) == (1, "refused-attestation-downgrade")
    # first sight on another machine: the index's attested 2.0 is history enough
    monkeypatch.setenv("SAFE_PIP_HOME", str(workdir / "other-home"))
    (workdir / "other-home").mkdir(mode=0o700)
    code, doc = _inspect(capsys, trust_root, server, "gamma==2.1")
    assert (code, doc["code"]) == (1, "refused-attestation-downgrade"), doc["reason"]
    # only a sha256-pinned exception naming the file does
    argv = shlex.split(str(doc["fix"]))
    assert main(argv[1:]) == 0
    capsys.readouterr()
    assert _inspect(capsys, trust_root, server, "gamma==2.1")[0] == 0


def test_expired_unsigned_project_no_longer_allows(
    lab: tuple[IndexServer, Publisher],
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, pub = lab
    (workdir / "safe-pip.toml").write_text(POLICY + "expires = 2020-01-01\n")
    pub.wheel("gamma", "1.0", signed=False)
    code, doc = _inspect(capsys, trust_root, server, "gamma==1.0")
    assert (code, doc["code"]) == (1, "refused-unsigned")
    assert "expired on 2020-01-01" in str(doc["reason"])


def test_allow_unsigned_project_from_the_command_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = "upstream publishes no attestations; reviewed"
    argv = ["allow", "unsigned", "Gamma", "--project", "--reason", reason]
    assert main([*argv, "--expires", "2099-01-01"]) == 0
    assert "[[unsigned-project]] gamma" in capsys.readouterr().out
    assert main([*argv, "--expires", "2099-01-01"]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert main(["allow", "list", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)["unsigned_projects"]
    assert (entry["name"], entry["reason"], entry["expires"]) == ("gamma", reason, "2099-01-01")
    assert main(["allow", "unsigned", "x", "--project", "--reason", "TODO"]) == 2
    assert main(["allow", "unsigned", "x", "--project", "--versions", "==1", "--reason", "r"]) == 2
    assert main(["allow", "remove", "gamma"]) == 0
    assert "unsigned-project" not in (workdir / "safe-pip.toml").read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (POLICY + POLICY, "appears twice"),
        ('[[unsigned-project]]\nname = "gamma"\n', "needs reason"),
        ('[[unsigned-project]]\nname = "gamma"\nreason = "REVIEW: check"\n', "placeholder"),
        ('[[unsigned-project]]\nname = "gamma"\nreason = "x"\nversions = "==1"\n', "unknown key"),
        (
            POLICY + '[[package]]\nname = "gamma"\npublishers = [{ kind = "GitHub", '
            'repository = "a/gamma", workflow = "r.yml" }]\n',
            "also has a [[package]] entry",
        ),
    ],
)
def test_unsigned_project_entries_are_validated(
    workdir: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    (workdir / "safe-pip.toml").write_text(text)
    assert main(["allow", "list"]) == 2
    assert message in capsys.readouterr().err


def test_unsigned_file_added_to_an_attested_release_does_not_hide_it_from_index_history(
    lab: tuple[IndexServer, Publisher],
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The index history reads one file per earlier release. It took the first wheel by name,
    so a stolen upload token that added an unsigned ``gamma-2.0-py2.py3-none-any.whl`` (sorting
    before the attested ``...-py3-none-any.whl``) to release 2.0 made 2.0 read as unsigned on
    first sight: the project looked never attested, and the token's unsigned 2.1 passed
    through ``[[unsigned-project]]`` on a fresh machine (CI). A file the index lists with
    provenance is read first now: 2.0 stays attested and 2.1 is a downgrade."""
    server, pub = lab
    pub.wheel("gamma", "1.0", signed=False)
    pub.wheel("gamma", "2.0")  # the project starts attesting
    pub.wheel("gamma", "2.0", signed=False, tag="py2.py3-none-any")  # the token's extra file
    pub.wheel("gamma", "2.1", signed=False)
    names = sorted(d.filename for d in server.dists("gamma") if d.version == "2.0")
    assert names == ["gamma-2.0-py2.py3-none-any.whl", "gamma-2.0-py3-none-any.whl"]
    monkeypatch.setenv("SAFE_PIP_HOME", str(workdir / "fresh-home"))
    (workdir / "fresh-home").mkdir(mode=0o700)
    code, doc = _inspect(capsys, trust_root, server, "gamma==2.1")
    assert (code, doc["code"]) == (1, "refused-attestation-downgrade"), doc["reason"]
