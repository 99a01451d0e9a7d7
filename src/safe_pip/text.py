"""Text safe to print: every string that came from an index, a lockfile or a certificate passes
through :func:`clean` before it reaches a terminal or a CI log.

The bottom layer (imports nothing of safe-pip), so every room may sanitise what it shows.
"""

from __future__ import annotations

import re
from typing import Any

# C0/C1 control characters (ESC included) and Unicode bidi/format characters.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
# An IPv6 literal in brackets (``http://[::1]:8080/``): it starts with '[', so a '::' inside it
# can never begin a line, and it is kept as written so that a URL printed in a fix still works.
_IPV6_LITERAL = re.compile(r"(\[[0-9A-Fa-f:.]+(?:%25[\w.~-]+|%[\w.~-]+)?\])")


def _defuse_workflow_commands(s: str) -> str:
    """GitHub Actions reads a line as a command when it starts with '::' (after leading
    white space) or when it holds the legacy '##[' prefix ANYWHERE (``##[stop-commands]T``
    would hide every later line's commands, ``##[error]`` fakes an annotation): a zero-width
    non-joiner goes between the two characters of each, except inside IPv6 literals."""
    s = s.replace("##[", "#\u200c#[")
    parts = _IPV6_LITERAL.split(s)
    for i in range(0, len(parts), 2):  # even parts are outside the literals
        parts[i] = parts[i].replace("::", ":\u200c:")
    return "".join(parts)


def clean(text: object, *, limit: int = 300) -> str:
    """A string safe to print on a terminal or in a CI log: control characters and escape
    sequences shown inert (as ``\\xNN``), CI workflow-command prefixes (``::``, ``##[``) defused,
    newlines folded, length bounded."""
    s = str(text)
    s = s.replace("\r", "\\r").replace("\n", "\\n").replace("\t", " ")
    s = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)
    s = _defuse_workflow_commands(s)
    if len(s) > limit:
        s = s[: limit - 3] + "..."
    return s


def clean_lines(text: object, *, limit: int = 1000) -> str:
    """Like :func:`clean`, line by line: for our own multi-line messages (a diagnostic and
    its ``fix:`` line), whose line breaks are ours while their contents may not be."""
    return "\n".join(clean(line, limit=limit) for line in str(text).split("\n"))


def clean_json(value: Any) -> Any:
    """Recursively clean strings in a JSON-ready value (JSON itself escapes controls, but a
    CI system may print the decoded values)."""
    if isinstance(value, str):
        return clean(value, limit=2000)
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    if isinstance(value, dict):
        return {clean(k, limit=200): clean_json(v) for k, v in value.items()}
    return value
