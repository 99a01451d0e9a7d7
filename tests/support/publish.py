"""Publish test-signed packages to a local IndexServer: the shared set-up of integration tests.

``Publisher`` ties a TestSigstore instance, a build directory and an IndexServer together::

    pub = Publisher(sigstore, server, tmp_path / "build")
    pub.wheel("alpha", "1.0", requires=["beta>=1"])              # signed by acme/alpha
    pub.wheel("beta", "1.0", identity=GitHubIdentity("evil/x"))  # signed by someone else
    pub.wheel("gamma", "1.0", signed=False)                      # no provenance at all
    pub.wheel("delta", "0.9", published=T0 + 3600)   # logged and uploaded at that time

``published`` (unix seconds) sets both the transparency-log integrated time of the attestation
(``signed_at``) and the upload-time the index reports (``uploaded_at``), as on PyPI where the
two are a few seconds apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from support.index_server import IndexServer
from support.packages import build_sdist, build_wheel, sha256_file
from support.sigstore_ca import GitHubIdentity, Identity, TestSigstore, provenance_json


def default_identity(name: str) -> GitHubIdentity:
    """The publisher a project has unless a test says otherwise: acme/<name>, release.yml."""
    return GitHubIdentity(repository=f"acme/{name}", workflow="release.yml")


class Publisher:
    """Build, sign and upload tiny packages to a local index."""

    __test__ = False

    def __init__(self, sigstore: TestSigstore, server: IndexServer, build_dir: Path) -> None:
        self.sigstore = sigstore
        self.server = server
        self.build_dir = Path(build_dir)
        self.build_dir.mkdir(parents=True, exist_ok=True)

    def _upload(
        self,
        path: Path,
        name: str,
        identity: Identity | None,
        signed: bool,
        environment: str | None,
        yanked: str | bool,
        signed_at: datetime | None = None,
        uploaded_at: datetime | None = None,
    ) -> Path:
        provenance = None
        if signed:
            ident = identity or default_identity(name)
            itime = int(signed_at.timestamp()) if signed_at is not None else None
            att = self.sigstore.attest(path.name, sha256_file(path), ident, integrated_time=itime)
            provenance = provenance_json([att], ident, environment)
        if uploaded_at is not None:
            self.server.upload_times[path.name] = uploaded_at
        return self.server.add_file(path, project=name, provenance=provenance, yanked=yanked)

    def wheel(
        self,
        name: str,
        version: str,
        *,
        requires: Sequence[str] = (),
        identity: Identity | None = None,
        signed: bool = True,
        environment: str | None = None,
        yanked: str | bool = False,
        files: dict[str, str] | None = None,
        signed_at: datetime | None = None,
        uploaded_at: datetime | None = None,
        published: int | None = None,
        tag: str | None = None,
    ) -> Path:
        """Build ``name``-``version`` as a wheel, sign it (unless ``signed=False``) and
        upload it. Returns the path of the file as the index stores it. ``signed_at`` is the
        transparency log's integrated time and ``uploaded_at`` the index's upload-time (both
        default to a month ago: older than the default minimum release age); ``published``
        (unix seconds) sets both. ``tag`` gives the wheel another compatibility tag (e.g.
        ``"py2.py3-none-any"``), for a second wheel of the same release."""
        if published is not None:
            signed_at = uploaded_at = datetime.fromtimestamp(published, timezone.utc)
        out = self.build_dir / f"{name}-{version}-whl"
        out.mkdir(parents=True, exist_ok=True)
        path = build_wheel(
            out, name, version, requires=list(requires), files=files, tag=tag or "py3-none-any"
        )
        return self._upload(
            path, name, identity, signed, environment, yanked, signed_at, uploaded_at
        )

    def sdist(
        self,
        name: str,
        version: str,
        *,
        requires: Sequence[str] = (),
        build_requires: Sequence[str] = (),
        identity: Identity | None = None,
        signed: bool = True,
        environment: str | None = None,
    ) -> Path:
        out = self.build_dir / f"{name}-{version}-sdist"
        out.mkdir(parents=True, exist_ok=True)
        path = build_sdist(
            out, name, version, requires=list(requires), build_requires=list(build_requires)
        )
        return self._upload(path, name, identity, signed, environment, False)
