"""Allowlist proposals and review (``safe-pip allow learn`` / ``allow review``)."""
