"""Test support: a private Sigstore instance, package builders and a local index server."""
