"""One root error with a user-facing message, and one branch per exit code.

Exit codes (all faces):
0 allowed / verified; 1 refused by policy or failed verification; 2 usage or configuration
error; 3 could not check (network, index, trust root unavailable); 4 pip failed after
verification passed.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_CONFIG = 2
EXIT_COULD_NOT_CHECK = 3
EXIT_PIP_FAILED = 4


class SafePipError(Exception):
    """Root of every error safe-pip raises on purpose. ``str(err)`` is for humans."""

    exit_code = EXIT_COULD_NOT_CHECK

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def diagnostics(self) -> str:
        """The message, plus how to fix it when we know."""
        if self.fix:
            return f"{self.message}\n  fix: {self.fix}"
        return self.message


class RefusedError(SafePipError):
    """A package failed verification or policy: the index or attestation is not trusted."""

    exit_code = EXIT_REFUSED


class ConfigError(SafePipError):
    """Bad usage, bad policy file, bad lockfile or bad local input."""

    exit_code = EXIT_CONFIG


class CouldNotCheckError(SafePipError):
    """Infrastructure: network, index, trust root or store unavailable. Never means 'allow'."""

    exit_code = EXIT_COULD_NOT_CHECK


class NetworkError(CouldNotCheckError):
    """A request failed, timed out, was too large, redirected badly or came back malformed."""


class StaleIndexError(CouldNotCheckError):
    """An index served a project page older (lower ``_last-serial``) than one seen before: a
    stale mirror or a replayed page (threat T21)."""

    def __init__(
        self,
        message: str,
        *,
        fix: str | None = None,
        index: str = "",
        project: str = "",
        serial: int = 0,
        previous: int = 0,
    ) -> None:
        super().__init__(message, fix=fix)
        self.index = index
        self.project = project
        self.serial = serial
        self.previous = previous


class TrustRootError(CouldNotCheckError):
    """The Sigstore trust root could not be loaded."""


class StoreError(CouldNotCheckError):
    """The history database is corrupt, foreign, unreadable or busy. Never silently reset."""


class InsecureHomeError(StoreError):
    """The history directory is writable by group or others, or owned by another user: a
    configuration the user must fix (exit 2), since anyone who can write it can delete the
    history and have the next run trust an attacker on first use."""

    exit_code = EXIT_CONFIG


class PipFailedError(SafePipError):
    """pip itself failed after verification passed."""

    exit_code = EXIT_PIP_FAILED
