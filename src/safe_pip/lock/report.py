"""The report of ``safe-pip verify``: text, JSON (schema ``safe-pip-verify/1``, see
docs/verify.md), SARIF 2.1.0 (GitHub code scanning) and JUnit XML.

Every string that came from a lock, an index or a certificate passes through
:func:`safe_pip.text.clean` (JSON through :func:`safe_pip.text.clean_json`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from safe_pip import __version__
from safe_pip.lock.outcome import (
    HASH_MISMATCH,
    LOCAL_SOURCE,
    NAME_VERSION_MISMATCH,
    NO_HASH_PINNED,
    NOT_ON_INDEX,
    UNSUPPORTED_SOURCE,
    UNVERIFIABLE_HASH,
    FileOutcome,
    VerifyRun,
    lock_identity_table,
)
from safe_pip.output.grouped import (
    Category,
    Counts,
    Row,
    counts,
    render_rows,
    summary_line,
    verdict_details,
)
from safe_pip.output.terminal import Style
from safe_pip.text import clean, clean_json

JSON_SCHEMA = "safe-pip-verify/1"
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/safe-pip/safe-pip"

FORMATS = ("text", "json", "sarif", "junit")

#: SARIF rules: one per problem code (stable ids; scripts and dashboards key on them).
RULES: dict[str, tuple[str, str, str]] = {
    # id: (name, short description, help)
    "refused-unexpected-publisher": (
        "UnexpectedPublisher",
        "A file was published by an identity the lock or policy does not expect",
        "The attestation verified, but names another Trusted Publisher than the lock's "
        "attestation-identities (or the policy's publishers). Treat as a possible account or "
        "repository takeover until the project confirms the change.",
    ),
    "refused-unsigned": (
        "UnsignedFile",
        "A file has no PEP 740 provenance",
        "The index has no attestation for the file. Allow it only through a reviewed "
        "[[unsigned]] policy entry.",
    ),
    "refused-invalid-attestation": (
        "InvalidAttestation",
        "A file's provenance does not verify",
        "The provenance exists but its signature, certificate chain, transparency-log entry "
        "or subject does not verify for the locked bytes. Treat as an attack.",
    ),
    "refused-publisher-change": (
        "PublisherChange",
        "A project's publisher changed against its known-good history",
        "Earlier releases were published by another identity.",
    ),
    "refused-attestation-downgrade": (
        "AttestationDowngrade",
        "A project that used to attest its releases published this one without attestation",
        "Earlier releases carried attestations; this file does not.",
    ),
    "refused-file-changed": (
        "UnsignedFileChanged",
        "An unsigned file has other bytes than when it was allowed before",
        "The history remembers the sha256 of every unsigned file it allowed; this (project, "
        "filename) now has other bytes. A mirror or index swapped the file, or the release was "
        "re-uploaded. Pin the new bytes only after finding out why.",
    ),
    HASH_MISMATCH: (
        "HashMismatch",
        "The lock's sha256 differs from the index's file",
        "The bytes on the index are not the bytes that were locked. Find out why before "
        "re-locking.",
    ),
    NOT_ON_INDEX: (
        "NotOnIndex",
        "A locked file or project is not on the index",
        "The index no longer lists the file the lock names, or the lock names another index.",
    ),
    NO_HASH_PINNED: (
        "NoHashPinned",
        "A lock entry pins no sha256 hash",
        "Without a pinned sha256 the installer takes whatever bytes the index serves at install "
        "time, so verifying today's file proves nothing about what gets installed. Lock with "
        "hashes: pip-compile --generate-hashes or uv pip compile --generate-hashes.",
    ),
    UNVERIFIABLE_HASH: (
        "UnverifiableHash",
        "A lock entry lists a hash of another algorithm than sha256",
        "pip --require-hashes and uv install a file when ANY hash the lock lists for it "
        "matches, and PEP 740 attests sha256 digests only: a file matching the other hash "
        "(sha384, sha512, ...) would be installed unverified. Regenerate the lock with sha256 "
        "hashes only.",
    ),
    NAME_VERSION_MISMATCH: (
        "NameVersionMismatch",
        "A locked file's name is of another project or version than its entry",
        "The installer takes the file, while the policy (e.g. an [[unsigned]] exception for "
        "the entry's version) would decide it as the entry's project and version. Re-lock.",
    ),
    UNSUPPORTED_SOURCE: (
        "UnsupportedSource",
        "A lock entry is not an index release",
        "VCS, directory, editable and direct-URL entries carry no PEP 740 provenance.",
    ),
    "refused-too-new": (
        "TooNew",
        "A file is younger than the minimum release age",
        "The file was published (transparency log time, or the index's upload-time for an "
        "unsigned file) more recently than min-release-age allows. Most malicious releases "
        "are removed within hours: wait until the time given, or re-lock an older release.",
    ),
    "refused-age-unknown": (
        "AgeUnknown",
        "Nobody vouches for when a file was published",
        "The file is not attested and the index gives no upload-time, so its release age "
        "cannot be checked. Set min-release-age for it in the policy after reviewing it.",
    ),
    "refused-build-context-change": (
        "BuildContextChange",
        "A release was built unlike the project's earlier releases",
        "The certificate's build claims (source ref, trigger, runner environment, run) differ "
        "from the project's history: e.g. built from a branch when earlier releases came from "
        "tags, on a self-hosted runner, or signed by the run that signed another version. "
        'Check the run; on-build-context-change = "warn" reports instead of refusing.',
    ),
    LOCAL_SOURCE: (
        "LocalSource",
        "A lock entry is local code (editable / virtual)",
        "The project itself or a workspace member: nothing from an index, no PEP 740 "
        "provenance. Fails unless the policy sets allow-local-sources = true.",
    ),
    "could-not-check": (
        "CouldNotCheck",
        "A file could not be checked",
        "The index, the network or the trust root was unavailable: nothing was verified.",
    ),
}
_WARN_RULE = ("AllowedWithWarning", "A file was allowed with a warning", "See the message.")


def _rel(path: Path) -> str:
    """The lock's path as SARIF wants it: relative to the working directory, POSIX slashes."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        rel = str(path)
    if rel.startswith(".."):
        rel = str(path.resolve())
    return str(PurePosixPath(*Path(rel).parts))


def _category(o: FileOutcome) -> Category:
    if o.status == "ok":
        return "verified" if o.verified else "unsigned"
    return {"warn": "warn", "fail": "refused", "error": "error"}[o.status]  # type: ignore[return-value]


def _row(o: FileOutcome) -> Row:
    return Row(
        project=o.package.name,
        version=o.package.version,
        filename=o.filename or "(lock entry)",
        category=_category(o),
        code=o.code,
        reason=o.reason,
        fix=o.fix if o.status in ("fail", "error") else "",
        identity=o.identity,
        expected=o.expected,
        where=f"{_rel(o.file)}:{o.line}",
        details=verdict_details(o.verdict) if o.verdict is not None else (),
    )


def split_counts(run: VerifyRun) -> Counts:
    """verified / unsigned but allowed / warned / refused / could not check."""
    return counts(_category(o) for o in run.outcomes)


def _provenance_text(o: FileOutcome) -> str:
    """``provenance: full provenance; released: ...`` for a file that was decided."""
    if o.verdict is None:
        return ""
    return clean("; ".join(verdict_details(o.verdict)), limit=900)


def _counts(run: VerifyRun) -> dict[str, int]:
    outs = run.outcomes
    split = split_counts(run)
    return {
        "files": len(outs),
        "ok": sum(1 for o in outs if o.status == "ok"),
        "warn": sum(1 for o in outs if o.status == "warn"),
        "fail": sum(1 for o in outs if o.status == "fail"),
        "error": sum(1 for o in outs if o.status == "error"),
        "verified": split.verified,
        "unsigned_allowed": split.unsigned_allowed,
        "refused": split.refused,
    }


def _what(o: FileOutcome) -> str:
    name = f"{o.package.name} {o.package.version}".strip()
    return f"{name} {o.filename}".strip() if o.filename else name


# -- JSON --------------------------------------------------------------------------------------


def to_json(run: VerifyRun) -> dict[str, Any]:
    return {
        "schema": JSON_SCHEMA,
        "tool": {"name": "safe-pip", "version": __version__},
        "trust_root": run.trust_root,
        "exit_code": run.exit_code,
        "elapsed_seconds": round(run.elapsed, 3),
        "summary": _counts(run),
        "locks": [
            {
                "path": str(r.lock.path),
                "format": r.lock.format,
                "packages": len(r.lock.packages),
                "identities_written": run.written.get(str(r.lock.path), []),
                "files": [o.to_json() for o in r.outcomes],
            }
            for r in run.reports
        ],
    }


def render_json(run: VerifyRun) -> str:
    return json.dumps(clean_json(to_json(run)), indent=2) + "\n"


# -- text --------------------------------------------------------------------------------------


def render_text(
    run: VerifyRun, *, verbose: bool = False, quiet: bool = False, style: Style | None = None
) -> str:
    """One block per project and release (its reasons once, one fix per release), fitted to
    the width of ``style``; ``quiet``: the summary line only."""
    style = style or Style()
    out: list[str] = []
    if not quiet:
        for r in run.reports:
            out.append(
                style.paint(
                    f"{clean(r.lock.path)} ({r.lock.format}, {len(r.lock.packages)} packages)",
                    "bold",
                )
            )
            inner = replace(style, width=max(0, style.width - 2))
            rows = [_row(o) for o in r.outcomes]
            out += ["  " + line for line in render_rows(rows, inner, verbose=verbose)]
            written = run.written.get(str(r.lock.path))
            if written:
                out.append(
                    f"  wrote attestation-identities for {len(written)} package(s): "
                    + ", ".join(clean(n) for n in written)
                )
    c = split_counts(run)
    out.append(f"{summary_line(c, style)} ({run.elapsed:.2f}s; {clean(run.trust_root)})")
    return "\n".join(out) + "\n"


# -- SARIF 2.1.0 -------------------------------------------------------------------------------


def _fingerprint(o: FileOutcome) -> str:
    key = "\0".join((str(o.lock), o.package.name, o.package.version, o.filename, o.code))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def to_sarif(run: VerifyRun) -> dict[str, Any]:
    problems = [o for o in run.outcomes if o.status != "ok"]
    rule_ids: list[str] = []
    for o in problems:
        rid = o.code if o.status != "warn" else f"warning/{o.code}"
        if rid not in rule_ids:
            rule_ids.append(rid)
    rules = []
    for rid in rule_ids:
        name, short, help_text = RULES.get(
            rid, _WARN_RULE if rid.startswith("warning/") else None
        ) or (
            "Refused",
            "A file was refused",
            "See the message.",
        )
        rules.append(
            {
                "id": rid,
                "name": name,
                "shortDescription": {"text": short},
                "fullDescription": {"text": help_text},
                "help": {"text": help_text},
                "helpUri": f"{INFO_URI}/blob/main/docs/verify.md",
                "defaultConfiguration": {
                    "level": "warning" if rid.startswith("warning/") else "error"
                },
                "properties": {"tags": ["security", "supply-chain"], "precision": "high"},
            }
        )
    results = []
    for o in problems:
        rid = o.code if o.status != "warn" else f"warning/{o.code}"
        text = f"{_what(o)}: {o.reason}"
        if o.fix and o.status in ("fail", "error"):
            text += f" Fix: {o.fix}"
        props: dict[str, Any] = {
            "package": o.package.name,
            "version": o.package.version,
            "filename": o.filename,
            "status": o.status,
        }
        if o.identity is not None:
            props["identity"] = lock_identity_table(o.identity)
        if o.expected:
            props["expected"] = [lock_identity_table(e) for e in o.expected]
        if o.verdict is not None:
            props["provenanceState"] = o.provenance_state
            props["releaseTime"] = o.verdict.release_time
            props["releaseTimeSource"] = o.verdict.release_time_source
            props["acceptableFrom"] = o.verdict.acceptable_from
            if o.verdict.build_changes:
                props["buildChanges"] = [c.to_json() for c in o.verdict.build_changes]
        results.append(
            {
                "ruleId": rid,
                "ruleIndex": rule_ids.index(rid),
                "level": "warning" if o.status == "warn" else "error",
                "message": {"text": clean(text, limit=2000)},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {
                                "uri": _rel(o.file),
                                "uriBaseId": "%SRCROOT%",
                            },
                            "region": {"startLine": max(1, o.line)},
                        }
                    }
                ],
                "partialFingerprints": {"safePipFinding/v1": _fingerprint(o)},
                "properties": clean_json(props),
            }
        )
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "safe-pip",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFO_URI,
                        "rules": rules,
                    }
                },
                "automationDetails": {"id": "safe-pip-verify/"},
                "invocations": [
                    {
                        "executionSuccessful": run.exit_code in (0, 1),
                        "exitCode": run.exit_code,
                    }
                ],
                "properties": {"summary": split_counts(run).to_json()},
                "results": results,
            }
        ],
    }


def render_sarif(run: VerifyRun) -> str:
    return json.dumps(to_sarif(run), indent=2) + "\n"


# -- JUnit XML ---------------------------------------------------------------------------------


def render_junit(run: VerifyRun) -> str:
    import xml.etree.ElementTree as ET

    c = _counts(run)
    root = ET.Element(
        "testsuites",
        {
            "name": "safe-pip verify",
            "tests": str(c["files"]),
            "failures": str(c["fail"]),
            "errors": str(c["error"]),
            # an unsigned file the policy allows is reported as skipped: allowed, not verified
            "skipped": str(c["unsigned_allowed"]),
            "time": f"{run.elapsed:.3f}",
        },
    )
    for r in run.reports:
        outs = r.outcomes
        suite = ET.SubElement(
            root,
            "testsuite",
            {
                "name": clean(_rel(r.lock.path)),
                "tests": str(len(outs)),
                "failures": str(sum(1 for o in outs if o.status == "fail")),
                "errors": str(sum(1 for o in outs if o.status == "error")),
                "skipped": str(sum(1 for o in outs if _category(o) == "unsigned")),
                "time": f"{run.elapsed:.3f}",
            },
        )
        props = ET.SubElement(suite, "properties")
        for key, value in counts(_category(o) for o in outs).to_json().items():
            ET.SubElement(props, "property", {"name": f"safe-pip.{key}", "value": str(value)})
        for o in outs:
            case = ET.SubElement(
                suite,
                "testcase",
                {
                    "classname": clean(f"{_rel(r.lock.path)}.{o.package.name}"),
                    "name": clean(o.filename or f"{o.package.name} {o.package.version}"),
                    "file": clean(_rel(o.file)),
                    "line": str(o.line),
                    "time": "0",
                },
            )
            message = clean(o.reason, limit=1000)
            body = [f"{_rel(o.file)}:{o.line}: {o.code}: {o.reason}"]
            if o.identity is not None:
                body.append(f"identity seen: {o.identity.describe_with_ids()}")
            if o.expected:
                body.append("expected: " + "; ".join(e.describe_with_ids() for e in o.expected))
            extra = _provenance_text(o)
            if extra:
                body.append(extra)
            if o.fix:
                body.append(f"fix: {o.fix}")
            details = "\n".join(clean(b, limit=1000) for b in body)
            if o.status == "fail":
                el = ET.SubElement(case, "failure", {"type": o.code, "message": message})
                el.text = details
            elif o.status == "error":
                el = ET.SubElement(case, "error", {"type": o.code, "message": message})
                el.text = details
            elif _category(o) == "unsigned":
                el = ET.SubElement(case, "skipped", {"message": f"unsigned, allowed: {message}"})
                el.text = details
            else:
                out = ET.SubElement(case, "system-out")
                out.text = details
            if o.provenance_state:  # properties first, as pytest writes them
                props_el = ET.Element("properties")
                case.insert(0, props_el)
                ET.SubElement(
                    props_el,
                    "property",
                    {"name": "provenance-state", "value": clean(o.provenance_state)},
                )
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render(
    run: VerifyRun,
    fmt: str,
    *,
    verbose: bool = False,
    quiet: bool = False,
    style: Style | None = None,
) -> str:
    if fmt == "json":
        return render_json(run)
    if fmt == "sarif":
        return render_sarif(run)
    if fmt == "junit":
        return render_junit(run)
    return render_text(run, verbose=verbose, quiet=quiet, style=style)
