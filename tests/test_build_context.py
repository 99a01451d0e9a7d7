"""Build context in the history: the certificate's build claims recorded per release and
compared (pure decide(), then end to end with lab packages signed from chosen refs, triggers,
runners and runs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from safe_pip.cli import main
from safe_pip.errors import ConfigError
from safe_pip.models import (
    Action,
    BuildContext,
    FileRef,
    PublisherIdentity,
    ReasonCode,
    VerificationResult,
    VerifyStatus,
)
from safe_pip.policy.build_context import build_context_changes, ref_class
from safe_pip.policy.file import parse_policy
from safe_pip.policy.history import HistoryRecord, ProjectHistory
from safe_pip.policy.rules import decide, history_records_for
from support.index_server import IndexServer
from support.publish import Publisher
from support.sigstore_ca import GitHubIdentity, TestSigstore

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
A = PublisherIdentity(kind="GitHub", repository="acme/widget", workflow="release.yml")
RUN = "https://github.com/acme/widget/actions/runs/{}/attempts/1"


def build(
    ref: str = "refs/tags/v1.0",
    trigger: str = "release",
    runner: str = "github-hosted",
    run: int = 1,
) -> BuildContext:
    return BuildContext(
        source_ref=ref,
        source_commit="c" * 40,
        trigger=trigger,
        runner_environment=runner,
        run_invocation=RUN.format(run),
    )


TAGGED = [("0.9", build("refs/tags/v0.9", run=1)), ("1.0", build("refs/tags/v1.0", run=2))]


def test_tags_compare_as_a_class() -> None:
    assert ref_class("refs/tags/v2.0") == "refs/tags/*"
    assert ref_class("refs/heads/main") == "refs/heads/main"
    assert build_context_changes("2.0", build("refs/tags/v2.0", run=3), TAGGED) == ()


@pytest.mark.parametrize(
    ("new", "claim", "old", "value"),
    [
        (build("refs/heads/main", run=3), "source-ref", ("refs/tags/*",), "refs/heads/main"),
        (build(trigger="workflow_dispatch", run=3), "trigger", ("release",), "workflow_dispatch"),
        (
            build(runner="self-hosted", run=3),
            "runner-environment",
            ("github-hosted",),
            "self-hosted",
        ),
        (build(run=2), "run-invocation", ("1.0",), RUN.format(2)),
    ],
)
def test_each_change_is_reported_with_old_and_new_values(
    new: BuildContext, claim: str, old: tuple[str, ...], value: str
) -> None:
    (change,) = build_context_changes("2.0", new, TAGGED)
    assert (change.claim, change.old, change.new) == (claim, old, value)
    assert value in change.describe()


def test_no_history_or_no_claims_is_no_change() -> None:
    assert build_context_changes("1.0", build(), []) == ()
    assert build_context_changes("1.0", None, TAGGED) == ()
    assert build_context_changes("1.0", build(), [("0.9", None)]) == ()


def test_a_claim_that_disappears_is_a_change() -> None:
    bare = BuildContext(source_ref="refs/tags/v2", run_invocation=RUN.format(9))
    claims = {c.claim: c.new for c in build_context_changes("2.0", bare, TAGGED)}
    assert claims == {"trigger": "(none)", "runner-environment": "(none)"}


# ---- decide() ----------------------------------------------------------------------------


def history(*items: tuple[str, BuildContext]) -> ProjectHistory:
    return ProjectHistory(
        "widget",
        tuple(
            HistoryRecord(
                project="widget",
                version=v,
                filename=f"widget-{v}-py3-none-any.whl",
                sha256=f"{i:064x}",
                identity=A,
                seen_at=NOW - timedelta(days=60 - i),
                build=b,
            )
            for i, (v, b) in enumerate(items)
        ),
    )


def result(b: BuildContext) -> VerificationResult:
    return VerificationResult(
        "widget-2.0-py3-none-any.whl",
        "ab" * 32,
        VerifyStatus.VERIFIED,
        "ok",
        identity=A,
        integrated_time=int((NOW - timedelta(days=10)).timestamp()),
        build=b,
    )


REF = FileRef("widget", "2.0", "widget-2.0-py3-none-any.whl")


def test_a_change_warns_by_default_and_is_recorded() -> None:
    res = result(build("refs/heads/main", run=3))
    v = decide(REF, res, parse_policy(""), history(*TAGGED), NOW)
    assert v.action is Action.WARN
    assert v.code is ReasonCode.VERIFIED_KNOWN
    assert "source ref refs/heads/main (earlier releases: refs/tags/*)" in v.reason
    assert [c.claim for c in v.build_changes] == ["source-ref"]
    (rec,) = history_records_for(REF, res, v, NOW)  # the new build becomes the history
    assert rec.build == res.build
    doc = v.to_json()
    assert doc["build_changes"] == [
        {"claim": "source-ref", "old": ["refs/tags/*"], "new": "refs/heads/main"}
    ]
    assert doc["build"]["source_ref"] == "refs/heads/main"


def test_a_change_is_refused_under_error() -> None:
    pol = parse_policy('[defaults]\non-build-context-change = "error"\n')
    for new in (
        build("refs/heads/main", run=3),
        build(trigger="workflow_dispatch", run=3),
        build(runner="self-hosted", run=3),
        build(run=2),  # the run that signed 1.0 signed 2.0 too
    ):
        v = decide(REF, result(new), pol, history(*TAGGED), NOW)
        assert v.action is Action.REFUSE
        assert v.code is ReasonCode.REFUSED_BUILD_CONTEXT_CHANGE
        assert v.rule == "defaults.on-build-context-change"
        assert history_records_for(REF, result(new), v, NOW) == ()
    v = decide(REF, result(build("refs/tags/v2.0", run=3)), pol, history(*TAGGED), NOW)
    assert v.action is Action.ALLOW


def test_a_refusal_keeps_its_reason_with_the_changes_attached() -> None:
    evil = PublisherIdentity(kind="GitHub", repository="evil/widget", workflow="release.yml")
    res = VerificationResult(
        REF.filename,
        "ab" * 32,
        VerifyStatus.VERIFIED,
        "ok",
        identity=evil,
        integrated_time=int((NOW - timedelta(days=10)).timestamp()),
        build=build(runner="self-hosted", run=3),
    )
    v = decide(REF, res, parse_policy(""), history(*TAGGED), NOW)
    assert v.code is ReasonCode.REFUSED_PUBLISHER_CHANGE
    assert [c.claim for c in v.build_changes] == ["runner-environment"]


def test_bad_setting_is_an_error() -> None:
    with pytest.raises(ConfigError, match="on-build-context-change"):
        parse_policy('[defaults]\non-build-context-change = "ignore"\n')


# ---- end to end: the index's earlier releases carry their build claims --------------------


def gh(name: str, **kw: Any) -> GitHubIdentity:
    return GitHubIdentity(repository=f"acme/{name}", workflow="release.yml", **kw)


@pytest.fixture(scope="module")
def lab(sigstore: TestSigstore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    root = tmp_path_factory.mktemp("build-index")
    with IndexServer(root / "index") as server:
        pub = Publisher(sigstore, server, root / "build")
        for name in ("branchy", "selfhost", "manual", "onerun"):
            pub.wheel(name, "1.0", identity=gh(name, ref="refs/tags/v1.0", trigger="release"))
            pub.wheel(name, "1.1", identity=gh(name, ref="refs/tags/v1.1", trigger="release"))
        pub.wheel(
            "branchy", "2.0", identity=gh("branchy", ref="refs/heads/main", trigger="release")
        )
        pub.wheel(
            "selfhost",
            "2.0",
            identity=gh(
                "selfhost",
                ref="refs/tags/v2.0",
                trigger="release",
                runner_environment="self-hosted",
            ),
        )
        pub.wheel(
            "manual",
            "2.0",
            identity=gh("manual", ref="refs/tags/v2.0", trigger="workflow_dispatch"),
        )
        pub.wheel(
            "onerun",
            "2.0",
            identity=gh("onerun", ref="refs/tags/v2.0", trigger="release", run_id="77"),
        )
        pub.wheel(
            "onerun",
            "2.1",
            identity=gh("onerun", ref="refs/tags/v2.1", trigger="release", run_id="77"),
        )
        yield server


@pytest.mark.parametrize(
    ("target", "claim", "new"),
    [
        ("branchy==2.0", "source-ref", "refs/heads/main"),
        ("selfhost==2.0", "runner-environment", "self-hosted"),
        ("manual==2.0", "trigger", "workflow_dispatch"),
        (
            "onerun==2.1",
            "run-invocation",
            "https://github.com/acme/onerun/actions/runs/77/attempts/1",
        ),
    ],
)
def test_inspect_reports_each_change_and_refuses_it_under_error(
    lab: IndexServer,
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    target: str,
    claim: str,
    new: str,
) -> None:
    args = ["inspect", target, "-i", lab.index_url, "--trust-root", str(trust_root), "--json"]
    capsys.readouterr()
    assert main(args) == 0  # warn: allowed, reported
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "warn"
    change = next(c for c in doc["build_changes"] if c["claim"] == claim)
    assert change["new"] == new
    assert change["old"]
    (workdir / "safe-pip.toml").write_text('[defaults]\non-build-context-change = "error"\n')
    assert main(args) == 1
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["code"] == "refused-build-context-change"
    assert new in doc["reason"]


def test_inspect_unchanged_build_is_allowed(
    lab: IndexServer, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "safe-pip.toml").write_text('[defaults]\non-build-context-change = "error"\n')
    args = ["inspect", "branchy==1.1", "-i", lab.index_url, "--trust-root", str(trust_root)]
    assert main([*args, "--json"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "allow"
    assert doc["build"]["source_ref"] == "refs/tags/v1.1"
    assert doc["build"]["trigger"] == "release"


# ---- the local history keeps the build claims ------------------------------------------


def test_store_keeps_build_claims_and_fills_a_gap(tmp_path: Path) -> None:
    from safe_pip.store.sqlite import SQLiteHistoryStore

    bare = HistoryRecord(
        project="widget",
        version="1.0",
        filename="widget-1.0-py3-none-any.whl",
        sha256="ab" * 32,
        identity=A,
        seen_at=NOW,
    )
    with SQLiteHistoryStore.open(tmp_path / "history.sqlite3") as store:
        store.record([bare])
        assert store.project("widget").records[0].build is None
        store.record([HistoryRecord(**{**bare.__dict__, "build": build()})])  # learnt later
        (rec,) = store.project("widget").records
        assert rec.build == build()
        store.record([HistoryRecord(**{**bare.__dict__, "build": build(run=9)})])  # no rewrite
        assert store.project("widget").records[0].build == build()
        doc = store.export()
    (item,) = doc["records"]
    assert item["build"] == build().to_json()
    with SQLiteHistoryStore.open(tmp_path / "other.sqlite3") as other:  # export / import keep it
        other.import_(doc)
        assert other.project("widget").records[0].build == build()
    doc["records"][0]["build"] = {"source_ref": 1}
    with (
        SQLiteHistoryStore.open(tmp_path / "third.sqlite3") as third,
        pytest.raises(ConfigError, match="build must be null or an object"),
    ):
        third.import_(doc)


def test_local_history_catches_a_branch_build_after_tag_builds(
    lab: IndexServer, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Recorded by this machine (``--record``), then compared without reading the index."""
    home = ["--home", str(workdir / "home")]
    base = ["inspect", "-i", lab.index_url, "--trust-root", str(trust_root), *home]
    assert main([*base[:1], "branchy==1.0", *base[1:], "--record"]) == 0
    assert main([*base[:1], "branchy==1.1", *base[1:], "--record"]) == 0
    capsys.readouterr()
    assert main([*base[:1], "branchy==2.0", *base[1:], "--no-index-history", "--json"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "warn"
    assert [c["claim"] for c in doc["build_changes"]] == ["source-ref"]
