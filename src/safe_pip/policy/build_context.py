"""Build context against a project's history: pure (no I/O, no clock).

A Fulcio certificate names the run that signed a release: the source ref and commit, the
trigger (event), the runner environment (GitHub-hosted or self-hosted) and the run invocation
URI. The pipeline hijacks since 2024 (Ultralytics 8.3.41/42, TanStack) kept the publisher,
workflow, ref and trigger, so these claims do not catch them; but a release built from a
branch when every earlier one came from a tag, on a self-hosted runner, by another trigger, or
several versions signed by one run are worth a look. :func:`build_context_changes` lists them,
with the old and new values; ``on-build-context-change`` decides whether they warn (default)
or refuse.

Tags compare as a class: every ``refs/tags/*`` ref is "a tag", so a new version tag is no
change. Branches compare by name. The source commit is recorded, never compared (it differs
for every release).
"""

from __future__ import annotations

from collections.abc import Sequence

from safe_pip.models import BuildChange, BuildContext

TAG_CLASS = "refs/tags/*"


def ref_class(ref: str | None) -> str | None:
    """``refs/tags/*`` for any tag, else the ref itself."""
    if ref is None:
        return None
    return TAG_CLASS if ref.startswith("refs/tags/") else ref


_COMPARED = (
    ("source-ref", lambda b: ref_class(b.source_ref)),
    ("trigger", lambda b: b.trigger),
    ("runner-environment", lambda b: b.runner_environment),
)


def build_context_changes(
    version: str,
    build: BuildContext | None,
    history: Sequence[tuple[str, BuildContext | None]],
) -> tuple[BuildChange, ...]:
    """How ``build`` (of ``version``) differs from the builds of the other versions in
    ``history`` ((version, build) pairs; records without build claims are skipped)."""
    if build is None:
        return ()
    others = [(v, b) for v, b in history if b is not None and not b.empty and v != version]
    if not others:
        return ()
    out: list[BuildChange] = []
    for claim, value in _COMPARED:
        olds = sorted({value(b) or "(none)" for _v, b in others})
        new = value(build) or "(none)"
        if new not in olds:
            out.append(BuildChange(claim, tuple(olds), new))
    if build.run_invocation:
        same_run = sorted({v for v, b in others if b.run_invocation == build.run_invocation})
        if same_run:
            out.append(BuildChange("run-invocation", tuple(same_run), build.run_invocation))
    return tuple(out)
