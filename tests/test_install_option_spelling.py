"""pip reads options with optparse: any unambiguous prefix of a long option (``--extra=URL``,
``--find=DIR``), combined short options (``-Ui URL``), on the command line and inside
requirement files. safe-pip must read them the same way, or an extra index / find-links
source reaches pip unseen: the dependency-confusion rule (ADR 0005) and the sdist-build
blocker would be skipped. Reproductions from the security review, now refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from safe_pip.cli import main
from support.index_server import IndexServer
from support.packages import build_wheel
from support.publish import Publisher
from support.sigstore_ca import GitHubIdentity, TestSigstore

slow = pytest.mark.slow

UNSIGNED_PRIVATE = '[[unsigned]]\nname = "corp-utils"\nversions = "==1.0"\nreason = "private"\n'


@pytest.fixture(scope="module")
def confusion(
    sigstore: TestSigstore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[IndexServer, IndexServer]]:
    """A private index with an (allowed) unsigned corp-utils 1.0, and a public one where an
    attacker published corp-utils 99.0 with a valid attestation from their own repository."""
    root = tmp_path_factory.mktemp("spelling")
    with IndexServer(root / "private") as private, IndexServer(root / "public") as public:
        Publisher(sigstore, private, root / "b1").wheel("corp-utils", "1.0", signed=False)
        Publisher(sigstore, public, root / "b2").wheel(
            "corp-utils", "99.0", identity=GitHubIdentity(repository="attacker/corp-utils")
        )
        yield private, public


def _install(
    confusion: tuple[IndexServer, IndexServer],
    trust_root: Path,
    workdir: Path,
    *argv: str,
) -> tuple[int, Path]:
    private, public = confusion
    (workdir / "safe-pip.toml").write_text(UNSIGNED_PRIVATE, encoding="utf-8")
    target = workdir / "t"
    code = main(
        [
            "install",
            "--json",
            "--target",
            str(target),
            "-i",
            private.index_url,
            "--trust-root",
            str(trust_root),
            "--provenance-index",
            public.index_url,
            *argv,
        ]
    )
    return code, target


def _assert_confusion_refused(code: int, target: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, err = capsys.readouterr()
    assert code == 1, err
    codes = [f["code"] for f in json.loads(out)["files"]]
    assert codes == ["refused-index-confusion"], (codes, err)
    assert not (target / "corp_utils-99.0.dist-info").exists()


@slow
@pytest.mark.parametrize(
    "spelling",
    [
        ["--extra-index-url={public}"],
        ["--extra-index={public}"],
        ["--extra={public}"],
        ["--extra", "{public}"],
        ["-Ui", "{public}", "--extra-index-url", "{private}"],  # -U, then -i URL
        ["-Ui{public}", "--extra-index-url", "{private}"],
        ["--pypi-url={public}", "--extra-index-url", "{private}"],  # pip's hidden -i alias
    ],
)
def test_abbreviated_extra_index_is_seen(
    spelling: list[str],
    confusion: tuple[IndexServer, IndexServer],
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = confusion
    argv = [a.format(public=public.index_url, private=private.index_url) for a in spelling]
    code, target = _install(confusion, trust_root, workdir, "corp-utils", *argv)
    _assert_confusion_refused(code, target, capsys)


@slow
@pytest.mark.parametrize(
    "line",
    [
        "--extra-index-url {u}",
        "--extra-index {u}",
        "--extra={u}",
        "--ex {u}",  # unique among the options pip allows in a requirement file
        "--pre --extra '{u}'",
    ],
)
def test_abbreviated_extra_index_in_a_requirement_file_is_seen(
    line: str,
    confusion: tuple[IndexServer, IndexServer],
    trust_root: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _private, public = confusion
    nested = workdir / "nested.txt"
    nested.write_text(line.format(u=public.index_url) + "\ncorp-utils\n", encoding="utf-8")
    (workdir / "req.txt").write_text("--requirem nested.txt\n", encoding="utf-8")
    code, target = _install(confusion, trust_root, workdir, "-rreq.txt")
    _assert_confusion_refused(code, target, capsys)


@pytest.mark.parametrize(
    ("argv", "lines", "message"),
    [
        (["--ex=http://127.0.0.1:9/"], "", "could mean --exists-action, --extra-index-url"),
        (["--extra-index-urls=http://127.0.0.1:9/"], "", "unknown option --extra-index-urls"),
        (["-Uz"], "", "unknown option -z in -Uz"),
        ([], "--e http://127.0.0.1:9/\n", "could mean --editable, --extra-index-url"),
        ([], "--target /tmp/x\n", "unknown option --target"),  # not a requirement file option
    ],
)
def test_unclassifiable_options_exit_2_before_pip_runs(
    argv: list[str],
    lines: str,
    message: str,
    workdir: Path,
    trust_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    req = workdir / "req.txt"
    req.write_text(lines + "corp-utils\n", encoding="utf-8")
    args = ["install", "--trust-root", str(trust_root), "--offline", "-r", str(req), *argv]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    if lines:
        assert f"requirement file {req} line 1" in err


@slow
@pytest.mark.parametrize("spelling", ["--find-links={fl}", "--find={fl}", "--fi={fl}", "-f{fl}"])
def test_abbreviated_find_links_blocks_sdist_builds(
    spelling: str,
    sigstore: TestSigstore,
    trust_root: Path,
    tmp_path: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A find-links directory (however spelled) is refused before pip runs (exit 2), even with
    allow-sdist: pip would read it directly, and an unverified build dependency from it would
    run during resolution."""
    marker = tmp_path / "PWNED"
    with IndexServer(tmp_path / "index") as index:
        pub = Publisher(sigstore, index, tmp_path / "build")
        pub.sdist("evil-app", "1.0", build_requires=["evil-backend"])
        pub.wheel("evil-backend", "1.0")
        fl = tmp_path / "fl"
        build_wheel(
            fl,
            "evil-backend",
            "2.0",
            files={"zz_evil.pth": f"import pathlib; pathlib.Path(r'{marker}').write_text('ran')\n"},
        )
        (workdir / "safe-pip.toml").write_text("[defaults]\nallow-sdist = true\n")
        target = tmp_path / "t"
        target.mkdir()
        code = main(
            [
                "install",
                "--trust-root",
                str(trust_root),
                "-i",
                index.index_url,
                "--provenance-index",
                index.index_url,
                "--target",
                str(target),
                spelling.format(fl=fl),
                "evil-app",
            ]
        )
    out, err = capsys.readouterr()
    assert not marker.exists()
    assert code == 2, out + err
    assert "--find-links" in err
    assert "nothing was run" in err


def test_a_command_imports_no_other_commands_module() -> None:
    """Start-up: ``safe-pip install ...`` builds the parser of ``install`` alone (the other
    commands' modules are not imported); an unknown command still lists every command."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from safe_pip.cli import main\n"
        "rc = main(['install', '--help'])\n"
        "others = sorted(m for m in sys.modules if m.startswith('safe_pip.cli.') and "
        "m.split('.')[2] in ('verify', 'serve', 'inspect', 'allow', 'history', 'hook'))\n"
        "print('RESULT', rc, others)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert "RESULT 0 []" in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "safe_pip", "instal"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "'install', 'verify', 'serve', 'inspect', 'allow', 'history'" in proc.stderr
