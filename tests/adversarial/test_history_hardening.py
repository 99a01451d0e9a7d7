"""The rest of issue 11's hardening classes, each through the real CLI (or ``safe-pip serve``)
with genuinely signed lab packages:

* strict ``[[unsigned]]`` version matching (local labels, empty specifiers);
* a ``SAFE_PIP_HOME`` directory another local user could change;
* ``serve`` building upstream URLs from unchecked names, and control characters in its bodies.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from safe_pip.check import Checker
from safe_pip.policy.file import Policy
from safe_pip.provenance.trust import TrustConfig
from safe_pip.serve import EventLog, start_server
from safe_pip.store.sqlite import SQLiteHistoryStore
from support.packages import sha256_file
from support.sigstore_ca import GitHubIdentity

from .conftest import Env, db_path, db_snapshot

# -- strict [[unsigned]] matching ---------------------------------------------------------------


def _unsigned_policy(env: Env, versions: str) -> Path:
    path = env.workdir / "safe-pip.toml"
    path.write_text(
        "[defaults]\nrequire-attestation = true\n\n"
        f'[[unsigned]]\nname = "alpha"\nversions = "{versions}"\nreason = "no attestations"\n'
    )
    return path


def test_unsigned_exception_does_not_admit_a_local_label_it_does_not_name(env: Env) -> None:
    env.pub.wheel("alpha", "1.0+evil", signed=False)
    _unsigned_policy(env, "==1.0")
    run = env.inspect("alpha==1.0+evil", "--json", "--no-index-history")
    assert run.code == 1, run.text
    [doc] = run.json()
    assert doc["code"] == "refused-unsigned"
    assert "covers ==1.0, not 1.0+evil" in doc["reason"]
    # named exactly, it is allowed
    _unsigned_policy(env, "==1.0+evil")
    run = env.inspect("alpha==1.0+evil", "--json", "--no-index-history")
    assert run.code == 0, run.text
    assert run.json()[0]["code"] == "unsigned-allowed"


def test_unsigned_exception_without_a_version_is_a_policy_error_at_its_line(env: Env) -> None:
    env.pub.wheel("alpha", "1.0", signed=False)
    for versions in (",", "==1.0,", " , "):
        path = _unsigned_policy(env, versions)
        run = env.inspect("alpha==1.0", "--no-index-history")
        assert run.code == 2, (versions, run.text)
        assert f"{path.name}:" in run.err
        assert "names no version" in run.err
    assert db_snapshot() == []


def test_allow_unsigned_refuses_an_empty_specifier(env: Env) -> None:
    run = env.cli("allow", "unsigned", "alpha", "--versions", ",", "--reason", "x")
    assert run.code == 2
    assert "names no version" in run.err
    assert not (env.workdir / "safe-pip.toml").exists()


# -- the history directory ----------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_history_directory_writable_by_others_is_refused(env: Env, mode: int) -> None:
    env.pub.wheel("alpha", "1.0")
    home = Path(os.environ["SAFE_PIP_HOME"])
    assert env.inspect("alpha==1.0", "--record").code == 0  # history exists
    home.chmod(mode)
    try:
        run = env.inspect("alpha==1.0", "--record")
    finally:
        home.chmod(0o700)
    assert run.code == 2, run.text
    assert "writable by group or others" in run.err
    assert f"chmod go-w {home}" in run.err
    assert "Traceback" not in run.text


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_history_directory_owned_by_another_user_is_refused(env: Env, tmp_path: Path) -> None:
    home = tmp_path / "foreign-home"
    home.mkdir(mode=0o700)
    os.chown(home, 65534, 65534)
    run = env.cli("history", "show", "--home", str(home))
    assert run.code == 2, run.text
    assert "owned by uid 65534" in run.err
    assert list(home.iterdir()) == []


# -- serve: names and bodies --------------------------------------------------------------------


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _checker(env: Env) -> Checker:
    return Checker(
        trust=TrustConfig.from_options(trust_root=env.trust_root),
        policy=Policy.default(),
        store=SQLiteHistoryStore.open(db_path()),
        provenance_index=env.server.index_url,
        jobs=2,
    )


@pytest.mark.parametrize(
    "path",
    [
        "/simple/%2Fadmin%2Fsecret/",
        "/simple/..%2F..%2Fadmin/",
        "/simple/%3Fx%3D1/",
        "/simple/a%23b/",
        "/files/%2Fadmin%2Fsecret/" + "0" * 64 + "/x-1.0-py3-none-any.whl",
    ],
)
def test_serve_never_builds_an_upstream_url_from_an_invalid_name(env: Env, path: str) -> None:
    checker = _checker(env)
    try:
        with start_server(checker, env.server.index_url, log=EventLog(quiet=True)) as srv:
            status, body = _get(srv.url + path)
    finally:
        assert checker.store is not None
        checker.store.close()
    assert status in (301, 404), body
    assert not [p for p in env.server.requests_log if "admin" in p or "?" in p or "#" in p]
    assert not [p for p in env.server.requests_log if p.startswith("/simple/")]


def test_serve_bodies_carry_no_control_sequences(env: Env) -> None:
    wheel = env.pub.wheel("alpha", "1.0")
    env.server.project_status["alpha"] = ("quarantined", "\x1b]0;owned\x07\n::error::fake\x1b[2J")
    env.server.list_quarantined_files = True
    checker = _checker(env)
    try:
        with start_server(checker, env.server.index_url, log=EventLog(quiet=True)) as srv:
            url = f"{srv.url}/files/alpha/{sha256_file(wheel)}/{wheel.name}"
            status, body = _get(url)
    finally:
        assert checker.store is not None
        checker.store.close()
    assert status == 403
    assert b"refused-quarantined" in body
    text = body.decode()
    assert not [c for c in text if ord(c) < 0x20 and c != "\n"], repr(text)
    assert "\x1b" not in text
    assert "\n::error::" not in text
    assert text.count("\n") == 2  # the reason line and the fix line, nothing injected


# -- allow learn never writes a publisher that contradicts history ------------------------------


def test_learn_lists_and_withholds_a_publisher_that_contradicts_history(env: Env) -> None:
    from support.sigstore_ca import GitHubIdentity

    acme = GitHubIdentity(repository="acme/alpha", repository_id="100", repository_owner_id="10")
    evil = GitHubIdentity(repository="evil/alpha", repository_id="666", repository_owner_id="66")
    env.pub.wheel("alpha", "1.0", identity=acme, published=1_780_000_000)
    env.pub.wheel("alpha", "1.1", identity=evil, published=1_780_086_400)
    env.pub.wheel("beta", "1.0")
    assert env.inspect("alpha==1.0", "--record", "--no-index-history").code == 0
    assert env.inspect("alpha==1.1").code == 1  # refused: publisher change
    req = env.workdir / "requirements.txt"
    req.write_text("alpha==1.1\nbeta==1.0\n")
    policy = env.workdir / "safe-pip.toml"
    learn = ["allow", "learn", "-r", str(req), *env.args(), "--policy", str(policy)]
    run = env.cli(*learn)
    assert run.code == 1, run.text
    assert "contradicts history alpha: GitHub evil/alpha" in run.err
    assert "NOT written" in run.err
    text = policy.read_text()
    assert 'name = "beta"' in text  # the rest is learned
    assert "evil/alpha" not in text
    run = env.cli(*learn, "--json")
    [alpha] = [p for p in run.json()["projects"] if p["name"] == "alpha"]
    assert alpha["written"] is False
    assert "alpha 1.1" in alpha["contradiction"]
    # only with the explicit flag, and listed
    run = env.cli(*learn, "--accept-contradictions")
    assert run.code == 0, run.text
    assert "written anyway (--accept-contradictions)" in run.err
    assert "evil/alpha" in policy.read_text()


def test_learn_withholds_a_contradiction_read_from_the_index_window(env: Env) -> None:
    from support.sigstore_ca import GitHubIdentity

    evil = GitHubIdentity(repository="evil/alpha", repository_id="666", repository_owner_id="66")
    env.pub.wheel("alpha", "1.0", published=1_780_000_000)
    env.pub.wheel("alpha", "1.1", identity=evil, published=1_780_086_400)
    req = env.workdir / "requirements.txt"
    req.write_text("alpha==1.1\n")
    policy = env.workdir / "safe-pip.toml"
    run = env.cli("allow", "learn", "-r", str(req), *env.args(), "--policy", str(policy))
    assert run.code == 1, run.text
    assert "contradicts history alpha" in run.err
    assert not policy.exists() or "evil/alpha" not in policy.read_text()


# -- verify agrees with install and serve -------------------------------------------------------


def _lock_sdist_only(env: Env) -> Path:
    sdist = env.pub.sdist("alpha", "1.0")
    lock = env.workdir / "pylock.toml"
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "t"\n\n[[packages]]\nname = "alpha"\n'
        f'version = "1.0"\nindex = "{env.server.index_url}"\n\n[packages.sdist]\n'
        f'name = "{sdist.name}"\nurl = "{env.server.file_url("alpha", sdist.name)}"\n'
        f'hashes = {{ sha256 = "{sha256_file(sdist)}" }}\n'
    )
    return lock


def test_verify_refuses_an_sdist_only_lock_under_allow_sdist_false(env: Env) -> None:
    lock = _lock_sdist_only(env)
    base = ["verify", str(lock), "--trust-root", str(env.trust_root), "--format", "json"]
    run = env.cli(*base)
    assert run.code == 1, run.text
    [f] = [f for lk in run.json()["locks"] for f in lk["files"]]
    assert f["code"] == "refused-sdist"
    assert f["line"] > 0
    (env.workdir / "safe-pip.toml").write_text("[defaults]\nallow-sdist = true\n")
    assert env.cli(*base).code == 0


def test_verify_reports_uv_lock_editable_and_virtual_entries_at_their_line(env: Env) -> None:
    from verify_helpers import uv_lock_text

    env.pub.wheel("beta", "1.0")
    text = uv_lock_text(env.server, ["beta"])
    text += (
        '\n[[package]]\nname = "myapp"\nversion = "0.1.0"\nsource = { editable = "." }\n'
        '\n[[package]]\nname = "member"\nversion = "0.0.0"\nsource = { virtual = "lib" }\n'
    )
    lock = env.workdir / "uv.lock"
    lock.write_text(text)
    base = ["verify", str(lock), "--trust-root", str(env.trust_root), "--format", "json"]
    run = env.cli(*base)
    assert run.code == 1, run.text
    files = [f for lk in run.json()["locks"] for f in lk["files"]]
    local = {f["package"]: f for f in files if f["code"] == "local-source"}
    assert set(local) == {"myapp", "member"}
    lines = text.splitlines()
    assert lines[local["myapp"]["line"] - 1] == "[[package]]"
    assert lines[local["myapp"]["line"]] == 'name = "myapp"'
    assert {f["status"] for f in local.values()} == {"fail"}
    (env.workdir / "safe-pip.toml").write_text("[defaults]\nallow-local-sources = true\n")
    run = env.cli(*base)
    assert run.code == 0, run.text
    files = [f for lk in run.json()["locks"] for f in lk["files"]]
    assert {f["status"] for f in files if f["code"] == "local-source"} == {"warn"}


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_history_directory_under_a_directory_others_can_write_is_refused(
    env: Env, tmp_path: Path
) -> None:
    """A private history directory inside a directory others can write (no sticky bit): they
    can rename the history away, and the next run would create an empty one and trust the
    attacker's release on first use. Refused (exit 2) with a fix that works as printed; under
    a sticky directory like /tmp (others cannot rename what is yours) it is fine."""
    env.pub.wheel("alpha", "1.0")
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    home = shared / "home"
    assert env.inspect("alpha==1.0", "--record", "--home", str(home)).code == 0
    shared.chmod(0o777)
    try:
        run = env.inspect("alpha==1.0", "--record", "--home", str(home))
        assert run.code == 2, run.text
        assert f"{shared}: a directory above the history directory" in run.err
        assert "writable by group or others" in run.err
        assert f"chmod go-w {shared}" in run.err
        assert "Traceback" not in run.text
        shared.chmod(0o1777)  # sticky: others cannot rename home
        assert env.inspect("alpha==1.0", "--record", "--home", str(home)).code == 0
        shared.chmod(0o777)
        os.system(f"chmod go-w {shared}")  # noqa: S605 - the printed fix, as printed
        assert env.inspect("alpha==1.0", "--record", "--home", str(home)).code == 0
    finally:
        shared.chmod(0o700)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_policy_file_anyone_can_write_is_refused(env: Env) -> None:
    """A world-writable policy file lets anyone on the machine choose the publishers you
    trust (here: evil's, for alpha): refused (exit 2) before anything is decided, with a fix
    that works as printed."""
    env.pub.wheel("alpha", "1.0", identity=GitHubIdentity(repository="evil/alpha"))
    policy = env.workdir / "safe-pip.toml"
    policy.write_text(
        '[[package]]\nname = "alpha"\npublishers = [{ kind = "GitHub", repository = '
        '"evil/alpha", workflow = "release.yml" }]\n'
    )
    policy.chmod(0o666)
    run = env.inspect("alpha==1.0", "--record", "--policy", str(policy))
    assert run.code == 2, run.text
    assert "writable by anyone on this machine" in run.err
    assert f"chmod o-w {policy}" in run.err
    assert "Traceback" not in run.text
    assert db_snapshot() == []
    os.system(f"chmod o-w {policy}")  # noqa: S605 - the printed fix, as printed
    assert env.inspect("alpha==1.0", "--policy", str(policy)).code == 0
