"""``--save-evidence DIR`` / ``--evidence DIR``: each file's provenance and the trusted root
kept in a directory, so a later run verifies from it with no network at all."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from safe_pip.check import Checker
from safe_pip.errors import ConfigError, CouldNotCheckError
from safe_pip.lock.provenance_cache import MAX_PROVENANCE_BYTES, atomic_write, hexdigest_ok
from safe_pip.models import FileRef, VerificationResult, VerifyStatus

if TYPE_CHECKING:
    from safe_pip.net import ProjectPage


EVIDENCE_SCHEMA = "safe-pip-evidence/1"

EVIDENCE_MANIFEST = "safe-pip-evidence.json"


class Evidence:
    """A directory of provenance saved by ``--save-evidence``, keyed by sha256 and filename.

    Layout: ``safe-pip-evidence.json`` (manifest), ``trusted_root.json`` (the root the files
    were verified with, for the record), ``provenance/<sha256>/<filename>.provenance.json``.
    """

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        self._lock = threading.Lock()

    @classmethod
    def load(cls, root: Path) -> Evidence:
        path = root / EVIDENCE_MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(
                f"no evidence manifest at {path}: {exc.strerror or exc}",
                fix="create it with `safe-pip verify LOCK --save-evidence DIR`",
            ) from exc
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("schema") != EVIDENCE_SCHEMA:
            raise ConfigError(f"{path}: not a {EVIDENCE_SCHEMA} manifest")
        if not isinstance(data.get("files"), dict):
            raise ConfigError(f"{path}: manifest has no 'files' table")
        return cls(root, data)

    @classmethod
    def create(cls, root: Path) -> Evidence:
        try:
            return cls.load(root)
        except ConfigError:
            if (root / EVIDENCE_MANIFEST).exists():
                raise
        return cls(root, {"schema": EVIDENCE_SCHEMA, "files": {}})

    def entry(self, sha256: str) -> dict[str, Any] | None:
        files: dict[str, Any] = self.manifest["files"]
        entry = files.get(sha256.lower())
        return entry if isinstance(entry, dict) else None

    def filenames_for(self, sha256: str) -> list[str]:
        entry = self.entry(sha256)
        if entry is None or not isinstance(entry.get("filename"), str):
            return []
        return [entry["filename"]]

    def provenance(self, ref: FileRef) -> bytes | None:
        """The saved provenance for ``ref`` (None: it was unsigned when saved). Raises
        CouldNotCheckError when the evidence does not cover the file."""
        sha = (ref.sha256 or "").lower()
        entry = self.entry(sha)
        if entry is None or entry.get("filename") != ref.filename:
            entry = self._history_entry(sha)  # an earlier release the index history read
        if entry is None or entry.get("filename") != ref.filename:
            raise CouldNotCheckError(
                f"the evidence in {self.root} has nothing for {ref.filename} ({sha[:16]}...)",
                fix="re-create it with `safe-pip verify LOCK --save-evidence DIR` after the "
                "lock changed",
            )
        if entry.get("status") == "unsigned":
            return None
        rel = entry.get("provenance")
        if not isinstance(rel, str) or rel.startswith(("/", "\\")) or ".." in Path(rel).parts:
            raise CouldNotCheckError(f"evidence entry for {ref.filename} is malformed")
        try:
            data = (self.root / rel).read_bytes()
        except OSError as exc:
            raise CouldNotCheckError(
                f"cannot read evidence for {ref.filename}: {exc.strerror or exc}"
            ) from exc
        if len(data) > MAX_PROVENANCE_BYTES:
            raise CouldNotCheckError(f"evidence for {ref.filename} is too large")
        return data

    def _history_entry(self, sha256: str) -> dict[str, Any] | None:
        history = self.manifest.get("history")
        if not isinstance(history, dict):
            return None
        for entries in history.values():
            for e in entries if isinstance(entries, list) else ():
                if isinstance(e, dict) and e.get("sha256") == sha256:
                    return e
        return None

    @property
    def has_history(self) -> bool:
        """Whether the bundle carries index history (bundles saved before it did: no)."""
        return isinstance(self.manifest.get("history"), dict)

    def history_page(self, name: str, index: str) -> ProjectPage:
        """The earlier releases saved for ``name`` as a page the index-history step reads
        (one file per release, each with its provenance in this bundle, re-verified when
        used). Raises CouldNotCheckError when the bundle has no history for the project."""

        from safe_pip.net import ProjectPage

        norm = str(canonicalize_name(name))
        history = self.manifest.get("history")
        entries = history.get(norm) if isinstance(history, dict) else None
        if not isinstance(entries, list):
            raise CouldNotCheckError(
                f"the evidence in {self.root} has no index history for {norm}",
                fix="re-create it with `safe-pip verify LOCK --save-evidence DIR` after the lock "
                "changed, or pass --no-index-history",
            )
        files: list[FileRef] = []
        for e in entries:
            if not isinstance(e, dict):
                continue
            filename, version, sha = e.get("filename"), e.get("version"), e.get("sha256")
            if not (isinstance(filename, str) and isinstance(version, str)):
                continue
            if not (isinstance(sha, str) and hexdigest_ok(sha)):
                continue
            upload = e.get("upload_time")
            files.append(
                FileRef(
                    project=norm,
                    version=version,
                    filename=filename,
                    sha256=sha,
                    index=index,
                    upload_time=upload if isinstance(upload, str) else None,
                )
            )
        versions = tuple(dict.fromkeys(f.version for f in files))
        return ProjectPage(
            norm, tuple(files), versions, None, f"evidence:{self.root}", serves_provenance=True
        )

    def add_history(self, project: str, reads: Sequence[tuple[str, FileRef, bytes | None]]) -> None:
        """Keep the earlier releases the index-history step read for ``project``: each file
        (version, name, sha256, upload time) and its provenance as fetched (None: unsigned)."""
        entries: list[dict[str, Any]] = []
        for version, f, provenance in reads:
            sha = (f.sha256 or "").lower()
            if not hexdigest_ok(sha) or "/" in f.filename or "\\" in f.filename:
                continue
            entry: dict[str, Any] = {
                "version": version,
                "filename": f.filename,
                "sha256": sha,
                "upload_time": f.upload_time,
            }
            if provenance is not None:
                rel = f"provenance/{sha}/{f.filename}.provenance.json"
                atomic_write(self.root / rel, provenance)
                entry.update(status="provenance", provenance=rel)
            else:
                entry["status"] = "unsigned"
            entries.append(entry)
        with self._lock:
            self.manifest.setdefault("history", {})[project] = entries

    def add(self, project: str, version: str, result: VerificationResult) -> None:
        sha = result.sha256.lower()
        if not hexdigest_ok(sha) or "/" in result.filename or "\\" in result.filename:
            return
        entry: dict[str, Any] = {
            "filename": result.filename,
            "project": project,
            "version": version,
        }
        if result.status is VerifyStatus.VERIFIED and result.provenance is not None:
            rel = f"provenance/{sha}/{result.filename}.provenance.json"
            atomic_write(self.root / rel, result.provenance)
            entry.update(
                status="verified",
                provenance=rel,
                identity=result.identity.to_json() if result.identity else None,
            )
        elif result.status is VerifyStatus.UNSIGNED:
            entry["status"] = "unsigned"
        else:
            return
        with self._lock:
            self.manifest["files"][sha] = entry

    def save(self, trusted_root: bytes | None, trust_description: str) -> None:
        if trusted_root is not None:
            atomic_write(self.root / "trusted_root.json", trusted_root)
            self.manifest["trusted_root"] = {
                "file": "trusted_root.json",
                "sha256": hashlib.sha256(trusted_root).hexdigest(),
                "source": trust_description,
            }
        self.manifest["saved_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        files = dict(sorted(self.manifest["files"].items()))
        self.manifest["files"] = files
        self.manifest.setdefault("history", {})  # this bundle carries index history
        atomic_write(
            self.root / EVIDENCE_MANIFEST,
            (json.dumps(self.manifest, indent=2, sort_keys=False) + "\n").encode(),
        )


def trusted_root_bytes(checker: Checker) -> bytes | None:
    """The trusted_root.json the checker verifies with (None if it cannot be serialised)."""
    trust = checker.trust
    try:
        if trust.mode == "custom" and trust.path is not None:
            return trust.path.read_bytes()
        if trust.mode in ("offline", "staging"):
            from safe_pip.provenance.trust import embedded_trusted_root_path

            return embedded_trusted_root_path(staging=trust.mode == "staging").read_bytes()
        from safe_pip.provenance.trust import load_verifier

        root = load_verifier(trust)._trusted_root
        text = root._inner.to_json()
        return text.encode() if isinstance(text, str) else bytes(text)
    except Exception:
        return None
