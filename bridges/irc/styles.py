"""The shared form between IRC codes and Matrix HTML: text runs, each with one `Style`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BOLD",
    "COLOUR",
    "HEX_COLOUR",
    "ITALIC",
    "MONOSPACE",
    "PLAIN",
    "RESET",
    "REVERSE",
    "STRIKETHROUGH",
    "TOGGLES",
    "UNDERLINE",
    "UNSAFE_CONTROLS",
    "Colour",
    "MentionResolver",
    "Run",
    "Style",
    "append_run",
]

BOLD: Final = "\x02"
COLOUR: Final = "\x03"
HEX_COLOUR: Final = "\x04"
RESET: Final = "\x0f"
MONOSPACE: Final = "\x11"
REVERSE: Final = "\x16"
ITALIC: Final = "\x1d"
STRIKETHROUGH: Final = "\x1e"
UNDERLINE: Final = "\x1f"

TOGGLES: Final = {
    BOLD: "bold",
    ITALIC: "italic",
    UNDERLINE: "underline",
    STRIKETHROUGH: "strikethrough",
    MONOSPACE: "monospace",
}
"""Each on/off IRC code and the `Style` field it flips."""

UNSAFE_CONTROLS: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
"""C0 controls that must not pass from Matrix text to IRC (formatting, CTCP \\x01, NUL, CR)."""

Colour = int | str
"""An IRC colour index (0-98) or an ``"#rrggbb"`` hex string."""

MentionResolver = Callable[[str], str | None]
"""Maps a Matrix user ID from a mention pill to the IRC nick to show, or None to keep the text."""


@dataclass(frozen=True, slots=True)
class Style:
    """The formatting in force for a piece of text; ``fg``/``bg`` None means default colour."""

    bold: bool = False
    italic: bool = False
    underline: bool = False
    strikethrough: bool = False
    monospace: bool = False
    fg: Colour | None = None
    bg: Colour | None = None


PLAIN: Final = Style()


@dataclass(frozen=True, slots=True)
class Run:
    """A piece of text in one style (may contain newlines)."""

    text: str
    style: Style = PLAIN


def append_run(runs: list[Run], text: str, style: Style) -> None:
    """Append text in a style, merging with the last run when it has the same style."""
    if not text:
        return
    if runs and runs[-1].style == style:
        runs[-1] = Run(runs[-1].text + text, style)
    else:
        runs.append(Run(text, style))
