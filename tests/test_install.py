"""``safe-pip install`` end to end: real pip subprocesses against a local index serving
test-signed packages, real Sigstore verification with the test trust root.

Each test installs into its own ``--target`` directory, pre-populated with a marker, and
asserts the directory is byte-for-byte unchanged whenever anything is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import safe_pip.install.piprun as install_mod
from safe_pip.cli import main
from safe_pip.install import Hooks
from safe_pip.sources.pip_report import ReportItem
from support.index_server import IndexServer
from support.packages import build_wheel
from support.publish import Publisher
from support.sigstore_ca import GitHubIdentity, TestSigstore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def index(
    sigstore: TestSigstore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IndexServer]:
    root = tmp_path_factory.mktemp("install-index")
    with IndexServer(root / "index") as server:
        pub = Publisher(sigstore, server, root / "build")
        # A tree: app -> lib-a -> lib-c, app -> lib-b
        pub.wheel("app", "1.0", requires=["lib-a", "lib-b"])
        pub.wheel("lib-a", "1.0", requires=["lib-c"])
        pub.wheel("lib-b", "1.0")
        pub.wheel("lib-c", "1.0")
        # One bad file deep in otherwise good trees.
        pub.wheel("uses-unsigned", "1.0", requires=["lib-b", "unsigned-dep"])
        pub.wheel("unsigned-dep", "1.0", signed=False)
        pub.wheel("uses-wrongpub", "1.0", requires=["wrongpub"])
        pub.wheel("wrongpub", "1.0", identity=GitHubIdentity("evil/wrongpub", "release.yml"))
        pub.wheel("uses-tampered", "1.0", requires=["tampered"])
        pub.wheel("tampered", "1.0")
        # Overwrite the stored file after signing: the page now lists the new bytes' hash,
        # the provenance still binds the old ones.
        pub.wheel("tampered", "1.0", signed=False, files={"tampered/__init__.py": "EVIL = 1\n"})
        pub.wheel("uses-swapped", "1.0", requires=["swapped"])
        pub.wheel("swapped", "1.0")
        pub.sdist("sdist-only", "1.0")
        yield server


@pytest.fixture
def target(tmp_path: Path) -> Path:
    t = tmp_path / "target"
    t.mkdir()
    (t / "MARKER.txt").write_text("pre-existing\n", encoding="utf-8")
    return t


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


class PipSpy:
    """Records every pip argv safe-pip runs, and runs it for real.

    The final install may be a pre-started pip waiting on a FIFO (install.PrestartedPip): it
    counts as a call when it is handed its requirements (``feed``), the moment it can install
    anything. ``spawned`` / ``cancelled`` count the pre-started processes."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.spawned: list[list[str]] = []
        self.cancelled = 0
        self.real = install_mod.run_pip
        self.real_spawn = install_mod.spawn_pip
        self.real_feed = install_mod.PrestartedPip.feed
        self.real_cancel = install_mod.PrestartedPip.cancel

    def __call__(self, argv: Any, **kw: Any) -> Any:
        self.calls.append(list(argv))
        return self.real(argv, **kw)

    def spawn(self, argv: Any, **kw: Any) -> Any:
        self.spawned.append(list(argv))
        return self.real_spawn(argv, **kw)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        spy = self

        def feed(early: Any, requirements: str) -> Any:
            spy.calls.append(list(early.proc.args[3:]))  # drop python -m pip
            return spy.real_feed(early, requirements)

        def cancel(early: Any) -> None:
            if early.proc.poll() is None:
                spy.cancelled += 1
            spy.real_cancel(early)

        monkeypatch.setattr(install_mod, "run_pip", self)
        monkeypatch.setattr(install_mod, "spawn_pip", self.spawn)
        monkeypatch.setattr(install_mod.PrestartedPip, "feed", feed)
        monkeypatch.setattr(install_mod.PrestartedPip, "cancel", cancel)

    @property
    def installs(self) -> list[list[str]]:
        return [c for c in self.calls if "--dry-run" not in c]


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> PipSpy:
    s = PipSpy()
    s.install(monkeypatch)
    return s


def base_args(index: IndexServer, trust_root: Path, target: Path) -> list[str]:
    return [
        "install",
        "--trust-root",
        str(trust_root),
        "-i",
        index.index_url,
        "--provenance-index",
        index.index_url,
        "--target",
        str(target),
    ]


def test_installs_a_verified_dependency_tree(
    index: IndexServer,
    trust_root: Path,
    target: Path,
    spy: PipSpy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # pip configuration in the environment must not reach either pip call (T26).
    with IndexServer(tmp_path / "decoy") as decoy:
        monkeypatch.setenv("PIP_EXTRA_INDEX_URL", decoy.index_url)
        monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
        report = tmp_path / "report.json"
        rc = main([*base_args(index, trust_root, target), "app", "--report", str(report)])
        assert decoy.requests_log == []
    out, err = capfd.readouterr()
    assert rc == 0, err
    for pkg in ("app", "lib_a", "lib_b", "lib_c"):
        assert (target / pkg / "__init__.py").is_file(), pkg
    assert (target / "MARKER.txt").read_text(encoding="utf-8") == "pre-existing\n"
    assert "Successfully installed" in out
    assert "PIP_EXTRA_INDEX_URL" in err  # surfaced, not used

    # Exactly two pip runs: one resolution, one offline hash-pinned install (T10).
    assert len(spy.calls) == 2
    (inst,) = spy.installs
    for flag in ("--isolated", "--no-index", "--no-deps", "--require-hashes"):
        assert flag in inst
    assert not {"-i", "--index-url", "--extra-index-url", "-f", "--find-links"} & set(inst)
    reqs = Path(inst[inst.index("-r") + 1])
    assert not reqs.exists()  # the private wheelhouse is gone

    doc = json.loads(report.read_text(encoding="utf-8"))
    assert doc["version"] == 1
    assert doc["command"] == "install"
    assert doc["installed"] is True
    assert doc["exit_code"] == 0
    assert doc["dry_run"] is False
    assert sorted(f["project"] for f in doc["files"]) == ["app", "lib-a", "lib-b", "lib-c"]
    assert all(f["verified"] and f["verdict"] == "allow" for f in doc["files"])
    assert {f["project"]: f["requested"] for f in doc["files"]}["app"] is True

    # The verified identities were recorded: the next run knows them.
    from safe_pip.store.sqlite import SQLiteHistoryStore

    with SQLiteHistoryStore.open(None, readonly=True) as store:
        hist = store.project("lib-c")
    assert hist.records
    assert hist.records[0].identity is not None
    assert hist.records[0].identity.repository == "acme/lib-c"


def _swap_on_server(index: IndexServer, tmp_path: Path) -> Hooks:
    def swap(items: list[ReportItem]) -> None:
        assert any(i.name == "swapped" for i in items)
        other = build_wheel(
            tmp_path / "swap", "swapped", "1.0", files={"swapped/__init__.py": "X = 2\n"}
        )
        dest = index.root / "swapped" / other.name
        shutil.copyfile(other, dest)

    return Hooks(after_resolve=swap)


@pytest.mark.parametrize(
    ("requirement", "code"),
    [
        ("uses-unsigned", "refused-unsigned"),
        ("uses-wrongpub", "refused-unexpected-publisher"),
        ("uses-tampered", "refused-invalid-attestation"),
    ],
)
def test_one_bad_file_refuses_the_whole_install(
    index: IndexServer,
    trust_root: Path,
    target: Path,
    spy: PipSpy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    requirement: str,
    code: str,
) -> None:
    args = base_args(index, trust_root, target)
    policy = tmp_path / "safe-pip.toml"
    policy.write_text(
        '[[package]]\nname = "wrongpub"\n'
        'publishers = [{ kind = "GitHub", repository = "acme/wrongpub", '
        'workflow = "release.yml" }]\n',
        encoding="utf-8",
    )
    args += ["--policy", str(policy)]
    if requirement == "uses-swapped":
        monkeypatch.setattr(install_mod, "HOOKS", _swap_on_server(index, tmp_path))
    before = tree_digest(target)
    rc = main([*args, requirement, "--json"])
    out, err = capfd.readouterr()
    assert rc == 1, err
    assert tree_digest(target) == before
    assert spy.installs == []  # pip's install was never handed a requirement
    # the pre-started final pip was waiting on its FIFO and was stopped
    assert len(spy.spawned) == 1
    assert spy.cancelled == 1
    doc = json.loads(out)
    assert doc["installed"] is False
    assert doc["exit_code"] == 1
    bad = [f for f in doc["files"] if f["verdict"] == "refuse"]
    assert len(bad) == 1, bad
    assert bad[0]["code"] == code
    assert bad[0]["project"] == requirement.removeprefix("uses-").replace(
        "unsigned", "unsigned-dep"
    )
    assert "nothing was installed" in err
    assert "project" in err
    assert code in err


def test_dry_run_verifies_and_installs_nothing(
    index: IndexServer,
    trust_root: Path,
    target: Path,
    spy: PipSpy,
    capfd: pytest.CaptureFixture[str],
) -> None:
    before = tree_digest(target)
    rc = main([*base_args(index, trust_root, target), "--dry-run", "app"])
    out, err = capfd.readouterr()
    assert rc == 0, err
    assert tree_digest(target) == before
    assert spy.installs == []
    assert out.startswith("Would install ")
    assert set(out.split()[2:]) == {"app-1.0", "lib-a-1.0", "lib-b-1.0", "lib-c-1.0"}


def test_dry_run_still_refuses(
    index: IndexServer, trust_root: Path, target: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    rc = main([*base_args(index, trust_root, target), "--dry-run", "uses-unsigned"])
    _out, err = capfd.readouterr()
    assert rc == 1
    assert "refused-unsigned" in err


def test_file_swapped_after_verification_fails_pip_exit_4(
    index: IndexServer,
    trust_root: Path,
    target: Path,
    spy: PipSpy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """T10: the bytes installed are the bytes hashed. A wheel changed in the wheelhouse after
    verification makes pip's hash check fail: exit 4, nothing installed."""
    evil = build_wheel(tmp_path / "evil", "lib-b", "1.0", files={"lib_b/__init__.py": "X=1\n"})

    def overwrite(paths: list[Path]) -> None:
        victim = next(p for p in paths if p.name.startswith("lib_b-"))
        shutil.copyfile(evil, victim)

    monkeypatch.setattr(install_mod, "HOOKS", Hooks(before_install=overwrite))
    before = tree_digest(target)
    rc = main([*base_args(index, trust_root, target), "lib-b", "--json"])
    out, err = capfd.readouterr()
    assert rc == 4, err
    assert "DO NOT MATCH THE HASHES" in err
    assert tree_digest(target) == before
    doc = json.loads(out)
    assert doc["installed"] is False
    assert doc["exit_code"] == 4
    assert doc["pip_exit_code"] != 0


def test_sdist_is_refused_with_an_explanation(
    index: IndexServer, trust_root: Path, target: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    before = tree_digest(target)
    rc = main([*base_args(index, trust_root, target), "sdist-only"])
    _out, err = capfd.readouterr()
    assert rc == 1
    assert tree_digest(target) == before
    assert "refused-sdist" in err
    assert "build dependencies" in err
    assert "allow-sdist" in err


def test_no_binary_is_refused_before_pip_runs(
    index: IndexServer, trust_root: Path, target: Path, spy: PipSpy
) -> None:
    rc = main([*base_args(index, trust_root, target), "--no-binary", ":all:", "app"])
    assert rc == 2
    assert spy.calls == []


def test_find_links_is_refused_before_pip_runs(
    index: IndexServer,
    trust_root: Path,
    target: Path,
    tmp_path: Path,
    spy: PipSpy,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """pip reads a --find-links location itself, not through the verifying index: refused
    (exit 2) before any pip runs, with --no-index (nothing left to resolve through)."""
    links = tmp_path / "links"
    links.mkdir()
    shutil.copy(index.root / "lib-c" / "lib_c-1.0-py3-none-any.whl", links)
    args = ["install", "--trust-root", str(trust_root), "--no-index", "--find-links", str(links)]
    rc = main([*args, "--target", str(target), "--dry-run", "lib-c"])
    _out, err = capfd.readouterr()
    assert rc == 2, err
    assert "--find-links" in err
    assert "--no-index" in err
    assert spy.calls == []
    assert spy.spawned == []


def test_prestarted_pip_that_is_not_waiting_falls_back(tmp_path: Path) -> None:
    """A pre-started pip that exited before reading its FIFO is not fed: the caller then
    runs pip the ordinary way (feed returns None)."""
    import os
    import subprocess
    import sys
    import time

    fifo = tmp_path / "reqs-fifo.txt"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-c", "pass"], text=True)
    proc.wait()
    early = install_mod.PrestartedPip(proc, fifo, sys.stdout, sys.stderr)
    t0 = time.monotonic()
    assert early.feed("alpha==1.0\n") is None
    assert time.monotonic() - t0 < 5


def test_prestarted_pip_reads_the_fed_requirements(tmp_path: Path) -> None:
    """The FIFO hand-over delivers exactly the requirements text to the waiting process."""
    import io
    import os
    import subprocess
    import sys

    fifo = tmp_path / "reqs-fifo.txt"
    os.mkfifo(fifo)
    reader = "import sys; print(open(sys.argv[1]).read(), end='')"
    proc = subprocess.Popen(
        [sys.executable, "-c", reader, str(fifo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = io.StringIO()
    early = install_mod.PrestartedPip(proc, fifo, out, io.StringIO())
    done = early.feed("alpha @ file:///w/alpha-1.0-py3-none-any.whl --hash=sha256:ab\n")
    assert done is not None
    assert done.returncode == 0
    assert out.getvalue() == "alpha @ file:///w/alpha-1.0-py3-none-any.whl --hash=sha256:ab\n"


def test_unwritable_report_is_refused_before_anything_runs(
    index: IndexServer,
    trust_root: Path,
    target: Path,
    spy: PipSpy,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """--report in a folder that does not exist: a usage error before pip runs, not after pip
    has installed (which would report exit 2 for an install that happened)."""
    before = tree_digest(target)
    rc = main([*base_args(index, trust_root, target), "app", "--report", "/nonexistent/r.json"])
    _out, err = capfd.readouterr()
    assert rc == 2
    assert "cannot write the report /nonexistent/r.json" in err
    assert "\\n  fix:" not in err  # diagnostics keep their own line breaks, not escaped ones
    assert spy.calls == []
    assert spy.spawned == []
    assert tree_digest(target) == before


def test_unreachable_index_is_could_not_check_naming_its_host(
    trust_root: Path, target: Path, spy: PipSpy, capfd: pytest.CaptureFixture[str]
) -> None:
    """An index that cannot be reached: exit 3 (could not check) naming the host, not "pip
    found no wheel" (exit 2)."""
    import socket

    # a port nothing listens on, kept bound (never listening) for the whole run: nothing else,
    # not even the run's own verifying index, can be given it meanwhile
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        rc = main(
            [
                "install",
                "--trust-root",
                str(trust_root),
                "-i",
                f"http://127.0.0.1:{port}/simple/",
                "--target",
                str(target),
                "app",
            ]
        )
    _out, err = capfd.readouterr()
    assert rc == 3, err
    assert "could not check: the index 127.0.0.1 could not be read" in err
    assert "sdists would run" not in err
    assert spy.installs == []


def test_nonexistent_version_says_so(
    index: IndexServer, trust_root: Path, target: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    rc = main([*base_args(index, trust_root, target), "lib-b==9.9"])
    _out, err = capfd.readouterr()
    assert rc == 2, err
    assert "lib-b has no version matching ==9.9 on the index (127.0.0.1); versions there: 1.0" in (
        err
    )
    rc = main([*base_args(index, trust_root, target), "no-such-project"])
    _out, err = capfd.readouterr()
    assert rc == 2, err
    assert "no-such-project was not found on the index (127.0.0.1)" in err


def test_python_option_installs_into_another_environment(
    index: IndexServer,
    trust_root: Path,
    tmp_path: Path,
    spy: PipSpy,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """--python PATH (pip's own option, which pip wants before the subcommand): safe-pip
    installed once (pipx, a tools venv) installs into a project's environment."""
    import subprocess
    import sys

    project_env = tmp_path / "project-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(project_env)], check=True)
    python = project_env / "bin" / "python"
    args = ["install", "--trust-root", str(trust_root), "-i", index.index_url]
    rc = main([*args, "--provenance-index", index.index_url, "--python", str(python), "lib-b"])
    _out, err = capfd.readouterr()
    assert rc == 0, err
    assert list(project_env.glob("lib/python*/site-packages/lib_b/__init__.py"))
    (inst,) = spy.installs
    assert inst[:3] == ["--python", str(python), "install"]


def test_install_from_pylock_installs_exactly_the_lock(
    index: IndexServer,
    trust_root: Path,
    target: Path,
    tmp_path: Path,
    spy: PipSpy,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """``-r pylock.toml``: the lock is verified as ``safe-pip verify`` does (identities
    included), then pip installs exactly its files, hash-pinned, through the verifying index."""
    from verify_helpers import pylock_text

    lock = tmp_path / "pylock.toml"
    lock.write_text(
        pylock_text(
            index,
            ["lib-b", "lib-c"],
            identities={
                "lib-b": [{"kind": "GitHub", "repository": "acme/lib-b", "workflow": "release.yml"}]
            },
        ),
        encoding="utf-8",
    )
    args = ["install", "--trust-root", str(trust_root), "--target", str(target)]
    rc = main([*args, "-r", str(lock)])
    _out, err = capfd.readouterr()
    assert rc == 0, err
    assert (target / "lib_b" / "__init__.py").is_file()
    assert (target / "lib_c" / "__init__.py").is_file()
    (inst,) = spy.installs
    assert "--require-hashes" in inst
    assert "--no-deps" in inst
    assert str(lock) not in inst  # pip never reads the lock itself

    # an identity the lock does not allow: refused, nothing installed
    other = tmp_path / "other" / "pylock.toml"
    other.parent.mkdir()
    other.write_text(
        pylock_text(
            index,
            ["lib-a"],
            identities={
                "lib-a": [{"kind": "GitHub", "repository": "evil/lib-a", "workflow": "release.yml"}]
            },
        ),
        encoding="utf-8",
    )
    before = tree_digest(target)
    rc = main([*args, "-r", str(other)])
    _out, err = capfd.readouterr()
    assert rc == 1, err
    assert "nothing was installed" in err
    assert tree_digest(target) == before

    rc = main([*args, "-r", str(lock), "lib-a"])
    _out, err = capfd.readouterr()
    assert rc == 2, err
    assert "is a lock" in err


@pytest.mark.parametrize(
    "marker",
    [
        # a line break (written as the escape packaging turns into one): pip would read
        # the rest as its own requirement line (here a local sdist, which pip builds)
        """os_name != "z\\n./evil-1.0.tar.gz --hash=sha256:00" """,
        """os_name != "z #x" """,  # pip drops ' #...' as a comment
        """os_name != "${HOME}" """,  # pip expands ${VAR}
    ],
)
def test_install_from_pylock_refuses_a_marker_pip_would_misread(
    index: IndexServer,
    trust_root: Path,
    target: Path,
    tmp_path: Path,
    spy: PipSpy,
    capfd: pytest.CaptureFixture[str],
    marker: str,
) -> None:
    """Each lock entry becomes one line of pip's requirement file, marker included; a marker
    packaging accepts but pip's reader would change (a line break, a comment, an environment
    variable) is refused with exit 2 before anything is verified or recorded, and pip never
    runs. Before, pip 23.2 crashed on it (a traceback) after the history had been written."""
    from verify_helpers import pylock_text

    text = pylock_text(index, ["lib-b"])
    text = text.replace('name = "lib-b"\n', f"name = \"lib-b\"\nmarker = '{marker.strip()}'\n", 1)
    lock = tmp_path / "pylock.toml"
    lock.write_text(text, encoding="utf-8")
    args = ["install", "--trust-root", str(trust_root), "--target", str(target)]
    before = tree_digest(target)
    rc = main([*args, "-r", str(lock)])
    _out, err = capfd.readouterr()
    assert rc == 2, err
    assert "marker" in err
    assert "Traceback" not in err
    assert spy.installs == []
    assert tree_digest(target) == before


def test_file_swapped_upstream_after_resolution_is_never_installed(
    index: IndexServer,
    trust_root: Path,
    target: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """T10: the file changes on the server after pip resolved it. What is installed is the
    verified file (kept by sha256 when the verifying index served it), never the new bytes."""
    monkeypatch.setattr(install_mod, "HOOKS", _swap_on_server(index, tmp_path))
    rc = main([*base_args(index, trust_root, target), "uses-swapped"])
    _out, err = capfd.readouterr()
    assert rc == 0, err
    installed = (target / "swapped" / "__init__.py").read_text(encoding="utf-8")
    assert "X = 2" not in installed
    assert "__version__" in installed  # the original, verified file


def test_altered_file_cache_is_never_used(
    index: IndexServer,
    trust_root: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Verified files are kept by sha256 between runs; a kept file whose bytes no longer hash
    to that digest (tampered, damaged) is dropped and fetched again, never installed."""
    import os

    first, second = tmp_path / "t1", tmp_path / "t2"
    assert main([*base_args(index, trust_root, first), "lib-b"]) == 0
    cache = Path(os.environ["SAFE_PIP_HOME"]) / "cache" / "files"
    kept = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert kept
    for path in kept:
        path.write_bytes(b"tampered")
    rc = main([*base_args(index, trust_root, second), "lib-b"])
    _out, err = capfd.readouterr()
    assert rc == 0, err
    assert (second / "lib_b" / "__init__.py").read_bytes() == (
        first / "lib_b" / "__init__.py"
    ).read_bytes()
    assert all(p.read_bytes() != b"tampered" for p in cache.iterdir() if p.is_file())


def test_bundles_that_verified_before_are_not_verified_again(
    index: IndexServer,
    trust_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A later install skips the Sigstore verification of a bundle that verified before for
    the same file name, sha256 and trust root (permanent facts, kept privately like verify's);
    a bundle that did not verify is verified again, and every verdict is decided again."""
    import safe_pip.provenance.attestation as attestation

    real = attestation.verify_provenance
    calls: list[str] = []

    def counting(filename: str, *args: object, **kwargs: object) -> object:
        calls.append(filename)
        return real(filename, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(attestation, "verify_provenance", counting)
    assert main([*base_args(index, trust_root, tmp_path / "t1"), "lib-b"]) == 0
    first = len(calls)
    assert first >= 1
    calls.clear()
    assert main([*base_args(index, trust_root, tmp_path / "t2"), "lib-b"]) == 0
    assert calls == []
    assert (tmp_path / "t2" / "lib_b" / "__init__.py").is_file()
    # a tampered attestation still does not verify, run after run
    for _ in range(2):
        calls.clear()
        assert main([*base_args(index, trust_root, tmp_path / "t3"), "uses-tampered"]) == 1
        assert calls
    capfd.readouterr()


def test_offline_install_reads_nothing_from_the_index(
    index: IndexServer, trust_root: Path, target: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """--offline: no network at all. pip resolves through the in-process verifying index only
    (loopback, inside this run); that index reads nothing upstream, so nothing is installed
    and the exit code says could not check."""
    before = tree_digest(target)
    seen = len(index.requests_log)
    rc = main([*base_args(index, trust_root, target), "--offline", "app"])
    _out, err = capfd.readouterr()
    assert rc == 3, err
    assert index.requests_log[seen:] == []  # not one request reached the index
    assert tree_digest(target) == before
    assert "--offline" in err


def test_one_run_reads_each_upstream_page_and_file_once(
    sigstore: TestSigstore, trust_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """One install run reads each upstream project page once: the verifying index's read of
    a page feeds both the page pip gets and the project's index history (it was read twice),
    and each provenance and wheel once. Nothing is kept across runs: a second run reads
    every page again (a page can change between runs)."""
    from collections import Counter

    with IndexServer(tmp_path / "index") as server:
        pub = Publisher(sigstore, server, tmp_path / "build")
        pub.wheel("app", "1.0", requires=["lib-a", "lib-b"])
        pub.wheel("lib-a", "1.0", requires=["lib-c"])
        pub.wheel("lib-a", "0.9")
        pub.wheel("lib-b", "1.0")
        pub.wheel("lib-c", "1.0")
        for run in (1, 2):
            seen = len(server.requests_log)
            rc = main([*base_args(server, trust_root, tmp_path / f"t{run}"), "app"])
            assert rc == 0, capfd.readouterr().err
            hits = Counter(server.requests_log[seen:])
            pages = {p: n for p, n in hits.items() if p.startswith("/simple/")}
            assert pages == {f"/simple/{p}/": 1 for p in ("app", "lib-a", "lib-b", "lib-c")}, (
                run,
                hits,
            )
            assert all(n == 1 for n in hits.values()), (run, hits)
    capfd.readouterr()
