"""PEP 740 provenance retrieval: the simple page's ``provenance`` URL, else PyPI's Integrity API.

Status semantics (threat T09): 200 is provenance; 404 is "no provenance" (unsigned, for the
policy to judge); anything else (403, 406, 5xx, timeouts, TLS errors, oversize, malformed or
non-JSON bodies, unsafe URLs) is :class:`~safe_pip.errors.NetworkError`: could not check, never
"unsigned", never "allowed".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

from packaging.utils import canonicalize_name

from safe_pip.errors import NetworkError
from safe_pip.models import FileRef
from safe_pip.net.session import (
    PYPI_SITES,
    Http,
    HttpStatusError,
    MalformedResponse,
    ResponseTooLarge,
    _file_path,
    is_loopback,
    pypi_site,
    redact,
    same_origin,
)

INTEGRITY_V1 = "application/vnd.pypi.integrity.v1+json"
PROVENANCE_ACCEPT = f"{INTEGRITY_V1}, application/json;q=0.9"


def integrity_url(index_url: str, project: str, version: str, filename: str) -> str | None:
    """PyPI's Integrity API URL for a file when ``index_url`` is pypi.org or test.pypi.org (or
    their files hosts), else None."""
    site = pypi_site(urlsplit(index_url).hostname)
    if site is None:
        return None
    return (
        f"https://{site}/integrity/{quote(canonicalize_name(project), safe='')}/"
        f"{quote(version, safe='')}/{quote(filename, safe='')}/provenance"
    )


class UnsafeProvenanceURL(NetworkError):
    """The provenance URL points away from the file's index, or at another file."""


def _reference_url(ref: FileRef) -> str | None:
    return ref.index or ref.url


def check_provenance_url(ref: FileRef, url: str) -> None:
    """threat T14: a provenance URL must live on the file's index (same origin, the same PyPI
    site, or inside a ``file://`` index's directory) and name the file as one of its path
    segments (``<filename>`` or ``<filename>.provenance``). Checked before any request."""
    what = f"{ref.project} {ref.filename}: provenance URL {redact(url)}"
    parts = urlsplit(url)
    segments = {unquote(s) for s in parts.path.split("/")}
    if not segments & {ref.filename, ref.filename + ".provenance"}:
        raise UnsafeProvenanceURL(
            f"{what} does not name the file; refusing to fetch it",
            fix="the index advertises provenance for a different file",
        )
    reference = _reference_url(ref)
    if reference is None:
        raise UnsafeProvenanceURL(f"{what}: the file's index is unknown; refusing to fetch it")
    ref_parts = urlsplit(reference)
    if parts.scheme == "file":
        if ref_parts.scheme != "file":
            raise UnsafeProvenanceURL(f"{what}: a file: URL from a remote index; refusing it")
        root = _file_path(reference).resolve()
        if not _file_path(url).resolve().is_relative_to(root):
            raise UnsafeProvenanceURL(f"{what} is outside the index directory {root}")
        return
    if same_origin(url, reference) and (
        parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname))
    ):
        return
    site = pypi_site(ref_parts.hostname)
    if parts.scheme == "https" and site is not None and parts.hostname == PYPI_SITES[site][0]:
        return
    raise UnsafeProvenanceURL(
        f"{what} is not on the file's index ({redact(reference)}); refusing to fetch it",
        fix="the index advertises provenance from another host; report it to the index operator",
    )


def provenance_source(ref: FileRef) -> str | None:
    """The URL :func:`fetch_provenance` would GET for ``ref`` (None: no source, unsigned)."""
    if ref.provenance_url:
        return ref.provenance_url
    reference = _reference_url(ref)
    if reference is None:
        return None
    return integrity_url(reference, ref.project, ref.version, ref.filename)


def fetch_provenance(http: Http, ref: FileRef) -> bytes | None:
    """The raw PEP 740 provenance JSON for ``ref``, or None when the index has none (404, or no
    provenance URL and not PyPI). Raises :class:`NetworkError` when it cannot tell."""
    url = provenance_source(ref)
    if url is None:
        return None
    if ref.provenance_url:
        check_provenance_url(ref, url)
    subject = f"{ref.project} {ref.version} ({ref.filename})"
    limits = http.limits
    try:
        resp = http.get_bytes(url, max_bytes=limits.max_provenance_bytes, accept=PROVENANCE_ACCEPT)
    except NetworkError as exc:
        # Same error class (callers may tell a timeout from a bad redirect), with the file named.
        exc.message = f"could not fetch the provenance of {subject}: {exc.message}"
        exc.args = (exc.message,)
        exc.fix = exc.fix or "retry later; a missing answer is never treated as 'unsigned'"
        raise exc from None
    if resp.status == 404:
        return None
    if resp.status != 200:
        raise HttpStatusError(
            f"could not fetch the provenance of {subject} from {redact(resp.url)}: "
            f"HTTP {resp.status}{_hint(resp.status)}",
            status=resp.status,
            fix="retry later; only HTTP 404 means 'no provenance', so this is not 'unsigned'",
        )
    ctype = resp.content_type
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise MalformedResponse(
            f"provenance of {subject} from {redact(resp.url)}: "
            f"expected JSON, got content type {ctype!r}"
        )
    what = f"provenance of {subject} from {redact(resp.url)}"
    data = resp.json(what=what, max_depth=limits.max_json_depth)
    _check_shape(data, what, limits.max_provenance_entries)
    return resp.body


def _hint(status: int) -> str:
    if status == 403:
        return " (forbidden: PyPI answers 403 while attestations are disabled)"
    if status == 406:
        return " (the server would not serve JSON)"
    if status >= 500:
        return " (server error)"
    return ""


def _check_shape(data: Any, what: str, max_entries: int) -> None:
    if not isinstance(data, dict):
        raise MalformedResponse(f"{what}: expected a JSON object")
    bundles = data.get("attestation_bundles")
    if bundles is None:
        return  # a bare attestation or bundle: the verifier decides what it is
    if not isinstance(bundles, list):
        raise MalformedResponse(f"{what}: 'attestation_bundles' must be a list")
    if len(bundles) > max_entries:
        raise ResponseTooLarge(
            f"{what}: {len(bundles)} attestation bundles, over the limit of {max_entries}"
        )
    for bundle in bundles:
        attestations = bundle.get("attestations") if isinstance(bundle, dict) else None
        if isinstance(attestations, list) and len(attestations) > max_entries:
            raise ResponseTooLarge(
                f"{what}: {len(attestations)} attestations in one bundle, "
                f"over the limit of {max_entries}"
            )
