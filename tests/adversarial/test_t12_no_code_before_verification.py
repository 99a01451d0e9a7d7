"""T12: no code of an unverified distribution runs during ``safe-pip install``, in any form.

Every attack here points pip, one way or another, at an sdist or source tree whose in-tree
build backend writes a marker file the moment it is imported. Before resolution went through
the verifying index, pip's ``--dry-run`` resolution built such sources (running the backend)
before anything was verified. Each test asserts: the marker never exists, the exit code is
1 or 2, and the form is named in the output. Real pip subprocesses, loopback index only.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adversarial.conftest import Env, Run, db_snapshot
from support.index_server import Fault, IndexServer

pytestmark = pytest.mark.slow

_BACKEND = """\
import pathlib
pathlib.Path({marker!r}).write_text("the build backend ran")

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    raise RuntimeError("never reached: importing this module already ran attacker code")

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("never reached")
"""


def _source_tree(root: Path, marker: Path, name: str = "evil", version: str = "1.0") -> Path:
    """A project whose build backend writes ``marker`` when imported."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        "[build-system]\nrequires = []\nbuild-backend = 'evil_backend'\n"
        "backend-path = ['_backend']\n\n"
        f"[project]\nname = '{name}'\nversion = '{version}'\n",
        encoding="utf-8",
    )
    (root / "_backend").mkdir(exist_ok=True)
    (root / "_backend" / "evil_backend.py").write_text(
        _BACKEND.format(marker=str(marker)), encoding="utf-8"
    )
    (root / "PKG-INFO").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    return root


def _sdist(tree: Path, dest: Path, name: str = "evil", version: str = "1.0") -> Path:
    base = f"{name}-{version}"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        tf.add(tree, arcname=base)
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / f"{base}.tar.gz"
    out.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    return out


@dataclass
class Attack:
    env: Env
    marker: Path
    tree: Path  # the evil source tree (a local directory)
    sdist: Path  # the evil sdist (a local file), also on the index as project "evil"
    sdist_url: str  # its URL on the loopback index
    repo: Path  # a git repository of the evil tree

    def install(self, *argv: str) -> Run:
        target = self.env.workdir / "target"
        target.mkdir(exist_ok=True)
        return self.env.cli(
            "install",
            *self.env.args(),
            "--provenance-index",
            self.env.server.index_url,
            "--target",
            str(target),
            *argv,
        )

    def assert_refused(self, run: Run, *named: str, codes: tuple[int, ...] = (1, 2)) -> None:
        assert not self.marker.exists(), "the unverified build backend ran\n" + run.text
        assert run.code in codes, run.text
        for text in named:
            assert text in run.text, (text, run.text)
        assert "Traceback" not in run.text, run.text


@pytest.fixture
def attack(env: Env) -> Attack:
    marker = env.workdir / "PWNED"
    tree = _source_tree(env.workdir / "evil-src", marker)
    sdist = _sdist(tree, env.workdir / "dist")
    env.server.add_file(sdist, project="evil")
    repo = env.workdir / "evil-repo"
    _source_tree(repo, marker)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "evil"], check=True)
    return Attack(env, marker, tree, sdist, env.server.file_url("evil", sdist.name), repo)


def _form(attack: Attack, form: str) -> tuple[list[str], str]:
    """(requirement argv, the text naming the form) for one unverifiable form."""
    if form == "direct-url":
        return [f"evil @ {attack.sdist_url}"], "a direct URL (name @ URL)"
    if form == "bare-url":
        return [attack.sdist_url], "is a URL"
    if form == "local-dir":
        return ["./evil-src"], "a local path"
    if form == "local-archive":
        return [str(attack.sdist)], "a local path"
    if form == "file-url":
        return [attack.sdist.as_uri()], "is a URL"
    if form == "vcs":
        return [f"git+{attack.repo.as_uri()}"], "a VCS URL"
    if form == "vcs-direct":
        return [f"evil @ git+{attack.repo.as_uri()}"], "a VCS URL"
    if form == "editable":
        return ["-e", "./evil-src"], "an editable"
    raise AssertionError(form)


FORMS = [
    "direct-url",
    "bare-url",
    "local-dir",
    "local-archive",
    "file-url",
    "vcs",
    "vcs-direct",
    "editable",
]


@pytest.mark.parametrize("form", FORMS)
def test_command_line_form_is_refused_before_pip(attack: Attack, form: str) -> None:
    argv, named = _form(attack, form)
    run = attack.install(*argv)
    attack.assert_refused(run, named, "nothing was run", codes=(2,))


@pytest.mark.parametrize("form", FORMS)
def test_requirement_file_form_is_refused_before_pip(attack: Attack, form: str) -> None:
    argv, named = _form(attack, form)
    reqs = attack.env.workdir / "reqs.txt"
    reqs.write_text("alpha\n" + " ".join(argv) + "\n", encoding="utf-8")
    attack.env.pub.wheel("alpha", "1.0")
    run = attack.install("-r", str(reqs))
    attack.assert_refused(run, named, f"requirement file {reqs} line 2", codes=(2,))


@pytest.mark.parametrize("spelling", ["{}[x]", "{}[x,y]", "{}[x];python_version>'3'"])
def test_local_archive_with_extras_is_refused_before_pip(
    attack: Attack, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    """pip strips ``[extras]`` before testing for an archive: ``evil-1.0.tar.gz[x]`` (no
    path separator) is the local sdist to pip, whose --dry-run resolution would build it."""
    monkeypatch.chdir(attack.sdist.parent)
    run = attack.install(spelling.format(attack.sdist.name))
    attack.assert_refused(run, "a local archive file", "nothing was run", codes=(2,))


@pytest.mark.parametrize("kind", ["archive", "directory"])
def test_arbitrary_equality_naming_a_local_file_is_refused_before_pip(
    attack: Attack, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """``evil===x@d/evil-1.0.tar.gz`` parses as a named requirement (``===`` takes any
    string), but pip reads it as the local file (or source tree) when one exists there."""
    import shutil

    workdir = attack.env.workdir / "cwd"
    (workdir / "evil===x@d").mkdir(parents=True)
    if kind == "archive":
        shutil.copy(attack.sdist, workdir / "evil===x@d" / attack.sdist.name)
        text, named = f"evil===x@d/{attack.sdist.name}", "a local archive file"
    else:
        shutil.copytree(attack.tree, workdir / "evil===x@d" / "src")
        text, named = "evil===x@d/src", "a local path"
    monkeypatch.chdir(workdir)
    run = attack.install(text)
    attack.assert_refused(run, named, "nothing was run", codes=(2,))


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--only-binary", ":none:", "evil"], "--only-binary"),
        (["--only-binary=:none:", "evil"], "--only-binary"),
        (["--no-binary", ":all:", "evil"], "--no-binary"),
        (["--no-binary", "evil", "evil"], "--no-binary"),
    ],
)
def test_binary_options_on_the_command_line(attack: Attack, argv: list[str], named: str) -> None:
    run = attack.install(*argv)
    attack.assert_refused(run, named, codes=(2,))


@pytest.mark.parametrize(
    "line", ["--only-binary :none:", "--only-binary=:none:", "--no-binary :all:", "--no-bin evil"]
)
def test_binary_options_in_a_requirement_file(attack: Attack, line: str) -> None:
    reqs = attack.env.workdir / "reqs.txt"
    reqs.write_text(f"{line}\nevil\n", encoding="utf-8")
    run = attack.install("-r", str(reqs))
    attack.assert_refused(run, "binary", f"requirement file {reqs} line 1", codes=(2,))


@pytest.mark.parametrize("spelling", ["file-url", "file-localhost", "file-single-slash"])
@pytest.mark.parametrize("option", ["-r", "-c"])
def test_requirement_file_given_as_file_url_is_read(
    attack: Attack, spelling: str, option: str
) -> None:
    """A requirement / constraints file given as a file: URL is read like a local path, so the
    forms inside it are refused too (pip would read it; safe-pip must, or refuse it)."""
    reqs = attack.env.workdir / "reqs.txt"
    reqs.write_text(f"evil @ {attack.sdist_url}\n", encoding="utf-8")
    url = {
        "file-url": reqs.as_uri(),
        "file-localhost": "file://localhost" + str(reqs),
        "file-single-slash": "file:" + str(reqs),
    }[spelling]
    run = attack.install(option, url, "alpha")
    attack.assert_refused(run, "a direct URL (name @ URL)", codes=(2,))


def test_requirement_file_given_as_http_url_is_refused(attack: Attack) -> None:
    run = attack.install("-r", f"{attack.env.server.url}/reqs.txt", "alpha")
    attack.assert_refused(run, "a requirement file read from a URL", codes=(2,))
    assert attack.env.server.hits("/reqs.txt") == 0  # never fetched


@pytest.mark.parametrize("nested", ["-r", "-c", "--requirement", "--constr"])
def test_nested_requirement_files_are_read(attack: Attack, nested: str) -> None:
    inner = attack.env.workdir / "sub" / "inner.txt"
    inner.parent.mkdir()
    inner.write_text("-e ../evil-src\n", encoding="utf-8")
    outer = attack.env.workdir / "reqs.txt"
    outer.write_text(f"{nested} sub/inner.txt\nalpha\n", encoding="utf-8")
    run = attack.install("-r", str(outer))
    attack.assert_refused(run, "an editable", f"{inner} line 1", codes=(2,))


def test_nested_url_requirement_file_is_refused(attack: Attack) -> None:
    outer = attack.env.workdir / "reqs.txt"
    outer.write_text(f"-r {attack.env.server.url}/nested.txt\nalpha\n", encoding="utf-8")
    run = attack.install("-r", str(outer))
    attack.assert_refused(run, "a requirement file read from a URL", codes=(2,))


def test_all_unverifiable_forms_are_reported_together(attack: Attack) -> None:
    reqs = attack.env.workdir / "reqs.txt"
    reqs.write_text(f"--no-binary :all:\nevil @ {attack.sdist_url}\n", encoding="utf-8")
    run = attack.install("-r", str(reqs), "./evil-src", "-e", "./evil-src")
    attack.assert_refused(run, "4 requirement(s) or option(s)", codes=(2,))


@pytest.mark.parametrize("where", ["http", "file"])
@pytest.mark.parametrize("signed", [True, False])
def test_metadata_direct_url_dependency_is_refused(
    attack: Attack, where: str, signed: bool
) -> None:
    """A wheel pip merely considers (signed and otherwise acceptable, or unsigned) whose
    metadata requires ``evil @ URL``: pip would fetch and build that URL while resolving
    (``--only-binary`` does not apply to direct URLs). The verifying index refuses the wheel
    before pip reads its metadata."""
    url = attack.sdist_url if where == "http" else attack.sdist.as_uri()
    attack.env.pub.wheel("lure", "1.0", requires=[f"evil @ {url}"], signed=signed)
    attack.env.pub.wheel("app", "1.0", requires=["lure"])
    run = attack.install("app")
    code = "refused-direct-url-dependency" if signed else "refused-unsigned"
    attack.assert_refused(run, code, "lure", codes=(1,))
    assert "nothing was installed" in run.text


def test_metadata_direct_url_dependency_refused_by_serve(attack: Attack, tmp_path: Path) -> None:
    """``safe-pip serve`` refuses it too (403, refused-direct-url-dependency): a plain pip
    pointed at serve never sees the metadata."""
    import urllib.error
    import urllib.request

    from safe_pip.options import RunOptions, make_checker, open_store
    from safe_pip.serve import start_server

    attack.env.pub.wheel("lure", "1.0", requires=[f"evil @ {attack.sdist_url}"])

    own = RunOptions(trust_root=str(attack.env.trust_root))
    store = open_store(own)
    try:
        checker = make_checker(own, store=store, provenance_index=attack.env.server.index_url)
        with start_server(checker, attack.env.server.index_url, mode="block") as srv:
            from urllib.parse import urljoin

            page_url = f"{srv.index_url}lure/"
            page = urllib.request.urlopen(page_url).read().decode()
            link = page.split('href="', 2)[1].split('"', 1)[0].split("#", 1)[0]
            with pytest.raises(urllib.error.HTTPError) as exc:
                urllib.request.urlopen(urljoin(page_url, link))
            assert exc.value.code == 403
            assert "refused-direct-url-dependency" in exc.value.read().decode()
    finally:
        store.close()
    assert not attack.marker.exists()


def test_a_refused_file_is_never_replaced_by_an_older_version(attack: Attack) -> None:
    """Block mode: pip picks what it would pick from upstream; a refused newest release stops
    the run (exit 1) instead of pip quietly falling back to the older allowed one."""
    attack.env.pub.wheel("beta", "1.0")
    attack.env.pub.wheel("beta", "2.0", signed=False)
    run = attack.install("beta", "--json")
    attack.assert_refused(run, "refused-attestation-downgrade", codes=(1,))
    (refused,) = [f for f in run.json()["files"] if f["verdict"] == "refuse"]
    assert (refused["project"], refused["version"]) == ("beta", "2.0")


def test_cloaking_extra_index_is_still_confusion(attack: Attack, tmp_path: Path) -> None:
    """An extra index that shows a project only to some requests: pip sees exactly the pages
    safe-pip's verifying index read, so what pip saw decides (refused-index-confusion)."""
    from support.publish import Publisher

    env = attack.env
    env.pub.wheel("corp-utils", "1.0")
    with IndexServer(tmp_path / "public") as public:
        Publisher(env.pub.sigstore, public, tmp_path / "public-build").wheel("corp-utils", "99.0")
        reads = {"n": 0}
        real = public._take_fault

        def cloak(path: str) -> Fault | None:
            # serve the page once (the read that pip's answer comes from), then 404
            if path.startswith("/simple/corp-utils"):
                reads["n"] += 1
                if reads["n"] > 1:
                    return Fault(status=404)
            return real(path)

        public._take_fault = cloak  # type: ignore[method-assign]
        run = attack.install("--extra-index-url", public.index_url, "corp-utils", "--json")
    attack.assert_refused(run, "refused-index-confusion", codes=(1,))


def test_same_index_spelled_twice_is_one_index(attack: Attack) -> None:
    env = attack.env
    env.pub.wheel("alpha", "1.0")
    url = env.server.index_url
    twice = url.rstrip("/") if url.endswith("/") else url + "/"
    run = attack.install(
        "--extra-index-url", twice, "--extra-index-url", url.upper()[:4] + url[4:], "alpha"
    )
    assert run.code == 0, run.text
    assert "refused-index-confusion" not in run.text


@pytest.mark.parametrize(
    "url", ["http://[::1", "http://127.0.0.1:99999/simple/", "ftp://x/simple/", "not a url"]
)
def test_malformed_index_url_is_a_usage_error(attack: Attack, url: str) -> None:
    run = attack.install("--extra-index-url", url, "alpha")
    assert run.code == 2, run.text
    assert "Traceback" not in run.text
    assert "index URL" in run.text


def test_dead_proxy_closes_every_host_but_the_verifying_index() -> None:
    """pip's environment: every proxy variable replaced by the dead proxy, the user's own
    proxies and exemptions dropped; only 127.0.0.1 (and, with --allow-unverifiable-sources,
    the hosts of the VCS URLs the user allowed) reached directly."""
    import socket

    from safe_pip.install.resolve import DeadProxy, vcs_hosts

    proxy = DeadProxy()
    try:
        base = {"HTTPS_PROXY": "http://corp:3128", "no_proxy": "*", "HOME": "/h"}
        env = proxy.env(base)
        for var in ("http_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            assert env[var] == proxy.url
        assert env["no_proxy"] == env["NO_PROXY"] == "127.0.0.1"
        assert env["HOME"] == "/h"
        port = int(proxy.url.rsplit(":", 1)[1])
        with socket.socket() as s, pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", port))  # nothing ever listens there
        hosts = vcs_hosts(
            ["git+https://github.com/a/b", "x @ git+ssh://git@gitlab.example/c.git", "./tree"]
        )
        assert hosts == ["github.com", "gitlab.example"]
        assert proxy.env(base, hosts)["NO_PROXY"] == "127.0.0.1,github.com,gitlab.example"
        # a wildcard, a single label or a leading dot would exempt far more than one host
        hostile = ["git+https://*/x", "git+https://g/x", "git+https://.example.com/x"]
        assert vcs_hosts(hostile) == []
        assert vcs_hosts(["git+https://10.0.0.1/x"]) == ["10.0.0.1"]
    finally:
        proxy.close()


# -- every refusal in one report (PEP 658 stand-ins, ADR 0007) ----------------------------------


def _upstream_file_hits(env: Env, project: str, wheel: Path) -> int:
    from urllib.parse import urlsplit

    return env.server.hits(urlsplit(env.server.file_url(project, wheel.name)).path)


def test_every_refused_file_in_the_resolution_is_reported_in_one_run(attack: Attack) -> None:
    """Refused files in different branches of the dependency tree (app -> left -> bee, an
    unsigned wheel; app -> right -> cee, an unsigned release after a signed one; app -> lure,
    a signed wheel whose metadata requires an sdist by direct URL): the verifying index answers
    pip's ``.metadata`` requests for them with stand-ins, so pip's resolution goes on past the
    first one and safe-pip reports all three at once, each with its reason code. Nothing is
    installed, nothing runs, and the refused wheels' bytes are never fetched by anyone."""
    env = attack.env
    bee = env.pub.wheel("bee", "1.0", signed=False)
    env.pub.wheel("cee", "1.0")
    cee = env.pub.wheel("cee", "2.0", signed=False)
    env.pub.wheel("lure", "1.0", requires=[f"evil @ {attack.sdist_url}"])
    env.pub.wheel("left", "1.0", requires=["bee"])
    env.pub.wheel("right", "1.0", requires=["cee"])
    env.pub.wheel("app", "1.0", requires=["left", "right", "lure"])
    run = attack.install("app", "--json")
    attack.assert_refused(run, codes=(1,))
    refused = {
        (f["project"], f["version"]): f["code"]
        for f in run.json()["files"]
        if f["verdict"] == "refuse"
    }
    assert refused == {
        ("bee", "1.0"): "refused-unsigned",
        ("cee", "2.0"): "refused-attestation-downgrade",
        ("lure", "1.0"): "refused-direct-url-dependency",
    }, run.text
    # the text report names them all too
    text = attack.install("app")
    attack.assert_refused(text, "bee", "cee", "lure", "refused-unsigned", codes=(1,))
    assert "refused-attestation-downgrade" in text.text
    assert "refused-direct-url-dependency" in text.text
    assert "nothing was installed" in text.text
    assert not any((env.workdir / "target").iterdir())  # no stand-in, nothing at all
    assert _upstream_file_hits(env, "bee", bee) == 0
    assert _upstream_file_hits(env, "cee", cee) == 0


def _rewrite_wheel(wheel: Path, edit: dict[str, bytes | None]) -> None:
    """Replace (bytes) or drop (None) members of ``wheel``, add new ones."""
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    for name, data in edit.items():
        if data is None:
            members.pop(name, None)
        else:
            members[name] = data
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


_HUGE = b"Metadata-Version: 2.1\nName: inv\nVersion: 2.0\n\n" + b"x" * (4 * 1024 * 1024 + 1)


@pytest.mark.parametrize(
    ("case", "edit"),
    [
        ("other-name", {"inv-2.0.dist-info/METADATA": b"Name: other\nVersion: 2.0\n"}),
        ("other-version", {"inv-2.0.dist-info/METADATA": b"Name: inv\nVersion: 1.0\n"}),
        ("two-names", {"inv-2.0.dist-info/METADATA": b"Name: inv\nName: x\nVersion: 2.0\n"}),
        ("two-dist-infos", {"other-1.0.dist-info/METADATA": b"Name: other\nVersion: 1.0\n"}),
        ("no-metadata", {"inv-2.0.dist-info/METADATA": None}),
        ("huge", {"inv-2.0.dist-info/METADATA": _HUGE}),
    ],
)
def test_a_wheel_whose_metadata_disagrees_with_its_name_is_refused(
    attack: Attack, tmp_path: Path, case: str, edit: dict[str, bytes | None]
) -> None:
    """A signed wheel whose METADATA names another project or version (pip would skip it and
    quietly take inv 1.0), has two .dist-info directories, none, or a huge METADATA: refused
    (refused-invalid-wheel), never served as metadata, and no older version instead."""
    from support.packages import build_wheel

    env = attack.env
    env.pub.wheel("inv", "1.0")
    wheel = build_wheel(tmp_path, "inv", "2.0")
    _rewrite_wheel(wheel, edit)
    env.pub._upload(wheel, "inv", None, True, None, False)
    run = attack.install("inv", "--json")
    attack.assert_refused(run, codes=(1,))
    refused = [(f["version"], f["code"]) for f in run.json()["files"] if f["verdict"] == "refuse"]
    assert refused == [("2.0", "refused-invalid-wheel")], (case, run.text)
    assert not any((env.workdir / "target").iterdir())


def _resolving_index(env: Env) -> tuple[Any, Any]:
    """(store, checker) as ``safe-pip install`` builds them, for a resolving index."""
    from safe_pip.options import RunOptions, make_checker, open_store

    own = RunOptions(trust_root=str(env.trust_root))
    store = open_store(own)
    return store, make_checker(own, store=store, provenance_index=env.server.index_url)


def test_dependency_pages_are_read_ahead_once(attack: Attack) -> None:
    """Once a verified wheel's METADATA is served, the resolving index reads its dependencies'
    pages in parallel (pip would ask one by one), and pip's request for such a page takes
    that read instead of reading upstream again. Dependencies behind a marker that does not
    hold here, or behind an extra, are not read ahead; nor is anything of a refused wheel."""
    import urllib.request
    from urllib.parse import urljoin

    from safe_pip.serve import start_server

    env = attack.env
    for name in ("dee", "eee", "winonly", "extra-dep", "bad-dep"):
        env.pub.wheel(name, "1.0")
    env.pub.wheel(
        "top",
        "1.0",
        requires=[
            "dee",
            "eee>=1",
            "winonly; sys_platform == 'nonesuch'",
            "extra-dep; extra == 'x'",
        ],
    )
    env.pub.wheel("top", "2.0", requires=["bad-dep"], signed=False)  # refused: no read ahead
    store, checker = _resolving_index(env)
    try:
        with start_server(
            checker,
            env.server.index_url,
            mode="block",
            lazy=True,
            record=False,
            core_metadata=True,
            read_ahead=True,
        ) as srv:
            page_url = f"{srv.index_url}top/"
            html = urllib.request.urlopen(page_url).read().decode()
            links = [h.split('"', 1)[0].split("#", 1)[0] for h in html.split('href="')[1:]]
            for link in links:
                urllib.request.urlopen(urljoin(page_url, link) + ".metadata").read()
            ahead = dict(srv.index._ahead)
            assert sorted(ahead) == ["dee", "eee"]
            for future in ahead.values():
                future.result(timeout=30)
            for name in ("dee", "eee"):
                read = env.server.hits(f"/simple/{name}/")
                assert read >= 1, name
                urllib.request.urlopen(f"{srv.index_url}{name}/").read()
                assert env.server.hits(f"/simple/{name}/") == read, name  # taken, not read
                urllib.request.urlopen(f"{srv.index_url}{name}/").read()
                assert env.server.hits(f"/simple/{name}/") > read, name  # taken once only
            for name in ("winonly", "extra-dep", "bad-dep"):
                assert env.server.hits(f"/simple/{name}/") == 0, name
    finally:
        store.close()


def test_core_metadata_pages_and_stand_ins(attack: Attack) -> None:
    """The resolving index's pages advertise PEP 658/714 metadata for wheels (HTML and JSON,
    both names); ``.metadata`` is the verified wheel's own METADATA (upstream's is never
    asked for), and for a refused wheel a stand-in holding project and version and nothing
    else, while the refused wheel itself stays a 403."""
    import json
    import urllib.error
    import urllib.request
    import zipfile
    from urllib.parse import urljoin

    from safe_pip.serve import start_server

    env = attack.env
    good = env.pub.wheel("gee", "1.0", requires=["dep>=1"])
    env.pub.wheel("gee", "2.0", requires=[f"evil @ {attack.sdist_url}"], signed=False)
    store, checker = _resolving_index(env)
    try:
        with start_server(
            checker,
            env.server.index_url,
            mode="block",
            lazy=True,
            record=False,
            core_metadata=True,
        ) as srv:
            page_url = f"{srv.index_url}gee/"
            html = urllib.request.urlopen(page_url).read().decode()
            assert html.count('data-core-metadata="true" data-dist-info-metadata="true"') == 2
            req = urllib.request.Request(
                page_url, headers={"Accept": "application/vnd.pypi.simple.v1+json"}
            )
            files = json.loads(urllib.request.urlopen(req).read())["files"]
            assert all(f["core-metadata"] is True for f in files)
            assert all(f["dist-info-metadata"] is True for f in files)
            links = {f["filename"]: urljoin(page_url, f["url"]) for f in files}
            with zipfile.ZipFile(good) as zf:
                own_metadata = zf.read("gee-1.0.dist-info/METADATA")
            got = urllib.request.urlopen(links["gee-1.0-py3-none-any.whl"] + ".metadata").read()
            assert got == own_metadata
            stand_in = urllib.request.urlopen(
                links["gee-2.0-py3-none-any.whl"] + ".metadata"
            ).read()
            assert stand_in == b"Metadata-Version: 2.1\nName: gee\nVersion: 2.0\n\n"
            with pytest.raises(urllib.error.HTTPError) as exc:
                urllib.request.urlopen(links["gee-2.0-py3-none-any.whl"])
            assert exc.value.code == 403
            assert [v.filename for v in srv.index.stand_ins()] == ["gee-2.0-py3-none-any.whl"]
    finally:
        store.close()
    assert not any(".metadata" in p for p in env.server.requests_log)


#: Spellings of a direct-URL dependency in a wheel's METADATA. pip reads every one of them as
#: ``evil @ file:///...`` (a folded header, pip strips it; a trailing comment, pip drops it)
#: and builds the sdist: the three that packaging rejects ("fold", "fold-leading",
#: "comment") are refused only because an unparsable Requires-Dist counts as a direct URL.
_DIRECT_URL_SPELLINGS = {
    "fold": "Requires-Dist: evil\n @ {url}\n",
    "fold-leading": "Requires-Dist:\n evil @ {url}\n",
    "comment": "Requires-Dist: evil @ {url} # x\n",
    "lower-case": "requires-dist: evil @ {url}\n",
    "second": "Requires-Dist: alpha\nRequires-Dist: evil @ {url}\n",
    "extra": "Provides-Extra: x\nRequires-Dist: evil @ {url} ; extra == 'x'\n",
    "tab": "Requires-Dist:\tevil @ {url}\n",
    "crlf": "Requires-Dist: evil @ {url}\r\n",
}


@pytest.mark.parametrize("spelling", sorted(_DIRECT_URL_SPELLINGS))
def test_every_spelling_of_a_direct_url_in_served_metadata_is_refused(
    attack: Attack, tmp_path: Path, spelling: str
) -> None:
    """A signed wheel whose METADATA requires a local sdist by direct URL in any header form
    pip accepts: the resolving index never serves that METADATA to pip (which would build the
    sdist while resolving); the wheel is refused-direct-url-dependency and nothing runs."""
    from support.packages import build_wheel

    env = attack.env
    env.pub.wheel("alpha", "1.0")
    wheel = build_wheel(tmp_path, "lure", "1.0")
    header = _DIRECT_URL_SPELLINGS[spelling].format(url=attack.sdist.as_uri())
    meta = f"Metadata-Version: 2.1\nName: lure\nVersion: 1.0\n{header}\n"
    _rewrite_wheel(wheel, {"lure-1.0.dist-info/METADATA": meta.encode()})
    env.pub._upload(wheel, "lure", None, True, None, False)
    env.pub.wheel("app", "1.0", requires=["lure[x]" if spelling == "extra" else "lure"])
    run = attack.install("app", "--json")
    attack.assert_refused(run, codes=(1,))
    refused = [(f["project"], f["code"]) for f in run.json()["files"] if f["verdict"] == "refuse"]
    assert refused == [("lure", "refused-direct-url-dependency")], (spelling, run.text)
    assert not any((env.workdir / "target").iterdir())


def test_a_stand_in_refusal_survives_a_dropped_verdict(
    attack: Attack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel answered with a stand-in stays refused for the run, even when the index's
    cached verdict is dropped after the stand-in (as a history change written by another run
    drops a project's verdicts) and decided again from its provenance alone, which does not
    find what was wrong in its METADATA (here two ``Name`` headers: pip reads the first and
    installs it). Before, pip downloaded the wheel (allowed again), the run installed it and
    recorded it in the history."""
    from safe_pip.serve.server import VerifyingIndex
    from support.packages import build_wheel

    env = attack.env
    wheel = build_wheel(tmp_path, "inv", "2.0")
    meta = b"Metadata-Version: 2.1\nName: inv\nName: other\nVersion: 2.0\n\n"
    _rewrite_wheel(wheel, {"inv-2.0.dist-info/METADATA": meta})
    env.pub._upload(wheel, "inv", None, True, None, False)
    real = VerifyingIndex.metadata

    def then_dropped(self: VerifyingIndex, entry: Any) -> Any:
        answer = real(self, entry)
        if answer.stand_in:
            self._drop("inv")  # what a history change written meanwhile does
        return answer

    monkeypatch.setattr(VerifyingIndex, "metadata", then_dropped)
    run = attack.install("inv", "--json")
    attack.assert_refused(run, codes=(1,))
    refused = [(f["version"], f["code"]) for f in run.json()["files"] if f["verdict"] == "refuse"]
    assert refused == [("2.0", "refused-invalid-wheel")], run.text
    assert not any((env.workdir / "target").iterdir())


def test_read_ahead_is_bounded(attack: Attack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A verified wheel may name any number of dependencies (a signed first-use project can
    put some 200,000 names in its 4 MiB METADATA): the resolving index reads ahead at most
    MAX_READ_AHEAD pages in all; pip's own requests read any other page as before."""
    import urllib.request
    from urllib.parse import urljoin

    from safe_pip.serve import server, start_server

    monkeypatch.setattr(server, "MAX_READ_AHEAD", 5)
    env = attack.env
    deps = [f"dep-{i:02d}" for i in range(20)]
    env.pub.wheel("many", "1.0", requires=deps)
    store, checker = _resolving_index(env)
    try:
        with start_server(
            checker,
            env.server.index_url,
            mode="block",
            lazy=True,
            record=False,
            core_metadata=True,
            read_ahead=True,
        ) as srv:
            page_url = f"{srv.index_url}many/"
            html = urllib.request.urlopen(page_url).read().decode()
            link = html.split('href="', 1)[1].split('"', 1)[0].split("#", 1)[0]
            for _ in range(2):  # asked twice: still no more than the cap
                urllib.request.urlopen(urljoin(page_url, link) + ".metadata").read()
            ahead = dict(srv.index._ahead)
            for future in ahead.values():
                with contextlib.suppress(Exception):  # the pages do not exist upstream
                    future.result(timeout=30)
            read = [d for d in deps if env.server.hits(f"/simple/{d}/")]
            assert len(ahead) == 5, sorted(ahead)
            assert len(read) == 5, read
    finally:
        store.close()


def test_a_refused_wheels_own_dependencies_are_never_asked_for(attack: Attack) -> None:
    """The stand-in of a refused wheel declares no dependency, so nothing its own (unverified)
    METADATA names drives a request: pip never asks for the page of ``secret-dep`` and the
    index never reads it upstream (neither for pip nor ahead). Such a dependency is not in
    the report (it becomes known once the wheel is allowed or replaced). The run refuses
    with exit 1 and writes nothing: nothing installed, no history record, not even for the
    verified wheel beside it."""
    env = attack.env
    before = db_snapshot()
    env.pub.wheel("secret-dep", "1.0", signed=False)
    env.pub.wheel("lib", "1.0", requires=["secret-dep"], signed=False)
    env.pub.wheel("good", "1.0")
    env.pub.wheel("app", "1.0", requires=["lib", "good"])
    run = attack.install("app", "--json")
    attack.assert_refused(run, codes=(1,))
    refused = [(f["project"], f["code"]) for f in run.json()["files"] if f["verdict"] == "refuse"]
    assert refused == [("lib", "refused-unsigned")], run.text
    assert env.server.hits("/simple/secret-dep/") == 0
    assert not any((env.workdir / "target").iterdir())
    assert db_snapshot() == before


def test_metadata_endpoint_answers_only_listed_wheels_of_the_named_project(
    attack: Attack,
) -> None:
    """``<file>.metadata`` is answered only for a wheel the named project's page lists with
    that sha256: another project's wheel (by its name or under its sha256), another digest,
    an sdist, a path that climbs out, an upper-case suffix or a doubled ``.metadata`` are
    404, and upstream is never asked for a ``.metadata`` of its own."""
    import hashlib
    import urllib.error
    import urllib.request

    from safe_pip.serve import start_server

    env = attack.env
    gee = env.pub.wheel("gee", "1.0")
    other = env.pub.wheel("other", "1.0")
    g, o, s = (hashlib.sha256(p.read_bytes()).hexdigest() for p in (gee, other, attack.sdist))
    refused = {
        "another project's wheel": f"/files/gee/{o}/{other.name}.metadata",
        "this wheel under another project": f"/files/other/{g}/{gee.name}.metadata",
        "another digest": f"/files/gee/{o}/{gee.name}.metadata",
        "an sdist": f"/files/evil/{s}/{attack.sdist.name}.metadata",
        "climbing out": f"/files/gee/{g}/..%2F..%2Fetc%2Fpasswd.whl.metadata",
        "climbing project": f"/files/..%2Fgee/{g}/{gee.name}.metadata",
        "upper-case suffix": f"/files/gee/{g}/{gee.name[:-4]}.WHL.metadata",
        "doubled suffix": f"/files/gee/{g}/{gee.name}.metadata.metadata",
        "provenance": f"/provenance/gee/{g}/{gee.name}.metadata",
    }
    store, checker = _resolving_index(env)
    try:
        with start_server(
            checker,
            env.server.index_url,
            mode="block",
            lazy=True,
            record=False,
            core_metadata=True,
        ) as srv:
            ok = urllib.request.urlopen(f"{srv.url}/files/gee/{g}/{gee.name}.metadata").read()
            assert ok.startswith(b"Metadata-Version: 2.1\nName: gee\nVersion: 1.0\n")
            for what, path in refused.items():
                with pytest.raises(urllib.error.HTTPError) as exc:
                    urllib.request.urlopen(srv.url + path)
                assert exc.value.code == 404, what
    finally:
        store.close()
    assert not any("metadata" in p or "passwd" in p for p in env.server.requests_log)


def test_refusals_on_two_indexes_are_reported_in_one_run(attack: Attack, tmp_path: Path) -> None:
    """Refused wheels behind two different indexes, each answered with its own index's
    stand-in (an unsigned wheel on the first, a signed one requiring a direct URL on the
    second): one report names both, exit 1, nothing installed, nothing run."""
    from support.publish import Publisher

    env = attack.env
    env.pub.wheel("xee", "1.0", signed=False)
    env.pub.wheel("app", "1.0", requires=["xee", "yee"])
    with IndexServer(tmp_path / "second") as second:
        pub = Publisher(env.pub.sigstore, second, tmp_path / "second-build")
        pub.wheel("yee", "1.0", requires=[f"evil @ {attack.sdist.as_uri()}"])
        # yee is on the second index only: its first-sight history cannot come from the
        # provenance index (the first), so none is read
        run = attack.install(
            "--extra-index-url", second.index_url, "--no-index-history", "app", "--json"
        )
    attack.assert_refused(run, codes=(1,))
    refused = sorted(
        (f["project"], f["code"]) for f in run.json()["files"] if f["verdict"] == "refuse"
    )
    assert refused == [
        ("xee", "refused-unsigned"),
        ("yee", "refused-direct-url-dependency"),
    ], run.text
    assert not any((env.workdir / "target").iterdir())


def _unavailable_zee(attack: Attack, what: str, app_requires: list[str]) -> Path:
    """``zee`` 1.0 (signed) whose provenance or wheel answers 503 upstream, and ``app`` 1.0
    requiring ``app_requires``; returns zee's wheel."""
    from urllib.parse import urlsplit

    env = attack.env
    zee: Path = env.pub.wheel("zee", "1.0")
    env.pub.wheel("app", "1.0", requires=app_requires)
    url = (
        env.server.provenance_url("zee", zee.name)
        if what == "provenance"
        else env.server.file_url("zee", zee.name)
    )
    env.server.faults[urlsplit(url).path] = Fault(status=503)
    return zee


@pytest.mark.parametrize("what", ["provenance", "wheel"])
def test_a_could_not_check_file_is_reported_beside_the_refusals(attack: Attack, what: str) -> None:
    """One wheel refused (unsigned) and another that could not be checked in the same run
    (its provenance, or its bytes, answer 503 upstream): the one report names both, the
    refused file with its reason code and the could-not-check file with the index host and
    the reason; exit 1 (refused wins over could-not-check); --json lists both; nothing is
    installed and the could-not-check file is never allowed."""
    env = attack.env
    env.pub.wheel("xee", "1.0", signed=False)
    _unavailable_zee(attack, what, ["xee", "zee"])
    run = attack.install("app", "--json")
    attack.assert_refused(run, codes=(1,))
    files = {f["project"]: f for f in run.json()["files"] if f["verdict"] == "refuse"}
    assert sorted(files) == ["xee", "zee"], run.text
    assert files["xee"]["code"] == "refused-unsigned"
    assert files["zee"]["code"] == "could-not-check", files["zee"]
    assert "503" in files["zee"]["reason"], files["zee"]
    assert "127.0.0.1" in files["zee"]["reason"], files["zee"]
    assert run.json()["exit_code"] == 1
    text = attack.install("app")
    attack.assert_refused(text, "xee", "refused-unsigned", "zee", "could-not-check", codes=(1,))
    assert "nothing was installed" in text.text
    assert not any((env.workdir / "target").iterdir())


#: The attempts of one upstream read (the first and its retries).
_ATTEMPTS = 3


def _failing_once() -> Fault:
    """503 for every attempt of one upstream read (retries included), then the page."""
    from safe_pip.net.session import Limits

    assert Limits().retries + 1 == _ATTEMPTS
    return Fault(status=503, times=_ATTEMPTS)


def test_a_failed_read_ahead_is_not_an_index_failure(attack: Attack, tmp_path: Path) -> None:
    """The resolving index reads ``dep``'s page ahead of pip (once ``app``'s METADATA is
    served) and that read fails (503 on every attempt); pip's own request for the page reads
    it again and succeeds. The failed read ahead is no failure: with two indexes, ``dep`` is
    not refused as index-unknown, and the install goes through (exit 0)."""
    env = attack.env
    env.pub.wheel("dep", "1.0")
    env.pub.wheel("app", "1.0", requires=["dep"])
    env.server.faults["/simple/dep/"] = _failing_once()
    with IndexServer(tmp_path / "second") as second:
        run = attack.install("--extra-index-url", second.index_url, "app", "--json")
    assert env.server.faults["/simple/dep/"].hits == _ATTEMPTS  # the read ahead failed
    assert run.code == 0, run.text
    assert sorted(f["project"] for f in run.json()["files"]) == ["app", "dep"], run.text
    assert all(f["verdict"] == "allow" for f in run.json()["files"]), run.text
    assert (env.workdir / "target" / "dep").is_dir()


def test_a_failed_read_ahead_does_not_misclassify_a_resolution_failure(attack: Attack) -> None:
    """A read ahead that failed (``dep``'s page, 503 on every attempt; pip's own read then
    succeeds) does not turn a resolution failure with another cause (no version of ``nope``
    matches) into "could not check" (exit 3): it is reported as what it is (exit 2, the
    versions there)."""
    env = attack.env
    env.pub.wheel("nope", "1.0")
    env.pub.wheel("dep", "1.0", requires=["nope>=2"])
    env.pub.wheel("app", "1.0", requires=["dep"])
    env.server.faults["/simple/dep/"] = _failing_once()
    run = attack.install("app")
    assert env.server.faults["/simple/dep/"].hits == _ATTEMPTS  # the read ahead failed
    attack.assert_refused(run, "nope has no version matching >=2", codes=(2,))
    assert "could not check" not in run.text, run.text


def test_a_file_decided_ahead_that_could_not_be_checked_is_checked_again(attack: Attack) -> None:
    """The resolving index starts deciding ``dep``'s newest wheel when it reads the page, ahead
    of pip, and that decision cannot check it (the provenance answers 503 on every attempt).
    pip's own request for the wheel's metadata checks it again (the provenance answers now):
    verified and installed, exit 0, no failure reported."""
    from urllib.parse import urlsplit

    env = attack.env
    dep = env.pub.wheel("dep", "1.0")
    env.pub.wheel("app", "1.0", requires=["dep"])
    path = urlsplit(env.server.provenance_url("dep", dep.name)).path
    env.server.faults[path] = _failing_once()
    run = attack.install("app", "--json")
    assert env.server.faults[path].hits == _ATTEMPTS  # the decision ahead could not check it
    assert run.code == 0, run.text
    assert all(f["verdict"] == "allow" for f in run.json()["files"]), run.text
    assert (env.workdir / "target" / "dep").is_dir()


@pytest.mark.parametrize("what", ["provenance", "wheel"])
def test_a_could_not_check_file_alone_is_the_same_one_report(attack: Attack, what: str) -> None:
    """The only problem of a run is a file that could not be checked (its provenance, or its
    bytes, answer 503 upstream): the report is the one refusals get, not a generic "the
    index could not be read": the table names the project, the file, the index host and the
    reason with a fix; --json lists the file as could-not-check; exit 3 (could not check);
    nothing is installed."""
    env = attack.env
    zee = _unavailable_zee(attack, what, ["zee"])
    run = attack.install("app", "--json")
    attack.assert_refused(run, codes=(3,))
    doc = run.json()
    assert doc["exit_code"] == 3, doc
    unchecked = [f for f in doc["files"] if f["verdict"] == "refuse"]
    assert [(f["project"], f["filename"], f["code"]) for f in unchecked] == [
        ("zee", zee.name, "could-not-check")
    ], doc
    assert "127.0.0.1" in unchecked[0]["reason"], doc
    assert "503" in unchecked[0]["reason"], doc
    assert unchecked[0]["fix"].startswith("retry"), doc
    assert doc["summary"]["could_not_check"] == 1, doc
    assert doc["message"] == "the verifying index could not check a file pip needed", doc
    text = attack.install("app")
    attack.assert_refused(text, "zee 1.0", zee.name, "could-not-check", "127.0.0.1", codes=(3,))
    assert "fix: retry" in text.text, text.text
    assert "the verifying index could not check a file pip needed" in text.text, text.text
    assert "nothing was installed" in text.text
    assert not any((env.workdir / "target").iterdir())


def test_bytes_that_do_not_match_the_attested_hash_are_refused(attack: Attack) -> None:
    """The index lists (and the provenance attests) one sha256 for ``zee``'s wheel and sends
    other bytes: refused as refused-hash-mismatch (exit 1), not "could not check" (a 502
    from the verifying index). The wheel gets a stand-in, so pip's resolution goes on and an
    unsigned dependency elsewhere in the tree is named in the same report."""
    from urllib.parse import urlsplit

    env = attack.env
    zee = env.pub.wheel("zee", "1.0")
    env.pub.wheel("xee", "1.0", signed=False)
    env.pub.wheel("app", "1.0", requires=["zee", "xee"])
    path = urlsplit(env.server.file_url("zee", zee.name)).path
    env.server.faults[path] = Fault(body=bytes(len(zee.read_bytes())))  # same size, other bytes
    run = attack.install("app", "--json")
    attack.assert_refused(run, codes=(1,))
    files = {f["project"]: f for f in run.json()["files"] if f["verdict"] == "refuse"}
    assert sorted(files) == ["xee", "zee"], run.text
    assert files["zee"]["code"] == "refused-hash-mismatch", files["zee"]
    assert "do not hash to the sha256" in files["zee"]["reason"], files["zee"]
    assert files["xee"]["code"] == "refused-unsigned"
    assert run.json()["exit_code"] == 1
    assert not any((env.workdir / "target").iterdir())


def test_a_page_that_could_not_be_read_is_named_in_the_json(attack: Attack) -> None:
    """``zee``'s upstream page answers 503 (no file of it is known, so none can be listed):
    exit 3, the message names the index host and the project with a fix, and --json says
    which page could not be read (``could_not_read``: index, host, project, reason, fix)."""
    env = attack.env
    env.pub.wheel("zee", "1.0")
    env.pub.wheel("app", "1.0", requires=["zee"])
    env.server.faults["/simple/zee/"] = Fault(status=503)
    run = attack.install("app", "--json")
    attack.assert_refused(run, "the index 127.0.0.1 could not be read", "zee", codes=(3,))
    doc = run.json()
    assert doc["exit_code"] == 3, doc
    assert doc["files"] == [], doc
    (page,) = doc["could_not_read"]
    assert page["project"] == "zee", page
    assert page["host"] == "127.0.0.1", page
    assert page["index"] == env.server.index_url, page
    assert "503" in page["reason"], page
    assert page["fix"], page
    assert "fix: check the index URL and your network, then retry" in run.err
