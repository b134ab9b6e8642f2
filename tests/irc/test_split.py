"""Splitting messages into IRC lines: byte limits, UTF-8 and graphemes, words, formatting."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridges.irc.formatting import Style, parse_irc, strip_formatting
from bridges.irc.split import (
    LINE_LIMIT,
    MIN_BUDGET,
    graphemes,
    line_budget,
    pessimistic_source,
    split_action,
    split_message,
)

B, C, IT, U, S, M, RST, R = "\x02", "\x03", "\x1d", "\x1f", "\x1e", "\x11", "\x0f", "\x16"
FAMILY = "👩\u200d👩\u200d👧\u200d👦"  # 25 bytes, one grapheme
FLAG = "🇫🇷"  # two regional indicators
E_ACUTE = "e\u0301"  # e + combining acute


def test_line_budget_is_exact() -> None:
    # ":nick!~u@127.0.0.1 PRIVMSG #chan :" is 34 bytes, CRLF 2
    assert line_budget("nick!~u@127.0.0.1", "PRIVMSG", "#chan") == 512 - 34 - 2
    assert line_budget("n!u@h", "NOTICE", "#é") == 512 - len(":n!u@h NOTICE #é :".encode()) - 2
    long_nick = "x" * 490
    with pytest.raises(ValueError, match="leaves"):
        line_budget(f"{long_nick}!u@h", "PRIVMSG", "#c")
    with pytest.raises(ValueError, match="contains a space"):
        line_budget("n!u@h", "PRIVMSG", "#a b")
    assert pessimistic_source("nick", "user") == "nick!~user@" + "x" * 63


def test_short_message_is_one_line() -> None:
    assert split_message("hello", 100) == ["hello"]


def test_prefers_word_boundaries_and_drops_the_split_space() -> None:
    assert split_message("hello world this is a test", 16) == ["hello world this", "is a test"]
    with pytest.raises(ValueError, match="below the minimum"):
        split_message("x", MIN_BUDGET - 1)


def test_long_word_is_cut_hard_between_characters() -> None:
    assert split_message("a" * 40, 16) == ["a" * 16, "a" * 16, "a" * 8]
    assert split_message("ab " + "c" * 20, 16) == ["ab", "c" * 16, "c" * 4]


def test_multibyte_never_cut_inside_a_character() -> None:
    lines = split_message("é" * 20, 17)  # 2 bytes each: 8 fit in 17
    assert lines == ["é" * 8, "é" * 8, "é" * 4]


def test_graphemes_are_kept_whole_when_they_fit() -> None:
    assert list(graphemes(f"a{FAMILY}{FLAG}{E_ACUTE}🇫")) == ["a", FAMILY, FLAG, E_ACUTE, "🇫"]
    assert split_message(FAMILY * 3, 60) == [FAMILY * 2, FAMILY]
    assert split_message(E_ACUTE * 10, 16) == [E_ACUTE * 5, E_ACUTE * 5]
    # a cluster longer than a whole line is cut between code points (still valid UTF-8)
    zalgo = "z" + "\u0301" * 20
    assert "".join(split_message(zalgo, 16)) == zalgo


def test_newlines_become_lines_and_blank_lines_are_dropped() -> None:
    assert split_message("one\r\ntwo\rthree\n\n  \nfour", 100) == ["one", "two", "three", "four"]
    assert split_message("  indented\nx", 100) == ["  indented", "x"]


def test_formatting_is_carried_to_continuation_lines() -> None:
    assert split_message(f"{B}bold words here and there{B} plain", 16) == [
        f"{B}bold words here",
        f"{B}and there",
        "plain",
    ]
    assert split_message(f"{C}04,02red\nstill red", 100) == [f"{C}04,02red", f"{C}04,02still red"]
    lines = split_message(f"{IT}{C}4{'x' * 30}", 16)
    assert all(line.startswith(f"{C}04{IT}") for line in lines)


def test_nul_and_ctcp_delimiter_are_removed() -> None:
    assert split_message("a\x00b\x01c", 100) == ["abc"]


def test_split_action_wraps_each_line() -> None:
    lines = split_action("waves at everyone in the room", 25)
    assert lines == [
        "\x01ACTION waves at\x01",
        "\x01ACTION everyone in the\x01",
        "\x01ACTION room\x01",
    ]
    assert all(len(line.encode()) <= 25 for line in lines)


# --- properties ------------------------------------------------------------------------------

_codes = st.sampled_from([B, IT, U, S, M, RST, R, C]) | st.builds(
    lambda fg, bg: f"{C}{fg}" + (f",{bg}" if bg else ""),
    st.integers(0, 99).map(str),
    st.none() | st.integers(0, 99).map(lambda n: f"{n:02d}"),
)
_pieces = (
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
    | _codes
    | st.sampled_from(
        [
            "\n",
            "\r\n",
            " ",
            "  ",
            FAMILY,
            FLAG,
            E_ACUTE,
            "𝄞",
            "שלום",
            "\u0645\u0631\u062d\u0628\u0627",
        ]
    )
    | st.builds(lambda n: "word " * n, st.integers(1, 40))
)
_messages = st.lists(_pieces, max_size=30).map("".join)


def _visible(text: str) -> str:
    return re.sub(r"\s", "", text)


def _styled_chars(lines_or_text: list[str]) -> list[tuple[str, Style]]:
    out: list[tuple[str, Style]] = []
    for text in lines_or_text:
        for run in parse_irc(text):
            out.extend((ch, run.style) for ch in run.text if not ch.isspace())
    return out


@given(_messages, st.integers(MIN_BUDGET, 500))
def test_lines_fit_are_utf8_and_keep_text_and_style(text: str, budget: int) -> None:
    lines = split_message(text, budget)
    clean = text.replace("\x00", "").replace("\x01", "").replace("\r", "\n")
    for line in lines:
        assert len(line.encode("utf-8")) <= budget
        assert not set(line) & {"\r", "\n", "\x00", "\x01"}
        assert line.strip()
    assert _visible("".join(strip_formatting(line) for line in lines)) == _visible(
        strip_formatting(clean)
    )
    # formatting state carries across newlines in the input; each output line stands alone
    assert _styled_chars(lines) == _styled_chars([clean])


@given(_messages, st.integers(1, 60), st.integers(1, 60))
def test_full_protocol_line_fits_512_bytes(text: str, nick_len: int, chan_len: int) -> None:
    source = pessimistic_source("n" * nick_len, "user")
    target = "#" + "c" * chan_len
    budget = line_budget(source, "PRIVMSG", target)
    for line in split_message(text, budget):
        wire = f":{source} PRIVMSG {target} :{line}\r\n".encode()
        assert len(wire) <= LINE_LIMIT


_words = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=12
)


@given(st.lists(_words, min_size=1, max_size=60))
def test_plain_words_are_cut_only_at_spaces(words: list[str]) -> None:
    words = [w for w in words if w == _visible(w)]
    lines = split_message(" ".join(words), 60)
    assert [w for line in lines for w in line.split(" ")] == [w for w in words if w]
