"""T25: PEP 792 project status markers (quarantined, archived, deprecated).

The index says a project's status in its simple pages: JSON ``project-status`` beside ``meta``
(api-version 1.4), HTML ``<meta name="pypi:project-status">`` (and ``-reason``). safe-pip:

- quarantined: refused with ``refused-quarantined`` whatever the attestation says, and the files
  are not even downloaded (an index that obeys PEP 792 lists none; a broken one that still
  lists them is refused too). Exit 1, nothing installed, nothing recorded.
- archived / deprecated: an allowed file becomes a WARN whose reason names the status and the
  index's reason (exit 0); it is still recorded as known-good (the file verified).
- active, absent, or a status safe-pip does not know: decided as before (an unknown one is
  noted in the reason).

Every face: inspect, install, verify (lockfiles) and serve (which mirrors the status and lists
no files of a quarantined project). The index's reason is printed inert (T22).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adversarial.conftest import Env, Run, db_snapshot
from adversarial.test_t22_output_injection import (
    HOSTILE,
    assert_inert_strings,
    assert_inert_text,
)
from safe_pip.check import Checker, apply_project_status, recordable
from safe_pip.models import Action, FileRef, ReasonCode, Verdict
from safe_pip.net import Http, SimpleIndex
from safe_pip.net.session import MalformedResponse, Response
from safe_pip.policy.file import Policy
from safe_pip.provenance.trust import TrustConfig
from safe_pip.serve import EventLog, start_server
from safe_pip.store.sqlite import SQLiteHistoryStore
from support.index_server import Fault
from verify_helpers import requirements_text

JSON_T = "application/vnd.pypi.simple.v1+json"
REASON = "superseded by alpha-ng, see https://example.org/alpha"

# -- parsing (no network) ------------------------------------------------------------------------


def _json_page(status: object = None, files: bool = True) -> Response:
    page: dict[str, object] = {
        "meta": {"api-version": "1.4"},
        "name": "demo",
        "files": [
            {
                "filename": "demo-1.0-py3-none-any.whl",
                "url": "https://files.example/demo-1.0-py3-none-any.whl",
                "hashes": {"sha256": "ab" * 32},
            }
        ]
        if files
        else [],
    }
    if status is not None:
        page["project-status"] = status
    body = json.dumps(page).encode()
    return Response(200, {"Content-Type": JSON_T}, body, "https://pypi.org/simple/demo/")


def _html_page(*metas: tuple[str, str]) -> Response:
    tags = "".join(f'<meta name="{n}" content="{c}">' for n, c in metas)
    body = (
        f"<html><head>{tags}</head><body>"
        '<a href="https://files.example/demo-1.0-py3-none-any.whl#sha256=' + "ab" * 32 + '">x</a>'
        "</body></html>"
    ).encode()
    return Response(200, {"Content-Type": "text/html"}, body, "https://pypi.org/simple/demo/")


def _index() -> SimpleIndex:
    return SimpleIndex(Http(), "https://pypi.org/simple/")


@pytest.mark.parametrize("status", ["archived", "quarantined", "deprecated", "active"])
def test_json_project_status_is_parsed_onto_page_and_files(status: str) -> None:
    page = _index().parse_page("demo", _json_page({"status": status, "reason": REASON}))
    assert (page.status, page.status_reason) == (status, REASON)
    [f] = page.files
    assert (f.project_status, f.project_status_reason) == (status, REASON)


def test_json_without_status_or_reason() -> None:
    page = _index().parse_page("demo", _json_page())
    assert (page.status, page.status_reason) == (None, None)
    assert page.files[0].project_status is None
    page = _index().parse_page("demo", _json_page({"status": "archived"}))
    assert (page.status, page.status_reason) == ("archived", None)
    # a reason without a status means nothing; a status is matched case-insensitively
    page = _index().parse_page("demo", _json_page({"reason": "x"}))
    assert (page.status, page.status_reason) == (None, None)
    page = _index().parse_page("demo", _json_page({"status": " Quarantined "}))
    assert page.status == "quarantined"


@pytest.mark.parametrize(
    "bad", ["quarantined", ["quarantined"], {"status": 1}, {"status": "archived", "reason": 2}]
)
def test_json_malformed_status_is_malformed_page(bad: object) -> None:
    """A status that is not the PEP 792 object is a malformed page (could not check), never
    silently "active"."""
    with pytest.raises(MalformedResponse, match="project-status"):
        _index().parse_page("demo", _json_page(bad))


def test_html_project_status_meta_tags() -> None:
    resp = _html_page(
        ("pypi:repository-version", "1.4"),
        ("pypi:project-status", "deprecated"),
        ("pypi:project-status-reason", "use &lt;other&gt;"),
    )
    page = _index().parse_page("demo", resp)
    assert (page.status, page.status_reason) == ("deprecated", "use <other>")
    assert page.files[0].project_status == "deprecated"
    assert page.files[0].project_status_reason == "use <other>"
    page = _index().parse_page("demo", _html_page(("pypi:repository-version", "1.1")))
    assert (page.status, page.status_reason) == (None, None)


def test_html_conflicting_status_tags_are_malformed() -> None:
    resp = _html_page(("pypi:project-status", "active"), ("pypi:project-status", "quarantined"))
    with pytest.raises(MalformedResponse, match="conflicting"):
        _index().parse_page("demo", resp)


def test_html_long_reason_is_bounded() -> None:
    page = _index().parse_page(
        "demo",
        _html_page(
            ("pypi:project-status", "archived"), ("pypi:project-status-reason", "x" * 10_000)
        ),
    )
    assert page.status_reason is not None
    assert len(page.status_reason) <= 2000


# -- the decision (pure) -------------------------------------------------------------------------


def _ref(status: str | None, reason: str | None = REASON) -> FileRef:
    return FileRef(
        "alpha",
        "1.0",
        "alpha-1.0-py3-none-any.whl",
        index="https://idx.example/simple/",
        project_status=status,
        project_status_reason=reason,
    )


def _verdict(action: Action, code: ReasonCode) -> Verdict:
    return Verdict("alpha", "1.0", "alpha-1.0-py3-none-any.whl", "ab" * 32, action, code, "r", "x")


ALLOWED = _verdict(Action.ALLOW, ReasonCode.VERIFIED_FIRST_USE)
WARNED = _verdict(Action.WARN, ReasonCode.REFUSED_PUBLISHER_CHANGE)
REFUSED = _verdict(Action.REFUSE, ReasonCode.REFUSED_UNSIGNED)


@pytest.mark.parametrize("base", [ALLOWED, WARNED, REFUSED])
def test_quarantined_refuses_whatever_was_decided(base: Verdict) -> None:
    v = apply_project_status(_ref("quarantined"), base)
    assert (v.action, v.code) == (Action.REFUSE, ReasonCode.REFUSED_QUARANTINED)
    assert "quarantined" in v.reason
    assert REASON in v.reason
    assert not recordable(v)


@pytest.mark.parametrize("status", ["archived", "deprecated"])
def test_archived_or_deprecated_turn_allow_into_recordable_warn(status: str) -> None:
    v = apply_project_status(_ref(status), ALLOWED)
    assert (v.action, v.code, v.project_status) == (Action.WARN, ALLOWED.code, status)
    assert status in v.reason
    assert REASON in v.reason
    assert recordable(v)  # the underlying decision was an allow
    for base in (WARNED, REFUSED):  # a warning or a refusal stays what it was
        w = apply_project_status(_ref(status), base)
        assert w.action is base.action
        assert w.code is base.code
        assert status in w.reason
        assert not recordable(w)


def test_active_absent_and_unknown_statuses() -> None:
    assert apply_project_status(_ref(None), ALLOWED) == ALLOWED
    assert apply_project_status(_ref("active"), ALLOWED) == ALLOWED
    v = apply_project_status(_ref("frozen"), ALLOWED)
    assert v.action is Action.ALLOW
    assert "frozen" in v.reason
    assert "does not know" in v.reason
    assert recordable(v)


# -- through the CLI ------------------------------------------------------------------------------


def _file_hits(env: Env) -> int:
    return sum(1 for p in env.server.requests_log if p.startswith(("/files/", "/provenance/")))


@pytest.mark.parametrize("listed", [False, True], ids=["index-obeys-pep792", "broken-index"])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_inspect_refuses_quarantined(env: Env, listed: bool, fmt: str) -> None:
    env.pub.wheel("alpha", "1.0")  # validly attested: quarantine wins anyway
    env.server.project_status["alpha"] = ("quarantined", "malware, see incident 42")
    env.server.list_quarantined_files = listed
    extra = ["--json"] if fmt == "json" else []
    run = env.inspect("alpha==1.0", "--record", *extra)
    assert run.code == 1, run.text
    if fmt == "json":
        [doc] = run.json()
        assert (doc["code"], doc["verdict"]) == ("refused-quarantined", "refuse")
        assert doc["project_status"] == "quarantined"
        assert "malware, see incident 42" in doc["reason"]
    else:
        assert "refused-quarantined" in run.out
        assert "malware, see incident 42" in run.out
    assert _file_hits(env) == 0  # neither the file nor its provenance was fetched
    assert db_snapshot() == []


@pytest.mark.parametrize("status", ["archived", "deprecated"])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_inspect_warns_archived_or_deprecated(env: Env, status: str, fmt: str) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.project_status["alpha"] = (status, REASON)
    extra = ["--json"] if fmt == "json" else []
    run = env.inspect("alpha==1.0", "--record", *extra)
    assert run.code == 0, run.text
    if fmt == "json":
        [doc] = run.json()
        assert (doc["verdict"], doc["code"]) == ("warn", "verified-first-use")
        assert (doc["project_status"], doc["project_status_reason"]) == (status, REASON)
        assert status in doc["reason"]
        assert REASON in doc["reason"]
    else:
        assert "WARN" in run.out
        assert f"as {status}" in run.out
        assert REASON in run.out
    # recorded on the underlying decision (verified, first use): the publisher is known now
    [rec] = db_snapshot()
    assert rec["filename"] == "alpha-1.0-py3-none-any.whl"


def test_inspect_status_from_an_html_page(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.project_status["alpha"] = ("archived", REASON)
    env.server.faults["/simple/alpha/"] = Fault(
        body=env.server.project_html("alpha"), content_type="text/html"
    )
    run = env.inspect("alpha==1.0", "--json")
    assert run.code == 0, run.text
    [doc] = run.json()
    assert (doc["verdict"], doc["project_status"]) == ("warn", "archived")
    env.server.project_status["alpha"] = ("quarantined", None)
    env.server.list_quarantined_files = True
    env.server.faults["/simple/alpha/"] = Fault(
        body=env.server.project_html("alpha"), content_type="text/html"
    )
    run = env.inspect("alpha==1.0", "--json")
    assert run.code == 1, run.text
    assert run.json()[0]["code"] == "refused-quarantined"


@pytest.mark.parametrize("status", [None, "active"])
def test_inspect_active_or_absent_is_unchanged(env: Env, status: str | None) -> None:
    env.pub.wheel("alpha", "1.0")
    if status is not None:
        env.server.project_status["alpha"] = (status, "fine")
    run = env.inspect("alpha==1.0", "--json")
    assert run.code == 0, run.text
    [doc] = run.json()
    assert (doc["verdict"], doc["code"], doc["project_status"]) == (
        "allow",
        "verified-first-use",
        None,
    )


def test_inspect_unknown_status_is_active_but_reported(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.project_status["alpha"] = ("frozen", "new in PEP 9999")
    run = env.inspect("alpha==1.0", "--json")
    assert run.code == 0, run.text
    [doc] = run.json()
    assert (doc["verdict"], doc["project_status"]) == ("allow", "frozen")
    assert "frozen" in doc["reason"]
    assert "does not know" in doc["reason"]


@pytest.mark.parametrize("status", ["quarantined", "archived"])
def test_hostile_status_reason_is_inert(env: Env, status: str) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.project_status["alpha"] = (status, HOSTILE)
    env.server.list_quarantined_files = True
    for extra in ([], ["--json"]):
        run = env.inspect("alpha==1.0", *extra)
        assert run.code == (1 if status == "quarantined" else 0), run.text
        assert_inert_text(run.out)
        assert_inert_text(run.err)
        assert "pwned" in run.out  # shown, defused
        if extra:
            assert_inert_strings(run.json())


def _install(env: Env, target: Path, *extra: str) -> Run:
    target.mkdir()
    return env.cli("install", "alpha", "--target", str(target), *env.args(), *extra)


@pytest.mark.slow
@pytest.mark.parametrize("listed", [False, True], ids=["index-obeys-pep792", "broken-index"])
def test_install_refuses_quarantined(env: Env, tmp_path: Path, listed: bool) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.project_status["alpha"] = ("quarantined", "malware, see incident 42")
    env.server.list_quarantined_files = listed
    run = _install(env, tmp_path / "t", "--json")
    assert run.code == 1, run.text
    assert "refused-quarantined" in run.text
    assert "malware, see incident 42" in run.text
    assert list((tmp_path / "t").iterdir()) == []  # nothing installed
    assert db_snapshot() == []  # nothing recorded
    if listed:
        doc = run.json()
        assert [f["code"] for f in doc["files"]] == ["refused-quarantined"]
        assert doc["installed"] is False


@pytest.mark.slow
def test_install_warns_archived_and_records(env: Env, tmp_path: Path) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.project_status["alpha"] = ("archived", REASON)
    run = _install(env, tmp_path / "t")
    assert run.code == 0, run.text
    assert "archived" in run.err
    assert REASON in run.err
    assert any(p.name.startswith("alpha") for p in (tmp_path / "t").iterdir())
    assert [r["filename"] for r in db_snapshot()] == ["alpha-1.0-py3-none-any.whl"]
    run = _install(env, tmp_path / "t2", "--json")
    assert run.code == 0, run.text
    [f] = run.json()["files"]
    assert (f["verdict"], f["project_status"], f["project_status_reason"]) == (
        "warn",
        "archived",
        REASON,
    )


def _verify(env: Env, *extra: str) -> Run:
    lock = env.workdir / "requirements.txt"
    lock.write_text(requirements_text(env.server, ["alpha"]))
    return env.cli("verify", str(lock), "--trust-root", str(env.trust_root), "--no-cache", *extra)


@pytest.mark.parametrize("listed", [False, True], ids=["index-obeys-pep792", "broken-index"])
def test_verify_refuses_quarantined(env: Env, listed: bool) -> None:
    env.pub.wheel("alpha", "1.0")
    lock = env.workdir / "requirements.txt"
    lock.write_text(requirements_text(env.server, ["alpha"]))
    env.server.project_status["alpha"] = ("quarantined", "malware, see incident 42")
    env.server.list_quarantined_files = listed
    run = env.cli(
        "verify", str(lock), "--trust-root", str(env.trust_root), "--no-cache", "--format", "json"
    )
    assert run.code == 1, run.text
    assert "refused-quarantined" in run.out
    assert "malware, see incident 42" in run.out
    assert _file_hits(env) == 0


def test_verify_warns_deprecated(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    env.server.project_status["alpha"] = ("deprecated", REASON)
    run = _verify(env)
    assert run.code == 0, run.text
    assert "deprecated" in run.text
    assert REASON in run.text


def test_serve_mirrors_status_and_lists_no_quarantined_files(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    with SQLiteHistoryStore.open(env.workdir / "serve.sqlite3") as store:
        checker = Checker(
            trust=TrustConfig(mode="custom", path=env.trust_root),
            policy=Policy.default(),
            store=store,
            provenance_index=env.server.index_url,
        )
        log = EventLog(quiet=True, keep=True)
        with start_server(checker, env.server.index_url, mode="block", log=log) as served:
            import urllib.error
            import urllib.request

            def page(accept: str) -> bytes:
                req = urllib.request.Request(served.index_url + "alpha/")
                req.add_header("Accept", accept)
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(req, timeout=30) as resp:
                    body: bytes = resp.read()
                    return body

            env.server.project_status["alpha"] = ("archived", REASON)
            doc = json.loads(page(JSON_T))
            assert doc["project-status"] == {"status": "archived", "reason": REASON}
            assert doc["meta"]["api-version"] == "1.4"
            assert [f["filename"] for f in doc["files"]] == ["alpha-1.0-py3-none-any.whl"]
            html = page("text/html").decode()
            assert '<meta name="pypi:project-status" content="archived">' in html
            assert "superseded by alpha-ng" in html
            file_url = served.url + "/files/alpha/" + doc["files"][0]["hashes"]["sha256"]
            file_url += "/alpha-1.0-py3-none-any.whl"

            # the same (cached) file, now quarantined upstream; a broken upstream lists it
            env.server.project_status["alpha"] = ("quarantined", "malware")
            env.server.list_quarantined_files = True
            doc = json.loads(page(JSON_T))
            assert doc["project-status"] == {"status": "quarantined", "reason": "malware"}
            assert doc["files"] == []  # block mode too: PEP 792 says offer none
            html = page("text/html").decode()
            assert '<meta name="pypi:project-status" content="quarantined">' in html
            assert "<a " not in html
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                    file_url, timeout=30
                )
            assert info.value.code == 403
            assert b"refused-quarantined" in info.value.read()
    refused = [e for e in log.events if e["event"] == "refuse"]
    assert refused
    assert refused[-1]["code"] == "refused-quarantined"


ALPHA_ID = {"kind": "GitHub", "repository": "acme/alpha", "workflow": "release.yml"}


@pytest.mark.parametrize("status", ["archived", "quarantined"])
def test_verify_pylock_identities_do_not_hide_the_status(env: Env, status: str) -> None:
    """A pylock whose attestation-identities match turns the verdict into "as the lock
    expects": an archived project is still warned, a quarantined one still refused."""
    from verify_helpers import pylock_text

    env.pub.wheel("alpha", "1.0")
    lock = env.workdir / "pylock.toml"
    lock.write_text(pylock_text(env.server, ["alpha"], identities={"alpha": [ALPHA_ID]}))
    env.server.project_status["alpha"] = (status, REASON)
    env.server.list_quarantined_files = True
    argv = ["verify", str(lock), "--trust-root", str(env.trust_root), "--no-cache"]
    run = env.cli(*argv, "--format", "json")
    assert run.code == (1 if status == "quarantined" else 0), run.text
    assert REASON in run.out
    text = env.cli(*argv).text
    if status == "archived":
        assert "WARN" in text
        assert "as the lock expects" in text
    else:
        assert "refused-quarantined" in text
