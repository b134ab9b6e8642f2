"""Split a (possibly multi-line, formatted) message into IRC protocol lines that fit 512 bytes.

An IRC server relays ``PRIVMSG #chan :text`` to others as ``:nick!user@host PRIVMSG #chan :text``
and the whole line, CRLF included, must fit in 512 bytes; `line_budget` gives the bytes left for
the text given that exact prefix. `split_message` cuts at word boundaries when it can, else
between grapheme clusters (an approximation of UAX #29 without extra dependencies), never inside
a UTF-8 sequence; each newline starts a new line; the formatting in force at a cut is opened
again on the next line, because IRC clients reset formatting at every line.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from bridges.irc.formatting import PLAIN, Run, Style, parse_irc, render_irc, transition_codes

__all__ = [
    "ACTION_OVERHEAD",
    "LINE_LIMIT",
    "MAX_HOST_LENGTH",
    "MIN_BUDGET",
    "graphemes",
    "line_budget",
    "pessimistic_source",
    "split_action",
    "split_message",
]

LINE_LIMIT: Final = 512
"""Bytes in one IRC line, including the trailing CRLF (RFC 1459/2812)."""

MIN_BUDGET: Final = 16
"""Smallest text budget that always makes progress: the longest style prefix plus one code point."""

MAX_HOST_LENGTH: Final = 63
"""Host length assumed by `pessimistic_source` when the server-visible host is not known yet."""

ACTION_OVERHEAD: Final = len("\x01ACTION \x01")

_ZWJ: Final = "\u200d"
_FORBIDDEN: Final = str.maketrans({"\x00": None, "\x01": None})


def line_budget(source: str, command: str, target: str, *, limit: int = LINE_LIMIT) -> int:
    """Bytes left for the text in ``:{source} {command} {target} :{text}\\r\\n``.

    `source` is ``nick!user@host`` as the server shows it to others (see `pessimistic_source`).
    ValueError when the prefix leaves less than `MIN_BUDGET` bytes.
    """
    for name, value in (("source", source), ("command", command), ("target", target)):
        if not value or any(c in value for c in " \r\n\x00"):
            raise ValueError(f"{name} {value!r} is empty or contains a space, CR, LF or NUL")
    overhead = len(f":{source} {command} {target} :".encode()) + 2
    budget = limit - overhead
    if budget < MIN_BUDGET:
        raise ValueError(
            f"the prefix ':{source} {command} {target} :' leaves {budget} bytes of a "
            f"{limit}-byte line; at least {MIN_BUDGET} are needed"
        )
    return budget


def pessimistic_source(nick: str, username: str) -> str:
    """A ``nick!~user@host`` at least as long as the server can show, for budgeting before the
    real host is known (ident ``~`` prefix and a 63-byte host assumed)."""
    return f"{nick}!~{username}@{'x' * MAX_HOST_LENGTH}"


def _extends(ch: str) -> bool:
    """Whether `ch` continues the grapheme cluster before it (marks, variation selectors,
    emoji skin-tone modifiers, tag characters)."""
    cp = ord(ch)
    if 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F:
        return True
    return unicodedata.category(ch) in ("Mn", "Me", "Mc") or ch == "\u200c"


def _is_regional_indicator(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def graphemes(text: str) -> Iterator[str]:
    """Approximate extended grapheme clusters: a base with its combining marks, modifiers and
    ZWJ-joined followers, regional-indicator pairs (flags), and CRLF."""
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        c = text[i]
        if c == "\r" and j < n and text[j] == "\n":
            j += 1
        elif c != "\n" and c != "\r":
            if _is_regional_indicator(c) and j < n and _is_regional_indicator(text[j]):
                j += 1
            while j < n:
                d = text[j]
                if d == _ZWJ:
                    j += 1
                    if j < n and text[j] not in "\r\n":
                        j += 1
                elif _extends(d):
                    j += 1
                else:
                    break
        yield text[i:j]
        i = j


@dataclass(frozen=True, slots=True)
class _Item:
    text: str
    style: Style


def _cost(prev: Style, item: _Item) -> int:
    return len(transition_codes(prev, item.style, item.text).encode()) + len(item.text.encode())


def _render(items: list[_Item]) -> str:
    return render_irc((Run(item.text, item.style) for item in items), close=False)


def _fit_items(items: list[_Item], budget: int) -> list[_Item]:
    """Break clusters that could not fit even alone on a line into code points."""
    out: list[_Item] = []
    for item in items:
        if len(item.text) > 1 and _cost(PLAIN, item) > budget:
            out.extend(_Item(ch, item.style) for ch in item.text)
        else:
            out.append(item)
    return out


class _LineBuilder:
    """Greedy packing of one logical line's items into chunks of at most `budget` bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.chunks: list[str] = []
        self.cur: list[_Item] = []
        self.size = 0
        self.last_space = -1
        self.after_cut = False

    def _clear(self) -> None:
        self.cur, self.size, self.last_space = [], 0, -1

    def _push(self, item: _Item) -> None:
        prev = self.cur[-1].style if self.cur else PLAIN
        self.size += _cost(prev, item)
        self.cur.append(item)
        self.after_cut = False
        if item.text.isspace():
            self.last_space = len(self.cur) - 1

    def _emit(self, items: list[_Item]) -> None:
        end = len(items)
        while end and items[end - 1].text.isspace():
            end -= 1  # servers drop trailing spaces; they must not cost budget either
        if end:
            self.chunks.append(_render(items[:end]))

    def add(self, item: _Item) -> None:
        """Append a cluster, first closing the current chunk if the cluster does not fit."""
        if self.after_cut and not self.cur and item.text.isspace():
            self.after_cut = False
            return  # the space at a cut is the split whitespace
        prev = self.cur[-1].style if self.cur else PLAIN
        if self.size + _cost(prev, item) <= self.budget:
            self._push(item)
            return
        if item.text.isspace():
            self._emit(self.cur)
            self._clear()
            return  # the space at the cut is the split whitespace
        if self.last_space > 0:
            cut = self.last_space
            tail = self.cur[cut + 1 :]
            self._emit(self.cur[:cut])
            self._clear()
            for rest in tail:  # no spaces in the tail: at most hard cuts below
                self.add(rest)
            self.add(item)
            return
        self._emit(self.cur)
        self._clear()
        self.after_cut = True
        self.add(item)

    def finish(self) -> list[str]:
        """The chunks of the line; the builder is then ready for the next line."""
        self._emit(self.cur)
        self._clear()
        self.after_cut = False
        chunks, self.chunks = self.chunks, []
        return chunks


def split_message(text: str, budget: int) -> list[str]:
    """IRC texts, each at most `budget` bytes of UTF-8, that together carry `text`.

    Newlines (LF, CRLF, CR) start new lines; trailing whitespace is dropped from each line and
    lines with nothing but whitespace are left out; NUL
    and ``\\x01`` (the CTCP delimiter) are removed. Formatting state carries across newlines and
    cuts (it is re-opened at the start of each line). Text is only lost at a word-boundary cut,
    where one space is dropped. ValueError when `budget` is below `MIN_BUDGET`.
    """
    if budget < MIN_BUDGET:
        raise ValueError(f"budget {budget} is below the minimum of {MIN_BUDGET} bytes")
    clean = text.translate(_FORBIDDEN).replace("\r\n", "\n").replace("\r", "\n")
    items: list[_Item] = []
    for run in parse_irc(clean):
        items.extend(_Item(g, run.style) for g in graphemes(run.text))
    out: list[str] = []
    builder = _LineBuilder(budget)
    for item in _fit_items(items, budget):
        if item.text == "\n":
            out.extend(builder.finish())
        else:
            builder.add(item)
    out.extend(builder.finish())
    return out


def split_action(text: str, budget: int) -> list[str]:
    """Like `split_message`, each line wrapped as a CTCP ACTION (``/me``) within `budget`."""
    return [f"\x01ACTION {line}\x01" for line in split_message(text, budget - ACTION_OVERHEAD)]
