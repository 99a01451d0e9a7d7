"""A release's provenance state, in PyPI's own words. Pure (no I/O, no clock).

PyPI (warehouse ``Release.provenance_status``, 2026) names six states and shows them on its
web pages only; safe-pip computes the same names from what it verified, so a refusal can be
read in PyPI's terms:

* ``no``: no file of the release is attested, and no earlier release was either;
* ``full``: every file of the release seen is attested, by one publisher, the same as the
  previous attested release (or there is none before it);
* ``partial``: some files of the release are attested and some are not;
* ``inconsistent``: files of the release are attested by different publishers;
* ``lost``: the release is not attested, but an earlier release was;
* ``changed``: the release is attested by another publisher than the previous attested release.

"The release" is the file being decided plus the other files of the same version in the
history; "earlier" means lower versions in the history. PyPI compares only against a
previous attested release of the last 14 days; safe-pip compares against every earlier
release it knows (stricter, like its downgrade and publisher-change rules). A file whose
provenance does not verify, or could not be checked, has no state (None).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from safe_pip.models import FileRef, PublisherIdentity, Verdict, VerificationResult, VerifyStatus
from safe_pip.policy.history import ProjectHistory, identity_key


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _same_publisher(a: PublisherIdentity, b: PublisherIdentity) -> bool:
    if identity_key(a) != identity_key(b):
        return False
    for key in ("repository_id", "repository_owner_id"):
        x, y = getattr(a, key), getattr(b, key)
        if x and y and x != y:
            return False
    return True


def provenance_state(
    ref: FileRef, result: VerificationResult, history: ProjectHistory
) -> str | None:
    """The provenance state of ``ref``'s release (one of ``PROVENANCE_STATES``) or None."""
    if result.status is VerifyStatus.VERIFIED and result.identity is not None:
        this: PublisherIdentity | None = result.identity
    elif result.status is VerifyStatus.UNSIGNED:
        this = None
    else:
        return None
    current = _version(ref.version)
    same: list[PublisherIdentity | None] = [this]
    earlier_attested: list[tuple[Version, PublisherIdentity]] = []
    for rec in history.records:
        v = _version(rec.version)
        if rec.filename == (result.filename or ref.filename):
            continue
        if rec.version == ref.version or (v is not None and current is not None and v == current):
            same.append(rec.identity)
        elif v is not None and current is not None and v < current and rec.identity is not None:
            earlier_attested.append((v, rec.identity))
    attested = [i for i in same if i is not None]
    if attested and len(attested) != len(same):
        return "partial"
    publishers: list[PublisherIdentity] = []
    for ident in attested:
        if not any(_same_publisher(ident, p) for p in publishers):
            publishers.append(ident)
    if len(publishers) > 1:
        return "inconsistent"
    if not attested:
        return "lost" if earlier_attested else "no"
    latest = max(v for v, _ in earlier_attested) if earlier_attested else None
    previous = [i for v, i in earlier_attested if v == latest]
    if previous and not any(_same_publisher(publishers[0], p) for p in previous):
        return "changed"
    return "full"


def merge_release_states(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """``verdicts`` with each release's state computed over all of its files decided together
    (one run sees a release's wheels and sdist at once: attested and unsigned files of one
    release are ``partial``, files from two publishers ``inconsistent``)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, v in enumerate(verdicts):
        groups.setdefault((canonicalize_name(v.project), v.version), []).append(i)
    out = list(verdicts)
    for indices in groups.values():
        files: list[PublisherIdentity | None] = []
        for i in indices:
            v = verdicts[i]
            res = v.verification
            if v.provenance_state is None or res is None:
                continue
            if res.status is VerifyStatus.VERIFIED and res.identity is not None:
                files.append(res.identity)
            elif res.status is VerifyStatus.UNSIGNED:
                files.append(None)
        attested = [f for f in files if f is not None]
        state: str | None = None
        if attested and len(attested) != len(files):
            state = "partial"
        elif len(attested) > 1 and any(not _same_publisher(attested[0], a) for a in attested):
            state = "inconsistent"
        if state is None:
            continue
        for i in indices:
            if out[i].provenance_state is not None:
                out[i] = replace(out[i], provenance_state=state)
    return out
