"""What one run did: the outcome, its exit code and the JSON report."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from safe_pip.errors import (
    EXIT_COULD_NOT_CHECK,
    EXIT_OK,
    EXIT_REFUSED,
    ConfigError,
)
from safe_pip.models import Action, ReasonCode, Verdict

if TYPE_CHECKING:
    from safe_pip.install.args import InstallOptions, PipArgs
    from safe_pip.sources.pip_report import ReportItem

from safe_pip.install.args import PipArgs


@dataclass
class Outcome:
    """What one install run did, for the JSON report."""

    verdicts: list[Verdict] = field(default_factory=list)
    items: list[ReportItem] = field(default_factory=list)
    installed: bool = False
    exit_code: int = EXIT_OK
    pip_exit_code: int | None = None
    message: str | None = None
    built: dict[int, tuple[str, str]] = field(default_factory=dict)  # pos -> (wheel, sha256)
    build_files: list[dict[str, Any]] = field(default_factory=list)  # served to pip's builds
    sdist_builds: bool = False
    #: files the verifying index left out as younger than the minimum release age
    too_new: list[dict[str, str]] = field(default_factory=list)
    #: upstream reads that failed (index, host, project, reason, fix) when that is why pip
    #: could not resolve: no file to name (a page could not be read)
    could_not_read: list[dict[str, str]] = field(default_factory=list)


def _exit_for(verdicts: Sequence[Verdict]) -> int:
    refused = [v for v in verdicts if v.action is Action.REFUSE]
    if any(v.code is not ReasonCode.COULD_NOT_CHECK for v in refused):
        return EXIT_REFUSED
    if refused:
        return EXIT_COULD_NOT_CHECK
    return EXIT_OK


def report_doc(outcome: Outcome, pip: PipArgs) -> dict[str, Any]:
    from safe_pip.net import redact

    files = []
    for pos, v in enumerate(outcome.verdicts):
        doc = v.to_json()
        res = v.verification
        doc["verification_code"] = res.reason_code if res else None
        if pos < len(outcome.items):
            item = outcome.items[pos]
            doc["url"] = redact(item.url)
            doc["requested"] = item.requested
        if pos in outcome.built:
            # Installed as a wheel built here from the verified sdist: the wheel's bytes are
            # not attested, only its source is.
            doc["built_wheel"] = {
                "filename": outcome.built[pos][0],
                "sha256": outcome.built[pos][1],
            }
        files.append(doc)
    built = [
        {
            "filename": wheel,
            "sha256": sha,
            "built_from": outcome.verdicts[pos].filename,
            "attested": False,
        }
        for pos, (wheel, sha) in sorted(outcome.built.items())
    ]
    refused = sum(1 for v in outcome.verdicts if v.action is Action.REFUSE)
    warned = sum(1 for v in outcome.verdicts if v.action is Action.WARN)
    return {
        "version": 1,
        "command": "install",
        "dry_run": pip.dry_run,
        "installed": outcome.installed,
        "exit_code": outcome.exit_code,
        "summary": {
            "files": len(outcome.verdicts),
            "allowed": len(outcome.verdicts) - refused - warned,
            "warned": warned,
            "refused": refused,
            **split_counts(outcome.verdicts),
        },
        "files": files,
        "sdist_builds": outcome.sdist_builds,
        "built": built,
        "build_files": outcome.build_files,
        "pip_exit_code": outcome.pip_exit_code,
        "message": outcome.message,
        "left_out_too_new": outcome.too_new,
        "could_not_read": outcome.could_not_read,
    }


def _emit(own: InstallOptions, pip: PipArgs, outcome: Outcome, out: TextIO, err: TextIO) -> None:
    from safe_pip.output.render import dump_json
    from safe_pip.text import clean

    doc = report_doc(outcome, pip)
    if own.report:
        path = Path(own.report)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                dump_json(doc, fh)
            os.replace(tmp, path)
        except OSError as exc:
            # Checked writable before anything ran: failing now must not turn what happened
            # (an install, a refusal) into a usage error. Say so and keep the exit code.
            with contextlib.suppress(OSError):
                tmp.unlink()
            err.write(
                f"safe-pip: warning: cannot write the report {clean(path)}: "
                f"{clean(exc.strerror or exc)}\n"
            )
    if own.json:
        dump_json(doc, out)


def _check_report_path(own: InstallOptions) -> None:
    """--report FILE must be writable before anything runs (not after pip installed)."""
    if not own.report:
        return
    path = Path(own.report)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot write the report {path}: its folder does not exist or is not writable",
            fix="give --report a path in a writable folder",
        )


def checked_text(verdicts: Sequence[Verdict]) -> str:
    """``3 file(s) checked: 2 verified, 1 unsigned but allowed`` (never "3 verified")."""
    from safe_pip.output.grouped import verdict_counts

    c = verdict_counts(verdicts)
    text = f"{c.files} file(s) checked: {c.verified} verified"
    if c.unsigned_allowed:
        text += f", {c.unsigned_allowed} unsigned but allowed"
    if c.warned:
        text += f", {c.warned} allowed with warnings"
    return text


def split_counts(verdicts: Sequence[Verdict]) -> dict[str, int]:
    """verified / unsigned_allowed / could_not_check, beside allowed / warned / refused."""
    from safe_pip.output.grouped import verdict_counts

    c = verdict_counts(verdicts).to_json()
    return {k: c[k] for k in ("verified", "unsigned_allowed", "could_not_check")}
