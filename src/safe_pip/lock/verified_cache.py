"""Verified bundles for ``safe-pip verify`` and ``install``: only facts that cannot change.

"This provenance verifies for the file ``filename`` whose bytes hash to ``sha256``, under
this trust root, and proves this publisher" is permanent: the bundle, the digest, the root
and safe-pip's verification code decide it, and none of them is read from anything that
changes. Everything else a verdict depends on can change at any time and is read again by
every run: the index (a yank, a PEP 792 quarantine, provenance withdrawn, another publisher's
release in the project's window of history), the history (another run recorded or forgot a
record), the policy (an ``[[unsigned]]`` exception that expires), the clock (minimum release
age). A run therefore reads the index and decides every file again; a hit only skips the
Sigstore verification of a bundle that verified before (a run used to re-print the day's
passing report of an unchanged lock, which hid a quarantine or a publisher change published
that day; see docs/adr/0012).

One file per bundle under ``$SAFE_PIP_HOME/cache/verified/`` (else the user cache directory),
named by a sha256 over: the schema, the verifying code (safe-pip's version and its provenance
package's source, the sigstore and pypi-attestations versions), the digest of the trusted root
(a root file's bytes, read without loading sigstore: a run whose bundles all verified before
never imports it; the TUF-refreshed root in production), the file name, the file's sha256 and
the provenance bytes' sha256. Only VERIFIED results are stored. An entry that cannot be read,
is too large, of another schema, names another key, does not read back as a result, or that
another user owns or could write (the file or its directory) is ignored: the bundle is
verified again. ``--no-cache`` neither reads nor writes it.

The same directory once held whole passing reports (schema ``safe-pip-verified/1``, up to
64 MiB each, never read since ADR 0012's change): a run that stores a bundle removes those
(:func:`sweep_old_entries`): only regular files this user owns, named as entries, in the
private directory, that begin as such a report; never through a symbolic link.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safe_pip import __version__
from safe_pip.models import BuildContext, PublisherIdentity, VerificationResult, VerifyStatus

if TYPE_CHECKING:
    from safe_pip.provenance.trust import TrustConfig

SCHEMA = "safe-pip-verified-bundle/1"
MAX_ENTRY_BYTES = 256 * 1024
#: How an entry of the verified-run cache (whole reports, before ADR 0012) begins: json.dump
#: of {"schema": "safe-pip-verified/1", "key": ...}.
_OLD_RUN_ENTRY = b'{"schema": "safe-pip-verified/1", "key": "'
_ENTRY_NAME = re.compile(r"^[0-9a-f]{64}\.json$")


def cache_dir(home: str | None) -> Path:
    if home:
        return Path(home) / "cache" / "verified"
    import platformdirs

    return Path(platformdirs.user_cache_dir("safe-pip")) / "verified"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def trust_root_digest(trust: TrustConfig) -> str | None:
    """The sha256 of the trusted root a verification under ``trust`` uses (None when it
    cannot be told: then nothing is cached). A root read from a file is digested without
    loading sigstore (:func:`safe_pip.provenance.trust.root_digest`)."""
    from safe_pip.provenance.trust import root_digest

    return root_digest(trust)


_CODE: str | None = None


def _verifier_code() -> str:
    """A digest of the code that decides whether a bundle verifies: safe-pip's version and
    its provenance package's source files, and the sigstore and pypi-attestations versions.
    A verifier that changed (a fix, an upgrade, a development tree) verifies every bundle
    again."""
    global _CODE
    if _CODE is None:
        from importlib import metadata

        import safe_pip.provenance as provenance

        h = hashlib.sha256(__version__.encode())
        for dist in ("sigstore", "pypi-attestations"):
            try:
                h.update(f"\0{dist}={metadata.version(dist)}".encode())
            except metadata.PackageNotFoundError:
                h.update(f"\0{dist}=?".encode())
        for source in sorted(Path(provenance.__file__).parent.glob("*.py")):
            try:
                h.update(b"\0" + source.name.encode() + b"\0" + source.read_bytes())
            except OSError:
                h.update(b"\0" + source.name.encode() + b"\0?")
        _CODE = h.hexdigest()
    return _CODE


def _private(st: os.stat_result) -> bool:
    """Owned by this user and writable by no one else (a stored result is a verdict); the
    same rule as the kept index pages'."""
    from safe_pip.net.pagecache import private

    return private(st)


def _to_json(result: VerificationResult) -> dict[str, Any]:
    return {
        "filename": result.filename,
        "sha256": result.sha256,
        "reason": result.reason,
        "reason_code": result.reason_code,
        "identity": result.identity.to_json() if result.identity else None,
        "predicate_types": list(result.predicate_types),
        "tlog_index": result.tlog_index,
        "integrated_time": result.integrated_time,
        "tsa_time": result.tsa_time,
        "tlog_kind": result.tlog_kind,
        "build": result.build.to_json() if result.build else None,
    }


def _from_json(doc: Any) -> VerificationResult | None:
    """The result :func:`_to_json` wrote; None for anything else."""
    try:
        ident = doc["identity"]
        types = doc["predicate_types"]
        for k in ("tlog_index", "integrated_time", "tsa_time"):
            if doc[k] is not None and (type(doc[k]) is not int):
                return None
        if not (
            isinstance(ident, dict)
            and isinstance(types, list)
            and all(isinstance(t, str) for t in types)
            and all(
                isinstance(doc[k], str) for k in ("filename", "sha256", "reason", "reason_code")
            )
            and (doc["tlog_kind"] is None or isinstance(doc["tlog_kind"], str))
        ):
            return None
        return VerificationResult(
            filename=doc["filename"],
            sha256=doc["sha256"],
            status=VerifyStatus.VERIFIED,
            reason=doc["reason"],
            reason_code=doc["reason_code"],
            identity=PublisherIdentity.from_table(ident),
            predicate_types=tuple(types),
            tlog_index=doc["tlog_index"],
            integrated_time=doc["integrated_time"],
            tsa_time=doc["tsa_time"],
            tlog_kind=doc["tlog_kind"],
            build=BuildContext.from_json(doc["build"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def sweep_old_entries(root: Path) -> int:
    """Remove the entries of the verified-run cache (whole reports, before ADR 0012) from
    ``root``; returns how many. Only when ``root`` is a directory (not a link) that this user
    owns and no one else can write; only regular files this user owns, named as entries
    (``<sha256>.json``), that begin as such a report. Names are opened and removed relative to
    the directory, never through a symbolic link (``O_NOFOLLOW``). Anything else, and any
    error, is left alone: nothing here is needed, so nothing here fails a run."""
    if not (
        hasattr(os, "O_NOFOLLOW")
        and os.open in os.supports_dir_fd
        and os.stat in os.supports_dir_fd
        and os.unlink in os.supports_dir_fd
        and os.scandir in os.supports_fd
    ):
        return 0  # without them a name could be followed out of the directory
    removed = 0
    try:
        dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return 0
    try:
        if not _private(os.fstat(dfd)):
            return 0  # another user could have put files here: none of them is touched
        with os.scandir(dfd) as it:
            names = [e.name for e in it if _ENTRY_NAME.match(e.name)]
        for name in names:
            with contextlib.suppress(OSError):
                if _is_old_run_entry(dfd, name):
                    os.unlink(name, dir_fd=dfd)
                    removed += 1
    except OSError:
        pass
    finally:
        os.close(dfd)
    return removed


def _is_old_run_entry(dfd: int, name: str) -> bool:
    seen = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    if not stat.S_ISREG(seen.st_mode) or not _private(seen):
        return False  # a link, a directory, a FIFO, a device: never opened
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (seen.st_dev, seen.st_ino) or not _private(st):
            return False  # replaced meanwhile
        head = b""
        while len(head) < len(_OLD_RUN_ENTRY):
            chunk = os.read(fd, len(_OLD_RUN_ENTRY) - len(head))
            if not chunk:
                break
            head += chunk
        return head == _OLD_RUN_ENTRY
    finally:
        os.close(fd)


class VerifiedBundles:
    """Verified bundles by (trust root, file name, file sha256, provenance bytes)."""

    def __init__(self, root: Path, trust: TrustConfig) -> None:
        self.root = root
        self.trust = trust
        self._trust_digest: str | None = None
        self.hits = 0
        self._swept = False

    def _key(
        self, filename: str, sha256: str, provenance: bytes, trust_digest: str | None = None
    ) -> str | None:
        if trust_digest is None:
            if self._trust_digest is None:
                self._trust_digest = trust_root_digest(self.trust) or ""
            trust_digest = self._trust_digest
        if not trust_digest:
            return None
        parts = [
            SCHEMA,
            _verifier_code(),
            trust_digest,
            filename,
            sha256.lower(),
            _sha(provenance),
        ]
        return _sha(json.dumps(parts).encode())

    def any_kept(self) -> bool:
        """Whether any bundle is kept (a hint for loading the verifier ahead; never a
        verdict)."""
        try:
            with os.scandir(self.root) as entries:
                return any(e.name.endswith(".json") for e in entries)
        except OSError:
            return False

    def get(self, filename: str, sha256: str, provenance: bytes) -> VerificationResult | None:
        """The stored VERIFIED result of this bundle for this file, or None."""
        key = self._key(filename, sha256, provenance)
        if key is None:
            return None
        path = self.root / f"{key}.json"
        try:
            with path.open("rb") as fh:
                if not _private(os.fstat(fh.fileno())) or not _private(os.stat(self.root)):
                    return None  # another user could have written it: verify again
                raw = fh.read(MAX_ENTRY_BYTES + 1)
            data = json.loads(raw)
        except (OSError, ValueError, RecursionError):
            return None
        if (
            len(raw) > MAX_ENTRY_BYTES
            or not isinstance(data, dict)
            or data.get("schema") != SCHEMA
            or data.get("key") != key
        ):
            return None
        result = _from_json(data.get("result"))
        if result is None or result.filename != filename or result.sha256 != sha256:
            return None
        self.hits += 1
        return result

    def put(self, provenance: bytes, result: VerificationResult) -> None:
        """Keep a VERIFIED result (anything else is never stored); failures are ignored."""
        if result.status is not VerifyStatus.VERIFIED or result.identity is None:
            return
        from safe_pip.provenance.trust import loaded_root_digest

        # keyed by the root the verifier was built from (the root file could change during
        # the run); a verification always loaded one
        loaded = loaded_root_digest(self.trust)
        key = self._key(result.filename, result.sha256, provenance, loaded)
        doc = _to_json(result)
        if key is None or _from_json(doc) != result:
            return  # only what reads back as the very same result
        if not self._swept:  # once per run that stores something (a warm run stores nothing)
            self._swept = True
            sweep_old_entries(self.root)
        with contextlib.suppress(OSError):
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".verified.", suffix=".tmp", dir=self.root)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump({"schema": SCHEMA, "key": key, "result": doc}, fh)
                os.replace(tmp, self.root / f"{key}.json")
            finally:
                Path(tmp).unlink(missing_ok=True)
