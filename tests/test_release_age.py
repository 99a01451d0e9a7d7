"""Release age and provenance states: decide() with chosen log and upload times (pure), the
policy keys, and the faces end to end with lab packages signed at chosen integrated times."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from safe_pip.cli import main
from safe_pip.errors import ConfigError
from safe_pip.models import (
    Action,
    FileRef,
    PublisherIdentity,
    ReasonCode,
    Verdict,
    VerificationResult,
    VerifyStatus,
)
from safe_pip.policy.age import format_duration, parse_duration, parse_upload_time
from safe_pip.policy.file import Policy, parse_policy
from safe_pip.policy.history import HistoryRecord, ProjectHistory
from safe_pip.policy.provenance_state import merge_release_states
from safe_pip.policy.rules import decide
from support.index_server import IndexServer
from support.packages import sha256_file
from support.publish import Publisher
from support.sigstore_ca import GitHubIdentity, TestSigstore

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SHA = "ab" * 32
A = PublisherIdentity(kind="GitHub", repository="acme/widget", workflow="release.yml")
B = PublisherIdentity(kind="GitHub", repository="evil/widget", workflow="release.yml")


def ref(version: str = "1.0", uploaded: datetime | None = None, name: str = "widget") -> FileRef:
    return FileRef(
        project=name,
        version=version,
        filename=f"{name}-{version}-py3-none-any.whl",
        upload_time=uploaded.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if uploaded else None,
    )


def signed(at: datetime, identity: PublisherIdentity = A) -> VerificationResult:
    return VerificationResult(
        "widget-1.0-py3-none-any.whl",
        SHA,
        VerifyStatus.VERIFIED,
        "ok",
        identity=identity,
        integrated_time=int(at.timestamp()),
    )


def unsigned() -> VerificationResult:
    return VerificationResult(
        "widget-1.0-py3-none-any.whl", SHA, VerifyStatus.UNSIGNED, "no provenance", "no-prov"
    )


def pol(text: str = "") -> Policy:
    return parse_policy(text, Path("safe-pip.toml"))


def hist(*items: tuple[str, PublisherIdentity | None], name: str = "widget") -> ProjectHistory:
    return ProjectHistory(
        name,
        tuple(
            HistoryRecord(
                project=name,
                version=v,
                filename=f"{name}-{v}-{i}.whl",
                sha256=f"{i:064x}",
                identity=ident,
                seen_at=NOW - timedelta(days=100 - i),
            )
            for i, (v, ident) in enumerate(items)
        ),
    )


EMPTY = ProjectHistory.empty("widget")
UNSIGNED_OK = "[defaults]\nrequire-attestation = false\n"

# ---- decide(): the rule itself ------------------------------------------------------------


def test_too_new_attested_file_is_refused_with_the_time_it_becomes_acceptable() -> None:
    v = decide(ref(), signed(NOW - timedelta(hours=2)), pol(), EMPTY, NOW)
    assert v.action is Action.REFUSE
    assert v.code is ReasonCode.REFUSED_TOO_NEW
    assert v.acceptable_from == (NOW + timedelta(days=3, hours=-2)).isoformat()
    assert "acceptable from 2026-06-04 10:00 UTC" in v.reason
    assert "transparency log time" in v.reason
    assert "--min-release-age 0" in v.fix
    assert v.min_release_age == "3d"
    assert v.release_time_source == "transparency-log"


def test_old_enough_attested_file_is_allowed() -> None:
    v = decide(ref(), signed(NOW - timedelta(days=3, seconds=1)), pol(), EMPTY, NOW)
    assert v.code is ReasonCode.VERIFIED_FIRST_USE
    assert v.acceptable_from is not None


def test_backdated_upload_time_does_not_help_an_attested_file() -> None:
    young = signed(NOW - timedelta(minutes=30))
    v = decide(ref(uploaded=NOW - timedelta(days=400)), young, pol(), EMPTY, NOW)
    assert v.code is ReasonCode.REFUSED_TOO_NEW
    assert v.release_time_source == "transparency-log"


def test_unsigned_young_file_is_refused_by_its_index_upload_time() -> None:
    v = decide(ref(uploaded=NOW - timedelta(hours=3)), unsigned(), pol(UNSIGNED_OK), EMPTY, NOW)
    assert v.code is ReasonCode.REFUSED_TOO_NEW
    assert "index-asserted" in v.reason
    assert v.release_time_source == "index-asserted"


def test_unsigned_old_file_is_allowed() -> None:
    v = decide(ref(uploaded=NOW - timedelta(days=10)), unsigned(), pol(UNSIGNED_OK), EMPTY, NOW)
    assert v.code is ReasonCode.UNSIGNED_ALLOWED


def test_age_unknown_is_refused_by_default_and_warned_when_the_policy_says_so() -> None:
    v = decide(ref(), unsigned(), pol(UNSIGNED_OK), EMPTY, NOW)
    assert v.code is ReasonCode.REFUSED_AGE_UNKNOWN
    assert v.action is Action.REFUSE
    assert "unknown" in v.reason
    warn = pol(UNSIGNED_OK + 'on-unknown-release-age = "warn"\n')
    v = decide(ref(), unsigned(), warn, EMPTY, NOW)
    assert v.action is Action.WARN
    assert v.code is ReasonCode.REFUSED_AGE_UNKNOWN


def test_command_line_override_for_one_run() -> None:
    young = signed(NOW - timedelta(hours=1))
    off = pol().with_min_release_age(timedelta(0))
    v = decide(ref(), young, off, EMPTY, NOW)
    assert v.code is ReasonCode.VERIFIED_FIRST_USE
    assert v.min_release_age == "0"
    assert v.acceptable_from is None
    # stricter for one run: replaces the per-package setting too
    text = (
        '[[package]]\nname = "widget"\nmin-release-age = "0"\npublishers = '
        '[{ kind = "GitHub", repository = "acme/widget", workflow = "release.yml" }]\n'
    )
    week = pol(text).with_min_release_age(timedelta(days=7))
    v = decide(ref(), signed(NOW - timedelta(days=4)), week, EMPTY, NOW)
    assert v.code is ReasonCode.REFUSED_TOO_NEW
    assert v.rule == "--min-release-age"


def test_per_package_and_unsigned_entry_overrides() -> None:
    pkg = (
        '[[package]]\nname = "widget"\nmin-release-age = "1h"\npublishers = '
        '[{ kind = "GitHub", repository = "acme/widget", workflow = "release.yml" }]\n'
    )
    v = decide(ref(), signed(NOW - timedelta(hours=2)), pol(pkg), EMPTY, NOW)
    assert v.code is ReasonCode.VERIFIED_ALLOWLISTED
    v = decide(ref(), signed(NOW - timedelta(minutes=10)), pol(pkg), EMPTY, NOW)
    assert v.code is ReasonCode.REFUSED_TOO_NEW
    assert "[[package]] widget at safe-pip.toml:1" in v.rule
    exc = '[[unsigned]]\nname = "widget"\nversions = "==1.0"\nreason = "r"\nmin-release-age = "0"\n'
    v = decide(ref(), unsigned(), pol(exc), EMPTY, NOW)  # reviewed exact bytes: no age needed
    assert v.code is ReasonCode.UNSIGNED_ALLOWED
    v = decide(ref("2.0"), unsigned(), pol(exc), EMPTY, NOW)  # not covered: no override
    assert v.code is ReasonCode.REFUSED_UNSIGNED


def test_a_refusal_keeps_its_own_reason() -> None:
    v = decide(ref("2.0"), signed(NOW - timedelta(hours=1), B), pol(), hist(("1.0", A)), NOW)
    assert v.code is ReasonCode.REFUSED_PUBLISHER_CHANGE
    assert v.acceptable_from is not None  # still reported


def test_future_log_time_is_too_new() -> None:
    v = decide(ref(), signed(NOW + timedelta(days=1)), pol(), EMPTY, NOW)
    assert v.code is ReasonCode.REFUSED_TOO_NEW


def test_warned_publisher_change_is_still_refused_when_too_new() -> None:
    warn = pol('[defaults]\non-publisher-change = "warn"\n')
    v = decide(ref("2.0"), signed(NOW - timedelta(days=5), B), warn, hist(("1.0", A)), NOW)
    assert v.action is Action.WARN
    v = decide(ref("2.0"), signed(NOW - timedelta(hours=5), B), warn, hist(("1.0", A)), NOW)
    assert v.code is ReasonCode.REFUSED_TOO_NEW
    assert "publisher changed" in v.reason


# ---- the policy keys and durations ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"), [("3d", timedelta(days=3)), ("36h", timedelta(hours=36)), ("0", None)]
)
def test_durations(text: str, value: timedelta | None) -> None:
    assert parse_duration(text) == (value or timedelta(0))
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize("bad", ["3", "3w", "-1d", "1.5d", "", "d", "400d", "3 days"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError, match=r"release age|unit|year"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[defaults]\nmin-release-age = "3w"\n', "safe-pip.toml:2: defaults.min-release-age"),
        ("[defaults]\nmin-release-age = 3\n", "must be a string"),
        ('[defaults]\non-unknown-release-age = "allow"\n', '"error" or "warn"'),
        (
            '[[package]]\nname = "w"\nmin-release-age = "x"\npublishers = '
            '[{ kind = "GitHub", repository = "a/w", workflow = "r.yml" }]\n',
            "safe-pip.toml:3: [[package]] w: min-release-age",
        ),
    ],
)
def test_policy_errors_name_file_and_line(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        pol(text)
    assert words in info.value.message


def test_upload_time_parsing() -> None:
    assert parse_upload_time("2026-01-02T03:04:05.123456Z") == datetime(
        2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc
    )
    assert parse_upload_time("2026-01-02T03:04:05") is None  # no zone: not trusted
    assert parse_upload_time("yesterday") is None


# ---- provenance states ----------------------------------------------------------------------

OLD = NOW - timedelta(days=30)


@pytest.mark.parametrize(
    ("history", "result", "state"),
    [
        ((), "A", "full"),
        ((("1.0", A),), "A", "full"),
        ((), "unsigned", "no"),
        ((("1.0", None),), "unsigned", "no"),
        ((("1.0", A),), "unsigned", "lost"),
        ((("1.0", A),), "B", "changed"),
        ((("0.9", B), ("1.0", A)), "A", "full"),  # against the previous attested release
        ((("2.0", A),), "A", "partial"),  # another file of 2.0 was unsigned... see below
    ],
)
def test_provenance_state_against_history(
    history: tuple[tuple[str, PublisherIdentity | None], ...], result: str, state: str
) -> None:
    version = "2.0"
    items = history
    if state == "partial":
        items = (("2.0", None),)
    res = (
        unsigned()
        if result == "unsigned"
        else replace(signed(OLD), identity=A if result == "A" else B)
    )
    v = decide(ref(version, uploaded=OLD), res, pol(UNSIGNED_OK), hist(*items), NOW)
    assert v.provenance_state == state, v.reason


def test_inconsistent_when_one_release_has_two_publishers() -> None:
    v = decide(ref("2.0"), signed(OLD, B), pol(), hist(("2.0", A)), NOW)
    assert v.provenance_state == "inconsistent"


def test_invalid_attestation_has_no_state() -> None:
    bad = VerificationResult("w.whl", SHA, VerifyStatus.INVALID, "bad", "bad-signature")
    assert decide(ref(), bad, pol(), EMPTY, NOW).provenance_state is None


def test_one_run_merges_a_release_files_into_one_state() -> None:
    whl = decide(ref("2.0", uploaded=OLD), signed(OLD), pol(UNSIGNED_OK), EMPTY, NOW)
    sdist_ref = replace(ref("2.0", uploaded=OLD), filename="widget-2.0.tar.gz")
    sdist = decide(sdist_ref, unsigned(), pol(UNSIGNED_OK), EMPTY, NOW)
    merged = merge_release_states([whl, sdist])
    assert [v.provenance_state for v in merged] == ["partial", "partial"]
    other = decide(ref("2.0"), signed(OLD, B), pol(), EMPTY, NOW)
    merged = merge_release_states([whl, other])
    assert [v.provenance_state for v in merged] == ["inconsistent", "inconsistent"]


# ---- the faces, end to end ---------------------------------------------------------------

REAL_NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def lab(sigstore: TestSigstore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    root = tmp_path_factory.mktemp("age-index")
    with IndexServer(root / "index") as server:
        pub = Publisher(sigstore, server, root / "build")
        pub.wheel("fresh", "1.0", signed_at=REAL_NOW - timedelta(days=20))
        # the new release: signed an hour ago, its upload-time backdated by the index
        pub.wheel(
            "fresh",
            "1.1",
            signed_at=REAL_NOW - timedelta(hours=1),
            uploaded_at=REAL_NOW - timedelta(days=300),
        )
        pub.wheel("young", "1.0", signed=False, uploaded_at=REAL_NOW - timedelta(hours=2))
        pub.wheel("aged", "1.0", signed=False, uploaded_at=REAL_NOW - timedelta(days=9))
        pub.wheel("moved", "1.0", signed_at=REAL_NOW - timedelta(days=20))
        pub.wheel(
            "moved",
            "2.0",
            identity=GitHubIdentity(repository="evil/moved"),
            signed_at=REAL_NOW - timedelta(days=10),
        )
        yield server


def _inspect(
    lab: IndexServer, target: str, trust_root: Path, capsys: Any, *extra: str
) -> tuple[int, list[dict[str, Any]]]:
    capsys.readouterr()
    code = main(
        ["inspect", target, "-i", lab.index_url, "--trust-root", str(trust_root), "--json", *extra]
    )
    return code, json.loads(capsys.readouterr().out)


def test_inspect_refuses_a_too_new_release_with_its_date(
    lab: IndexServer, trust_root: Path, workdir: Path, capsys: Any
) -> None:
    code, docs = _inspect(lab, "fresh==1.1", trust_root, capsys)
    assert code == 1
    (doc,) = docs
    assert doc["code"] == "refused-too-new"
    assert doc["release_time_source"] == "transparency-log"  # not the backdated upload-time
    when = datetime.fromisoformat(doc["acceptable_from"])
    assert abs(when - (REAL_NOW + timedelta(days=2, hours=23))) < timedelta(minutes=5)
    assert doc["provenance_state"] == "full"
    code, docs = _inspect(lab, "fresh==1.0", trust_root, capsys)
    assert code == 0
    code, docs = _inspect(lab, "fresh==1.1", trust_root, capsys, "--min-release-age", "0")
    assert code == 0, docs
    assert docs[0]["min_release_age"] == "0"


def test_inspect_text_shows_age_and_state(
    lab: IndexServer, trust_root: Path, workdir: Path, capsys: Any
) -> None:
    capsys.readouterr()
    code = main(["inspect", "moved==2.0", "-i", lab.index_url, "--trust-root", str(trust_root)])
    out = capsys.readouterr().out
    assert code == 1
    assert "provenance: changed provenance (PyPI's terms)" in out
    assert "minimum release age 3d" in out
    assert "(transparency log)" in out


def test_unsigned_files_are_aged_by_upload_time(
    lab: IndexServer, trust_root: Path, workdir: Path, capsys: Any
) -> None:
    (workdir / "safe-pip.toml").write_text(UNSIGNED_OK)
    code, docs = _inspect(lab, "young==1.0", trust_root, capsys)
    assert code == 1
    assert docs[0]["code"] == "refused-too-new"
    assert docs[0]["release_time_source"] == "index-asserted"
    code, docs = _inspect(lab, "aged==1.0", trust_root, capsys)
    assert code == 0
    assert docs[0]["provenance_state"] == "no"


def test_bad_command_line_age_is_a_usage_error(
    lab: IndexServer, trust_root: Path, workdir: Path, capsys: Any
) -> None:
    assert main(["inspect", "fresh==1.1", "--min-release-age", "soon"]) == 2
    assert "release age" in capsys.readouterr().err


def test_verify_fails_a_lock_naming_a_too_new_file_at_its_line(
    lab: IndexServer, trust_root: Path, workdir: Path, capsys: Any
) -> None:
    lock = workdir / "pylock.toml"
    # lock both releases of "fresh": 1.1 (an hour old) fails at its own line
    lines = ['lock-version = "1.0"', 'created-by = "t"']
    for dist in lab.dists("fresh"):
        lines += [
            "",
            "[[packages]]",
            f'name = "fresh"\nversion = "{dist.version}"',
            f'index = "{lab.index_url}"',
            "[[packages.wheels]]",
            f'name = "{dist.filename}"',
            f'url = "{lab.file_url("fresh", dist.filename)}"',
            f'hashes = {{ sha256 = "{sha256_file(dist.path)}" }}',
        ]
    lock.write_text("\n".join(lines) + "\n")
    for fmt in ("json", "text", "sarif", "junit"):
        capsys.readouterr()
        code = main(["verify", str(lock), "--trust-root", str(trust_root), "--format", fmt])
        out = capsys.readouterr().out
        assert code == 1, out
        if fmt == "json":
            files = [f for lk in json.loads(out)["locks"] for f in lk["files"]]
            bad = [f for f in files if f["status"] == "fail"]
            assert [f["version"] for f in bad] == ["1.1"]
            assert bad[0]["code"] == "refused-too-new"
            young = next(d.filename for d in lab.dists("fresh") if d.version == "1.1")
            want = lock.read_text().splitlines().index(f'name = "{young}"') + 1
            assert want <= bad[0]["line"] <= want + 2  # the locked file's own table
            assert {f["provenance_state"] for f in files} == {"full"}
        elif fmt == "text":
            assert "refused-too-new" in out
            assert "provenance: full provenance" in out
        elif fmt == "sarif":
            (result,) = json.loads(out)["runs"][0]["results"]
            assert result["ruleId"] == "refused-too-new"
            assert result["properties"]["provenanceState"] == "full"
        else:
            assert 'name="provenance-state" value="full"' in out


def _verdict_json(v: Verdict) -> dict[str, Any]:
    return v.to_json()


def test_verdict_json_carries_age_and_state() -> None:
    v = decide(ref(), signed(OLD), pol(), EMPTY, NOW)
    doc = _verdict_json(v)
    assert doc["provenance_state"] == "full"
    assert doc["release_time_source"] == "transparency-log"
    assert doc["min_release_age"] == "3d"


def test_serve_leaves_too_new_files_out_and_serves_them_once_old_enough(
    lab: IndexServer, trust_root: Path, tmp_path: Path
) -> None:
    import urllib.request

    from safe_pip.check import Checker
    from safe_pip.provenance.trust import TrustConfig
    from safe_pip.serve import EventLog, start_server
    from safe_pip.serve.pages import JSON_V1
    from safe_pip.store.sqlite import SQLiteHistoryStore

    store = SQLiteHistoryStore.open(tmp_path / "history.sqlite3")
    checker = Checker(
        trust=TrustConfig.from_options(trust_root=trust_root),
        policy=Policy.default(),
        store=store,
        provenance_index=lab.index_url,
        now=REAL_NOW,
    )
    log = EventLog(quiet=True, keep=True)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def files(url: str) -> list[str]:
        req = urllib.request.Request(url + "fresh/", headers={"Accept": JSON_V1})
        with opener.open(req, timeout=30) as resp:
            return sorted(f["filename"] for f in json.loads(resp.read())["files"])

    try:
        with start_server(checker, lab.index_url, log=log, page_ttl=0) as srv:
            assert files(srv.index_url) == ["fresh-1.0-py3-none-any.whl"]
            (refused,) = [e for e in log.events if e["event"] == "refuse"]
            assert refused["code"] == "refused-too-new"
            assert refused["filename"] == "fresh-1.1-py3-none-any.whl"
            assert refused["acceptable_from"]
            assert "acceptable from" in refused["reason"]
            # three days later the cached refusal is decided again, and the file is served
            checker.now = REAL_NOW + timedelta(days=3)
            assert files(srv.index_url) == [
                "fresh-1.0-py3-none-any.whl",
                "fresh-1.1-py3-none-any.whl",
            ]
    finally:
        log.close()
        store.close()


def test_serve_block_mode_leaves_out_files_too_new_by_upload_time_before_verifying(
    sigstore: TestSigstore, trust_root: Path, tmp_path: Path
) -> None:
    """The index's upload-time already says the new release is young: the page leaves it out
    (block mode too) without verifying it, so a resolver picks 1.0."""
    import urllib.request

    from safe_pip.check import Checker
    from safe_pip.provenance.trust import TrustConfig
    from safe_pip.serve import EventLog, start_server
    from safe_pip.serve.pages import JSON_V1
    from safe_pip.store.sqlite import SQLiteHistoryStore

    with IndexServer(tmp_path / "index") as server:
        pub = Publisher(sigstore, server, tmp_path / "build")
        pub.wheel("quick", "1.0")
        pub.wheel(
            "quick",
            "1.1",
            signed_at=REAL_NOW - timedelta(hours=1),
            uploaded_at=REAL_NOW - timedelta(hours=1),
        )
        store = SQLiteHistoryStore.open(tmp_path / "history.sqlite3")
        checker = Checker(
            trust=TrustConfig.from_options(trust_root=trust_root),
            policy=Policy.default(),
            store=store,
            provenance_index=server.index_url,
            now=REAL_NOW,
        )
        log = EventLog(quiet=True, keep=True)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with start_server(checker, server.index_url, log=log, mode="block") as srv:
                req = urllib.request.Request(srv.index_url + "quick/", headers={"Accept": JSON_V1})
                with opener.open(req, timeout=30) as resp:
                    doc = json.loads(resp.read())
            assert [f["filename"] for f in doc["files"]] == ["quick-1.0-py3-none-any.whl"]
            assert doc["versions"] == ["1.0"]
            (refused,) = [e for e in log.events if e["event"] == "refuse"]
            assert refused["code"] == "refused-too-new"
            assert "without being verified" in refused["reason"]
            # the provenance of 1.1 was never fetched (that of 1.0 was)
            fetched = [r for r in server.requests_log if "/provenance/" in r]
            assert any("quick-1.0" in r for r in fetched), server.requests_log
            assert not any("quick-1.1" in r for r in fetched)
        finally:
            log.close()
            store.close()


def test_install_falls_back_to_an_older_acceptable_release_and_says_so(
    sigstore: TestSigstore, trust_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with IndexServer(tmp_path / "index") as server:
        pub = Publisher(sigstore, server, tmp_path / "build")
        pub.wheel("steady", "1.0")
        pub.wheel(
            "steady",
            "1.1",
            signed_at=REAL_NOW - timedelta(hours=2),
            uploaded_at=REAL_NOW - timedelta(hours=2),
        )
        # an attested release whose upload-time the index backdated: listed, then refused by
        # its log time when pip fetches it (never installed)
        pub.wheel("sneaky", "1.0")
        pub.wheel(
            "sneaky",
            "1.1",
            signed_at=REAL_NOW - timedelta(hours=2),
            uploaded_at=REAL_NOW - timedelta(days=200),
        )
        base = ["install", "--trust-root", str(trust_root), "-i", server.index_url]
        report = tmp_path / "report.json"
        target = tmp_path / "target"
        rc = main([*base, "--target", str(target), "--report", str(report), "steady"])
        out, err = capfd.readouterr()
        assert rc == 0, err
        assert (target / "steady" / "__init__.py").is_file()
        assert "steady-1.0" in out or "steady-1.0" in err or "steady 1.0" in out
        assert "left out 1 release(s) younger than the minimum release age: steady 1.1 (" in err
        assert "UTC); pip resolves older releases" in err
        doc = json.loads(report.read_text())
        assert [f["version"] for f in doc["files"]] == ["1.0"]
        assert [d["filename"] for d in doc["left_out_too_new"]] == ["steady-1.1-py3-none-any.whl"]
        # pinned to the young release: nothing older fits, so nothing is installed
        rc = main([*base, "--dry-run", "steady==1.1"])
        _out, err = capfd.readouterr()
        assert rc == 1
        assert "every release that fits steady==1.1 is younger than the minimum" in err
        assert "--min-release-age 0" in err
        # the one-run override takes the newest
        rc = main([*base, "--dry-run", "--min-release-age", "0", "steady"])
        out, err = capfd.readouterr()
        assert rc == 0, err
        assert "steady-1.1" in out
        # backdated upload-time: pip gets 1.1 listed, safe-pip refuses it by its log time
        rc = main([*base, "--dry-run", "sneaky"])
        _out, err = capfd.readouterr()
        assert rc == 1, err
        assert "refused-too-new" in err
