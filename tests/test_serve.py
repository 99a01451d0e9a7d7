"""``safe-pip serve`` at the HTTP level: an in-process verifying index in front of a local
upstream IndexServer, with real Sigstore verification against the test trust root."""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from safe_pip.check import Checker
from safe_pip.models import PublisherIdentity
from safe_pip.policy.file import Defaults, PackageRule, Policy
from safe_pip.provenance.trust import TrustConfig
from safe_pip.serve import EventLog, RunningServer, start_server
from safe_pip.serve.pages import JSON_V1, best_offer, negotiate
from safe_pip.store.sqlite import SQLiteHistoryStore
from support.index_server import Fault, IndexServer
from support.publish import Publisher
from support.sigstore_ca import GitHubIdentity, TestSigstore

EVIL = GitHubIdentity(repository="evil/fork", workflow="release.yml")


def make_checker(
    trust_root: Path, home: Path, upstream: str, policy: Policy | None = None
) -> Checker:
    home.mkdir(parents=True, exist_ok=True)
    return Checker(
        trust=TrustConfig.from_options(trust_root=trust_root),
        policy=policy or Policy.default(),
        store=SQLiteHistoryStore.open(home / "history.sqlite3"),
        provenance_index=upstream,
        jobs=8,
    )


def pinned(*names: str, allow_sdist: bool = False) -> Policy:
    """A policy expecting acme/<name> @ release.yml for each name."""
    packages = {
        n: PackageRule(
            name=n,
            publishers=(
                PublisherIdentity(kind="GitHub", repository=f"acme/{n}", workflow="release.yml"),
            ),
        )
        for n in names
    }
    return Policy(defaults=Defaults(allow_sdist=allow_sdist), packages=packages)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    reason: str

    def json(self) -> Any:
        return json.loads(self.body)


def get(url: str, accept: str | None = None, method: str = "GET") -> Reply:
    req = urllib.request.Request(url, method=method)
    if accept is not None:
        req.add_header("Accept", accept)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as resp:
            return Reply(resp.status, dict(resp.headers), resp.read(), resp.reason)
    except urllib.error.HTTPError as err:
        return Reply(err.code, dict(err.headers), err.read(), err.reason)


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[IndexServer]:
    with IndexServer(tmp_path / "upstream") as srv:
        yield srv


@pytest.fixture
def pub(sigstore: TestSigstore, upstream: IndexServer, tmp_path: Path) -> Publisher:
    return Publisher(sigstore, upstream, tmp_path / "build")


class Env:
    """An upstream, a publisher and a way to start serve in front of them."""

    def __init__(self, trust_root: Path, upstream: IndexServer, pub: Publisher, tmp: Path) -> None:
        self.trust_root = trust_root
        self.upstream = upstream
        self.pub = pub
        self.tmp = tmp
        self.log = EventLog(quiet=True, json_path=tmp / "events.jsonl", keep=True)
        self.checker: Checker | None = None

    def serve(
        self, policy: Policy | None = None, mode: str = "filter", page_ttl: float = 60.0
    ) -> RunningServer:
        self.checker = make_checker(
            self.trust_root, self.tmp / "home", self.upstream.index_url, policy
        )
        assert mode in ("filter", "block")
        return start_server(
            self.checker,
            self.upstream.index_url,
            mode="block" if mode == "block" else "filter",
            log=self.log,
            page_ttl=page_ttl,
        )

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.log.events if e["event"] == kind]


@pytest.fixture
def env(trust_root: Path, upstream: IndexServer, pub: Publisher, tmp_path: Path) -> Iterator[Env]:
    e = Env(trust_root, upstream, pub, tmp_path)
    yield e
    e.log.close()
    if e.checker is not None and e.checker.store is not None:
        e.checker.store.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- content negotiation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("*/*", "text/html"),
        ("text/html", "text/html"),
        ("application/json", "text/html"),  # not an offer: PyPI falls back to HTML
        (JSON_V1, JSON_V1),
        # pip's header: JSON preferred
        (f"{JSON_V1}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01", JSON_V1),
        (f"{JSON_V1};q=0.5, text/html;q=0.6", "text/html"),
        (f"{JSON_V1};q=0, */*", "text/html"),
        ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.v1+html"),
        ("application/*;q=0.9, text/html;q=0.1", "application/vnd.pypi.simple.v1+html"),
    ],
)
def test_negotiation_like_pypi(accept: str | None, expected: str) -> None:
    assert negotiate(accept) == expected


def test_negotiation_query_format_wins() -> None:
    assert negotiate("text/html", JSON_V1) == JSON_V1
    assert negotiate(JSON_V1, "bogus") == JSON_V1
    assert best_offer(f"{JSON_V1};q=0") is None


def test_json_and_html_pages(env: Env) -> None:
    whl = env.pub.wheel("alpha", "1.0")
    with env.serve() as srv:
        page = get(srv.index_url + "alpha/", accept=JSON_V1)
        assert page.status == 200
        assert page.headers["Content-Type"] == JSON_V1
        assert page.headers["Vary"] == "Accept"
        doc = page.json()
        assert doc["name"] == "alpha"
        assert doc["meta"]["api-version"] == "1.1"
        assert doc["versions"] == ["1.0"]
        (f,) = doc["files"]
        assert f["filename"] == whl.name
        assert f["hashes"] == {"sha256": sha256(whl)}
        assert f["size"] == whl.stat().st_size
        assert f["url"] == f"../../files/alpha/{sha256(whl)}/{whl.name}"
        assert f["provenance"] == f"../../provenance/alpha/{sha256(whl)}/{whl.name}"

        html = get(srv.index_url + "alpha/")  # no Accept: HTML, as PyPI does
        assert html.status == 200
        assert html.headers["Content-Type"].startswith("text/html")
        text = html.body.decode()
        assert f'href="../../files/alpha/{sha256(whl)}/{whl.name}#sha256={sha256(whl)}"' in text
        assert "data-provenance=" in text
        assert '<meta name="pypi:repository-version" content="1.1">' in text

        as_json = get(srv.index_url + f"alpha/?format={JSON_V1}", accept="text/html")
        assert as_json.headers["Content-Type"] == JSON_V1

        # PyPI's redirects: non-normalized name, missing slash
        r = get(srv.index_url + "Alpha/")
        assert (r.status, r.headers["Location"]) == (301, "/simple/alpha/")
        r = get(srv.url + "/simple/alpha")
        assert (r.status, r.headers["Location"]) == (301, "/simple/alpha/")

        root = get(srv.index_url, accept=JSON_V1).json()
        assert root["projects"] == [{"name": "alpha"}]
        assert get(srv.index_url + "nope/").status == 404


def test_served_provenance_is_the_verified_one(env: Env) -> None:
    whl = env.pub.wheel("alpha", "1.0")
    with env.serve() as srv:
        doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
        prov_url = urljoin(srv.index_url + "alpha/", doc["files"][0]["provenance"])
        r = get(prov_url)
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/vnd.pypi.integrity.v1+json"
        upstream_prov = (env.upstream.root / "alpha" / (whl.name + ".provenance")).read_bytes()
        assert r.body == upstream_prov


# -- files ------------------------------------------------------------------------------------


def test_file_is_served_hashed_and_recorded(env: Env) -> None:
    whl = env.pub.wheel("alpha", "1.0")
    with env.serve() as srv:
        doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
        r = get(urljoin(srv.index_url + "alpha/", doc["files"][0]["url"]))
        assert r.status == 200
        assert r.body == whl.read_bytes()
        assert r.headers["Content-Length"] == str(whl.stat().st_size)
        head = get(urljoin(srv.index_url + "alpha/", doc["files"][0]["url"]), method="HEAD")
        assert head.status == 200
        assert head.body == b""
    assert env.checker is not None
    assert env.checker.store is not None
    hist = env.checker.store.project("alpha")
    assert [(r.filename, r.sha256) for r in hist.records] == [(whl.name, sha256(whl))]
    assert hist.records[0].identity is not None
    assert hist.records[0].identity.repository == "acme/alpha"
    served = env.events("served")
    assert len(served) == 1
    assert served[0]["filename"] == whl.name
    allow = env.events("allow")
    assert allow[0]["identity"]["repository"] == "acme/alpha"
    lines = (env.tmp / "events.jsonl").read_text().splitlines()
    assert {json.loads(line)["event"] for line in lines} >= {"allow", "served"}


def test_filter_mode_leaves_refused_files_out(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    evil = env.pub.wheel("alpha", "2.0", identity=EVIL)
    unsigned = env.pub.wheel("alpha", "3.0", signed=False)
    with env.serve(policy=pinned("alpha")) as srv:
        doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
        assert [f["filename"] for f in doc["files"]] == ["alpha-1.0-py3-none-any.whl"]
        assert doc["versions"] == ["1.0"]
        html = get(srv.index_url + "alpha/").body.decode()
        assert evil.name not in html
        assert unsigned.name not in html
        # A direct request for a refused file still gets the reason, never the bytes.
        r = get(srv.url + f"/files/alpha/{sha256(evil)}/{evil.name}")
        assert r.status == 403
        assert b"refused-unexpected-publisher" in r.body
        assert b"evil/fork" in r.body
    refused = {e["filename"]: e for e in env.events("refuse")}
    assert refused[evil.name]["code"] == "refused-unexpected-publisher"
    # unsigned after attested releases: a downgrade (threat T01/T08)
    assert refused[unsigned.name]["code"] == "refused-attestation-downgrade"


def test_block_mode_lists_refused_files_and_answers_403(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    evil = env.pub.wheel("alpha", "2.0", identity=EVIL)
    with env.serve(policy=pinned("alpha"), mode="block") as srv:
        doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
        files = {f["filename"]: f for f in doc["files"]}
        assert set(files) == {"alpha-1.0-py3-none-any.whl", evil.name}
        assert files[evil.name]["hashes"]["sha256"] == sha256(evil)
        assert files[evil.name]["provenance"] is None  # only verified, allowed files
        r = get(urljoin(srv.index_url + "alpha/", files[evil.name]["url"]))
        assert r.status == 403
        assert "refused-unexpected-publisher" in r.reason  # pip and uv print the phrase
        assert b"refused-unexpected-publisher" in r.body
        assert b"fix:" in r.body
        assert env.upstream.hits(f"/files/alpha/{evil.name}") == 0  # never even fetched


def test_publisher_change_on_first_sight_is_caught(env: Env) -> None:
    """No policy rule, empty local history: the newest release signed by someone else is a
    publisher change in the project's sequence (the index's releases), so no file decided from
    that history is served: not the attacker's, and not acme's either (one page, one decision;
    the 403 names the release where the publisher changed)."""
    old = env.pub.wheel("alpha", "1.0")
    env.pub.wheel("alpha", "1.1")
    evil = env.pub.wheel("alpha", "2.0", identity=EVIL)
    with env.serve() as srv:
        doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
        assert [f["filename"] for f in doc["files"]] == []
        r = get(srv.url + f"/files/alpha/{sha256(old)}/{old.name}")
        assert r.status == 403
        assert b"refused-publisher-change" in r.body
        assert b"alpha 2.0" in r.body
        r = get(srv.url + f"/files/alpha/{sha256(evil)}/{evil.name}")
        assert r.status == 403


def test_sdists_follow_allow_sdist(env: Env) -> None:
    sd = env.pub.sdist("alpha", "1.0")
    with env.serve(policy=pinned("alpha")) as srv:
        assert get(srv.index_url + "alpha/", accept=JSON_V1).json()["files"] == []
        r = get(srv.url + f"/files/alpha/{sha256(sd)}/{sd.name}")
        assert r.status == 403
        assert b"refused-sdist" in r.body
    with env.serve(policy=pinned("alpha", allow_sdist=True)) as srv:
        doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
        assert [f["filename"] for f in doc["files"]] == [sd.name]


def test_hash_mismatch_is_502_and_never_the_bytes(env: Env) -> None:
    """The file changes upstream after it was signed and listed: the old link is a 502, and
    the next page no longer lists the file (its attestation names other bytes)."""
    whl = env.pub.wheel("alpha", "1.0")
    with env.serve() as srv:
        doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
        link = urljoin(srv.index_url + "alpha/", doc["files"][0]["url"])
        stored = env.upstream.root / "alpha" / whl.name
        data = bytearray(stored.read_bytes())
        data[-1] ^= 0xFF  # same name and size, different bytes
        stored.write_bytes(bytes(data))
        r = get(link)
        assert r.status == 502
        assert b"do not match the attested sha256" in r.body
        assert not r.body.startswith(b"PK")
        assert env.events("mismatch")
        doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
        assert doc["files"] == []
    assert env.checker is not None
    assert env.checker.store is not None
    assert env.checker.store.project("alpha").records == ()


def test_oversized_file_is_not_served(env: Env) -> None:
    """A body longer than the size upstream declared is cut off (threat T13)."""
    env.pub.wheel("alpha", "1.0")
    with env.serve() as srv:
        doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
        f = doc["files"][0]
        env.upstream.faults[f"/files/alpha/{f['filename']}"] = Fault(body=b"x" * (f["size"] + 10))
        r = get(urljoin(srv.index_url + "alpha/", f["url"]))
        assert r.status == 502
        assert not r.body.startswith(b"x")


def test_declared_size_never_lifts_the_download_cap(env: Env) -> None:
    """An upstream page that declares a huge size does not raise the configured ceiling
    (Limits.max_file_bytes): the download is cut off at the smaller of the two, as in check."""
    from dataclasses import replace

    from safe_pip.net import Http, Limits

    whl = env.pub.wheel("alpha", "1.0")
    real = env.upstream._digest
    env.upstream._digest = lambda path: (10**12, real(path)[1])  # type: ignore[method-assign]
    with env.serve() as srv:
        assert env.checker is not None
        cap = whl.stat().st_size // 2
        env.checker._http = Http(replace(Limits(), max_file_bytes=cap))
        doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
        f = doc["files"][0]
        assert f["filename"] == whl.name  # verified and listed: only the download is capped
        r = get(urljoin(srv.index_url + "alpha/", f["url"]))
        assert r.status == 502
        assert not r.body.startswith(b"PK")
        assert b"could not fetch" in r.body
    assert env.checker.store is not None
    assert env.checker.store.project("alpha").records == ()


# -- upstream failures ------------------------------------------------------------------------


def test_upstream_down_is_a_clear_503(env: Env) -> None:
    env.pub.wheel("alpha", "1.0")
    with env.serve() as srv:
        doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
        link = urljoin(srv.index_url + "alpha/", doc["files"][0]["url"])
        env.upstream.stop()
        # stop() leaves established keep-alive connections served; drop ours so the next
        # request finds the port closed, as with a real outage.
        assert env.checker is not None
        env.checker.http.close()
        page = get(srv.index_url + "alpha/")
        assert page.status == 503
        assert b"upstream index unavailable" in page.body
        assert "upstream" in page.reason
        f = get(link)  # listed before upstream went down: still never served unverified
        assert f.status == 503
        assert b"could not fetch" in f.body
    assert env.events("upstream")


@pytest.mark.parametrize(("status", "expected"), [(500, 502), (503, 503), (403, 502)])
def test_upstream_errors_map_to_gateway_errors(env: Env, status: int, expected: int) -> None:
    env.pub.wheel("alpha", "1.0")
    env.upstream.faults["/simple/alpha/"] = Fault(status=status, body=b"nope")
    with env.serve() as srv:
        r = get(srv.index_url + "alpha/")
        assert r.status == expected
        assert f"HTTP {status}".encode() in r.body


def test_provenance_unavailable_fails_the_page_and_is_not_cached(env: Env) -> None:
    """threat T09: a 5xx for the provenance is 'could not check', never 'unsigned'; the page
    is refused as a whole (no silent fallback to an older version), and a later request
    verifies again."""
    env.pub.wheel("alpha", "1.0")
    whl = env.pub.wheel("alpha", "2.0")
    prov_path = f"/provenance/alpha/{whl.name}"
    env.upstream.faults[prov_path] = Fault(status=503)
    with env.serve() as srv:
        r = get(srv.index_url + "alpha/", accept=JSON_V1)
        assert r.status == 503
        assert b"could not check" in r.body
        assert whl.name.encode() in r.body
        del env.upstream.faults[prov_path]
        doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
        assert len(doc["files"]) == 2


def test_verdicts_are_cached_and_clients_served_concurrently(env: Env) -> None:
    for v in ("1.0", "1.1", "1.2"):
        env.pub.wheel("alpha", v)
    env.pub.wheel("beta", "1.0")
    errors: list[str] = []
    with env.serve() as srv:

        def client(i: int) -> None:
            try:
                project = "alpha" if i % 2 else "beta"
                doc = get(srv.index_url + f"{project}/", accept=JSON_V1).json()
                for f in doc["files"]:
                    r = get(urljoin(srv.index_url + f"{project}/", f["url"]))
                    if (
                        r.status != 200
                        or hashlib.sha256(r.body).hexdigest() != f["hashes"]["sha256"]
                    ):
                        errors.append(f"{f['filename']}: {r.status}")
            except Exception as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == []
    # Each file's provenance was fetched and verified once, whatever the number of clients
    # (the index-history read of earlier releases may add one fetch per older release).
    for v in ("1.0", "1.1", "1.2"):
        assert env.upstream.hits(f"/provenance/alpha/alpha-{v}-py3-none-any.whl") <= 2
    decisions = [e for e in env.log.events if e["event"] in ("allow", "refuse")]
    assert len(decisions) == 4
    assert len(env.events("served")) == 6 * 3 + 6


def test_bad_upstream_url_is_a_config_error(env: Env) -> None:
    from safe_pip.errors import ConfigError

    checker = make_checker(env.trust_root, env.tmp / "h2", env.upstream.index_url)
    with pytest.raises(ConfigError):
        start_server(checker, "http://example.com/simple/")
    assert checker.store is not None
    checker.store.close()


@pytest.mark.parametrize("upstream_html", [False, True])
def test_requires_python_and_yanked_pass_through(
    env: Env, sigstore: TestSigstore, upstream_html: bool
) -> None:
    from support.index_server import write_minimal_wheel
    from support.publish import default_identity
    from support.sigstore_ca import provenance_json

    ident = default_identity("alpha")
    for version, yanked in (("1.0", False), ("2.0", "broken build")):
        path = write_minimal_wheel(env.tmp / "b", "alpha", version, requires_python=">=3.8")
        att = sigstore.attest(path.name, sha256(path), ident)
        env.upstream.add_file(path, provenance=provenance_json([att], ident), yanked=yanked)
    if upstream_html:  # a PEP 691-unaware upstream
        env.upstream.faults["/simple/alpha/"] = Fault(
            content_type="text/html; charset=utf-8", body=env.upstream.project_html("alpha")
        )
    with env.serve() as srv:
        doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
        files = {f["filename"]: f for f in doc["files"]}
        assert [f["requires-python"] for f in files.values()] == [">=3.8", ">=3.8"]
        assert files["alpha-2.0-py3-none-any.whl"]["yanked"] == "broken build"
        assert files["alpha-1.0-py3-none-any.whl"]["yanked"] is False
        html = get(srv.index_url + "alpha/").body.decode()
        assert 'data-requires-python="&gt;=3.8"' in html
        assert 'data-yanked="broken build"' in html
        if upstream_html:  # no sizes from a PEP 503 page: api-version 1.0, no `size`
            assert doc["meta"]["api-version"] == "1.0"


def test_stale_serial_is_logged_and_refused(env: Env) -> None:
    """threat T21: a page older than one seen before is answered 503 (and logged)."""
    env.pub.wheel("alpha", "1.0")
    env.upstream.serials["alpha"] = 100
    with env.serve() as srv:
        assert get(srv.index_url + "alpha/").status == 200
        env.upstream.serials["alpha"] = 90
        r = get(srv.index_url + "alpha/", accept=JSON_V1)
        assert r.status == 503
        assert b"older than serial 100" in r.body
        env.upstream.serials["alpha"] = 101
        r = get(srv.index_url + "alpha/", accept=JSON_V1)
        assert r.status == 200
        assert r.json()["meta"]["_last-serial"] == 101
    (stale,) = env.events("stale")
    assert (stale["serial"], stale["previous_serial"]) == (90, 100)


def file_url(srv: RunningServer, project: str) -> str:
    """The (only) file link serve's JSON page for ``project`` gives."""
    doc = get(srv.index_url + f"{project}/", accept=JSON_V1).json()
    (f,) = doc["files"]
    return urljoin(srv.index_url + f"{project}/", str(f["url"]))


@pytest.mark.parametrize("mode", ["filter", "block"])
def test_quarantine_refuses_cached_file_links(env: Env, mode: str) -> None:
    """PEP 792: once upstream quarantines a project, a file link served before (and cached as
    allowed) answers 403 with upstream's reason, in both modes, even to a client that never
    reads the page again (a lock with serve URLs) and after the page is read again (it then
    lists no files). Lifting the quarantine serves the file again."""
    env.pub.wheel("alpha", "1.0")
    with env.serve(mode=mode, page_ttl=0.0) as srv:
        url = file_url(srv, "alpha")
        assert get(url).status == 200
        env.upstream.project_status["alpha"] = ("quarantined", "malware found")
        for _ in range(2):
            r = get(url)
            assert r.status == 403, (r.status, r.reason)
            assert "refused-quarantined" in r.reason
            assert "malware found" in r.body.decode()
            assert get(url, method="HEAD").status == 403
            doc = get(srv.index_url + "alpha/", accept=JSON_V1).json()
            assert doc["files"] == []
            assert doc["project-status"] == {"status": "quarantined", "reason": "malware found"}
        assert env.events("refuse")[-1]["code"] == "refused-quarantined"
        del env.upstream.project_status["alpha"]
        assert get(url).status == 200


def test_removed_file_link_is_404_once_the_page_is_read(env: Env) -> None:
    """A file upstream stops listing is a 404 on its (cached) link once the page is older than
    page_ttl, without anyone reading the page first."""
    stored = env.pub.wheel("alpha", "1.0")
    with env.serve(page_ttl=0.0) as srv:
        url = file_url(srv, "alpha")
        assert get(url).status == 200
        stored.unlink()
        r = get(url)
        assert r.status == 404, (r.status, r.reason)
        assert "no file alpha-1.0" in r.reason


def test_page_read_drops_what_upstream_no_longer_lists(env: Env) -> None:
    """Within page_ttl a cached link is answered without reading the page; but any page read
    (a client browsing the project) drops the cached files the page no longer lists, and a
    quarantined status turns the project's links into 403s at once."""
    env.pub.wheel("alpha", "1.0")
    page_path = "/simple/alpha/"
    with env.serve(mode="block") as srv:  # default page_ttl (60 s)
        assert srv.index.page_ttl == 60.0
        url = file_url(srv, "alpha")
        assert get(url).status == 200
        reads = env.upstream.hits(page_path)
        assert get(url).status == 200  # fresh: from the cache, the page is not read again
        assert env.upstream.hits(page_path) == reads
        env.upstream.project_status["alpha"] = ("quarantined", "malware found")
        assert get(srv.index_url + "alpha/", accept=JSON_V1).json()["files"] == []
        r = get(url)
        assert r.status == 403, (r.status, r.reason)
        assert "malware found" in r.body.decode()


def test_page_ttl_must_not_be_negative(env: Env) -> None:
    with pytest.raises(ValueError, match="page_ttl"):
        env.serve(page_ttl=-1.0)
