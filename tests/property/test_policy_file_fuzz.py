"""safe_pip.policy.file.parse_policy on arbitrary text and arbitrary TOML-shaped documents:
a Policy or a ConfigError naming the file, never another exception."""

from __future__ import annotations

from pathlib import Path

import tomlkit
from hypothesis import given
from hypothesis import strategies as st

from property.conftest import json_values
from safe_pip.errors import ConfigError
from safe_pip.policy.file import Policy, parse_policy

PATH = Path("safe-pip.toml")
FRAGMENTS = [
    "[defaults]\n",
    "require-attestation = false\n",
    "trust-on-first-use = true\n",
    'on-publisher-change = "warn"\n',
    "index-history-depth = -1\n",
    "[[package]]\n",
    'name = "six"\n',
    'publishers = [ { kind = "GitHub", repository = "a/b", workflow = "r.yml" } ]\n',
    "publishers = [ {} ]\n",
    "[[unsigned]]\n",
    'versions = "==1.0"\n',
    'versions = "=>1"\n',
    'reason = "x"\n',
    "expires = 2020-01-01\n",
    'sha256 = ["abc"]\n',
    "[tool.safe-pip]\n",
    "= = =\n",
    '"\\u0000"\n',
    "\x00\x1b[31m\n",
]


def _check(text: str, *, pyproject: bool = False) -> None:
    try:
        policy: Policy | None = parse_policy(text, PATH, pyproject=pyproject)
        message = ""
    except ConfigError as exc:
        policy, message = None, exc.message
    if policy is None:
        assert message.startswith(str(PATH)), message
    else:
        assert isinstance(policy, Policy)


@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    _check(text)


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12), st.booleans())
def test_fragment_soup(parts: list[str], pyproject: bool) -> None:
    _check("".join(parts), pyproject=pyproject)


@given(st.dictionaries(st.sampled_from(["defaults", "package", "unsigned", "x"]), json_values()))
def test_arbitrary_documents(doc: dict[str, object]) -> None:
    try:
        text = tomlkit.dumps(doc)
    except Exception:  # not representable in TOML (None, mixed arrays): not a policy file
        return
    _check(text)
