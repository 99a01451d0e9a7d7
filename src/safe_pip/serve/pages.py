"""Simple-API pages as ``safe-pip serve`` renders them: PEP 503 HTML and PEP 691 JSON, chosen
from the ``Accept`` header the way PyPI (warehouse) chooses.

Pure functions, no I/O. Every string that came from upstream is escaped for its format; file
links are relative to the project page (``../../files/...``) so the server also works behind a
reverse proxy that mounts it under a path prefix.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
INTEGRITY_V1 = "application/vnd.pypi.integrity.v1+json"

#: PyPI's offers, in its order of preference on equal q-values: HTML first, so ``*/*`` and a
#: missing ``Accept`` get HTML; an ``Accept`` that matches nothing also gets HTML.
_OFFERS = (TEXT_HTML, HTML_V1, JSON_V1)


@dataclass(frozen=True)
class FileEntry:
    """One file as the served page lists it (every field already decided by the server)."""

    filename: str
    sha256: str  # the attested digest: the installer checks the bytes against it
    url: str  # relative to the project page
    provenance_url: str | None = None  # relative to the project page
    requires_python: str | None = None
    yanked: bool | str = False
    size: int | None = None
    upload_time: str | None = None
    #: PEP 658/714: ``<url>.metadata`` holds the file's core metadata (no hash given: the
    #: server decides it when the file is asked for; pip accepts "true")
    core_metadata: bool = False


def file_path(project: str, sha256: str, filename: str) -> str:
    """The server path of a file: content-addressed, so a link never changes meaning."""
    return f"/files/{quote(project, safe='')}/{sha256}/{quote(filename, safe='')}"


def provenance_path(project: str, sha256: str, filename: str) -> str:
    return f"/provenance/{quote(project, safe='')}/{sha256}/{quote(filename, safe='')}"


def relative_to_project_page(path: str) -> str:
    """``/files/...`` as seen from ``/simple/<project>/``."""
    return "../.." + path


# -- content negotiation ------------------------------------------------------------------------


def _parse_accept(header: str | None) -> list[tuple[str, float, int]]:
    """(media range, q, position) for each entry of an Accept header; bad q-values count 0."""
    out: list[tuple[str, float, int]] = []
    if not header:
        return out
    for pos, item in enumerate(header.split(",")):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        if not media:
            continue
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                q = min(max(q, 0.0), 1.0)
        out.append((media, q, pos))
    return out


def _specificity(media_range: str, offer: str) -> int:
    """How specifically ``media_range`` matches ``offer``: 3 exact, 2 type/*, 1 */*, 0 none."""
    if media_range == offer:
        return 3
    main, _, sub = media_range.partition("/")
    if sub == "*" and offer.split("/", 1)[0] == main:
        return 2
    if media_range in ("*/*", "*"):
        return 1
    return 0


def best_offer(accept: str | None, offers: Sequence[str] = _OFFERS) -> str | None:
    """The offer the client prefers most (its q taken from the most specific matching range),
    ties broken by our order; None when nothing is acceptable."""
    ranges = _parse_accept(accept)
    best: tuple[float, int] | None = None
    chosen: str | None = None
    for order, offer in enumerate(offers):
        q: float | None = None
        spec = 0
        for media, mq, _pos in ranges:
            s = _specificity(media, offer)
            if s > spec:
                spec, q = s, mq
        if q is None or q <= 0:
            continue
        key = (q, -order)
        if best is None or key > best:
            best, chosen = key, offer
    return chosen


def negotiate(accept: str | None, query_format: str | None = None) -> str:
    """The simple-API content type to answer with, as PyPI picks it: ``?format=`` wins when it
    names one of the offers; otherwise the Accept header; HTML when nothing matches."""
    if query_format and query_format.lower() in _OFFERS:
        return query_format.lower()
    return best_offer(accept) or TEXT_HTML


def wants_json(ctype: str) -> bool:
    return ctype == JSON_V1


# -- project pages --------------------------------------------------------------------------------


def project_json(
    name: str,
    files: Sequence[FileEntry],
    versions: Sequence[str],
    last_serial: int | None,
    *,
    status: str | None = None,
    status_reason: str | None = None,
) -> bytes:
    # PEP 700 (api-version 1.1) requires `size` for every file and a `versions` list; PEP 792
    # (1.4) adds the `project-status` object beside `meta`.
    v11 = all(f.size is not None for f in files)
    meta: dict[str, object] = {"api-version": ("1.4" if status else "1.1") if v11 else "1.0"}
    if last_serial is not None:
        meta["_last-serial"] = last_serial
    entries: list[dict[str, object]] = []
    for f in files:
        entry: dict[str, object] = {
            "filename": f.filename,
            "url": f.url,
            "hashes": {"sha256": f.sha256},
            "requires-python": f.requires_python,
            "yanked": f.yanked,
            "provenance": f.provenance_url,
        }
        if f.core_metadata:  # PEP 714's name, and PEP 658's for installers before it
            entry["core-metadata"] = True
            entry["dist-info-metadata"] = True
        if v11:
            entry["size"] = f.size
            if f.upload_time:
                entry["upload-time"] = f.upload_time
        entries.append(entry)
    page: dict[str, object] = {"meta": meta, "name": name, "files": entries}
    if v11:
        page["versions"] = list(versions)
    if status:
        project_status: dict[str, str] = {"status": status}
        if status_reason:
            project_status["reason"] = status_reason
        page["project-status"] = project_status
    return json.dumps(page, indent=1).encode()


def project_html(
    name: str,
    files: Sequence[FileEntry],
    *,
    status: str | None = None,
    status_reason: str | None = None,
) -> bytes:
    esc = html.escape
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{"1.4" if status else "1.1"}">',
    ]
    if status:  # PEP 792
        lines.append(f'    <meta name="pypi:project-status" content="{esc(status)}">')
        if status_reason:
            lines.append(
                f'    <meta name="pypi:project-status-reason" content="{esc(status_reason)}">'
            )
    lines += [
        f"    <title>Links for {esc(name)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>Links for {esc(name)}</h1>",
    ]
    for f in files:
        attrs = [f'href="{esc(f.url)}#sha256={esc(f.sha256)}"']
        if f.requires_python:
            attrs.append(f'data-requires-python="{esc(f.requires_python)}"')
        if f.yanked is True:
            attrs.append('data-yanked=""')
        elif f.yanked:
            attrs.append(f'data-yanked="{esc(str(f.yanked))}"')
        if f.provenance_url:
            attrs.append(f'data-provenance="{esc(f.provenance_url)}"')
        if f.core_metadata:  # PEP 714's name, and PEP 658's for installers before it
            attrs.append('data-core-metadata="true" data-dist-info-metadata="true"')
        lines.append(f"    <a {' '.join(attrs)}>{esc(f.filename)}</a><br />")
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines).encode()


# -- the root index -------------------------------------------------------------------------------


def index_json(projects: Sequence[str]) -> bytes:
    page = {"meta": {"api-version": "1.0"}, "projects": [{"name": p} for p in projects]}
    return json.dumps(page).encode()


def index_html(projects: Sequence[str]) -> bytes:
    esc = html.escape
    links = [f'    <a href="{esc(quote(p, safe=""))}/">{esc(p)}</a><br />' for p in projects]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            "<html>",
            "  <head>",
            '    <meta name="pypi:repository-version" content="1.0">',
            "    <title>Simple index (safe-pip serve)</title>",
            "  </head>",
            "  <body>",
            *links,
            "  </body>",
            "</html>",
            "",
        ]
    ).encode()
