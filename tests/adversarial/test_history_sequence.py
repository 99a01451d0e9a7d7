"""Known-good history is a sequence, not a set (issue 11): genuinely signed lab packages with
chosen transparency-log times and index upload-times, through the real CLI (install, verify,
inspect) and real pip through ``safe-pip serve``.

Each test names the attack class it pins down:

* pooled index history: one extra upload by the attacker must not make the attacker "known";
* version order vs publication order: an attacker's 0.9.0 uploaded after acme's 1.0.0;
* two publishers in one first-use decision;
* serve answering from a stale verdict, and serving bytes whose history write failed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urljoin

import pytest

from safe_pip.errors import StoreError
from safe_pip.models import PublisherIdentity
from safe_pip.policy.history import HistoryRecord
from safe_pip.serve import EventLog, start_server
from safe_pip.store.sqlite import SQLiteHistoryStore
from support.index_server import IndexServer
from support.packages import sha256_file
from support.sigstore_ca import GitHubIdentity

from .conftest import Env, Run, db_path, db_snapshot

ACME = GitHubIdentity(repository="acme/alpha", repository_id="100", repository_owner_id="10")
EVIL = GitHubIdentity(repository="evil/alpha", repository_id="666", repository_owner_id="66")
T0 = 1_780_000_000  # 2026-05-28, in the past of every test run
DAY = 86_400


def install(env: Env, target: Path, *reqs: str) -> Run:
    return env.cli(
        "install",
        *env.args(),
        "--provenance-index",
        env.server.index_url,
        "--target",
        str(target),
        *reqs,
    )


def pylock(server: IndexServer, name: str, version: str, files: list[Path]) -> str:
    out = [
        'lock-version = "1.0"',
        'created-by = "safe-pip-tests"',
        "",
        "[[packages]]",
        f'name = "{name}"',
        f'version = "{version}"',
        f'index = "{server.index_url}"',
    ]
    for f in files:
        out += [
            "",
            "[[packages.wheels]]",
            f'name = "{f.name}"',
            f'url = "{server.file_url(name, f.name)}"',
            f'hashes = {{ sha256 = "{sha256_file(f)}" }}',
        ]
    return "\n".join(out) + "\n"


def verify(env: Env, lock: Path, *extra: str) -> tuple[Run, list[dict[str, object]]]:
    run = env.cli(
        "verify", str(lock), "--trust-root", str(env.trust_root), "--format", "json", *extra
    )
    doc = run.json()
    return run, [f for lock_doc in doc["locks"] for f in lock_doc["files"]]


@pytest.fixture
def serve_env(env: Env) -> tuple[Env, EventLog]:
    return env, EventLog(quiet=True, keep=True)


def _serve(env: Env, log: EventLog, page_ttl: float = 60.0):  # type: ignore[no-untyped-def]
    from safe_pip.check import Checker
    from safe_pip.policy.file import Policy
    from safe_pip.provenance.trust import TrustConfig

    store = SQLiteHistoryStore.open(db_path())
    checker = Checker(
        trust=TrustConfig.from_options(trust_root=env.trust_root),
        policy=Policy.default(),
        store=store,
        provenance_index=env.server.index_url,
        jobs=4,
    )
    running = start_server(checker, env.server.index_url, log=log, page_ttl=page_ttl)
    return running, store


def pip_through(index_url: str, target: Path, *reqs: str) -> tuple[int, str]:
    from test_serve_installers import pip_install

    proc = pip_install(index_url, target, *reqs)
    return proc.returncode, proc.stdout + proc.stderr


def _get(url: str, accept: str = "application/vnd.pypi.simple.v1+json") -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# -- 1. pooled index history ------------------------------------------------------------------


def _pooled(env: Env) -> None:
    env.pub.wheel("alpha", "1.0.0", identity=ACME, published=T0)
    env.pub.wheel("alpha", "1.1.0", identity=EVIL, published=T0 + DAY)
    env.pub.wheel("alpha", "1.2.0", identity=EVIL, published=T0 + 2 * DAY)


def test_pooled_index_history_install_refuses_the_attackers_second_release(
    env: Env, tmp_path: Path
) -> None:
    _pooled(env)
    run = install(env, tmp_path / "t", "alpha==1.2.0")
    assert run.code == 1, run.text
    assert "refused-publisher-change" in run.text
    assert "alpha 1.1.0" in run.text  # the release where the publisher changed
    assert not (tmp_path / "t" / "alpha").exists()
    assert db_snapshot() == []


@pytest.mark.parametrize("how", ["flag", "depth-0"])
def test_a_publisher_change_on_one_page_is_refused_without_index_history(
    env: Env, tmp_path: Path, how: str
) -> None:
    """acme's 1.0.0, then 2.0.0 by another publisher, both genuinely signed, on one page:
    ``install`` without the index's history window (``--no-index-history``, or
    ``index-history-depth = 0``) still judges the page pip read as one sequence, so 2.0.0 is
    refused-publisher-change, not trusted on first use (the lazy index decided only the file
    pip asked for). Nothing installed, nothing recorded."""
    env.pub.wheel("alpha", "1.0.0", identity=ACME, published=T0)
    env.pub.wheel("alpha", "2.0.0", identity=EVIL, published=T0 + DAY)
    extra = ["--no-index-history"]
    if how == "depth-0":
        policy = tmp_path / "safe-pip.toml"
        policy.write_text("[defaults]\nindex-history-depth = 0\n", encoding="utf-8")
        extra = ["--policy", str(policy)]
    run = install(env, tmp_path / "t", *extra, "alpha", "--json")
    assert run.code == 1, run.text
    files = run.json()["files"]
    assert [(f["version"], f["code"]) for f in files] == [("2.0.0", "refused-publisher-change")], (
        run.text
    )
    assert "alpha 2.0.0" in files[0]["reason"], files[0]  # where the publisher changed
    assert "GitHub acme/alpha @ release.yml before" in files[0]["reason"], files[0]
    assert not (tmp_path / "t" / "alpha").exists()
    assert db_snapshot() == []


def test_one_publisher_on_the_page_installs_without_index_history(env: Env, tmp_path: Path) -> None:
    """The same page with one publisher: ``--no-index-history`` installs the newest on first
    use (the page's releases decided together do not refuse a continuous sequence)."""
    env.pub.wheel("alpha", "1.0.0", identity=ACME, published=T0)
    env.pub.wheel("alpha", "2.0.0", identity=ACME, published=T0 + DAY)
    run = install(env, tmp_path / "t", "--no-index-history", "alpha", "--json")
    assert run.code == 0, run.text
    assert [(f["version"], f["code"]) for f in run.json()["files"]] == [
        ("2.0.0", "verified-first-use")
    ], run.text
    assert (tmp_path / "t" / "alpha").is_dir()


def test_pooled_index_history_verify_refuses(env: Env) -> None:
    _pooled(env)
    (wheel,) = [d.path for d in env.server.dists("alpha") if d.version == "1.2.0"]
    lock = env.workdir / "pylock.toml"
    lock.write_text(pylock(env.server, "alpha", "1.2.0", [wheel]))
    run, files = verify(env, lock)
    assert run.code == 1
    assert [f["code"] for f in files] == ["refused-publisher-change"]
    assert "alpha 1.1.0" in str(files[0]["reason"])


@pytest.mark.slow
def test_pooled_index_history_pip_through_serve_gets_nothing_of_the_attacker(
    serve_env: tuple[Env, EventLog], tmp_path: Path
) -> None:
    env, log = serve_env
    _pooled(env)
    running, store = _serve(env, log)
    try:
        with running:
            code, out = pip_through(running.index_url, tmp_path / "t", "alpha")
    finally:
        store.close()
    assert code != 0, out
    assert not (tmp_path / "t" / "alpha").exists()
    for d in env.server.dists("alpha"):
        if d.version != "1.0.0":
            assert env.server.hits(f"/files/alpha/{d.filename}") == 0


# -- 2. publication order, not version order --------------------------------------------------


def _backdated(env: Env) -> None:
    env.pub.wheel("alpha", "1.0.0", identity=ACME, published=T0)
    env.pub.wheel("alpha", "0.9.0", identity=EVIL, published=T0 + DAY)  # uploaded later


def test_attacker_release_with_a_lower_version_is_the_change_not_acme(
    env: Env, tmp_path: Path
) -> None:
    _backdated(env)
    run = install(env, tmp_path / "a", "alpha==0.9.0")
    assert run.code == 1, run.text
    assert "refused-publisher-change" in run.text
    assert "signed by GitHub evil/alpha" in run.text
    assert not (tmp_path / "a" / "alpha").exists()
    # acme's 1.0.0 is not blamed: the reason names 0.9.0 (evil) as where the change happened
    run = install(env, tmp_path / "b", "alpha==1.0.0")
    assert run.code == 1, run.text
    assert "changes in its history at alpha 0.9.0" in run.text
    assert "GitHub acme/alpha @ release.yml before, GitHub evil/alpha" in run.text
    assert db_snapshot() == []


def test_publication_order_verify_names_the_later_upload(env: Env) -> None:
    _backdated(env)
    (wheel,) = [d.path for d in env.server.dists("alpha") if d.version == "0.9.0"]
    lock = env.workdir / "pylock.toml"
    lock.write_text(pylock(env.server, "alpha", "0.9.0", [wheel]))
    run, files = verify(env, lock)
    assert run.code == 1
    assert [f["code"] for f in files] == ["refused-publisher-change"]
    assert "publisher changed: signed by GitHub evil/alpha" in str(files[0]["reason"])


@pytest.mark.slow
def test_publication_order_serve_never_hands_pip_the_backdated_release(
    serve_env: tuple[Env, EventLog], tmp_path: Path
) -> None:
    env, log = serve_env
    _backdated(env)
    running, store = _serve(env, log)
    try:
        with running:
            code, out = pip_through(running.index_url, tmp_path / "t", "alpha")
    finally:
        store.close()
    assert code != 0, out
    assert not (tmp_path / "t" / "alpha").exists()
    (evil,) = [d for d in env.server.dists("alpha") if d.version == "0.9.0"]
    assert env.server.hits(f"/files/alpha/{evil.filename}") == 0


def test_local_history_in_publication_order(env: Env, tmp_path: Path) -> None:
    """acme's 1.0.0 installed before the attacker's later 0.9.0 existed: 0.9.0 is refused,
    1.0.0 stays installable (local history, one publisher)."""
    env.pub.wheel("alpha", "1.0.0", identity=ACME, published=T0)
    assert install(env, tmp_path / "a", "alpha==1.0.0").code == 0
    (rec,) = SQLiteHistoryStore.open(db_path(), readonly=True).project("alpha").records
    assert rec.published_from == "log"
    assert rec.published_at is not None
    assert int(rec.published_at.timestamp()) == T0
    shown = env.cli("history", "show", "alpha")
    assert "PUBLISHED" in shown.out
    assert "2026-05-28" in shown.out  # T0, from the transparency log
    assert "(log)" in shown.out
    env.pub.wheel("alpha", "0.9.0", identity=EVIL, published=T0 + DAY)
    run = install(env, tmp_path / "b", "alpha==0.9.0")
    assert run.code == 1
    assert "refused-publisher-change" in run.text
    assert install(env, tmp_path / "c", "alpha==1.0.0").code == 0


# -- 3. one first-use decision, one publisher ---------------------------------------------------


def _two_publishers(env: Env) -> list[Path]:
    a = env.pub.wheel("alpha", "1.0", identity=ACME, published=T0)
    b = env.pub.wheel("alpha", "1.0", identity=EVIL, published=T0 + 60, tag="py2.py3-none-any")
    return [a, b]


def test_two_publishers_in_one_first_release_inspect_records_neither(env: Env) -> None:
    _two_publishers(env)
    run = env.inspect("alpha==1.0", "--record", "--json", "--no-index-history")
    assert run.code == 1
    docs = run.json()
    assert {d["code"] for d in docs} == {"refused-publisher-change"}
    assert "one decision trusts one publisher" in docs[0]["reason"]
    assert db_snapshot() == []


def test_two_publishers_in_one_first_release_write_identities_pins_none(env: Env) -> None:
    files = _two_publishers(env)
    lock = env.workdir / "pylock.toml"
    lock.write_text(pylock(env.server, "alpha", "1.0", files))
    run = env.cli(
        "verify",
        "--trust-root",
        str(env.trust_root),
        "--write-identities",
        str(lock),
        "--no-index-history",
    )
    assert run.code == 1, run.text
    assert "attestation-identities" not in lock.read_text()


@pytest.mark.slow
def test_two_publishers_in_one_first_release_serve_serves_neither(
    serve_env: tuple[Env, EventLog], tmp_path: Path
) -> None:
    env, log = serve_env
    _two_publishers(env)
    running, store = _serve(env, log)
    try:
        with running:
            code, out = pip_through(running.index_url, tmp_path / "t", "alpha")
    finally:
        store.close()
    assert code != 0, out
    assert db_snapshot() == []


# -- 4. serve: stale verdicts, history writes before bytes --------------------------------------


def _repositories() -> list[str | None]:
    with SQLiteHistoryStore.open(db_path(), readonly=True) as store:
        return [
            r.identity.repository if r.identity else None for r in store.project("alpha").records
        ]


def _links(body: bytes) -> dict[str, str]:
    return {f["filename"]: f["url"] for f in json.loads(body)["files"]}


def test_serve_decides_a_new_sibling_against_the_history_it_just_wrote(
    serve_env: tuple[Env, EventLog],
) -> None:
    env, log = serve_env
    env.pub.wheel("alpha", "1.0", identity=ACME, published=T0)
    running, store = _serve(env, log, page_ttl=0)
    try:
        with running:
            page = running.index_url + "alpha/"
            status, body = _get(page)
            assert status == 200
            ((_name, url),) = _links(body).items()
            status, _ = _get(urljoin(page, url), accept="*/*")
            assert status == 200  # served, and acme recorded before the bytes went out
            assert _repositories() == ["acme/alpha"]
            # the attacker adds a sibling wheel to the same release
            evil = env.pub.wheel(
                "alpha", "1.0", identity=EVIL, published=T0 + 60, tag="py2.py3-none-any"
            )
            status, body = _get(page)
            assert status == 200
            assert evil.name not in _links(body)  # filter mode: refused, left out
            evil_url = f"../../files/alpha/{sha256_file(evil)}/{evil.name}"
            status, text = _get(urljoin(page, evil_url), accept="*/*")
            assert status == 403
            assert b"refused-publisher-change" in text
    finally:
        store.close()
    assert env.server.hits(f"/files/alpha/{evil.name}") == 0


def test_serve_drops_a_verdict_once_another_run_changed_the_history(
    serve_env: tuple[Env, EventLog],
) -> None:
    env, log = serve_env
    env.pub.wheel("alpha", "1.0", identity=ACME, published=T0)
    running, store = _serve(env, log)
    try:
        with running:
            page = running.index_url + "alpha/"
            status, body = _get(page)
            ((_name, url),) = _links(body).items()  # decided: first use of acme, cached
            with SQLiteHistoryStore.open(db_path()) as other:  # another run records another one
                other.record([_other_record()])
            status, text = _get(urljoin(page, url), accept="*/*")
            assert status == 403, text
            assert b"refused-publisher-change" in text
    finally:
        store.close()
    assert _repositories() == ["other/alpha"]


def test_serve_sends_no_byte_when_the_history_write_fails(
    serve_env: tuple[Env, EventLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, log = serve_env
    wheel = env.pub.wheel("alpha", "1.0", identity=ACME, published=T0)
    running, store = _serve(env, log)

    def broken(*_a: object, **_k: object) -> object:
        raise StoreError(f"{db_path()}: disk I/O error")

    try:
        with running:
            page = running.index_url + "alpha/"
            status, body = _get(page)
            ((_name, url),) = _links(body).items()
            monkeypatch.setattr(store, "update", broken)
            status, text = _get(urljoin(page, url), accept="*/*")
    finally:
        store.close()
    assert status == 503, text
    assert b"could not record" in text
    assert wheel.read_bytes()[:4] not in text  # no byte of the wheel (PK..)
    assert db_snapshot() == []


def _other_record() -> HistoryRecord:
    return HistoryRecord(
        project="alpha",
        version="0.1",
        filename="alpha-0.1-py3-none-any.whl",
        sha256="ab" * 32,
        identity=PublisherIdentity(kind="GitHub", repository="other/alpha", workflow="release.yml"),
        seen_at=datetime.now(timezone.utc),
    )
