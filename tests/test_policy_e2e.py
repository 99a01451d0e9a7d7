"""Policy end to end through inspect and install: real signatures, the loopback index, the real
CLI, the real store (index history per release and per index, races, invalid policy)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from safe_pip.cli import main
from safe_pip.store.sqlite import SQLiteHistoryStore
from support.index_server import Fault, IndexServer
from support.publish import Publisher
from support.sigstore_ca import GitHubIdentity, TestSigstore

EVIL = GitHubIdentity(repository="evil/alpha", workflow="release.yml", repository_id="666")


def _inspect(
    capsys: pytest.CaptureFixture[str], target: str, *args: str
) -> tuple[int, dict[str, object]]:
    code = main(["inspect", target, "--json", *args])
    docs = json.loads(capsys.readouterr().out)
    assert len(docs) == 1
    return code, docs[0]


@pytest.fixture
def env(
    sigstore: TestSigstore, trust_root: Path, workdir: Path
) -> Iterator[tuple[Publisher, list[str], Path]]:
    server = IndexServer(workdir / "index").start()
    pub = Publisher(sigstore, server, workdir / "build")
    policy = workdir / "safe-pip.toml"
    policy.write_text("[defaults]\n")
    args = ["--trust-root", str(trust_root), "-i", server.index_url, "--policy", str(policy)]
    yield pub, args, policy
    server.stop()


def test_allowlisted_allowed_unlisted_refused(
    env: tuple[Publisher, list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pub, args, policy = env
    pub.wheel("alpha", "1.0")
    pub.wheel("alpha", "1.1", identity=EVIL)
    assert (
        main(
            [
                "allow",
                "add",
                "alpha",
                "--publisher",
                "github:acme/alpha@release.yml",
                "--policy",
                str(policy),
            ]
        )
        == 0
    )
    capsys.readouterr()
    code, v = _inspect(capsys, "alpha==1.0", *args)
    assert (code, v["code"]) == (0, "verified-allowlisted")
    code, v = _inspect(capsys, "alpha==1.1", *args)
    assert (code, v["code"]) == (1, "refused-unexpected-publisher")
    assert "allow add alpha" in str(v["fix"])


def test_first_use_recorded_then_publisher_change_refused(
    env: tuple[Publisher, list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pub, args, policy = env
    pub.wheel("alpha", "1.0")
    code, v = _inspect(capsys, "alpha==1.0", *args, "--record", "--no-index-history")
    assert (code, v["code"]) == (0, "verified-first-use")
    store = SQLiteHistoryStore.open(None, readonly=True)
    try:
        hist = store.project("alpha")
    finally:
        store.close()
    assert [r.identity.repository for r in hist.records if r.identity] == ["acme/alpha"]

    pub.wheel("alpha", "1.1", identity=EVIL)
    code, v = _inspect(capsys, "alpha==1.1", *args)
    assert (code, v["code"]) == (1, "refused-publisher-change")
    code, v = _inspect(capsys, "alpha==1.0", *args)
    assert (code, v["code"]) == (0, "verified-known")

    policy.write_text('[defaults]\non-publisher-change = "warn"\n')
    code, v = _inspect(capsys, "alpha==1.1", *args)
    assert code == 0
    assert v["verdict"] == "warn"
    assert v["code"] == "refused-publisher-change"
    assert v["allowed"] is True


def test_downgrade_refused_on_first_sight_thanks_to_index_history(
    env: tuple[Publisher, list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pub, args, _policy = env
    pub.wheel("alpha", "1.0")
    pub.wheel("alpha", "1.1")
    pub.wheel("alpha", "1.2", signed=False)
    # nothing recorded locally: the index's earlier releases are the history
    code, v = _inspect(capsys, "alpha==1.2", *args)
    assert (code, v["code"]) == (1, "refused-attestation-downgrade")
    # and a publisher switch on first sight is caught the same way
    pub.wheel("alpha", "1.3", identity=EVIL)
    code, v = _inspect(capsys, "alpha==1.3", *args)
    assert (code, v["code"]) == (1, "refused-publisher-change")
    # without index history it would have been first use
    code, v = _inspect(capsys, "alpha==1.3", *args, "--no-index-history")
    assert (code, v["code"]) == (0, "verified-first-use")


def test_downgrade_after_local_history(
    env: tuple[Publisher, list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pub, args, _policy = env
    pub.wheel("alpha", "1.0")
    assert _inspect(capsys, "alpha==1.0", *args, "--record", "--no-index-history")[0] == 0
    pub.wheel("alpha", "2.0", signed=False)
    code, v = _inspect(capsys, "alpha==2.0", *args, "--no-index-history")
    assert (code, v["code"]) == (1, "refused-attestation-downgrade")


def test_unsigned_exception_exact_versions_and_expiry(
    env: tuple[Publisher, list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pub, args, policy = env
    pub.wheel("six", "1.16.0", signed=False)
    pub.wheel("six", "1.17.0", signed=False)
    policy.write_text(
        '[defaults]\n\n[[unsigned]]\nname = "six"\nversions = "==1.16.0"\n'
        'reason = "upstream does not attest"\nexpires = 2099-01-01\n'
    )
    code, v = _inspect(capsys, "six==1.16.0", *args)
    assert (code, v["code"]) == (0, "unsigned-allowed")
    code, v = _inspect(capsys, "six==1.17.0", *args)
    assert (code, v["code"]) == (1, "refused-unsigned")
    policy.write_text(policy.read_text().replace("2099-01-01", "2020-01-01"))
    code, v = _inspect(capsys, "six==1.16.0", *args)
    assert (code, v["code"]) == (1, "refused-unsigned")
    assert "expired" in str(v["reason"])


def test_invalid_policy_is_exit_2_with_line(
    env: tuple[Publisher, list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pub, args, policy = env
    pub.wheel("alpha", "1.0")
    policy.write_text("[defaults]\nrequire-attestation = true\nsurprise = 1\n")
    assert main(["inspect", "alpha==1.0", *args]) == 2
    err = capsys.readouterr().err
    assert f"{policy}:3" in err
    assert "surprise" in err


def test_install_reads_index_history_from_the_files_own_index(
    env: tuple[Publisher, list[str], Path], workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A first install of a release whose publisher breaks its project's pattern on the index
    the files come from is refused, and nothing is installed (index history, not PyPI's)."""
    pub, args, _policy = env
    pub.wheel("app", "1.0", requires=["gamma"])
    pub.wheel("gamma", "1.0")
    pub.wheel("gamma", "2.0", identity=EVIL)
    target = workdir / "target"
    code = main(["install", *args, "--target", str(target), "app"])
    captured = capsys.readouterr()
    assert code == 1
    assert "refused-publisher-change" in captured.err + captured.out
    assert not target.exists() or not any(target.iterdir())


def test_history_is_per_release_decided(
    sigstore: TestSigstore, trust_root: Path, workdir: Path
) -> None:
    """The history is one sequence (publication order), the same whichever file is decided
    first: a change at 2.0 refuses every file decided from history, naming 2.0."""
    from safe_pip.check import Checker
    from safe_pip.net import Http, SimpleIndex
    from safe_pip.policy.file import Policy
    from safe_pip.provenance.trust import TrustConfig

    with IndexServer(workdir / "index") as server:
        pub = Publisher(sigstore, server, workdir / "build")
        pub.wheel("alpha", "1.0")
        pub.wheel("alpha", "1.1")
        pub.wheel("alpha", "2.0", identity=EVIL)
        http = Http()
        checker = Checker(
            trust=TrustConfig(mode="custom", path=trust_root),
            policy=Policy.default(),
            http=http,
            jobs=1,
            provenance_index=server.index_url,
        )
        files = SimpleIndex(http, server.index_url).project("alpha").files
        for reverse in (False, True):
            refs = sorted(files, key=lambda f: f.version, reverse=reverse)
            verdicts = checker.check(refs, download_dir=workdir)
            assert {v.version: v.code.value for v in verdicts} == {
                "1.0": "refused-publisher-change",
                "1.1": "refused-publisher-change",
                "2.0": "refused-publisher-change",
            }
            for v in verdicts:
                where = (
                    "publisher changed: signed by GitHub evil"
                    if v.version == "2.0"
                    else "at alpha 2.0"
                )
                assert where in v.reason, v.reason


def test_install_that_loses_a_first_use_race_installs_nothing(
    env: tuple[Publisher, list[str], Path],
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """threat T20: another run records a different first publisher between this run's
    decision and its recording. The history is recorded before pip installs, so this run
    stops with nothing installed (not after installing the loser's files)."""
    from datetime import datetime, timezone

    from safe_pip.check import Checker
    from safe_pip.models import PublisherIdentity
    from safe_pip.policy.history import HistoryRecord

    pub, args, _policy = env
    pub.wheel("alpha", "1.0")
    real_record = Checker.record

    def racing_record(self: Checker, *a: object, **kw: object) -> None:
        store = SQLiteHistoryStore.open(None)
        try:
            store.record(
                [
                    HistoryRecord(
                        project="alpha",
                        version="0.9",
                        filename="alpha-0.9-py3-none-any.whl",
                        sha256="ab" * 32,
                        identity=PublisherIdentity(
                            kind="GitHub", repository="other/alpha", workflow="release.yml"
                        ),
                        seen_at=datetime.now(timezone.utc),
                        index=None,
                        source="local",
                    )
                ]
            )
        finally:
            store.close()
        real_record(self, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Checker, "record", racing_record)
    target = workdir / "target"
    code = main(["install", *args, "--no-index-history", "--target", str(target), "alpha"])
    err = capsys.readouterr().err
    assert code == 1
    assert "history changed while this run was deciding" in err
    assert "nothing was installed" in err
    assert not target.exists() or not any(target.iterdir())


def test_unreadable_index_history_is_could_not_check_not_first_use(
    env: tuple[Publisher, list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A history that cannot be read must not become "first use" (fail closed)."""
    pub, args, _policy = env
    pub.wheel("alpha", "1.0")
    stored = pub.wheel("alpha", "1.1")
    # the provenance of the earlier release cannot be read: the history is unknown
    pub.server.faults[f"/provenance/alpha/{pub.server.dists('alpha')[0].filename}"] = Fault(
        status=503
    )
    code, v = _inspect(capsys, "alpha==1.1", *args)
    assert (code, v["code"]) == (3, "could-not-check")
    assert "earlier releases" in str(v["reason"])
    assert "--no-index-history" in str(v["fix"])
    # choosing to decide without the index's history is explicit
    code, v = _inspect(capsys, "alpha==1.1", *args, "--no-index-history")
    assert (code, v["code"]) == (0, "verified-first-use")
    assert stored.name == "alpha-1.1-py3-none-any.whl"


def test_signer_that_is_no_trusted_publisher_is_never_trusted(
    sigstore: TestSigstore, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid Sigstore signature by an identity that is not a Trusted Publisher kind (here a
    personal e-mail through Sigstore's own OAuth issuer) is refused even on first use: no
    allowlist entry could ever name it, so trusting it once would refuse its next release."""
    from support.packages import build_wheel, sha256_file
    from support.sigstore_ca import GoogleIdentity, attestation_dict

    personal = GoogleIdentity(email="mallory@example.com")
    issuer = "https://oauth2.sigstore.dev/auth"
    with IndexServer(workdir / "index") as server:
        wheel = build_wheel(workdir / "b", "other", "1.0")
        att = sigstore.attest(
            wheel.name,
            sha256_file(wheel),
            personal,
            claims_override={
                "1.3.6.1.4.1.57264.1.8": issuer,
                "1.3.6.1.4.1.57264.1.1": issuer.encode(),
            },
        )
        # the index's publisher object could not name this signer either: a bare attestation
        server.add_file(wheel, provenance=json.dumps(attestation_dict(att)).encode())
        args = ["--trust-root", str(trust_root), "-i", server.index_url, "--no-index-history"]
        code, v = _inspect(capsys, "other==1.0", *args, "--record")
    assert code == 1
    assert v["code"] == "refused-unexpected-publisher"
    assert v["identity"]["kind"] == "Other"  # type: ignore[index]
    assert "not a Trusted Publisher identity" in str(v["reason"])
    assert v["fix"] == ""
    store = SQLiteHistoryStore.open(None, readonly=True)
    try:
        assert store.project("other").records == ()
    finally:
        store.close()


@pytest.mark.parametrize("installed_unsigned_before", [False, True])
def test_unsigned_local_history_does_not_switch_off_index_history(
    sigstore: TestSigstore,
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    installed_unsigned_before: bool,
) -> None:
    """A machine that once installed an old unsigned release (allowed by an exception) must
    refuse a publisher switch exactly like a fresh machine: local history with no attested
    record is merged with the index's attested history, not used instead of it."""
    with IndexServer(workdir / "index") as server:
        pub = Publisher(sigstore, server, workdir / "build")
        pub.wheel("foo", "1.0", signed=False)
        policy = workdir / "safe-pip.toml"
        policy.write_text(
            '[[unsigned]]\nname = "foo"\nversions = "==1.0"\nreason = "old, reviewed"\n'
        )
        common = ["--trust-root", str(trust_root), "-i", server.index_url, "--policy", str(policy)]
        if installed_unsigned_before:
            code, v = _inspect(capsys, "foo==1.0", *common, "--record")
            assert (code, v["code"]) == (0, "unsigned-allowed")
        pub.wheel("foo", "1.1")
        pub.wheel("foo", "1.2")
        pub.wheel("foo", "2.0", identity=GitHubIdentity(repository="evil/foo"))
        code, v = _inspect(capsys, "foo==2.0", *common)
    assert (code, v["code"]) == (1, "refused-publisher-change")


def test_yanked_attested_releases_still_count_as_history(
    sigstore: TestSigstore, trust_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Yanking the attested earlier releases must not wipe the pattern a new publisher breaks."""
    with IndexServer(workdir / "index") as server:
        pub = Publisher(sigstore, server, workdir / "build")
        for version in ("1.0", "1.1", "1.2"):
            pub.wheel("foo", version, yanked="withdrawn")
        pub.wheel("foo", "2.0", identity=GitHubIdentity(repository="evil/foo"))
        code, v = _inspect(
            capsys, "foo==2.0", "--trust-root", str(trust_root), "-i", server.index_url
        )
    assert (code, v["code"]) == (1, "refused-publisher-change")
