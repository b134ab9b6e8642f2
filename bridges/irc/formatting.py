"""IRC formatting codes <-> Matrix HTML, through one intermediate form: styled text runs.

IRC text is parsed into `Run`s (text + `Style`), and runs are rendered either as IRC codes
(`render_irc`) or as Matrix HTML (`runs_to_html`). Matrix HTML goes the other way through
`html_to_runs`. The high-level entry points for a bridge are `irc_to_matrix` (body and optional
`formatted_body`) and `matrix_to_irc` (one IRC text, possibly multi-line; `bridges.irc.split`
then cuts it into protocol lines).

Supported IRC codes: bold ``\\x02``, italic ``\\x1d``, underline ``\\x1f``, strikethrough
``\\x1e``, monospace ``\\x11``, colours ``\\x03NN[,MM]`` (0-98, 99 = default) and hex colours
``\\x04RRGGBB[,RRGGBB]``, reset ``\\x0f``. Reverse ``\\x16`` has no Matrix equivalent and is
dropped (the text stays). Colours from HTML go to IRC as the nearest of the 16 standard colours.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Final

from bridges.irc.colours import IRC_COLOURS, colour_hex, nearest_irc_colour
from bridges.irc.matrix_html import html_to_runs
from bridges.irc.styles import (
    BOLD,
    COLOUR,
    HEX_COLOUR,
    ITALIC,
    MONOSPACE,
    PLAIN,
    RESET,
    REVERSE,
    STRIKETHROUGH,
    TOGGLES,
    UNDERLINE,
    UNSAFE_CONTROLS,
    Colour,
    MentionResolver,
    Run,
    Style,
    append_run,
)

__all__ = [
    "BOLD",
    "COLOUR",
    "HEX_COLOUR",
    "IRC_COLOURS",
    "ITALIC",
    "MONOSPACE",
    "PLAIN",
    "RESET",
    "REVERSE",
    "STRIKETHROUGH",
    "UNDERLINE",
    "Colour",
    "MentionResolver",
    "Run",
    "Style",
    "html_to_irc",
    "html_to_plain",
    "html_to_runs",
    "irc_to_html",
    "irc_to_matrix",
    "matrix_to_irc",
    "nearest_irc_colour",
    "parse_irc",
    "render_irc",
    "runs_to_html",
    "strip_formatting",
    "transition_codes",
]

_COLOUR_ARGS: Final = re.compile(r"([0-9]{1,2})(?:,([0-9]{1,2}))?")
_HEX_ARGS: Final = re.compile(r"([0-9A-Fa-f]{6})(?:,([0-9A-Fa-f]{6}))?")
_TOGGLE_CODES: Final = tuple((name, code) for code, name in TOGGLES.items())
_FORMAT_CODES: Final = re.compile(
    r"\x03(?:[0-9]{1,2}(?:,[0-9]{1,2})?)?|\x04(?:[0-9A-Fa-f]{6}(?:,[0-9A-Fa-f]{6})?)?"
    r"|[\x02\x0f\x11\x16\x1d\x1e\x1f]"
)


def _colour_from_index(n: int) -> int | None:
    return None if n == 99 else n


def parse_irc(text: str, start: Style = PLAIN) -> list[Run]:
    """Parse IRC-formatted text into runs (adjacent runs of the same style merged).

    Formatting state carries across newlines, so a multi-line text rendered by `render_irc` parses
    back as it was. A bare ``\\x03``/``\\x04`` resets both colours; ``\\x03,5`` is text after a
    colour reset, as in mIRC; unknown control characters stay in the text.
    """
    runs: list[Run] = []
    buf: list[str] = []
    style = start
    i = 0
    n = len(text)

    def flush() -> None:
        append_run(runs, "".join(buf), style)
        buf.clear()

    while i < n:
        c = text[i]
        i += 1
        if c in TOGGLES:
            flush()
            name = TOGGLES[c]
            style = replace(style, **{name: not getattr(style, name)})
        elif c == RESET:
            flush()
            style = PLAIN
        elif c == REVERSE:
            continue
        elif c in (COLOUR, HEX_COLOUR):
            flush()
            m = (_COLOUR_ARGS if c == COLOUR else _HEX_ARGS).match(text, i)
            if m is None:
                style = replace(style, fg=None, bg=None)
                continue
            i = m.end()
            fg_s, bg_s = m.group(1), m.group(2)
            if c == COLOUR:
                fg: Colour | None = _colour_from_index(int(fg_s))
                bg: Colour | None = style.bg if bg_s is None else _colour_from_index(int(bg_s))
            else:
                fg = "#" + fg_s.lower()
                bg = style.bg if bg_s is None else "#" + bg_s.lower()
            style = replace(style, fg=fg, bg=bg)
        else:
            buf.append(c)
    flush()
    return runs


def strip_formatting(text: str) -> str:
    """The text of an IRC message without any formatting codes."""
    return _FORMAT_CODES.sub("", text)


def _colour_code(colour: Colour | None) -> str:
    if colour is None:
        return "99"
    index = colour if isinstance(colour, int) else nearest_irc_colour(colour)
    return f"{index:02d}"


def transition_codes(old: Style, new: Style, next_text: str = "") -> str:
    """The shortest-simple IRC codes that change formatting from `old` to `new`.

    `next_text` is the text that follows: when it starts with a digit or comma right after a colour
    code, an empty bold toggle pair keeps the text from being read as part of the colour.
    """
    codes: list[str] = []
    ends_with_colour = False
    if (old.fg, old.bg) != (new.fg, new.bg):
        if new.fg is None and new.bg is None:
            codes.append(COLOUR)
        else:
            if new.bg is None and old.bg is not None:
                codes.append(COLOUR)
            code = COLOUR + _colour_code(new.fg)
            if new.bg is not None:
                code += "," + _colour_code(new.bg)
            codes.append(code)
        ends_with_colour = True
    for name, code in _TOGGLE_CODES:
        if getattr(old, name) != getattr(new, name):
            codes.append(code)
            ends_with_colour = False
    if ends_with_colour and next_text[:1] in tuple("0123456789,"):
        codes.append(BOLD + BOLD)
    return "".join(codes)


def render_irc(runs: Iterable[Run], *, close: bool = True) -> str:
    """IRC text for runs, starting from the plain style (newlines are kept as text).

    With `close`, formatting still open at the end is closed, so the text can be embedded in
    other text (a relay prefix, an edit marker) without leaking its style.
    """
    out: list[str] = []
    current = PLAIN
    for run in runs:
        if not run.text:
            continue
        out.append(transition_codes(current, run.style, run.text))
        out.append(run.text)
        current = run.style
    if close:
        out.append(transition_codes(current, PLAIN))
    return "".join(out)


def _open_tags(style: Style) -> list[tuple[str, str, str]]:
    """(key, opening tag, closing tag) for a style, outermost first, in a fixed order."""
    tags: list[tuple[str, str, str]] = []
    if style.bold:
        tags.append(("b", "<b>", "</b>"))
    if style.italic:
        tags.append(("i", "<i>", "</i>"))
    if style.underline:
        tags.append(("u", "<u>", "</u>"))
    if style.strikethrough:
        tags.append(("del", "<del>", "</del>"))
    if style.monospace:
        tags.append(("code", "<code>", "</code>"))
    if style.fg is not None or style.bg is not None:
        attrs = ""
        if style.fg is not None:
            attrs += f' data-mx-color="{colour_hex(style.fg)}"'
        if style.bg is not None:
            attrs += f' data-mx-bg-color="{colour_hex(style.bg)}"'
        tags.append((f"font{attrs}", f"<font{attrs}>", "</font>"))
    return tags


def runs_to_html(runs: Iterable[Run]) -> str:
    """Matrix HTML for runs: well-nested tags, escaped text, newlines as ``<br>``."""
    out: list[str] = []
    stack: list[tuple[str, str, str]] = []
    for run in runs:
        if not run.text:
            continue
        wanted = _open_tags(run.style)
        keep = 0
        while keep < min(len(stack), len(wanted)) and stack[keep][0] == wanted[keep][0]:
            keep += 1
        while len(stack) > keep:
            out.append(stack.pop()[2])
        for tag in wanted[keep:]:
            out.append(tag[1])
            stack.append(tag)
        out.append(html.escape(run.text, quote=False).replace("\n", "<br>"))
    while stack:
        out.append(stack.pop()[2])
    return "".join(out)


def irc_to_html(text: str) -> str:
    """Matrix HTML for IRC-formatted text."""
    return runs_to_html(parse_irc(text))


def irc_to_matrix(text: str) -> tuple[str, str | None]:
    """(body, formatted_body) for an IRC message; formatted_body is None without formatting."""
    runs = parse_irc(text)
    body = "".join(run.text for run in runs)
    if all(run.style == PLAIN for run in runs):
        return body, None
    return body, runs_to_html(runs)


def html_to_irc(html_text: str, *, mention: MentionResolver | None = None) -> str:
    """IRC-formatted text (possibly multi-line) for Matrix HTML."""
    return render_irc(html_to_runs(html_text, mention=mention))


def html_to_plain(html_text: str, *, mention: MentionResolver | None = None) -> str:
    """Plain text for Matrix HTML: the IRC rendering without formatting codes."""
    return "".join(run.text for run in html_to_runs(html_text, mention=mention))


def matrix_to_irc(
    body: str, formatted_body: str | None = None, *, mention: MentionResolver | None = None
) -> str:
    """IRC text for a Matrix message: from `formatted_body` when given, else the plain `body`.

    Control characters in a plain body are removed so that a Matrix user cannot inject IRC
    formatting or CTCP; CRLF and CR become newlines.
    """
    if formatted_body is not None:
        return html_to_irc(formatted_body, mention=mention)
    text = body.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return UNSAFE_CONTROLS.sub("", text)
