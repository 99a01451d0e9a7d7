# ruff: noqa: E501  (policy snippets are easier to read on one line)
"""The policy file: where it is found, every validation error naming file and line, the
publisher shorthand, and edits that keep comments and layout."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safe_pip.errors import ConfigError
from safe_pip.models import PublisherIdentity
from safe_pip.policy.edit import PolicyDocument, atomic_write_text
from safe_pip.policy.file import (
    Defaults,
    IdentityError,
    Policy,
    _Locator,
    find_policy,
    format_shorthand,
    load_policy,
    parse_policy,
    parse_publisher_shorthand,
    validate_identity_table,
)

GOOD = """\
# Team policy (reviewed in PRs)
[defaults]
require-attestation = true        # refuse unsigned
trust-on-first-use = false
on-publisher-change = "warn"
on-attestation-downgrade = "error"
allow-sdist = false
index-history-depth = 3

[[package]]
name = "Sample_Project"
publishers = [
  { kind = "GitHub", repository = "pypa/sampleproject", workflow = "release.yml" },
  { kind = "GitHub", repository = "pypa/sampleproject", workflow = "other.yaml", environment = "pypi" },
]

[[package]]
name = "gl"
publishers = [{ kind = "GitLab", repository = "group/sub/proj", workflow_filepath = "ci/release.yml" }]

[[package]]
name = "goog"
publishers = [{ kind = "Google", email = "builder@example.iam.gserviceaccount.com" }]

[[package]]
name = "pinned-ids"
publishers = [{ kind = "GitHub", repository = "a/b", workflow = "r.yml", repository_id = 123, repository_owner_id = "45" }]

[[unsigned]]
name = "six"
versions = "==1.16.0"
reason = "upstream does not publish attestations"
expires = 2027-06-01

[[unsigned]]
name = "legacy"
versions = ">=1,<2"
sha256 = ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]
reason = "pinned bytes"
"""


def test_parse_good_policy() -> None:
    p = parse_policy(GOOD, Path("safe-pip.toml"))
    assert p.defaults == Defaults(
        require_attestation=True,
        trust_on_first_use=False,
        on_publisher_change="warn",
        on_attestation_downgrade="error",
        allow_sdist=False,
        index_history_depth=3,
    )
    assert list(p.packages) == ["sample-project", "gl", "goog", "pinned-ids"]
    sample = p.packages["sample-project"]
    assert sample.line == 10
    assert sample.publishers[1] == PublisherIdentity(
        kind="GitHub", repository="pypa/sampleproject", workflow="other.yaml", environment="pypi"
    )
    assert p.packages["gl"].publishers[0].workflow_filepath == "ci/release.yml"
    assert p.packages["goog"].publishers[0].email == "builder@example.iam.gserviceaccount.com"
    pinned = p.packages["pinned-ids"].publishers[0]
    assert (pinned.repository_id, pinned.repository_owner_id) == ("123", "45")
    six, legacy = p.unsigned
    assert six.line == 29
    assert six.expires == date(2027, 6, 1)
    assert str(six.versions) == "==1.16.0"
    assert legacy.sha256 == frozenset({"a" * 64})
    assert legacy.expires is None
    assert p.label(sample.line) == "safe-pip.toml:10"


def test_default_policy() -> None:
    p = Policy.default()
    assert p.defaults == Defaults()
    assert p.defaults.require_attestation
    assert p.defaults.trust_on_first_use
    assert p.defaults.index_history_depth == 5
    assert not p.packages
    assert not p.unsigned
    assert p.path is None
    assert parse_policy("", None) == Policy.default()


PKG = '[[package]]\nname = "x"\n'
GH = '{ kind = "GitHub", repository = "o/r", workflow = "r.yml" }'

ERRORS = [
    ("toml-syntax", "[defaults]\nrequire-attestation = \n", 2, "invalid TOML"),
    ("unknown-top-key", "\n\nfoo = 1\n", 3, "unknown key 'foo'"),
    (
        "unknown-default",
        "[defaults]\n\nrequire_attestation = true\n",
        3,
        "did you mean 'require-attestation'",
    ),
    ("bool-as-string", '[defaults]\nallow-sdist = "no"\n', 2, "must be true or false"),
    ("bad-on-change", '[defaults]\non-publisher-change = "ignore"\n', 2, '"error" or "warn"'),
    ("bad-depth", "[defaults]\nindex-history-depth = -1\n", 2, "index-history-depth"),
    ("depth-bool", "[defaults]\nindex-history-depth = true\n", 2, "index-history-depth"),
    ("defaults-not-table", "defaults = 1\n", 1, "[defaults] must be a table"),
    ("package-not-aot", 'package = "x"\n', 1, "array of tables"),
    ("package-no-name", "[[package]]\npublishers = [" + GH + "]\n", 1, "needs name"),
    (
        "package-bad-name",
        '[[package]]\nname = "-x"\npublishers = [' + GH + "]\n",
        2,
        "not a valid project name",
    ),
    ("package-no-publishers", PKG, 1, "needs publishers"),
    ("package-empty-publishers", PKG + "publishers = []\n", 3, "non-empty array"),
    (
        "package-unknown-key",
        PKG + "publishers = [" + GH + "]\nowner = 1\n",
        4,
        "unknown key 'owner'",
    ),
    ("publisher-not-table", PKG + 'publishers = ["github:o/r@r.yml"]\n', 3, "must be a table"),
    (
        "publisher-kind-case",
        PKG + 'publishers = [\n  { kind = "github", repository = "o/r", workflow = "r.yml" },\n]\n',
        4,
        "did you mean 'GitHub'",
    ),
    (
        "publisher-kind-unknown",
        PKG + 'publishers = [{ kind = "Buildkite", repository = "o/r" }]\n',
        3,
        "unknown publisher kind 'Buildkite'",
    ),
    (
        "publisher-second-entry-line",
        PKG + "publishers = [\n  " + GH + ',\n  { kind = "GitHub", repository = "o/r" },\n]\n',
        5,
        "publishers[1]: a GitHub publisher needs 'workflow'",
    ),
    (
        "publisher-unknown-key",
        PKG
        + 'publishers = [{ kind = "GitHub", repository = "o/r", workflow = "r.yml", ref = "main" }]\n',
        3,
        "unknown key 'ref'",
    ),
    (
        "publisher-workflow-path",
        PKG
        + 'publishers = [{ kind = "GitHub", repository = "o/r", workflow = ".github/workflows/r.yml" }]\n',
        3,
        "file name only",
    ),
    (
        "publisher-repo-url",
        PKG
        + 'publishers = [{ kind = "GitHub", repository = "https://github.com/o/r", workflow = "r.yml" }]\n',
        3,
        "not a URL",
    ),
    (
        "publisher-repo-shape",
        PKG + 'publishers = [{ kind = "GitHub", repository = "o/r/x", workflow = "r.yml" }]\n',
        3,
        "'owner/repo'",
    ),
    (
        "publisher-gitlab-repo",
        PKG
        + 'publishers = [{ kind = "GitLab", repository = "proj", workflow_filepath = ".gitlab-ci.yml" }]\n',
        3,
        "group",
    ),
    (
        "publisher-gitlab-abs-path",
        PKG
        + 'publishers = [{ kind = "GitLab", repository = "g/p", workflow_filepath = "/ci.yml" }]\n',
        3,
        "relative path",
    ),
    (
        "publisher-google-email",
        PKG + 'publishers = [{ kind = "Google", email = "not-an-email" }]\n',
        3,
        "not an email",
    ),
    (
        "publisher-google-env",
        PKG + 'publishers = [{ kind = "Google", email = "a@b.co", environment = "x" }]\n',
        3,
        "unknown key 'environment'",
    ),
    (
        "publisher-empty-env",
        PKG
        + 'publishers = [{ kind = "GitHub", repository = "o/r", workflow = "r.yml", environment = "" }]\n',
        3,
        "non-empty",
    ),
    (
        "publisher-bad-id",
        PKG
        + 'publishers = [{ kind = "GitHub", repository = "o/r", workflow = "r.yml", repository_id = "abc" }]\n',
        3,
        "numeric id",
    ),
    (
        "duplicate-package",
        PKG + "publishers = [" + GH + ']\n\n[[package]]\nname = "X"\npublishers = [' + GH + "]\n",
        5,
        "appears twice (first at line 1)",
    ),
    ("unsigned-no-versions", '[[unsigned]]\nname = "six"\nreason = "r"\n', 1, "needs versions"),
    (
        "unsigned-bad-specifier",
        '[[unsigned]]\nname = "six"\nversions = "=>1.0"\nreason = "r"\n',
        3,
        "not a PEP 440 specifier",
    ),
    (
        "unsigned-empty-versions",
        '[[unsigned]]\nname = "six"\nversions = ""\nreason = "r"\n',
        3,
        "needs versions",
    ),
    ("unsigned-no-reason", '[[unsigned]]\nname = "six"\nversions = "==1"\n', 1, "needs reason"),
    (
        "unsigned-blank-reason",
        '[[unsigned]]\nname = "six"\nversions = "==1"\nreason = "  "\n',
        4,
        "needs reason",
    ),
    (
        "unsigned-expires-string",
        '[[unsigned]]\nname = "six"\nversions = "==1"\nreason = "r"\nexpires = "2027-01-01"\n',
        5,
        "TOML date without quotes",
    ),
    (
        "unsigned-expires-datetime",
        '[[unsigned]]\nname = "six"\nversions = "==1"\nreason = "r"\nexpires = 2027-01-01T00:00:00Z\n',
        5,
        "TOML date",
    ),
    (
        "unsigned-bad-sha",
        '[[unsigned]]\nname = "six"\nversions = "==1"\nreason = "r"\nsha256 = ["abc"]\n',
        5,
        "64-character hex",
    ),
    (
        "unsigned-sha-newline",
        '[[unsigned]]\nname = "six"\nversions = "==1"\nreason = "r"\nsha256 = ["'
        + "a" * 64
        + '\\n"]\n',
        5,
        "64-character hex",
    ),
    (
        "unsigned-unknown-key",
        '[[unsigned]]\nname = "six"\nversions = "==1"\nreason = "r"\nuntil = 2027-01-01\n',
        5,
        "unknown key 'until'",
    ),
    (
        "multiline-string-does-not-confuse-lines",
        'x = """\n[[package]]\n"""\n',
        1,
        "unknown key 'x'",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "fragment"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_errors_name_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = tmp_path / "safe-pip.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message
    assert info.value.exit_code == 2


def test_pyproject_errors_count_lines_of_the_whole_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n\n[tool.safe-pip.defaults]\nrequire-attestation = "yes"\n'
    )
    with pytest.raises(ConfigError, match=r"pyproject\.toml:5: defaults\.require-attestation"):
        load_policy(cwd=tmp_path, env={})


def test_pyproject_unknown_key(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.safe-pip]\npackages = []\n")
    with pytest.raises(
        ConfigError, match=r"pyproject\.toml:2: unknown key 'packages' in \[tool\.safe-pip\]"
    ):
        load_policy(cwd=tmp_path, env={})


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes(b"\xff\xfe[defaults]\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_policy(path)


# ------------------------------------------------------------------ where the policy comes from


def _write(path: Path, depth: int) -> Path:
    path.write_text(f"[defaults]\nindex-history-depth = {depth}\n")
    return path


def test_search_order(tmp_path: Path) -> None:
    explicit = _write(tmp_path / "explicit.toml", 1)
    from_env = _write(tmp_path / "env.toml", 2)
    _write(tmp_path / "safe-pip.toml", 3)
    (tmp_path / "pyproject.toml").write_text("[tool.safe-pip.defaults]\nindex-history-depth = 4\n")
    env = {"SAFE_PIP_POLICY": str(from_env)}

    assert load_policy(explicit, cwd=tmp_path, env=env).defaults.index_history_depth == 1
    assert load_policy(None, cwd=tmp_path, env=env).defaults.index_history_depth == 2
    assert load_policy(None, cwd=tmp_path, env={}).defaults.index_history_depth == 3
    (tmp_path / "safe-pip.toml").unlink()
    p = load_policy(None, cwd=tmp_path, env={})
    assert p.defaults.index_history_depth == 4
    assert p.path == tmp_path / "pyproject.toml"
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert load_policy(None, cwd=tmp_path, env={}) == Policy.default()
    assert find_policy(None, cwd=tmp_path, env={}).path is None


def test_relative_explicit_path_and_env_path(tmp_path: Path) -> None:
    _write(tmp_path / "p.toml", 7)
    assert load_policy(Path("p.toml"), cwd=tmp_path, env={}).defaults.index_history_depth == 7
    p = load_policy(None, cwd=tmp_path, env={"SAFE_PIP_POLICY": "p.toml"})
    assert p.defaults.index_history_depth == 7


def test_missing_explicit_or_env_policy_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_policy(tmp_path / "nope.toml", cwd=tmp_path, env={})
    with pytest.raises(ConfigError, match=r"SAFE_PIP_POLICY"):
        load_policy(None, cwd=tmp_path, env={"SAFE_PIP_POLICY": str(tmp_path / "nope.toml")})


def test_explicit_pyproject_reads_tool_table(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n')
    assert load_policy(path).defaults == Defaults()
    path.write_text(
        '[tool.safe-pip]\n[[tool.safe-pip.unsigned]]\nname = "six"\nversions = "==1"\nreason = "r"\n'
    )
    (six,) = load_policy(path).unsigned
    assert six.line == 2


def test_broken_pyproject_without_our_table_is_still_an_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_policy(cwd=tmp_path, env={})


# ------------------------------------------------------------------ identities and shorthand


@pytest.mark.parametrize(
    ("text", "env", "table"),
    [
        (
            "github:pypa/sampleproject@release.yml",
            None,
            {"kind": "GitHub", "repository": "pypa/sampleproject", "workflow": "release.yml"},
        ),
        (
            "GitHub:pypa/sampleproject@release.yml",
            "pypi",
            {
                "kind": "GitHub",
                "repository": "pypa/sampleproject",
                "workflow": "release.yml",
                "environment": "pypi",
            },
        ),
        (
            "gitlab:group/sub/proj@ci/.gitlab-ci.yml",
            None,
            {
                "kind": "GitLab",
                "repository": "group/sub/proj",
                "workflow_filepath": "ci/.gitlab-ci.yml",
            },
        ),
        ("google:someone@example.com", None, {"kind": "Google", "email": "someone@example.com"}),
    ],
)
def test_shorthand(text: str, env: str | None, table: dict[str, str]) -> None:
    ident = parse_publisher_shorthand(text, environment=env)
    assert ident.to_table() == table
    again = parse_publisher_shorthand(format_shorthand(ident), environment=env)
    assert again == ident


@pytest.mark.parametrize(
    ("text", "env", "fragment"),
    [
        ("pypa/sampleproject", None, "must look like"),
        ("github:pypa/sampleproject", None, "after '@'"),
        ("github:pypa/sampleproject@", None, "after '@'"),
        ("bitbucket:a/b@c.yml", None, "unknown kind"),
        ("github:pypa/sampleproject@.github/workflows/release.yml", None, "file name only"),
        ("google:someone@example.com", "pypi", "does not apply"),
        ("google:nobody", None, "not an email"),
    ],
)
def test_bad_shorthand(text: str, env: str | None, fragment: str) -> None:
    with pytest.raises(IdentityError, match=fragment):
        parse_publisher_shorthand(text, environment=env)


def test_validate_identity_rejects_control_characters() -> None:
    with pytest.raises(IdentityError):
        validate_identity_table(
            {"kind": "GitHub", "repository": "o/r", "workflow": "r.yml", "environment": "a\x1b[2J"}
        )


# ------------------------------------------------------------------ locator


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=3),
            st.text(alphabet="ab#[]{}\"' =\n", max_size=12),
        ),
        max_size=6,
    )
)
def test_locator_finds_every_package_entry(items: list[tuple[int, str]]) -> None:
    """[[package]] headers are found at the right lines whatever the comments and strings
    between them contain."""
    import tomlkit

    lines: list[str] = []
    expected: list[int] = []
    for blank, junk in items:
        lines.extend([""] * blank)
        lines.append("[[package]]")
        expected.append(len(lines))
        lines.append(
            f"note = {tomlkit.string(junk).as_string()}  # {junk.splitlines()[0] if junk.strip() else ''}"
        )
    loc = _Locator("\n".join(lines) + "\n")
    for i, line in enumerate(expected):
        assert loc.line("package", i) == line
        assert loc.line("package", i, "note") == line + 1


# ------------------------------------------------------------------ editing


def test_edits_keep_comments_and_layout(tmp_path: Path) -> None:
    path = tmp_path / "safe-pip.toml"
    path.write_text(GOOD)
    doc = PolicyDocument.open(path)
    added = doc.add_package(
        "sample-project",
        [parse_publisher_shorthand("github:pypa/sampleproject@release.yml")],  # already there
    )
    assert added == []
    assert not doc.changed()
    added = doc.add_package("goog", [parse_publisher_shorthand("google:second@example.com")])
    assert len(added) == 1
    doc.add_package("new-one", [parse_publisher_shorthand("github:o/new-one@release.yml")])
    doc.add_unsigned("zope", versions="==5.0", reason="legacy", expires=date(2030, 1, 1))
    doc.save()
    text = path.read_text()
    # every original line (comments, spacing, order) is still there
    original_lines = [
        line for line in GOOD.splitlines() if "goog" not in line and "builder@" not in line
    ]
    for line in original_lines:
        assert line in text, line
    assert "# Team policy (reviewed in PRs)" in text
    assert "require-attestation = true        # refuse unsigned" in text
    p = load_policy(path)
    assert len(p.packages["goog"].publishers) == 2
    assert p.packages["new-one"].publishers[0].repository == "o/new-one"
    assert p.unsigned[-1].name == "zope"
    assert p.unsigned[-1].expires == date(2030, 1, 1)
    assert text.index('name = "new-one"') > text.index('name = "pinned-ids"')


def test_remove_keeps_other_entries(tmp_path: Path) -> None:
    path = tmp_path / "safe-pip.toml"
    path.write_text(GOOD)
    doc = PolicyDocument.open(path)
    assert doc.remove_package("SIX") == (0, 1)
    assert doc.remove_package("sample_project") == (1, 0)
    assert doc.remove_package("absent") == (0, 0)
    doc.save()
    p = load_policy(path)
    assert "sample-project" not in p.packages
    assert [u.name for u in p.unsigned] == ["legacy"]
    assert "# Team policy (reviewed in PRs)" in path.read_text()


def test_invalid_file_is_not_edited(tmp_path: Path) -> None:
    path = tmp_path / "safe-pip.toml"
    path.write_text("[defaults]\nbogus = 1\n")
    with pytest.raises(ConfigError, match=":2: unknown key 'bogus'"):
        PolicyDocument.open(path)
    assert path.read_text() == "[defaults]\nbogus = 1\n"


def test_invalid_unsigned_edit_is_rolled_back(tmp_path: Path) -> None:
    path = tmp_path / "safe-pip.toml"
    path.write_text(GOOD)
    doc = PolicyDocument.open(path)
    with pytest.raises(ConfigError):
        doc.add_unsigned("six", versions="=>1", reason="r")
    assert not doc.changed()


def test_new_file_and_pyproject(tmp_path: Path) -> None:
    doc = PolicyDocument.open(None, cwd=tmp_path, env={})
    assert doc.path == tmp_path / "safe-pip.toml"
    assert not doc.location.exists
    doc.add_package("x", [parse_publisher_shorthand("github:o/x@r.yml")])
    doc.save()
    assert load_policy(None, cwd=tmp_path, env={}).packages["x"].line == 4

    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "demo"  # keep\n\n[tool.black]\nline-length = 100\n')
    doc = PolicyDocument.open(pyproject)
    doc.add_package("y", [parse_publisher_shorthand("github:o/y@r.yml")])
    doc.save()
    text = pyproject.read_text()
    assert 'name = "demo"  # keep' in text
    assert "[tool.black]" in text
    assert load_policy(pyproject).packages["y"].publishers[0].repository == "o/y"


def test_atomic_write_keeps_mode_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text("old")
    os.chmod(path, 0o640)
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert (path.stat().st_mode & 0o777) == 0o640
    assert os.listdir(tmp_path) == ["f.toml"]


def test_atomic_write_failure_leaves_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.toml"
    path.write_text("old")

    def boom(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.toml"]
