"""T22: index-controlled strings (the index-asserted environment, yanked reasons, names in
pages and lockfiles, error details) carrying ANSI escapes, terminal title sequences, bidi
overrides, carriage returns, newlines and GitHub Actions workflow commands (``::error::``)
are printed inert in every output format: text, JSON, SARIF and JUnit."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from adversarial.conftest import Env, Run, db_snapshot
from safe_pip.text import clean
from support.index_server import Fault
from support.publish import default_identity
from support.sigstore_ca import provenance_json

HOSTILE = (
    "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\r\n::error file=x::fake\u202egnp.exe\x00\x9b"
    " ##[stop-commands]tok ##[error]legacy"
)
_RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def assert_inert_text(text: str) -> None:
    assert not _RAW_CONTROL.search(text.replace("\n", "").replace("\t", "")), repr(text)
    assert "\r" not in text
    for line in text.splitlines():
        assert not line.lstrip().startswith("::"), line
    assert "::error" not in text
    assert "##[" not in text  # the legacy form is a command anywhere in a line


def assert_inert_strings(value: Any) -> None:
    """Every decoded string in a JSON document is inert too (CI tools print them)."""
    if isinstance(value, str):
        assert not _RAW_CONTROL.search(value), repr(value)
        assert "\n" not in value or "::" not in value
        assert "::error" not in value
        assert "##[" not in value
    elif isinstance(value, list):
        for v in value:
            assert_inert_strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            assert_inert_strings(k)
            assert_inert_strings(v)


def test_clean_unit() -> None:
    out = clean(HOSTILE)
    assert_inert_text(out)
    assert "pwned" in out  # shown, not hidden


@pytest.mark.parametrize(
    "url",
    ["http://[::1]:8080/simple/", "https://[fe80::1%25eth0]/simple/", "http://[2001:db8::7]/"],
)
def test_clean_keeps_ipv6_literals_so_printed_urls_work(url: str) -> None:
    """An IPv6 literal starts with '[', so its '::' can never begin a workflow command: it is
    printed as written (a fix naming the index must work when pasted)."""
    assert clean(url) == url
    assert clean(f"safe-pip verify --index-url {url}") == f"safe-pip verify --index-url {url}"


@pytest.mark.parametrize(
    "hostile",
    [
        "::error::x",
        "  ::add-mask::x",
        "[::1]::error::x",
        ":[::1]",
        "##[stop-commands]t",
        "a##[error]b",
    ],
)
def test_clean_defuses_workflow_commands_outside_ipv6_literals(hostile: str) -> None:
    out = clean(hostile)
    assert not out.lstrip().startswith("::")
    assert "::error" not in out
    assert "::add-mask" not in out
    assert "##[" not in out


def _hostile_env_release(env: Env) -> Path:
    """alpha 1.0, validly signed, whose provenance publisher object carries a hostile
    (index-asserted) environment."""
    wheel = env.pub.wheel("alpha", "1.0", signed=False)
    ident = default_identity("alpha")
    prov = provenance_json([env.pub.sigstore.attest_file(wheel, ident)], ident, HOSTILE)
    env.server.set_provenance("alpha", wheel.name, prov)
    return wheel


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_inspect_hostile_environment(env: Env, fmt: str) -> None:
    _hostile_env_release(env)
    extra = ["--json"] if fmt == "json" else []
    run = env.inspect("alpha==1.0", *extra)
    assert run.code == 0, run.text
    assert_inert_text(run.out)
    assert_inert_text(run.err)
    if fmt == "json":
        [doc] = run.json()
        assert_inert_strings(doc)
        assert "pwned" in doc["identity"]["environment"]
    else:
        assert "pwned" in run.out


def test_inspect_hostile_refusal_reason(env: Env) -> None:
    """A known publisher, then a release whose hostile environment is a publisher change: the
    reason and the fix command (which quotes the environment) are inert."""
    policy = env.workdir / "safe-pip.toml"
    policy.write_text(
        '[[package]]\nname = "alpha"\npublishers = [\n'
        '  { kind = "GitHub", repository = "acme/alpha", workflow = "release.yml", '
        'environment = "pypi" },\n]\n'
    )
    _hostile_env_release(env)
    for extra in ([], ["--json"]):
        run = env.inspect("alpha==1.0", "--record", *extra)
        assert run.code == 1, run.text
        assert_inert_text(run.out)
        assert_inert_text(run.err)
        if extra:
            assert_inert_strings(run.json())
    assert db_snapshot() == []


def test_hostile_page_name_in_error_message(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    page = json.loads(env.server.project_json("alpha"))
    page["name"] = HOSTILE
    env.server.faults["/simple/alpha/"] = Fault(
        body=json.dumps(page).encode(), content_type="application/vnd.pypi.simple.v1+json"
    )
    run = env.inspect("alpha==1.0", "--record")
    assert run.code == 3, run.text
    assert_inert_text(run.err)


def test_hostile_html_yanked_reason_and_link_text(env: Env) -> None:
    """PEP 503 page with a hostile data-yanked reason and anchor text: parsed, never echoed
    raw."""
    wheel = env.pub.wheel("alpha", "1.0")
    url = env.server.file_url("alpha", wheel.name)
    prov = env.server.provenance_url("alpha", wheel.name)
    esc = HOSTILE.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    body = (
        f'<html><body><a href="{url}" data-yanked="{esc}" data-provenance="{prov}">{esc}</a>'
        "</body></html>"
    ).encode()
    env.server.faults["/simple/alpha/"] = Fault(body=body, content_type="text/html")
    for extra in ([], ["--json"]):
        run = env.inspect("alpha==1.0", *extra)
        assert run.code in (0, 1), run.text
        assert_inert_text(run.out)
        assert_inert_text(run.err)


def _verify(env: Env, lock: Path, fmt: str) -> Run:
    return env.cli("verify", str(lock), "--format", fmt, "--trust-root", str(env.trust_root))


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "junit"])
def test_verify_reports_are_inert(env: Env, fmt: str) -> None:
    from verify_helpers import pylock_text

    _hostile_env_release(env)
    lock = env.workdir / "pylock.toml"
    text = pylock_text(
        env.server,
        ["alpha"],
        identities={
            "alpha": [
                {
                    "kind": "GitHub",
                    "repository": "acme/alpha",
                    "workflow": "release.yml",
                    "environment": "pypi",
                }
            ]
        },
    )
    lock.write_text(text)
    run = _verify(env, lock, fmt)
    assert run.code == 1, run.text
    assert_inert_text(run.err)
    if fmt == "text":
        assert_inert_text(run.out)
    elif fmt in ("json", "sarif"):
        assert_inert_text(run.out)
        assert_inert_strings(json.loads(run.out))
    else:
        root = ET.fromstring(run.out)  # noqa: S314 - our own report, not untrusted XML
        for el in root.iter():
            for value in [el.text or "", el.tail or "", *el.attrib.values()]:
                assert_inert_strings(value)
    assert db_snapshot() == []
