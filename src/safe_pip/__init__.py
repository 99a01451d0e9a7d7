"""safe-pip: a provenance gate for Python packages (PEP 740, verified before install)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
