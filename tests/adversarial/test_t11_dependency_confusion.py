"""T11: dependency confusion through --extra-index-url. A public index serves ``corp-utils
99.0``, validly attested by the attacker's own repository; the private index has ``corp-utils
1.0``. pip picks the higher version. What stops it: the project's history (private releases attested
by the real publisher), a [[package]] rule, and the index-confusion rule (ADR 0005): a project
found on more than one configured index is refused as ``refused-index-confusion`` unless the
policy names its publisher, even for an unsigned private package allowed by an [[unsigned]]
exception."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adversarial.conftest import Env, db_snapshot
from support.index_server import IndexServer
from support.publish import Publisher
from support.sigstore_ca import GitHubIdentity

pytestmark = pytest.mark.slow


@pytest.fixture
def public(env: Env, tmp_path: Path) -> Iterator[IndexServer]:
    with IndexServer(tmp_path / "public") as server:
        Publisher(env.pub.sigstore, server, tmp_path / "public-build").wheel(
            "corp-utils", "99.0", identity=GitHubIdentity(repository="attacker/corp-utils")
        )
        yield server


def _install(env: Env, public: IndexServer, target: Path, *extra: str) -> tuple[int, str]:
    target.mkdir(exist_ok=True)
    run = env.cli(
        "install",
        "corp-utils",
        "--target",
        str(target),
        "-i",
        env.server.index_url,
        "--extra-index-url",
        public.index_url,
        "--trust-root",
        str(env.trust_root),
        *extra,
    )
    return run.code, run.text


def test_attested_private_history_refuses_the_public_impostor(
    env: Env, public: IndexServer, tmp_path: Path
) -> None:
    """corp-utils 1.0 (attested by acme/corp-utils) was installed from the private index
    before; now the public impostor wins pip's resolution and is refused by the history."""
    env.pub.wheel("corp-utils", "1.0")
    first = tmp_path / "first"
    first.mkdir()
    run = env.cli(
        "install",
        "corp-utils",
        "--target",
        str(first),
        "-i",
        env.server.index_url,
        "--trust-root",
        str(env.trust_root),
    )
    assert run.code == 0, run.text
    before = db_snapshot()
    code, text = _install(env, public, tmp_path / "t")
    assert code == 1, text
    assert "refused-publisher-change" in text
    assert "attacker/corp-utils" in text
    assert "nothing was installed" in text
    assert list((tmp_path / "t").iterdir()) == []
    assert db_snapshot() == before


def test_package_rule_refuses_the_public_impostor(
    env: Env, public: IndexServer, tmp_path: Path
) -> None:
    env.pub.wheel("corp-utils", "1.0", signed=False)
    (env.workdir / "safe-pip.toml").write_text(
        '[[package]]\nname = "corp-utils"\npublishers = [\n'
        '  { kind = "GitHub", repository = "acme/corp-utils", workflow = "release.yml" },\n]\n'
    )
    code, text = _install(env, public, tmp_path / "t", "--no-index-history")
    assert code == 1, text
    assert "refused-unexpected-publisher" in text
    assert list((tmp_path / "t").iterdir()) == []
    assert db_snapshot() == []


def test_name_on_two_indexes_without_a_pin_is_refused(
    env: Env, public: IndexServer, tmp_path: Path
) -> None:
    env.pub.wheel("corp-utils", "1.0", signed=False)
    (env.workdir / "safe-pip.toml").write_text(
        '[[unsigned]]\nname = "corp-utils"\nversions = "==1.0"\nreason = "private, reviewed"\n'
    )
    code, text = _install(env, public, tmp_path / "t", "--no-index-history")
    assert code == 1, text
    assert "refused-index-confusion" in text  # install.apply_index_confusion (ADR 0005)
    assert list((tmp_path / "t").iterdir()) == []
