"""``safe-pip allow``: through ``cli.main`` and once through a real ``safe-pip`` process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from safe_pip.cli import main
from safe_pip.policy.file import load_policy

HAND_WRITTEN = """\
# our policy -- keep this comment
[defaults]
require-attestation = true   # inline comment

[[package]]
name = "sampleproject"
publishers = [
  { kind = "GitHub", repository = "pypa/sampleproject", workflow = "release.yml" },
]
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_creates_safe_pip_toml(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "allow",
        "add",
        "SampleProject",
        "--publisher",
        "github:pypa/sampleproject@release.yml",
    )
    assert code == 0
    assert "created" in out
    assert "safe-pip.toml:4: [[package]] sampleproject now allows GitHub pypa/sampleproject" in out
    policy = load_policy(cwd=workdir, env={})
    assert policy.path == workdir / "safe-pip.toml"
    (pub,) = policy.packages["sampleproject"].publishers
    assert pub.to_table() == {
        "kind": "GitHub",
        "repository": "pypa/sampleproject",
        "workflow": "release.yml",
    }


def test_add_merges_and_keeps_comments(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "safe-pip.toml").write_text(HAND_WRITTEN)
    code, out, _ = run(
        capsys,
        "allow",
        "add",
        "sampleproject",
        "--publisher",
        "github:pypa/sampleproject@release.yml",
        "--publisher",
        "github:pypa/sampleproject@nightly.yml",
        "--environment",
        "pypi",
    )
    assert code == 0, out
    text = (workdir / "safe-pip.toml").read_text()
    assert "# our policy -- keep this comment" in text
    assert "require-attestation = true   # inline comment" in text
    pubs = load_policy(cwd=workdir, env={}).packages["sampleproject"].publishers
    assert [p.workflow for p in pubs] == ["release.yml", "release.yml", "nightly.yml"]
    assert [p.environment for p in pubs] == [None, "pypi", "pypi"]

    before = (workdir / "safe-pip.toml").read_text()
    code, out, _ = run(
        capsys,
        "allow",
        "add",
        "sampleproject",
        "--publisher",
        "github:pypa/sampleproject@nightly.yml",
        "--environment",
        "pypi",
    )
    assert code == 0
    assert "nothing changed" in out
    assert (workdir / "safe-pip.toml").read_text() == before


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["allow", "add", "x", "--publisher", "pypa/x"], "must look like"),
        (["allow", "add", "x", "--publisher", "github:pypa/x"], "after '@'"),
        (["allow", "add", "x", "--publisher", "google:a@b.co", "--environment", "e"], "Google"),
        (["allow", "add", "bad_", "--publisher", "github:o/r@r.yml"], "not a valid project name"),
        (["allow", "unsigned", "six", "--versions", "=>1", "--reason", "r"], "PEP 440"),
        (["allow", "unsigned", "six", "--versions", "==1", "--reason", " "], "--reason"),
        (
            ["allow", "unsigned", "six", "--versions", "==1", "--reason", "r", "--expires", "soon"],
            "YYYY-MM-DD",
        ),
        (
            [
                "allow",
                "unsigned",
                "six",
                "--versions",
                "==1",
                "--reason",
                "r",
                "--expires",
                "2020-01-01",
            ],
            "not in the future",
        ),
        (
            ["allow", "unsigned", "six", "--versions", "==1", "--reason", "r", "--sha256", "abc"],
            "hex digest",
        ),
        (["allow", "remove", "nothing-here"], "no policy file"),
    ],
)
def test_usage_errors_exit_2_and_write_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err
    assert not (workdir / "safe-pip.toml").exists()


def test_missing_required_option_is_usage_error(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "allow", "add", "x")
    assert code == 2
    assert "--publisher" in err
    code, _, _ = run(capsys, "allow")
    assert code == 2


def test_invalid_policy_is_reported_with_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "safe-pip.toml").write_text("[defaults]\nrequire-attestation = true\nfoo = 1\n")
    code, _, err = run(capsys, "allow", "add", "x", "--publisher", "github:o/x@r.yml")
    assert code == 2
    assert f"{workdir / 'safe-pip.toml'}:3: unknown key 'foo'" in err
    assert (workdir / "safe-pip.toml").read_text().endswith("foo = 1\n")
    code, _, err = run(capsys, "allow", "list")
    assert code == 2
    assert ":3:" in err


def test_unsigned_and_list(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expires = (date.today() + timedelta(days=30)).isoformat()
    sha = "AB" * 32
    code, out, _ = run(
        capsys,
        "allow",
        "unsigned",
        "six",
        "--versions",
        "==1.16.0",
        "--reason",
        "upstream does not attest",
        "--expires",
        expires,
        "--sha256",
        sha,
    )
    assert code == 0, out
    assert f"[[unsigned]] six allows unsigned ==1.16.0, 1 sha256 pinned until {expires}" in out
    run(
        capsys,
        "allow",
        "add",
        "sampleproject",
        "--publisher",
        "github:pypa/sampleproject@release.yml",
    )

    code, out, _ = run(capsys, "allow", "list")
    assert code == 0
    assert "sampleproject  GitHub pypa/sampleproject @ release.yml" in out
    assert "six" in out
    assert expires in out
    assert "1 pinned" in out

    code, out, _ = run(capsys, "allow", "list", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["policy"] == str(workdir / "safe-pip.toml")
    assert doc["defaults"]["require-attestation"] is True
    assert doc["packages"] == [
        {
            "name": "sampleproject",
            "publishers": [
                {"kind": "GitHub", "repository": "pypa/sampleproject", "workflow": "release.yml"}
            ],
            "line": 11,
            "min-release-age": None,  # no override: defaults.min-release-age applies
        }
    ]
    assert doc["defaults"]["min-release-age"] == "3d"
    assert doc["defaults"]["on-unknown-release-age"] == "error"
    (u,) = doc["unsigned"]
    assert u == {
        "name": "six",
        "versions": "==1.16.0",
        "sha256": [sha.lower()],
        "reason": "upstream does not attest",
        "expires": expires,
        "expired": False,
        "line": 4,
        "min-release-age": None,
    }


def test_list_without_policy(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "allow", "list")
    assert code == 0
    assert "built-in defaults" in out
    code, out, _ = run(capsys, "allow", "list", "--json")
    assert json.loads(out)["policy"] is None


def test_list_marks_expired(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "safe-pip.toml").write_text(
        '[[unsigned]]\nname = "six"\nversions = "==1"\nreason = "r"\nexpires = 2020-01-01\n'
    )
    code, out, _ = run(capsys, "allow", "list")
    assert code == 0
    assert "2020-01-01 (expired)" in out
    code, out, _ = run(capsys, "allow", "list", "--json")
    assert code == 0
    assert json.loads(out)["unsigned"][0]["expired"] is True


def test_remove(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "safe-pip.toml").write_text(HAND_WRITTEN)
    run(capsys, "allow", "unsigned", "sampleproject", "--versions", "==0.1", "--reason", "old")
    code, out, _ = run(capsys, "allow", "remove", "SampleProject")
    assert code == 0
    assert "removed its [[package]] entry and 1 [[unsigned]] exception" in out
    policy = load_policy(cwd=workdir, env={})
    assert not policy.packages
    assert not policy.unsigned
    assert "# our policy -- keep this comment" in (workdir / "safe-pip.toml").read_text()
    code, _, err = run(capsys, "allow", "remove", "sampleproject")
    assert code == 2
    assert "no [[package]] or [[unsigned]] entry for sampleproject" in err


def test_policy_option_env_and_pyproject(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    other = workdir / "conf" / "team.toml"
    code, _, _ = run(
        capsys, "allow", "add", "a", "--publisher", "github:o/a@r.yml", "--policy", str(other)
    )
    assert code == 0
    assert "a" in load_policy(other).packages
    assert not (workdir / "safe-pip.toml").exists()

    monkeypatch.setenv("SAFE_PIP_POLICY", str(other))
    run(capsys, "allow", "add", "b", "--publisher", "github:o/b@r.yml")
    assert set(load_policy(other).packages) == {"a", "b"}

    monkeypatch.delenv("SAFE_PIP_POLICY")
    pyproject = workdir / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "demo"\n\n[tool.safe-pip.defaults]\nallow-sdist = false\n'
    )
    code, out, _ = run(capsys, "allow", "add", "c", "--publisher", "gitlab:g/c@.gitlab-ci.yml")
    assert code == 0, out
    assert "pyproject.toml:" in out
    assert not (workdir / "safe-pip.toml").exists()
    assert load_policy(cwd=workdir, env={}).packages["c"].publishers[0].kind == "GitLab"
    assert '[project]\nname = "demo"\n' in pyproject.read_text()


def test_help_documents_shorthand(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "allow", "--help")
    assert code == 0
    assert "github:OWNER/REPO@WORKFLOW.yml" in out
    assert "gitlab:GROUP/PROJECT@PATH/FILE.yml" in out
    assert "google:EMAIL" in out
    code, out, _ = run(capsys, "allow", "add", "--help")
    assert "--publisher SHORTHAND" in out


@pytest.mark.slow
def test_real_subprocess(tmp_path: Path) -> None:
    exe = shutil.which("safe-pip", path=str(Path(sys.executable).parent)) or ""
    argv = [exe] if exe else [sys.executable, "-m", "safe_pip"]
    env = dict(os.environ, SAFE_PIP_HOME=str(tmp_path / "home"))
    env.pop("SAFE_PIP_POLICY", None)
    proc = subprocess.run(
        [
            *argv,
            "allow",
            "add",
            "sampleproject",
            "--publisher",
            "github:pypa/sampleproject@release.yml",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [*argv, "allow", "list", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["packages"][0]["name"] == "sampleproject"
    proc = subprocess.run(
        [*argv, "allow", "add", "x", "--publisher", "nonsense"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("safe-pip: error: --publisher:")


def test_add_pins_numeric_ids_in_place(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "safe-pip.toml").write_text(HAND_WRITTEN)
    pin = ["--repository-id", "14899596", "--owner-id", "647025"]
    code, out, _ = run(
        capsys, "allow", "add", "sampleproject", "--publisher",
        "github:pypa/sampleproject@release.yml", *pin,
    )  # fmt: skip
    assert code == 0
    assert "repository id 14899596, owner id 647025" in out
    text = (workdir / "safe-pip.toml").read_text()
    assert text.count("pypa/sampleproject") == 1
    (pub,) = load_policy(cwd=workdir, env={}).packages["sampleproject"].publishers
    assert (pub.repository_id, pub.repository_owner_id) == ("14899596", "647025")
    # the same again changes nothing
    code, out, _ = run(
        capsys, "allow", "add", "sampleproject", "--publisher",
        "github:pypa/sampleproject@release.yml", *pin,
    )  # fmt: skip
    assert (code, "nothing changed" in out) == (0, True)
    assert (workdir / "safe-pip.toml").read_text() == text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--repository-id", "12x"], "--repository-id: repository_id must be the numeric id"),
        (["--owner-id", ""], None),
        (
            ["--publisher", "github:a/b@c.yml", "--repository-id", "1"],
            "exactly one GitHub or GitLab --publisher",
        ),
    ],
)
def test_add_id_pins_are_validated(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str | None
) -> None:
    code, _out, err = run(
        capsys, "allow", "add", "demo", "--publisher", "github:acme/demo@release.yml", *argv
    )
    if message is None:  # an empty pin pins nothing
        assert code == 0
        return
    assert code == 2
    assert message in err
    assert not (workdir / "safe-pip.toml").exists()


def test_add_is_idempotent_over_certificate_only_fields(workdir: Path) -> None:
    """learn passes identities read from certificates (ref, issuer): the entry is the same
    publisher, so nothing is added twice."""
    from safe_pip.models import PublisherIdentity
    from safe_pip.policy.edit import PolicyDocument

    seen = PublisherIdentity(
        kind="GitHub", repository="acme/demo", workflow="release.yml", repository_id="1",
        repository_owner_id="2", ref="refs/tags/v1", issuer="https://token.actions",
    )  # fmt: skip
    doc = PolicyDocument.open(workdir / "safe-pip.toml")
    assert doc.add_package("demo", [seen]) == [seen]
    doc.save()
    again = PolicyDocument.open(workdir / "safe-pip.toml")
    from dataclasses import replace

    assert again.add_package("demo", [replace(seen, ref="refs/tags/v2", issuer="x")]) == []
    assert not again.changed()


def test_defaults_from_the_command_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "safe-pip.toml").write_text(HAND_WRITTEN)
    code, out, _ = run(
        capsys, "allow", "defaults", "require-attestation=false", "index-history-depth=10",
        "on-publisher-change=warn",
    )  # fmt: skip
    assert code == 0, out
    d = load_policy(cwd=workdir, env={}).defaults
    assert (d.require_attestation, d.index_history_depth, d.on_publisher_change) == (
        False,
        10,
        "warn",
    )
    assert "# our policy -- keep this comment" in (workdir / "safe-pip.toml").read_text()
    code, out, _ = run(capsys, "allow", "defaults")
    assert "require-attestation = false" in out
    for bad in ("require-attestation=maybe", "on-publisher-change=ignore", "nope=1", "x"):
        code, _out, err = run(capsys, "allow", "defaults", bad)
        assert code == 2, bad
        assert err
    assert load_policy(cwd=workdir, env={}).defaults == d


@pytest.mark.parametrize(
    "reason", ["REVIEW: upstream publishes no attestations", "TODO", "  ", "review: later"]
)
def test_placeholder_reasons_do_not_load(
    workdir: Path, capsys: pytest.CaptureFixture[str], reason: str
) -> None:
    (workdir / "safe-pip.toml").write_text(
        f'[[unsigned]]\nname = "six"\nversions = "==1.16.0"\nreason = "{reason}"\n'
    )
    code, _out, err = run(capsys, "allow", "list")
    assert code == 2
    assert "safe-pip.toml:4" in err or "needs reason" in err
    (workdir / "safe-pip.toml").unlink()
    code, _out, err = run(
        capsys, "allow", "unsigned", "six", "--versions", "==1.16.0", "--reason", reason
    )
    assert code == 2
    assert not (workdir / "safe-pip.toml").exists()
