"""T12 through standalone ``safe-pip serve``: a plain pip pointed at it never installs a wheel
whose own metadata disagrees with its name, never builds a direct-URL dependency, and never
reads an upstream's (unverified) PEP 658 ``.metadata``.

``serve`` applies the same wheel check as ``safe-pip install``'s resolving index
(:func:`safe_pip.sources.wheel.check_wheel`) before the first byte of a wheel is served: a 403
with the reason code (``refused-invalid-wheel``, ``refused-direct-url-dependency``), so pip stops
instead of quietly taking another version. Real pip subprocesses, test-signed packages, the
test Sigstore; loopback only.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adversarial.test_t12_no_code_before_verification import (
    _DIRECT_URL_SPELLINGS,
    _HUGE,
    _rewrite_wheel,
    _sdist,
    _source_tree,
)
from safe_pip.policy.file import Policy
from safe_pip.serve import EventLog, RunningServer, start_server
from support.index_server import IndexServer
from support.packages import build_wheel
from support.publish import Publisher
from support.sigstore_ca import TestSigstore
from test_serve import make_checker, pinned
from test_serve_installers import pip_install

pytestmark = pytest.mark.slow


@dataclass
class Lab:
    upstream: IndexServer
    pub: Publisher
    tmp: Path
    marker: Path  # written by the evil sdist's build backend when it is imported
    sdist: Path  # the evil sdist (local file), also on the upstream index as project "evil"
    sdist_url: str
    trust_root: Path
    log: EventLog

    def serve(self, policy: Policy | None = None) -> RunningServer:
        """``safe-pip serve`` as the command starts it: block mode (its default), recording."""
        home = self.tmp / "home"
        checker = make_checker(self.trust_root, home, self.upstream.index_url, policy)
        self._stores.append(checker.store)
        return start_server(checker, self.upstream.index_url, mode="block", log=self.log)

    def upload_signed(self, wheel: Path, project: str) -> None:
        self.pub._upload(wheel, project, None, True, None, False)

    def events(self, event: str, filename: str) -> list[dict[str, object]]:
        return [e for e in self.log.events if e["event"] == event and e["filename"] == filename]

    def __post_init__(self) -> None:
        self._stores: list[object] = []

    def close(self) -> None:
        for store in self._stores:
            store.close()  # type: ignore[attr-defined]


@pytest.fixture
def lab(sigstore: TestSigstore, trust_root: Path, tmp_path: Path) -> Iterator[Lab]:
    marker = tmp_path / "PWNED"
    sdist = _sdist(_source_tree(tmp_path / "evil-src", marker), tmp_path / "dist")
    with IndexServer(tmp_path / "upstream") as upstream:
        upstream.add_file(sdist, project="evil")
        lab = Lab(
            upstream,
            Publisher(sigstore, upstream, tmp_path / "build"),
            tmp_path,
            marker,
            sdist,
            upstream.file_url("evil", sdist.name),
            trust_root,
            EventLog(quiet=True, keep=True),
        )
        yield lab
        lab.close()


def _installed(target: Path) -> list[str]:
    return sorted(p.name for p in target.glob("*.dist-info")) if target.is_dir() else []


def _duplicated_metadata(wheel: Path) -> None:
    """Add a second ``inv-2.0.dist-info/METADATA`` member naming version 1.0 (zip allows two
    members of one name; which one a reader takes is up to the reader)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name"
        with zipfile.ZipFile(wheel, "a") as zf:
            zf.writestr("inv-2.0.dist-info/METADATA", b"Name: inv\nVersion: 1.0\n")


def _broken_deflate(wheel: Path) -> None:
    """Store the METADATA deflated and break its deflate stream (zipfile raises zlib.error,
    which is no OSError or BadZipFile: the check once let it escape as an error)."""
    with zipfile.ZipFile(wheel) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(wheel, "w") as zf:
        for info, data in members:
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data + (b"Summary: x\n" * 200 if info.filename == _META else b""))
    raw = bytearray(wheel.read_bytes())
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo(_META)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 2, start + 12):
        raw[i] ^= 0xFF
    wheel.write_bytes(bytes(raw))


_META = "inv-2.0.dist-info/METADATA"

#: How a signed wheel's METADATA (or .dist-info) can disagree with its name ``inv-2.0``.
_INVALID: dict[str, dict[str, bytes | None]] = {
    "other-name": {_META: b"Metadata-Version: 2.1\nName: other\nVersion: 2.0\n"},
    "other-version": {_META: b"Metadata-Version: 2.1\nName: inv\nVersion: 1.0\n"},
    "two-names": {_META: b"Name: inv\nName: other\nVersion: 2.0\n"},
    "two-versions": {_META: b"Name: inv\nVersion: 2.0\nVersion: 1.0\n"},
    "no-version": {_META: b"Metadata-Version: 2.1\nName: inv\n"},
    "folded-name": {_META: b"Name: other\n inv\nVersion: 2.0\n"},
    "folded-version": {_META: b"Name: inv\nVersion:\n 1.0\n"},
    "version-after-body": {_META: b"Name: inv\n\nVersion: 2.0\n"},
    "two-dist-infos": {"other-1.0.dist-info/METADATA": b"Name: other\nVersion: 1.0\n"},
    "dist-info-case": {"Inv-2.0.dist-info/METADATA": b"Name: inv\nVersion: 1.0\n"},
    "dist-info-upper-suffix": {"inv-1.0.DIST-INFO/METADATA": b"Name: inv\nVersion: 1.0\n"},
    "dist-info-for-other": {_META: None, "other-2.0.dist-info/METADATA": b"Name: inv\n"},
    "no-metadata": {_META: None},
    "huge": {_META: _HUGE},
    "not-utf8": {_META: b"Name: inv\nVersion: 2.0\nSummary: \xff\xfe\n"},
    "duplicated": {},  # see _duplicated_metadata
    "broken-deflate": {},  # see _broken_deflate
}


@pytest.mark.parametrize("case", sorted(_INVALID))
def test_pip_behind_serve_never_takes_another_version_for_an_invalid_wheel(
    lab: Lab, case: str
) -> None:
    """A signed ``inv 2.0`` wheel whose METADATA disagrees with its name (or with no, several,
    oversized, non-UTF-8 or duplicated METADATA): pip behind ``safe-pip serve`` used to get its
    bytes, discard it, and quietly install ``inv 1.0`` (exit 0). serve refuses it with a 403
    naming the file and ``refused-invalid-wheel``; pip stops, nothing is installed, and the
    refusal is logged (and never recorded as served)."""
    lab.pub.wheel("inv", "1.0")
    wheel = build_wheel(lab.tmp / "evil-build", "inv", "2.0")
    if case == "duplicated":
        _duplicated_metadata(wheel)
    elif case == "broken-deflate":
        _broken_deflate(wheel)
    else:
        _rewrite_wheel(wheel, _INVALID[case])
    lab.upload_signed(wheel, "inv")
    target = lab.tmp / "target"
    with lab.serve() as srv:
        proc = pip_install(srv.index_url, target, "inv")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, (case, out)
    assert _installed(target) == [], (case, out)
    assert "403" in out, (case, out)
    assert "refused-invalid-wheel" in out, (case, out)
    refused = lab.events("refuse", wheel.name)
    assert [e["code"] for e in refused] == ["refused-invalid-wheel"], (case, lab.log.events)
    assert "inv 2.0" in str(refused[0]["reason"]), refused
    assert lab.events("served", wheel.name) == []


def test_serve_refuses_an_invalid_wheel_under_every_spelling_of_its_link(lab: Lab) -> None:
    """The refusal is the file's, however its link is spelled (percent-encoded characters, the
    digest in upper case) and however often it is asked for: always the 403 with the reason,
    the fix and the file named, never the bytes."""
    lab.pub.wheel("inv", "1.0")
    wheel = build_wheel(lab.tmp / "evil-build", "inv", "2.0")
    _rewrite_wheel(wheel, _INVALID["other-version"])
    lab.upload_signed(wheel, "inv")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    spellings = [
        f"/files/inv/{sha}/{wheel.name}",
        f"/files/inv/{sha.upper()}/{wheel.name}",
        f"/files/inv/{sha}/{wheel.name.replace('-', '%2D')}",
        f"/files/%69nv/{sha}/{wheel.name.replace('.whl', '%2Ewhl')}",
        f"/files/inv/{sha}/{wheel.name}",  # asked again: the kept refusal
    ]
    with lab.serve() as srv:
        for path in spellings:
            with pytest.raises(urllib.error.HTTPError) as exc:
                urllib.request.urlopen(srv.url + path, timeout=60)
            body = exc.value.read().decode()
            assert exc.value.code == 403, (path, body)
            assert f"{wheel.name} refused [refused-invalid-wheel]" in body, (path, body)
            assert "not a valid wheel of inv 2.0" in body, body
            assert "fix: ask the publisher of inv" in body, body
    assert lab.events("served", wheel.name) == []


def test_serve_never_serves_a_wheel_named_in_upper_case(lab: Lab) -> None:
    """``inv-2.0-py3-none-any.WHL``, signed, under a policy that allows sdists: no installer
    takes it as a wheel, and serve must not serve it as "not a wheel, so an sdist" past the
    wheel check: it is not listed (the page reader takes no such name) and its link is a 404,
    never the bytes. (Were it listed, :func:`safe_pip.sources.wheel.is_wheel_name` sends it
    through the wheel check, where its name alone is refused-invalid-wheel.)"""
    from safe_pip.models import Action, ReasonCode, Verdict
    from safe_pip.sources.wheel import check_wheel, is_wheel_name

    lab.pub.wheel("inv", "1.0")
    built = build_wheel(lab.tmp / "evil-build", "inv", "2.0")
    upper = built.rename(built.with_name(built.name[: -len(".whl")] + ".WHL"))
    lab.upload_signed(upper, "inv")
    sha = hashlib.sha256(upper.read_bytes()).hexdigest()
    with lab.serve(pinned("inv", allow_sdist=True)) as srv:
        page = urllib.request.urlopen(f"{srv.index_url}inv/", timeout=60).read().decode()
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"{srv.url}/files/inv/{sha}/{upper.name}", timeout=60)
    assert upper.name not in page, page
    assert exc.value.code == 404, exc.value.read()
    assert lab.events("served", upper.name) == []
    assert is_wheel_name(upper.name)
    allowed = Verdict(
        "inv", "2.0", upper.name, sha, Action.ALLOW, ReasonCode.VERIFIED_KNOWN, "ok", "history"
    )
    _body, refused = check_wheel(allowed, upper, upper.name, "inv")
    assert refused is not None
    assert refused.code is ReasonCode.REFUSED_INVALID_WHEEL


@pytest.mark.parametrize("spelling", [*sorted(_DIRECT_URL_SPELLINGS), "http"])
def test_pip_behind_serve_never_builds_a_direct_url_dependency(lab: Lab, spelling: str) -> None:
    """A signed wheel ``lure`` whose METADATA requires the evil sdist by direct URL (any header
    spelling pip accepts; ``http``: the sdist's URL on the upstream index, plain): pip behind
    ``safe-pip serve`` would fetch and build it while resolving (``--only-binary`` does not
    apply to direct URLs). serve refuses ``lure`` (403, refused-direct-url-dependency) before
    pip reads its metadata: the build backend never runs, nothing is installed."""
    wheel = build_wheel(lab.tmp / "evil-build", "lure", "1.0")
    url = lab.sdist_url if spelling == "http" else lab.sdist.as_uri()
    header = _DIRECT_URL_SPELLINGS.get(spelling, "Requires-Dist: evil @ {url}\n").format(url=url)
    meta = f"Metadata-Version: 2.1\nName: lure\nVersion: 1.0\n{header}\n"
    _rewrite_wheel(wheel, {"lure-1.0.dist-info/METADATA": meta.encode()})
    lab.upload_signed(wheel, "lure")
    lab.pub.wheel("app", "1.0", requires=["lure[x]" if spelling == "extra" else "lure"])
    target = lab.tmp / "target"
    with lab.serve() as srv:
        proc = pip_install(srv.index_url, target, "app")
    out = proc.stdout + proc.stderr
    assert not lab.marker.exists(), "the direct-URL dependency was built\n" + out
    assert proc.returncode != 0, out
    assert "refused-direct-url-dependency" in out, out
    assert _installed(target) == [], out
    refused = lab.events("refuse", wheel.name)
    assert [e["code"] for e in refused] == ["refused-direct-url-dependency"], lab.log.events
    assert lab.upstream.hits(f"/files/evil/{lab.sdist.name}") == 0


def test_serve_never_passes_on_an_upstream_core_metadata(lab: Lab) -> None:
    """An upstream that advertises PEP 658 metadata for a signed wheel and answers it with
    METADATA the wheel does not hold (here: a direct URL to the evil sdist). pip reading the
    upstream directly takes that ``.metadata`` and builds the sdist (the control, so the
    lab shows the attack is real); behind ``safe-pip serve`` pip gets no metadata
    advertisement and no ``.metadata`` (404): it reads the verified wheel's own METADATA,
    installs it, and nothing is built. serve never asks upstream for a ``.metadata``."""
    import json

    wheel = lab.pub.wheel("lure", "1.0")
    lie = f"Metadata-Version: 2.1\nName: lure\nVersion: 1.0\nRequires-Dist: evil @ {lab.sdist_url}"
    lab.upstream.core_metadata[wheel.name] = lie.encode()
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()

    control = pip_install(lab.upstream.index_url, lab.tmp / "control", "lure")
    assert lab.marker.exists(), "control: pip did not read the upstream's .metadata\n" + (
        control.stdout + control.stderr
    )
    lab.marker.unlink()
    before = len(lab.upstream.requests_log)

    target = lab.tmp / "target"
    with lab.serve() as srv:
        html = urllib.request.urlopen(f"{srv.index_url}lure/", timeout=60).read().decode()
        req = urllib.request.Request(
            f"{srv.index_url}lure/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        )
        files = json.loads(urllib.request.urlopen(req, timeout=60).read())["files"]
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"{srv.url}/files/lure/{sha}/{wheel.name}.metadata", timeout=60)
        assert exc.value.code == 404
        proc = pip_install(srv.index_url, target, "lure")
    out = proc.stdout + proc.stderr
    assert "metadata" not in html, html
    assert all(not any("metadata" in key for key in f) for f in files), files
    assert not lab.marker.exists(), "the upstream's .metadata reached pip\n" + out
    assert proc.returncode == 0, out
    assert _installed(target) == ["lure-1.0.dist-info"], out
    assert not any(p.endswith(".metadata") for p in lab.upstream.requests_log[before:])
