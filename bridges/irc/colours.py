"""The IRC colour palette (mIRC's 16 standard colours plus the 83 extended ones) and hex mapping.

Colours 0-15 are the ones every client knows; 16-98 are the extended palette some clients show.
Colour from Matrix goes back to IRC as the nearest standard colour (0-15) only, so that any
client can show it.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "IRC_COLOURS",
    "STANDARD_COLOURS",
    "colour_hex",
    "nearest_irc_colour",
    "parse_css_colour",
]

IRC_COLOURS: Final[tuple[str, ...]] = (
    # 0-15: the standard colours
    "#ffffff", "#000000", "#00007f", "#009300", "#ff0000", "#7f0000", "#9c009c", "#fc7f00",
    "#ffff00", "#00fc00", "#009393", "#00ffff", "#0000fc", "#ff00ff", "#7f7f7f", "#d2d2d2",
    # 16-98: the extended palette
    "#470000", "#472100", "#474700", "#324700", "#004700", "#00472c", "#004747", "#002747",
    "#000047", "#2e0047", "#470047", "#47002a", "#740000", "#743a00", "#747400", "#517400",
    "#007400", "#007449", "#007474", "#004074", "#000074", "#4b0074", "#740074", "#740045",
    "#b50000", "#b56300", "#b5b500", "#7db500", "#00b500", "#00b571", "#00b5b5", "#0063b5",
    "#0000b5", "#7500b5", "#b500b5", "#b5006b", "#ff0000", "#ff8c00", "#ffff00", "#b2ff00",
    "#00ff00", "#00ffa0", "#00ffff", "#008cff", "#0000ff", "#a500ff", "#ff00ff", "#ff0098",
    "#ff5959", "#ffb459", "#ffff71", "#cfff60", "#6fff6f", "#65ffc9", "#6dffff", "#59b4ff",
    "#5959ff", "#c459ff", "#ff66ff", "#ff59bc", "#ff9c9c", "#ffd39c", "#ffff9c", "#e2ff9c",
    "#9cff9c", "#9cffdb", "#9cffff", "#9cd3ff", "#9c9cff", "#dc9cff", "#ff9cff", "#ff94d3",
    "#000000", "#131313", "#282828", "#363636", "#4d4d4d", "#656565", "#818181", "#9f9f9f",
    "#bcbcbc", "#e2e2e2", "#ffffff",
)  # fmt: skip

STANDARD_COLOURS: Final = 16

_HEX6: Final = re.compile(r"#([0-9a-fA-F]{6})")
_HEX3: Final = re.compile(r"#([0-9a-fA-F]{3})")


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    v = int(hex_colour[1:], 16)
    return v >> 16, (v >> 8) & 0xFF, v & 0xFF


_STANDARD_RGB: Final = tuple(_rgb(c) for c in IRC_COLOURS[:STANDARD_COLOURS])


def parse_css_colour(value: str) -> str | None:
    """``"#rrggbb"`` (lowercase) for a ``#rgb``/``#rrggbb`` value, None for anything else."""
    value = value.strip()
    if _HEX6.fullmatch(value):
        return value.lower()
    if _HEX3.fullmatch(value):
        return "#" + "".join(ch * 2 for ch in value[1:]).lower()
    return None


def colour_hex(colour: int | str) -> str:
    """``"#rrggbb"`` for an IRC colour index (0-98) or a hex colour; ValueError otherwise."""
    if isinstance(colour, int):
        if not 0 <= colour < len(IRC_COLOURS):
            raise ValueError(f"IRC colour index {colour} is out of range 0-98")
        return IRC_COLOURS[colour]
    parsed = parse_css_colour(colour)
    if parsed is None:
        raise ValueError(f"colour {colour!r} is not a #rgb or #rrggbb hex colour")
    return parsed


def nearest_irc_colour(colour: str) -> int:
    """The standard IRC colour (0-15) nearest to a hex colour (the "redmean" distance).

    Exact for the 16 standard colours; ValueError when `colour` is not ``#rgb``/``#rrggbb``.
    """
    r, g, b = _rgb(colour_hex(colour))
    best, best_d = 0, float("inf")
    for i, (r2, g2, b2) in enumerate(_STANDARD_RGB):
        rm = (r + r2) / 2
        d = (
            (2 + rm / 256) * (r - r2) ** 2
            + 4 * (g - g2) ** 2
            + (2 + (255 - rm) / 256) * (b - b2) ** 2
        )
        if d < best_d:
            best, best_d = i, d
    return best
