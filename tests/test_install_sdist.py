"""``safe-pip install`` with sdists (ADR 0003) and with several indexes (ADR 0005), end to end:
real pip against local index servers serving test-signed packages, real Sigstore verification
with the test trust root.

- allow-sdist = true: pip resolves through the in-process verifying index (block mode), so
  the sdist and its build dependencies are verified before pip uses them; verified sdists are
  built into wheels with build dependencies fetched through the same index (threat T12).
- allow-sdist off: the sdist is refused with the explanation and how to turn builds on.
- -i plus --extra-index-url: a project listed on both is refused unless the policy names its
  publisher (threat T11).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from safe_pip.cli import main
from support.index_server import IndexServer
from support.publish import Publisher
from support.sigstore_ca import GitHubIdentity, TestSigstore
from test_install import PipSpy, tree_digest

slow = pytest.mark.slow

ALLOW_SDIST = "[defaults]\nallow-sdist = true\n"


@pytest.fixture(scope="module")
def index(
    sigstore: TestSigstore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IndexServer]:
    root = tmp_path_factory.mktemp("sdist-index")
    with IndexServer(root / "index") as server:
        pub = Publisher(sigstore, server, root / "build")
        # An sdist-only project whose build needs a signed backend, and one whose build
        # needs an unsigned one.
        pub.sdist("built-app", "1.0", requires=["lib-dep"], build_requires=["good-backend"])
        pub.wheel("lib-dep", "1.0")
        pub.wheel("good-backend", "1.0")
        pub.sdist("evil-app", "1.0", build_requires=["evil-backend"])
        pub.wheel("evil-backend", "1.0", signed=False)
        yield server


@pytest.fixture
def target(tmp_path: Path) -> Path:
    t = tmp_path / "target"
    t.mkdir()
    (t / "MARKER.txt").write_text("pre-existing\n", encoding="utf-8")
    return t


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> PipSpy:
    s = PipSpy()
    s.install(monkeypatch)
    return s


def policy_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "safe-pip.toml"
    path.write_text(text, encoding="utf-8")
    return path


def args_for(index: IndexServer, trust_root: Path, target: Path, policy: Path | None) -> list[str]:
    args = ["install", "--trust-root", str(trust_root), "-i", index.index_url]
    args += ["--provenance-index", index.index_url, "--target", str(target)]
    return args + (["--policy", str(policy)] if policy is not None else [])


# -- sdists ------------------------------------------------------------------------------------


@slow
def test_allow_sdist_builds_through_the_verifying_index(
    index: IndexServer,
    trust_root: Path,
    target: Path,
    spy: PipSpy,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    policy = policy_file(tmp_path, ALLOW_SDIST)
    rc = main([*args_for(index, trust_root, target, policy), "built-app", "--json"])
    out, err = capfd.readouterr()
    assert rc == 0, err
    assert (target / "built_app" / "__init__.py").is_file()
    assert (target / "lib_dep" / "__init__.py").is_file()
    assert not (target / "good_backend").exists()  # a build dependency, never installed

    # Resolution went through the verifying index, without --only-binary; the sdist was built
    # with `pip wheel` through the same index; one offline hash-pinned install.
    resolve, build, inst = spy.calls
    assert "--dry-run" in resolve
    assert "--only-binary" not in resolve
    served_index = resolve[resolve.index("--index-url") + 1]
    assert served_index.startswith("http://127.0.0.1:")
    assert index.index_url not in resolve
    assert build[0] == "wheel"
    assert build[build.index("--index-url") + 1] == served_index
    assert "--no-deps" in build
    assert "--require-hashes" in build
    for flag in ("--no-index", "--no-deps", "--require-hashes", "--isolated"):
        assert flag in inst
    reqs_text = [a for a in inst if a.endswith(".txt")]
    assert reqs_text

    doc = json.loads(out)
    assert doc["installed"] is True
    assert doc["sdist_builds"] is True
    files = {f["filename"]: f for f in doc["files"]}
    assert set(files) == {"built_app-1.0.tar.gz", "lib_dep-1.0-py3-none-any.whl"}
    sdist = files["built_app-1.0.tar.gz"]
    assert sdist["verdict"] == "allow"
    assert sdist["verified"] is True
    assert sdist["built_wheel"]["filename"] == "built_app-1.0-py3-none-any.whl"
    (built,) = doc["built"]
    assert built["built_from"] == "built_app-1.0.tar.gz"
    assert built["attested"] is False
    assert built["sha256"] == sdist["built_wheel"]["sha256"]
    build_files = {f["filename"]: f for f in doc["build_files"]}
    assert build_files["good_backend-1.0-py3-none-any.whl"]["verdict"] == "allow"

    # The sdist's verified publisher is in the history.
    from safe_pip.store.sqlite import SQLiteHistoryStore

    with SQLiteHistoryStore.open(None, readonly=True) as store:
        hist = store.project("built-app")
    assert hist.records
    assert hist.records[0].filename == "built_app-1.0.tar.gz"
    assert hist.records[0].identity is not None
    assert hist.records[0].identity.repository == "acme/built-app"


@slow
def test_allow_sdist_unsigned_build_dependency_refuses_everything(
    index: IndexServer,
    trust_root: Path,
    target: Path,
    spy: PipSpy,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    policy = policy_file(tmp_path, ALLOW_SDIST)
    before = tree_digest(target)
    rc = main([*args_for(index, trust_root, target, policy), "evil-app", "--json"])
    out, err = capfd.readouterr()
    assert rc == 1, err
    assert tree_digest(target) == before
    assert [c for c in spy.calls if "--dry-run" not in c] == []  # no build, no install
    # The unsigned backend's bytes never left the upstream index.
    assert index.hits("/files/evil-backend/evil_backend-1.0-py3-none-any.whl") == 0
    doc = json.loads(out)
    assert doc["installed"] is False
    (bad,) = doc["files"]
    assert bad["filename"] == "evil_backend-1.0-py3-none-any.whl"
    assert bad["code"] == "refused-unsigned"
    assert "refused-unsigned" in err
    assert "nothing was installed" in err


@slow
def test_sdist_refused_when_allow_sdist_is_off(
    index: IndexServer,
    trust_root: Path,
    target: Path,
    spy: PipSpy,
    capfd: pytest.CaptureFixture[str],
) -> None:
    before = tree_digest(target)
    rc = main([*args_for(index, trust_root, target, None), "built-app", "--json"])
    out, err = capfd.readouterr()
    assert rc == 1, err
    assert tree_digest(target) == before
    (resolve,) = spy.calls
    assert resolve[resolve.index("--only-binary") + 1] == ":all:"
    (f,) = json.loads(out)["files"]
    assert f["code"] == "refused-sdist"
    assert "build dependencies" in f["reason"]
    assert "set allow-sdist = true in [defaults]" in f["fix"]
    assert "allow-sdist" in err


@slow
def test_allow_sdist_with_an_extra_index_stays_wheels_only(
    index: IndexServer,
    trust_root: Path,
    target: Path,
    spy: PipSpy,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Build dependencies could come from the other index unverified: no build, a clear
    refusal instead."""
    policy = policy_file(tmp_path, ALLOW_SDIST)
    with IndexServer(tmp_path / "extra") as extra:
        args = args_for(index, trust_root, target, policy)
        rc = main([*args, "--extra-index-url", extra.index_url, "built-app", "--json"])
    out, err = capfd.readouterr()
    assert rc == 1, err
    (resolve,) = spy.calls
    assert "--only-binary" in resolve
    (f,) = json.loads(out)["files"]
    assert f["code"] == "refused-sdist"
    assert "more than one index" in f["reason"]
    assert "allow-sdist = true, but more than one index" in err


# -- dependency confusion (T11) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def two_indexes(
    sigstore: TestSigstore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[IndexServer, IndexServer]]:
    root = tmp_path_factory.mktemp("confusion")
    with IndexServer(root / "primary") as primary, IndexServer(root / "extra") as extra:
        private = Publisher(sigstore, primary, root / "primary-build")
        public = Publisher(sigstore, extra, root / "extra-build")
        # The attack: a higher version of the private name on the extra index, validly
        # attested by the attacker's own repository.
        private.wheel("internal-pkg", "1.0")
        public.wheel("internal-pkg", "2.0", identity=GitHubIdentity("attacker/internal-pkg"))
        # A project legitimately on both (same publisher).
        private.wheel("shared-pkg", "1.0")
        public.wheel("shared-pkg", "2.0")
        public.wheel("public-only", "1.0")
        yield primary, extra


def confusion_args(
    two: tuple[IndexServer, IndexServer], trust_root: Path, target: Path, policy: Path | None
) -> list[str]:
    primary, extra = two
    args = ["install", "--trust-root", str(trust_root), "-i", primary.index_url]
    args += ["--extra-index-url", extra.index_url, "--target", str(target), "--json"]
    return args + (["--policy", str(policy)] if policy is not None else [])


@slow
def test_name_on_two_indexes_is_refused_without_a_pin(
    two_indexes: tuple[IndexServer, IndexServer],
    trust_root: Path,
    target: Path,
    spy: PipSpy,
    capfd: pytest.CaptureFixture[str],
) -> None:
    before = tree_digest(target)
    rc = main([*confusion_args(two_indexes, trust_root, target, None), "internal-pkg"])
    out, err = capfd.readouterr()
    assert rc == 1, err
    assert tree_digest(target) == before
    assert spy.installs == []
    (f,) = json.loads(out)["files"]
    assert f["version"] == "2.0"  # pip took the extra index's higher version
    assert f["code"] == "refused-index-confusion"
    assert "listed on 2 of the configured indexes" in f["reason"]
    assert f["identity"]["repository"] == "attacker/internal-pkg"
    assert "safe-pip allow add internal-pkg" in f["fix"]
    assert "refused-index-confusion" in err


@slow
def test_name_on_two_indexes_follows_the_allowlist(
    two_indexes: tuple[IndexServer, IndexServer],
    trust_root: Path,
    target: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """With [[package]] entries naming the publishers, a project on both indexes installs when
    its file is signed by that publisher, and the impostor is refused by the allowlist."""
    policy = policy_file(
        tmp_path,
        "".join(
            f'[[package]]\nname = "{name}"\npublishers = [{{ kind = "GitHub", '
            f'repository = "acme/{name}", workflow = "release.yml" }}]\n'
            for name in ("internal-pkg", "shared-pkg")
        ),
    )
    args = confusion_args(two_indexes, trust_root, target, policy)
    rc = main([*args, "shared-pkg", "public-only"])
    out, err = capfd.readouterr()
    assert rc == 0, err
    files = {f["project"]: f for f in json.loads(out)["files"]}
    assert files["shared-pkg"]["code"] == "verified-allowlisted"
    assert files["shared-pkg"]["version"] == "2.0"
    assert files["public-only"]["code"] == "verified-first-use"  # on one index only
    assert (target / "shared_pkg" / "__init__.py").is_file()

    before = tree_digest(target)
    rc = main([*args, "internal-pkg"])
    out, err = capfd.readouterr()
    assert rc == 1, err
    assert tree_digest(target) == before
    (f,) = json.loads(out)["files"]
    assert f["code"] == "refused-unexpected-publisher"
    assert "dependency confusion" in f["reason"]


# -- sources that rule out sdist builds, and the indexes pip searches (no pip runs) --------------


def _file_sources(*paths: str) -> list[tuple[str, str | None]]:
    from safe_pip.install.args import PipArgs
    from safe_pip.install.requirements import read_requirements

    pip = PipArgs(requirement_files_kinds=[(p, False) for p in paths])
    return [(f.option, f.value) for f in read_requirements(pip, allow_unverifiable=False).sources]


def test_requirement_file_sources_and_indexes(tmp_path: Path) -> None:
    from safe_pip.errors import ConfigError
    from safe_pip.install.args import split_argv
    from safe_pip.install.requirements import read_requirements, refuse_unverifiable
    from safe_pip.install.sources import run_indexes

    nested = tmp_path / "nested.txt"
    nested.write_text("--extra-index-url https://extra.example/simple/\nfoo\n", encoding="utf-8")
    top = tmp_path / "reqs.txt"
    top.write_text("# comment\n-ihttps://private.example/simple/\n-r nested.txt\nbar\n")
    glued = tmp_path / "glued.txt"
    glued.write_text("--find-links=/srv/wheels?x=1\n", encoding="utf-8")
    assert _file_sources(str(glued)) == [("--find-links", "/srv/wheels?x=1")]
    _own, via_url = split_argv(["-r", "https://example.org/reqs.txt"])
    reading = read_requirements(via_url, allow_unverifiable=False)
    with pytest.raises(ConfigError) as exc:
        refuse_unverifiable(reading, sdist_builds=True, blocker=None)
    assert "a requirement file read from a URL" in exc.value.message
    _own, pip = split_argv(["-r", str(top), "baz"])
    reading = read_requirements(pip, allow_unverifiable=False)
    assert [(f.option, f.value) for f in reading.sources] == [
        ("--index-url", "https://private.example/simple/"),
        ("--extra-index-url", "https://extra.example/simple/"),
    ]
    assert reading.requirements == ["foo", "bar"]  # pip's copy: requirements only
    assert run_indexes(pip, reading.sources) == [
        "https://private.example/simple/",
        "https://extra.example/simple/",
    ]
    _own, plain = split_argv(["-i", "https://one.example/simple/", "baz", "--pre"])
    assert plain.resolve_through == ["baz", "--pre"]
    assert plain.build == ["--pre"]


def test_requirement_file_options_are_read_as_pip_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Abbreviations within the options pip allows in a file, short options with attached
    values, quotes, continuations, ${VAR} references, UTF-16 files; requirement lines keep
    their options to themselves (pip applies only --hash / --config-settings there)."""
    from safe_pip.errors import ConfigError

    monkeypatch.setenv("EXTRA_OPT", "--extra-index-url")
    nested = tmp_path / "nested.txt"
    nested.write_text("--f /srv/fl\n", encoding="utf-8")
    top = tmp_path / "reqs.txt"
    top.write_text(
        "--extra=https://a.example/\n"
        "--ex 'https://b.example/'  # a comment\n"
        "--pre \\\n  --extra-index https://c.example/\n"
        "${EXTRA_OPT} https://d.example/\n"
        "--pypi=https://primary.example/\n"
        "--no-i\n"
        "-ihttps://i.example/\n"
        "--requirem nested.txt\n"
        "pkg==1 --hash=sha256:00 --extra-index-url https://ignored.example/\n"
        "-e ./proj --extra-index-url https://ignored.example/\n",
        encoding="utf-8",
    )
    found = _file_sources(str(top))
    assert found == [
        ("--extra-index-url", "https://a.example/"),
        ("--extra-index-url", "https://b.example/"),
        ("--extra-index-url", "https://c.example/"),
        ("--extra-index-url", "https://d.example/"),
        ("--index-url", "https://primary.example/"),
        ("--no-index", None),
        ("--index-url", "https://i.example/"),
        ("--find-links", "/srv/fl"),
    ]
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes("--extra=https://u.example/\n".encode("utf-16"))
    assert _file_sources(str(utf16)) == [("--extra-index-url", "https://u.example/")]
    for line, message in [
        ("--e https://x/", "ambiguous: it could mean --editable, --extra-index-url"),
        ("--req other.txt", "ambiguous: it could mean --require-hashes, --requirement"),
        ("--no https://x/", "ambiguous"),
        ("--target /x", "unknown option --target"),
        ("--extra-index-urls https://x/", "unknown option --extra-index-urls"),
        ("-x https://x/", "unknown option -x"),
        ("--pre=1", "--pre takes no value"),
        ("--extra-index-url", "--extra-index-url needs a value"),
        ("--extra 'https://x/", "cannot split the options"),
    ]:
        bad = tmp_path / "bad.txt"
        bad.write_text(f"foo\n{line}\n", encoding="utf-8")
        with pytest.raises(ConfigError) as exc:
            _file_sources(str(bad))
        assert message in exc.value.message, line
        assert f"requirement file {bad} line 2" in exc.value.message


@slow
def test_allow_sdist_upstream_failure_is_could_not_check(
    index: IndexServer,
    trust_root: Path,
    target: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The verifying index cannot read a build dependency's page upstream: it answers an error
    (never bytes it could not check), pip fails, safe-pip says why and exits 3."""
    from support.index_server import Fault

    policy = policy_file(tmp_path, ALLOW_SDIST)
    before = tree_digest(target)
    index.faults["/simple/good-backend/"] = Fault(status=500)
    try:
        args = args_for(index, trust_root, target, policy)
        rc = main([*args, "built-app"])
    finally:
        del index.faults["/simple/good-backend/"]
    _out, err = capfd.readouterr()
    assert rc == 3, err
    assert tree_digest(target) == before
    assert "could not check: the index 127.0.0.1 could not be read" in err
    assert "good-backend" in err
