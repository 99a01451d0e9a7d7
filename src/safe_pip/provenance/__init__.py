"""Sigstore verification of PEP 740 provenance: trust roots, identities, build claims (no network
here). May import net, output, models, errors and text."""
