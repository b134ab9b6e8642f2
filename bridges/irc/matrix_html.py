"""Matrix HTML -> styled runs: the subset the spec allows, tolerant of anything else.

Blocks become lines, quotes get a ``"> "`` prefix, list items a marker, ``<mx-reply>`` is
dropped, links show their URL when it differs from their text, mention pills can become IRC
nicks, and collapsible whitespace is collapsed as a browser would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from typing import Final
from urllib.parse import unquote

from bridges.irc.colours import parse_css_colour
from bridges.irc.styles import (
    PLAIN,
    TOGGLES,
    UNSAFE_CONTROLS,
    Colour,
    MentionResolver,
    Run,
    Style,
    append_run,
)

__all__ = ["html_to_runs"]

_COUNTERS: Final = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "cite": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "del": "strikethrough",
    "strike": "strikethrough",
    "code": "monospace",
    "tt": "monospace",
    "kbd": "monospace",
    "samp": "monospace",
    "pre": "monospace",
}
_HEADINGS: Final = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCKS: Final = frozenset(
    {"p", "div", "blockquote", "pre", "ul", "ol", "table", "tr", "details", "summary", "li"}
    | _HEADINGS
)
_SKIPPED: Final = frozenset({"mx-reply", "script", "style", "head", "title"})
_VOID: Final = frozenset({"br", "img", "hr", "wbr", "input", "meta", "link", "area", "col"})
_WHITESPACE: Final = re.compile(r"([ \t\n\r\f]+)")
_HTML_SPACES: Final = str.maketrans("\t\f", "  ")
_SPOILER: Final = (1, 1)  # black on black, the usual IRC spoiler


@dataclass
class _Open:
    """An open HTML element and what closing it must undo."""

    tag: str
    counter: str | None = None
    colour: bool = False
    skip: bool = False
    pre: bool = False
    quote: bool = False
    list_: bool = False
    block: bool = False
    href: str | None = None
    link_start: int = -1


@dataclass
class _Output:
    """Runs being built, with HTML whitespace collapsing and line prefixes for quotes."""

    runs: list[Run] = field(default_factory=list)
    at_line_start: bool = True
    pending_break: bool = False
    pending_space: Style | None = None  # a collapsed space, in the style it appeared in
    no_merge: bool = False

    def emit(self, text: str, style: Style, prefix: str) -> None:
        if not text:
            return
        if self.pending_break:
            self.newline()
        if self.at_line_start and prefix:
            self._add(prefix, PLAIN)
        elif self.pending_space is not None:
            self._add(" ", self.pending_space)
        self.pending_space = None
        self.at_line_start = False
        self._add(text, style)

    def _add(self, text: str, style: Style) -> None:
        if self.no_merge:
            self.runs.append(Run(text, style))
            self.no_merge = False
        else:
            append_run(self.runs, text, style)

    def newline(self, style: Style = PLAIN) -> None:
        """An explicit line break (``<br>``, a newline in ``<pre>``); absorbs a pending one."""
        self._add("\n", style)
        self.at_line_start = True
        self.pending_break = False
        self.pending_space = None

    def flush_pending(self) -> None:
        """Put out a pending line break or space now (before a link whose text may be replaced)."""
        if self.pending_break:
            self.newline()
        elif self.pending_space is not None:
            self._add(" ", self.pending_space)
            self.pending_space = None

    def block_break(self) -> None:
        if not self.at_line_start:
            self.pending_break = True
        self.pending_space = None


def _link_is_redundant(text: str, href: str) -> bool:
    """True when showing the URL after the link text would only repeat it."""
    t = text.strip().rstrip("/")
    h = href.strip().rstrip("/")
    if not t or t == h:
        return True
    for scheme in ("https://", "http://", "mailto:"):
        if h.startswith(scheme) and h[len(scheme) :] == t:
            return True
    return False


class _HtmlToRuns(HTMLParser):
    """Turns the Matrix HTML subset into runs; tolerant of unbalanced and unknown tags."""

    def __init__(self, mention: MentionResolver | None) -> None:
        super().__init__(convert_charrefs=True)
        self.out = _Output()
        self._mention = mention
        self._stack: list[_Open] = []
        self._counts: dict[str, int] = dict.fromkeys(TOGGLES.values(), 0)
        self._colours: list[tuple[Colour | None, Colour | None]] = []
        self._lists: list[list[int]] = []  # [next number], or [] for a bullet list
        self._skip = 0
        self._pre = 0
        self._quote = 0

    def style(self) -> Style:
        fg, bg = self._colours[-1] if self._colours else (None, None)
        return Style(**{name: count > 0 for name, count in self._counts.items()}, fg=fg, bg=bg)

    def _prefix(self) -> str:
        return "> " * self._quote

    def _text(self, text: str) -> None:
        self.out.emit(text, self.style(), self._prefix())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in _VOID:
            self._void(tag, a)
            return
        if tag in ("p", "li") and self._stack and self._stack[-1].tag == tag:
            self.handle_endtag(tag)
        el = _Open(tag)
        self._stack.append(el)
        if tag in _SKIPPED:
            el.skip = True
            self._skip += 1
            return
        if self._skip:
            return
        if tag in _BLOCKS:
            el.block = True
            self.out.block_break()
        counter = "bold" if tag in _HEADINGS else _COUNTERS.get(tag)
        if counter is not None:
            el.counter = counter
            self._counts[counter] += 1
        if tag == "pre":
            el.pre = True
            self._pre += 1
        elif tag == "blockquote":
            el.quote = True
            self._quote += 1
        elif tag in ("ul", "ol"):
            el.list_ = True
            start = a.get("start", "1")
            self._lists.append([int(start)] if tag == "ol" and start.isdigit() else [])
            if tag == "ol" and not self._lists[-1]:
                self._lists[-1] = [1]
        elif tag == "li":
            numbering = self._lists[-1] if self._lists else []
            marker = f"{numbering[0]}. " if numbering else "* "
            if numbering:
                numbering[0] += 1
            indent = "  " * max(len(self._lists) - 1, 0)
            self._text(indent + marker)
        elif tag == "a":
            el.href = a.get("href", "")
            self.out.flush_pending()
            el.link_start = len(self.out.runs)
            self.out.no_merge = True
        elif tag in ("font", "span"):
            self._push_colour(el, a)

    def _push_colour(self, el: _Open, a: dict[str, str]) -> None:
        fg, bg = self._colours[-1] if self._colours else (None, None)
        if "data-mx-spoiler" in a:
            fg, bg = _SPOILER
        else:
            new_fg = parse_css_colour(a.get("data-mx-color") or a.get("color") or "")
            new_bg = parse_css_colour(a.get("data-mx-bg-color") or "")
            if new_fg is None and new_bg is None:
                return
            fg = new_fg if new_fg is not None else fg
            bg = new_bg if new_bg is not None else bg
        el.colour = True
        self._colours.append((fg, bg))

    def _void(self, tag: str, a: dict[str, str]) -> None:
        if self._skip:
            return
        if tag == "br":
            self.out.newline()
        elif tag == "hr":
            self.out.block_break()
            self._text("---")
            self.out.block_break()
        elif tag == "img":
            alt = a.get("alt") or a.get("title") or ""
            if alt:
                self._data(alt)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if not any(el.tag == tag for el in self._stack):
            return
        while self._stack:
            el = self._stack.pop()
            self._close(el)
            if el.tag == tag:
                return

    def _close(self, el: _Open) -> None:
        if el.skip:
            self._skip -= 1
            return
        if el.href is not None and not self._skip:
            self._finish_link(el)
        if el.counter is not None:
            self._counts[el.counter] -= 1
        if el.colour:
            self._colours.pop()
        if el.pre:
            self._pre -= 1
        if el.quote:
            self._quote -= 1
        if el.list_:
            self._lists.pop()
        if el.block:
            self.out.block_break()
        if el.tag in ("td", "th") and not self.out.at_line_start:
            self.out.pending_space = PLAIN

    def _finish_link(self, el: _Open) -> None:
        href = el.href or ""
        captured = self.out.runs[el.link_start :]
        text = "".join(run.text for run in captured)
        self.out.no_merge = False
        target = ""
        if href.startswith("https://matrix.to/#/"):
            target = unquote(href[len("https://matrix.to/#/") :].split("?", 1)[0])
        if target.startswith("@"):
            nick = self._mention(target) if self._mention is not None else None
            if nick:
                del self.out.runs[el.link_start :]
                self.out.at_line_start = not self.out.runs or self.out.runs[-1].text.endswith("\n")
                self._text(nick)
            elif not text.strip():
                self._text(target)
            return
        if not href:
            return
        if not text.strip():
            self._text(href)
        elif not _link_is_redundant(text, href) and target != text.strip():
            self.out.emit(f" ({href})", self._outer_style(el), self._prefix())

    def _outer_style(self, el: _Open) -> Style:
        style = self.style()
        return style if el.counter is None else replace(style, **{el.counter: False})

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        data = data.replace("\r\n", "\n").replace("\r", "\n").translate(_HTML_SPACES)
        data = UNSAFE_CONTROLS.sub("", data)
        if self._pre:
            for i, part in enumerate(data.split("\n")):
                if i:
                    self.out.newline(self.style())
                self._text(part)
            return
        self._data(data)

    def _data(self, data: str) -> None:
        for token in _WHITESPACE.split(data):
            if not token:
                continue
            if token[0] in " \t\n\r\f":
                if not self.out.at_line_start and not self.out.pending_break:
                    self.out.pending_space = self.style()
            else:
                self._text(token)

    def finish(self) -> list[Run]:
        self.close()
        while self._stack:
            self._close(self._stack.pop())
        return self.out.runs


def html_to_runs(html_text: str, *, mention: MentionResolver | None = None) -> list[Run]:
    """Runs for Matrix HTML (the spec's allowed subset, tolerant of anything else).

    Replies' ``<mx-reply>`` is dropped; links show their URL after the text when it differs;
    mention pills become `mention(user_id)` when it returns a nick; block elements become lines,
    quotes get a ``"> "`` prefix and list items a ``"* "``/``"1. "`` marker.
    """
    parser = _HtmlToRuns(mention)
    parser.feed(html_text)
    return parser.finish()
