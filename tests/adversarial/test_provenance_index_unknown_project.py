"""A project only on an extra index, with a provenance index (``--provenance-index``) that does
not know it: its files are judged as if the provenance index knew the project and listed none
of them. A 404 for the project there means "no provenance there", as for a page that lists the
project without the file (and as index history already reads it); it is never could-not-check,
whose "retry later" no retry would ever change. Real pip behind ``safe-pip install``'s verifying
indexes, test-signed packages, loopback only (ADR 0007, Consequences)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adversarial.conftest import Env, Run
from support.index_server import IndexServer
from support.publish import Publisher

pytestmark = pytest.mark.slow


@dataclass
class Two:
    env: Env
    extra: IndexServer  # the extra index: the only one listing "yee"
    provenance: IndexServer  # the provenance index (not an install index)

    def install(self, *argv: str) -> Run:
        target = self.env.workdir / "target"
        target.mkdir(exist_ok=True)
        return self.env.cli(
            "install",
            *self.env.args(),
            "--extra-index-url",
            self.extra.index_url,
            "--provenance-index",
            self.provenance.index_url,
            "--target",
            str(target),
            "--json",
            *argv,
        )


@pytest.fixture
def two(env: Env, tmp_path: Path) -> Iterator[Two]:
    with (
        IndexServer(tmp_path / "extra") as extra,
        IndexServer(tmp_path / "provenance") as provenance,
    ):
        pub = Publisher(env.pub.sigstore, extra, tmp_path / "extra-build")
        pub.wheel("yee", "0.9", signed=False)  # an earlier unsigned release
        pub.wheel("yee", "1.0")
        env.pub.wheel("app", "1.0", requires=["yee"])
        yield Two(env, extra, provenance)


def _files(run: Run) -> list[tuple[str, str, str]]:
    return sorted((f["project"], f["version"], f["code"]) for f in run.json()["files"])


@pytest.mark.parametrize("known", [False, True])
@pytest.mark.parametrize("reqs", [["app"], ["yee"], ["yee", "app"], ["app", "yee"]])
def test_verdicts_do_not_depend_on_what_the_provenance_index_knows(
    two: Two, tmp_path: Path, known: bool, reqs: list[str]
) -> None:
    """yee (0.9 unsigned, 1.0 signed) is only on the extra index. Whether or not the
    provenance index has a page for yee (here: an unrelated signed 0.1), and in whichever
    order pip meets it: yee 1.0 is verified (first use) and installed. Before, the history
    window's unsigned 0.9 was looked up on the provenance index, whose 404 made every file of
    yee could-not-check (exit 3, "retry later") - but allowed once the provenance index
    listed anything at all for yee."""
    if known:
        Publisher(two.env.pub.sigstore, two.provenance, tmp_path / "p-build").wheel("yee", "0.1")
    run = two.install(*reqs)
    assert run.code == 0, run.text
    want = [("yee", "1.0", "verified-first-use")]
    if "app" in reqs:
        want.insert(0, ("app", "1.0", "verified-first-use"))
    assert _files(run) == want, run.text
    assert (two.env.workdir / "target" / "yee").is_dir()


@pytest.mark.parametrize("known", [False, True])
def test_an_unsigned_file_the_provenance_index_does_not_know_is_judged_as_unsigned(
    two: Two, tmp_path: Path, known: bool
) -> None:
    """yee 0.9 has no provenance on its index, and the provenance index has none (no page for
    yee at all, or one without this file): judged as unsigned, the same in both cases
    (here refused-attestation-downgrade, exit 1: the later 1.0 is attested), never
    could-not-check (exit 3) telling the user to retry."""
    if known:
        Publisher(two.env.pub.sigstore, two.provenance, tmp_path / "p-build").wheel("yee", "0.1")
    run = two.install("yee==0.9")
    assert run.code == 1, run.text
    refused = [(f["version"], f["code"]) for f in run.json()["files"] if f["verdict"] == "refuse"]
    assert refused == [("0.9", "refused-attestation-downgrade")], run.text
    assert "could-not-check" not in run.text, run.text
    assert not (two.env.workdir / "target" / "yee").exists()


def test_every_request_order_gives_the_same_answers(two: Two, tmp_path: Path) -> None:
    """The verifying indexes of one install run (one checker, both indexes in front of their
    upstreams, the provenance index named) asked in every order for yee's page on both indexes
    and for both wheels' ``.metadata``: each request gets the same answer in every order (the
    signed 1.0's own METADATA; a stand-in for the refused 0.9, a refusal, never a 503)."""
    import hashlib
    import itertools
    import urllib.error
    import urllib.request

    from safe_pip.check import Checker
    from safe_pip.serve import RunningServer, start_server
    from test_serve import make_checker

    env = two.env
    wheels = {v: two.extra.root / "yee" / f"yee-{v}-py3-none-any.whl" for v in ("0.9", "1.0")}
    sha = {v: hashlib.sha256(p.read_bytes()).hexdigest() for v, p in wheels.items()}

    def get(url: str) -> str:
        try:
            body = urllib.request.urlopen(url, timeout=60).read()
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        if not url.endswith(".metadata"):
            return "page"
        return "own" if b"Summary: Tiny test distribution" in body else body.decode()

    def start(checker: Checker, upstream: str) -> RunningServer:
        return start_server(
            checker,
            upstream,
            mode="block",
            lazy=True,
            record=False,
            core_metadata=True,
            read_ahead=True,
            watch_policy=False,
        )

    answers: dict[str, set[str]] = {}
    steps = ("first-page", "extra-page", "meta-0.9", "meta-1.0")
    for n, order in enumerate(itertools.permutations(steps)):
        checker = make_checker(
            env.trust_root, tmp_path / f"home{n}", two.provenance.index_url, None
        )
        try:
            with (
                start(checker, env.server.index_url) as first,
                start(checker, two.extra.index_url) as extra,
            ):
                urls = {
                    "first-page": f"{first.index_url}yee/",
                    "extra-page": f"{extra.index_url}yee/",
                    **{
                        f"meta-{v}": f"{extra.url}/files/yee/{sha[v]}/{p.name}.metadata"
                        for v, p in wheels.items()
                    },
                }
                for step in order:
                    answers.setdefault(step, set()).add(get(urls[step]))
        finally:
            assert checker.store is not None
            checker.store.close()
    assert answers == {
        "first-page": {"HTTP 404"},
        "extra-page": {"page"},
        "meta-0.9": {"Metadata-Version: 2.1\nName: yee\nVersion: 0.9\n\n"},  # a stand-in
        "meta-1.0": {"own"},
    }, answers
