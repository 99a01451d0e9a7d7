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
        verifier = _build(config)
        _cache[config] = verifier
        return verifier


def _build(config: TrustConfig) -> Verifier:
    import logging

    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    # sigstore logs warnings for key types it skips; they are noise for our users.
    logging.getLogger("sigstore").setLevel(logging.ERROR)
    try:
        if config.mode == "custom":
            assert config.path is not None
            try:
                text = config.path.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read trust root {config.path}: {exc.strerror or exc}"
                ) from exc
            if len(text) > 16 * 1024 * 1024:
                raise ConfigError(f"trust root {config.path} is too large")
            try:
                root = TrustedRoot.from_file(str(config.path))
            except Exception as exc:
                raise ConfigError(
                    f"trust root {config.path} is not a valid Sigstore trusted_root.json: "
                    f"{_short(exc)}"
                ) from exc
        elif config.mode == "offline":
            root = TrustedRoot.from_file(str(embedded_trusted_root_path()))
        elif config.mode == "staging":
            root = TrustedRoot.from_file(str(embedded_trusted_root_path(staging=True)))
        else:
            try:
                from sigstore.models import ClientTrustConfig

                root = ClientTrustConfig.production(offline=False).trusted_root
            except Exception as exc:
                raise TrustRootError(
                    f"could not refresh the Sigstore production trust root through TUF: "
                    f"{_short(exc)}",
                    fix="check the network, or pass --embedded-root to use the root shipped "
                    "with the installed sigstore package",
                ) from exc
        return Verifier(trusted_root=root)
    except (ConfigError, TrustRootError):
        raise
    except Exception as exc:
        raise TrustRootError(f"could not load {config.describe()}: {_short(exc)}") from exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
