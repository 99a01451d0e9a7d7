"""Sigstore trust roots: which keys and CAs a verification trusts.

- ``production``: Sigstore's public-good instance, refreshed through TUF (needs the network).
- ``offline`` (``--embedded-root``, and implied by ``--offline``): the production
  ``trusted_root.json`` shipped *inside the installed sigstore package*, read from there, never
  from a writable cache that nothing re-verifies (a cache an attacker can write would let them
  swap the root; docs/threat-model.md T15/T23).
- ``staging``: Sigstore's staging instance (only on explicit request), also read from the copy
  shipped inside sigstore.
- ``custom``: a ``trusted_root.json`` given by path (private Sigstore deployments, tests).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from safe_pip.errors import ConfigError, TrustRootError

if TYPE_CHECKING:
    from sigstore.verify import Verifier

TrustMode = Literal["production", "offline", "staging", "custom"]

_PROD_DIR = "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
_STAGING_DIR = "https%3A%2F%2Ftuf-repo-cdn.sigstage.dev"

#: Environment variable naming a trusted_root.json (same as --trust-root).
TRUST_ROOT_ENV = "SAFE_PIP_TRUST_ROOT"


@dataclass(frozen=True)
class TrustConfig:
    """Which trust root to verify against."""

    mode: TrustMode = "production"
    path: Path | None = None

    def describe(self) -> str:
        """What the root is; "TUF refresh" only once a refresh actually happened (a run that
        verified nothing never loaded the root, and says so)."""
        if self.mode == "custom":
            return f"custom trust root {self.path}"
        if self.mode == "offline":
            return "Sigstore production (root shipped with sigstore)"
        if self.mode == "staging":
            return "Sigstore staging (root shipped with sigstore)"
        if verifier_loaded(self):
            return "Sigstore production (TUF refresh)"
        return "Sigstore production (not loaded: nothing needed verifying)"

    @classmethod
    def from_options(
        cls,
        *,
        offline: bool = False,
        staging: bool = False,
        trust_root: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> TrustConfig:
        """Build from CLI flags; ``--trust-root`` (or $SAFE_PIP_TRUST_ROOT) wins."""
        environ = os.environ if env is None else env
        root = trust_root or environ.get(TRUST_ROOT_ENV) or None
        if root:
            if staging:
                raise ConfigError("--staging and --trust-root cannot be combined")
            return cls(mode="custom", path=Path(root))
        if staging:
            return cls(mode="staging")
        return cls(mode="offline" if offline else "production")


def embedded_trusted_root_path(*, staging: bool = False) -> Path:
    """The trusted_root.json shipped inside the installed sigstore package."""
    base = resources.files("sigstore") / "_store" / (_STAGING_DIR if staging else _PROD_DIR)
    path = Path(str(base / "trusted_root.json"))
    if not path.is_file():
        raise TrustRootError(
            f"the installed sigstore package has no embedded trust root at {path}",
            fix="reinstall sigstore, or pass --trust-root PATH",
        )
    return path


_lock = threading.Lock()
_cache: dict[TrustConfig, Verifier] = {}
#: sha256 of the trusted root each loaded Verifier was built from (see :func:`root_digest`)
_digests: dict[TrustConfig, str] = {}
_MAX_ROOT_BYTES = 16 * 1024 * 1024


def verifier_loaded(config: TrustConfig) -> bool:
    """Whether a Verifier for ``config`` was built in this process (the root was loaded)."""
    with _lock:
        return config in _cache


def load_verifier(config: TrustConfig) -> Verifier:
    """Build (once per process and config) a sigstore Verifier for ``config``.

    Raises TrustRootError (exit 3) when the root cannot be loaded, and ConfigError when a
    custom root file is unreadable or malformed.
    """
    with _lock:
        cached = _cache.get(config)
        if cached is not None:
            return cached
        verifier, digest = _build(config)
        _cache[config] = verifier
        _digests[config] = digest
        return verifier


def _root_file(config: TrustConfig) -> Path | None:
    """The trusted_root.json ``config`` reads (None for production: a TUF refresh)."""
    if config.mode == "custom":
        assert config.path is not None
        return config.path
    if config.mode in ("offline", "staging"):
        return embedded_trusted_root_path(staging=config.mode == "staging")
    return None


def _read_root(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read trust root {path}: {exc.strerror or exc}") from exc
    if len(data) > _MAX_ROOT_BYTES:
        raise ConfigError(f"trust root {path} is too large")
    return data


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def loaded_root_digest(config: TrustConfig) -> str | None:
    """The sha256 of the trusted root the Verifier for ``config`` was built from in this
    process (None when none was built): what a verification under ``config`` trusted."""
    with _lock:
        return _digests.get(config)


def root_digest(config: TrustConfig) -> str | None:
    """The sha256 of the trusted root a verification under ``config`` uses, or None when it
    cannot be told.

    Once a Verifier is loaded: of the root it was built from. Before that, for a root read
    from a file (``custom``, ``offline``, ``staging``): of the file's bytes, read without
    building a Verifier (sigstore is not even imported: a run whose bundles all verified
    before never needs it; the same bytes build the same Verifier). For ``production`` the
    root is what the TUF refresh gives, so the Verifier is loaded (the refresh reads Sigstore's
    TUF repository every run)."""
    digest = loaded_root_digest(config)
    if digest is not None:
        return digest
    try:
        path = _root_file(config)
        if path is not None:
            return _sha256(_read_root(path))
        load_verifier(config)
    except Exception:
        return None
    return loaded_root_digest(config)


def _build(config: TrustConfig) -> tuple[Verifier, str]:
    """The Verifier and the sha256 of the trusted root it was built from (a root file is read
    once: the bytes digested are the bytes parsed)."""
    import logging

    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier
    from sigstore_models.trustroot import v1 as trustroot_v1

    # sigstore logs warnings for key types it skips; they are noise for our users.
    logging.getLogger("sigstore").setLevel(logging.ERROR)
    try:
        path = _root_file(config)
        if path is not None:
            try:
                data = _read_root(path)
            except ConfigError as exc:
                if config.mode == "custom":
                    raise
                raise TrustRootError(f"could not load {config.describe()}: {exc}") from exc
            try:
                root = TrustedRoot(trustroot_v1.TrustedRoot.from_json(data))
            except Exception as exc:
                if config.mode != "custom":
                    raise
                raise ConfigError(
                    f"trust root {config.path} is not a valid Sigstore trusted_root.json: "
                    f"{_short(exc)}"
                ) from exc
            return Verifier(trusted_root=root), _sha256(data)
        try:
            from sigstore.models import ClientTrustConfig

            root = ClientTrustConfig.production(offline=False).trusted_root
        except Exception as exc:
            raise TrustRootError(
                f"could not refresh the Sigstore production trust root through TUF: {_short(exc)}",
                fix="check the network, or pass --embedded-root to use the root shipped "
                "with the installed sigstore package",
            ) from exc
        text = root._inner.to_json()
        digest = _sha256(text.encode() if isinstance(text, str) else bytes(text))
        return Verifier(trusted_root=root), digest
    except (ConfigError, TrustRootError):
        raise
    except Exception as exc:
        raise TrustRootError(f"could not load {config.describe()}: {_short(exc)}") from exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
