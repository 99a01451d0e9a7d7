"""The only code in safe-pip that talks HTTP (and the only importer of ``requests``).
May import models, errors and text only.

- :class:`Http` / :class:`Limits`: one GET policy (timeouts, deadline, decoded-size caps,
  retries, redirect and host rules, TLS always verified).
- :class:`SimpleIndex` / :class:`ProjectPage`: PEP 691 JSON and PEP 503 HTML project pages.
- :func:`fetch_provenance` / :func:`integrity_url`: PEP 740 provenance, with the rule that only
  404 means "unsigned".

Every failure is a :class:`safe_pip.errors.NetworkError` (exit 3, "could not check"); the
subclasses below let callers and tests tell the reasons apart.
"""

from __future__ import annotations

from safe_pip.net.integrity import (
    INTEGRITY_V1,
    UnsafeProvenanceURL,
    check_provenance_url,
    fetch_provenance,
    integrity_url,
    provenance_source,
)
from safe_pip.net.session import (
    ConnectionFailed,
    DeadlineExceeded,
    HashMismatch,
    Http,
    HttpStatusError,
    InsecureURL,
    Limits,
    MalformedResponse,
    OfflineError,
    Response,
    ResponseTooLarge,
    UnexpectedRedirect,
    check_redirect,
    check_url,
    parse_json,
    pypi_site,
    redact,
)
from safe_pip.net.simple import (
    SIMPLE_ACCEPT,
    ProjectNotFound,
    ProjectPage,
    SimpleIndex,
    parse_filename,
)

__all__ = [
    "INTEGRITY_V1",
    "SIMPLE_ACCEPT",
    "ConnectionFailed",
    "DeadlineExceeded",
    "HashMismatch",
    "Http",
    "HttpStatusError",
    "InsecureURL",
    "Limits",
    "MalformedResponse",
    "OfflineError",
    "ProjectNotFound",
    "ProjectPage",
    "Response",
    "ResponseTooLarge",
    "SimpleIndex",
    "UnexpectedRedirect",
    "UnsafeProvenanceURL",
    "check_provenance_url",
    "check_redirect",
    "check_url",
    "fetch_provenance",
    "integrity_url",
    "parse_filename",
    "parse_json",
    "provenance_source",
    "pypi_site",
    "redact",
]
