"""Output that reads at scale: one block and one fix per release, fitted to the width, colour
only on a terminal (NO_COLOR honoured), summaries that never call an unsigned file verified."""

from __future__ import annotations

import io
import shlex

import pytest

from safe_pip.cli import main
from safe_pip.models import (
    Action,
    PublisherIdentity,
    ReasonCode,
    Verdict,
    VerificationResult,
    VerifyStatus,
)
from safe_pip.output.grouped import merge_fixes, verdict_counts
from safe_pip.output.render import refusal_table
from safe_pip.output.terminal import Style, colour_enabled
from safe_pip.policy.rules import allow_unsigned_command

ACME = PublisherIdentity(kind="GitHub", repository="acme/core", workflow="release.yml")


def _verdict(
    project: str,
    version: str,
    filename: str,
    sha: str,
    status: VerifyStatus,
    action: Action,
    code: ReasonCode,
    *,
    fix: str = "",
) -> Verdict:
    res = VerificationResult(
        filename=filename,
        sha256=sha,
        status=status,
        reason="r",
        identity=ACME if status is VerifyStatus.VERIFIED else None,
    )
    return Verdict(
        project=project,
        version=version,
        filename=filename,
        sha256=sha,
        action=action,
        code=code,
        reason=f"{filename} is unsigned and require-attestation is on",
        rule="defaults.require-attestation",
        identity=res.identity,
        fix=fix,
        verification=res,
    )


def _many_wheels(n: int) -> list[Verdict]:
    out = []
    for i in range(n):
        sha = f"{i:064x}"
        name = f"pydantic_core-2.41.5-cp3{i % 10}-cp3{i % 10}-manylinux_{i}_x86_64.whl"
        out.append(
            _verdict(
                "pydantic-core",
                "2.41.5",
                name,
                sha,
                VerifyStatus.UNSIGNED,
                Action.REFUSE,
                ReasonCode.REFUSED_UNSIGNED,
                fix=allow_unsigned_command("pydantic-core", "2.41.5", sha),
            )
        )
    return out


def test_one_block_and_one_fix_per_release() -> None:
    verdicts = _many_wheels(140)
    verdicts.append(
        _verdict(
            "requests",
            "2.32.0",
            "requests-2.32.0-py3-none-any.whl",
            "f" * 64,
            VerifyStatus.VERIFIED,
            Action.ALLOW,
            ReasonCode.VERIFIED_KNOWN,
        )
    )
    text = refusal_table(verdicts, Style(colour=False, width=80))
    lines = text.splitlines()
    fixes = [line for line in lines if line.strip().startswith("fix:")]
    assert len(fixes) == 1
    argv = shlex.split(fixes[0].split("fix:", 1)[1])
    assert argv[:3] == ["safe-pip", "allow", "unsigned"]
    hashes = argv[argv.index("--sha256") + 1 : argv.index("--reason")]
    assert hashes == [f"{i:064x}" for i in range(140)]
    assert len(lines) < 10, text
    assert "140 files" in text
    assert "requests" not in text  # a release that is fine is not listed
    # everything but the fix fits the width
    assert all(len(line) <= 80 for line in lines if "fix:" not in line), text
    assert lines[-1] == "141 file(s): 1 verified, 0 unsigned but allowed, 140 refused"


def test_merge_fixes() -> None:
    a = "safe-pip allow unsigned x --versions ==1 --sha256 " + "a" * 64 + " --reason 'ok then'"
    b = "safe-pip allow unsigned x --versions ==1 --sha256 " + "b" * 64 + " --reason 'ok then'"
    other = "safe-pip allow add x --publisher github:o/r@release.yml"
    prose = "retry once the index is reachable; nothing was allowed"
    merged = merge_fixes([a, b, a, other, other, prose, prose, ""])
    assert merged == [
        "safe-pip allow unsigned x --versions ==1 --sha256 "
        + "a" * 64
        + " "
        + "b" * 64
        + " --reason 'ok then'",
        other,
        prose,
    ]


def test_summary_splits_verified_and_unsigned() -> None:
    vs = [
        _verdict("a", "1", "a.whl", "1" * 64, VerifyStatus.VERIFIED, Action.ALLOW,
                 ReasonCode.VERIFIED_KNOWN),
        _verdict("b", "1", "b.whl", "2" * 64, VerifyStatus.UNSIGNED, Action.ALLOW,
                 ReasonCode.UNSIGNED_ALLOWED),
        _verdict("c", "1", "c.whl", "3" * 64, VerifyStatus.UNSIGNED, Action.REFUSE,
                 ReasonCode.REFUSED_UNSIGNED),
        _verdict("d", "1", "d.whl", "4" * 64, VerifyStatus.ERROR, Action.REFUSE,
                 ReasonCode.COULD_NOT_CHECK),
    ]  # fmt: skip
    c = verdict_counts(vs)
    assert (c.verified, c.unsigned_allowed, c.refused, c.could_not_check) == (1, 1, 1, 1)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color() -> None:
    assert colour_enabled(_Tty(), env={}) is True
    assert colour_enabled(io.StringIO(), env={}) is False
    assert colour_enabled(_Tty(), env={"NO_COLOR": "1"}) is False
    assert colour_enabled(_Tty(), env={"NO_COLOR": ""}) is True  # no-color.org: non-empty
    assert colour_enabled(_Tty(), env={"TERM": "dumb"}) is False
    assert colour_enabled(io.StringIO(), env={"FORCE_COLOR": "1"}) is True
    assert Style(colour=True).paint("x", "red") == "\x1b[31mx\x1b[0m"
    assert Style(colour=False).paint("x", "red") == "x"


def test_index_strings_cannot_inject_escapes_into_coloured_output() -> None:
    [v] = _many_wheels(1)
    evil = Verdict(**{**v.__dict__, "project": "evil\x1b[2Jname", "filename": "e\x1b]0;x\x07.whl"})
    text = refusal_table([evil], Style(colour=True, width=100))
    assert "\x1b[2J" not in text
    assert "\x1b]0" not in text


def test_verify_has_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--help"]) == 0
    assert "-q, --quiet" in capsys.readouterr().out
