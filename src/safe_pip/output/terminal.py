"""Terminal facts: whether to colour, and how wide to write; a one-line progress display.

Colour only on a terminal, never when ``NO_COLOR`` is set to anything non-empty
(https://no-color.org) or ``TERM=dumb``; ``FORCE_COLOR`` (non-empty) turns it on for CI logs
that render ANSI. The width is ``$COLUMNS``, else the terminal's; output that goes to no
terminal (a file, a CI log) is not wrapped (width 0), so each line stays whole for grep.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

DEFAULT_WIDTH = 100
MIN_WIDTH = 60

_CODES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "cyan": "36",
}


def colour_enabled(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    if env.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def width_for(stream: TextIO, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    columns = env.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return max(MIN_WIDTH, int(columns))
    try:
        if stream.isatty():
            return max(MIN_WIDTH, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)
    except (AttributeError, ValueError, OSError):
        pass
    return 0


@dataclass(frozen=True)
class Style:
    """Colour and width for one output stream."""

    colour: bool = False
    width: int = 0  # 0: do not wrap (not a terminal)

    @classmethod
    def for_stream(cls, stream: TextIO) -> Style:
        return cls(colour=colour_enabled(stream), width=width_for(stream))

    def paint(self, text: str, *styles: str) -> str:
        """``text`` in the given styles; unchanged without colour. ``text`` must already be
        clean (render.clean): only our own escape sequences reach the terminal."""
        if not self.colour or not styles:
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


class ProgressLine:
    """A one-line progress display on stderr when it is a terminal; silent otherwise."""

    def __init__(self, label: str, *, quiet: bool = False) -> None:
        self.label = label
        self.enabled = not quiet and sys.stderr.isatty()
        self._last = 0

    def __call__(self, done: int, total: int, item: str) -> None:
        if not self.enabled:
            return
        from safe_pip.text import clean

        text = f"\r{self.label}: {done}/{total} {clean(item, limit=50)}"
        sys.stderr.write(text.ljust(self._last) + ("\n" if done == total else ""))
        sys.stderr.flush()
        self._last = len(text)
