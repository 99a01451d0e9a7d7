"""Sigstore verification of PEP 740 provenance and identity extraction (no network here)."""
