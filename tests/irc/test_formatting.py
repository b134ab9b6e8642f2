"""IRC formatting <-> Matrix HTML: exact conversions, round trips and hostile input."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridges.irc.colours import IRC_COLOURS, colour_hex, nearest_irc_colour, parse_css_colour
from bridges.irc.formatting import (
    PLAIN,
    Run,
    Style,
    html_to_irc,
    html_to_plain,
    html_to_runs,
    irc_to_matrix,
    matrix_to_irc,
    parse_irc,
    render_irc,
    runs_to_html,
    strip_formatting,
)

B, C, IT, U, S, M, RST, R = "\x02", "\x03", "\x1d", "\x1f", "\x1e", "\x11", "\x0f", "\x16"

# --- IRC -> Matrix ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("irc", "html"),
    [
        (f"{B}bold{B} plain", "<b>bold</b> plain"),
        (f"{IT}it{IT}", "<i>it</i>"),
        (f"{U}under{U}", "<u>under</u>"),
        (f"{S}gone{S}", "<del>gone</del>"),
        (f"{M}x = 1{M}", "<code>x = 1</code>"),
        (f"{C}04red{C} back", '<font data-mx-color="#ff0000">red</font> back'),
        (
            f"{C}4,1red on black",
            '<font data-mx-color="#ff0000" data-mx-bg-color="#000000">red on black</font>',
        ),
        (f"{C}52ext", '<font data-mx-color="#ff0000">ext</font>'),
        ("\x04FF8800hex\x04", '<font data-mx-color="#ff8800">hex</font>'),
        (f"{B}{IT}both{RST} none", "<b><i>both</i></b> none"),
        (f"{B}a{IT}b{B}c{IT}", "<b>a<i>b</i></b><i>c</i>"),
        (f"{C}03,05x{C}03y", '<font data-mx-color="#009300" data-mx-bg-color="#7f0000">xy</font>'),
        (f"{C}99,04x", '<font data-mx-bg-color="#ff0000">x</font>'),
        (f"{R}rev{R}", None),
    ],
)
def test_irc_to_html_exact(irc: str, html: str | None) -> None:
    body, formatted = irc_to_matrix(irc)
    assert body == strip_formatting(irc)
    assert formatted == html


def test_escaping_irc_to_html() -> None:
    body, formatted = irc_to_matrix(f"{B}<script>&amp;{B} 1 < 2")
    assert body == "<script>&amp; 1 < 2"
    assert formatted == "<b>&lt;script&gt;&amp;amp;</b> 1 &lt; 2"


def test_plain_irc_text_has_no_formatted_body() -> None:
    assert irc_to_matrix("just <text> & stuff") == ("just <text> & stuff", None)


def test_unterminated_and_odd_colour_codes() -> None:
    # colour runs to the end; a comma without a digit is text; 3 digits = 2 for colour + text
    assert parse_irc(f"{C}04,x") == [Run(",x", Style(fg=4))]
    assert parse_irc(f"{C}123") == [Run("3", Style(fg=12))]
    assert parse_irc(f"{C},05x") == [Run(",05x", PLAIN)]
    assert parse_irc(f"a{C}") == [Run("a", PLAIN)]
    assert parse_irc(f"{C}04,05a{C}b") == [Run("a", Style(fg=4, bg=5)), Run("b", PLAIN)]
    assert parse_irc(f"{C}04,05a{C}06b") == [
        Run("a", Style(fg=4, bg=5)),
        Run("b", Style(fg=6, bg=5)),
    ]
    # digits that are not ASCII are text, not a colour
    assert parse_irc(f"{C}\u0663x") == [Run("\u0663x", PLAIN)]


def test_strip_formatting_keeps_text_and_unknown_controls() -> None:
    assert strip_formatting(f"{B}a{C}12,04b{C}c\x04ABCDEFd{RST}{R}e\x07") == "abcde\x07"


def test_emoji_and_rtl_survive() -> None:
    arabic = "\u0645\u0631\u062d\u0628\u0627"
    text = f"{B}שלום{B} 👩‍👩‍👧 \u202eevil{C}04{arabic}"
    body, formatted = irc_to_matrix(text)
    assert body == f"שלום 👩‍👩‍👧 \u202eevil{arabic}"
    assert (
        formatted == f'<b>שלום</b> 👩‍👩‍👧 \u202eevil<font data-mx-color="#ff0000">{arabic}</font>'
    )


# --- Matrix -> IRC ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "irc"),
    [
        ("<b>a</b> <strong>b</strong>", f"{B}a{B} {B}b{B}"),
        ("<i>a</i><em>b</em>", f"{IT}ab{IT}"),
        ("<u>u</u> <s>s</s> <del>d</del>", f"{U}u{U} {S}s{S} {S}d{S}"),
        ("x <code>y</code>", f"x {M}y{M}"),
        ("<pre><code>a  b\n  c</code></pre>after", f"{M}a  b\n  c{M}\nafter"),
        ('<a href="https://e.org/x">site</a>', "site (https://e.org/x)"),
        ('<a href="https://e.org/">https://e.org/</a>', "https://e.org/"),
        ('<a href="https://e.org">e.org</a>', "e.org"),
        ('<a href="mailto:a@b.c">a@b.c</a>', "a@b.c"),
        ("a<br>b<br/>c", "a\nb\nc"),
        ("<p>one</p><p>two</p>", "one\ntwo"),
        ("<blockquote>q1<br>q2</blockquote>reply", "> q1\n> q2\nreply"),
        (
            "<mx-reply><blockquote><a>In reply to</a> x</blockquote></mx-reply>answer",
            "answer",
        ),
        ('<font color="#ff0000">red</font>', f"{C}04red{C}"),
        ('<span data-mx-color="#00007f" data-mx-bg-color="#ffffff">c</span>', f"{C}02,00c{C}"),
        ('<font data-mx-color="#fe0101">near red</font>', f"{C}04near red{C}"),
        ('<font color="#f00">5 apples</font>', f"{C}04{B}{B}5 apples{C}"),
        ('<font color="nonsense">x</font>', "x"),
        ("<ul><li>a</li><li>b</li></ul>", "* a\n* b"),
        ('<ol start="3"><li>a<li>b</ol>', "3. a\n4. b"),
        ("<h1>Title</h1>text", f"{B}Title{B}\ntext"),
        ("a &amp; b &lt;c&gt; &#128512;", "a & b <c> 😀"),
        ("  lots   of\n\n  space  ", "lots of space"),
        ('<img src="mxc://x/y" alt=":party:"> yay', ":party: yay"),
    ],
)
def test_html_to_irc_exact(html: str, irc: str) -> None:
    assert html_to_irc(html) == irc


def test_nested_and_unbalanced_tags() -> None:
    assert html_to_irc("<b><b>x</b>y</b>z") == f"{B}xy{B}z"
    assert html_to_irc("<b>x<i>y</b>z") == f"{B}x{IT}y{B}{IT}z"  # </b> closes the open <i>
    assert html_to_irc("</i>stray <u>open") == f"stray {U}open{U}"
    assert html_to_irc("<unknown>kept</unknown><script>alert(1)</script>") == "kept"


def test_mention_pill_uses_resolver_or_text() -> None:
    html = '<a href="https://matrix.to/#/@alice:example.org">Alice</a>: hi'
    assert html_to_irc(html) == "Alice: hi"
    assert html_to_irc(html, mention={"@alice:example.org": "alice_irc"}.get) == "alice_irc: hi"
    resolve = {"@alice:example.org": "alice_irc"}.get
    assert html_to_irc(f"hi <b>{html}</b>", mention=resolve) == f"hi {B}alice_irc: hi{B}"
    quoted = f"<blockquote>{html}</blockquote>"
    assert html_to_irc(quoted, mention=resolve) == "> alice_irc: hi"
    encoded = '<a href="https://matrix.to/#/%40bob%3Aexample.org">Bob</a>'
    assert html_to_irc(encoded, mention={"@bob:example.org": "bobby"}.get) == "bobby"


def test_html_control_characters_cannot_inject_irc_codes() -> None:
    assert html_to_irc("a\x02b\x01ACTION c\x01\x03") == "abACTION c"
    assert matrix_to_irc("evil\x01ACTION x\x01\x02\r\nline") == "evilACTION x\nline"
    assert matrix_to_irc("plain *md*", "<em>md</em>") == f"{IT}md{IT}"


def test_html_to_plain_is_the_fallback_without_codes() -> None:
    assert html_to_plain('<b>a</b> <font color="#f00">b</font> <code>c</code>') == "a b c"


def test_colours_palette_and_nearest() -> None:
    for index, hex_colour in enumerate(IRC_COLOURS[:16]):
        assert nearest_irc_colour(hex_colour) == index
        assert colour_hex(index) == hex_colour
    assert nearest_irc_colour("#010101") == 1
    assert nearest_irc_colour("#fefefe") == 0
    assert parse_css_colour("#ABC") == "#aabbcc"
    assert parse_css_colour("red") is None
    with pytest.raises(ValueError, match="out of range"):
        colour_hex(99)
    with pytest.raises(ValueError, match="not a #rgb"):
        nearest_irc_colour("blue")


# --- round trips -----------------------------------------------------------------------------

_styles = st.builds(
    Style,
    bold=st.booleans(),
    italic=st.booleans(),
    underline=st.booleans(),
    strikethrough=st.booleans(),
    monospace=st.booleans(),
    fg=st.none() | st.integers(0, 98),
    bg=st.none() | st.integers(0, 98),
)
_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("0123456789, "), min_size=1
)
_runs = st.lists(st.builds(Run, _text, _styles), max_size=8)


def _normalise(runs: list[Run]) -> list[Run]:
    out: list[Run] = []
    for run in runs:
        if out and out[-1].style == run.style:
            out[-1] = Run(out[-1].text + run.text, run.style)
        elif run.text:
            out.append(run)
    return out


@given(_runs)
def test_irc_render_parse_round_trip(runs: list[Run]) -> None:
    assert parse_irc(render_irc(runs)) == _normalise(runs)


def _hex_colours(style: Style) -> Style:
    fg = None if style.fg is None else colour_hex(style.fg)
    bg = None if style.bg is None else colour_hex(style.bg)
    return Style(
        style.bold, style.italic, style.underline, style.strikethrough, style.monospace, fg, bg
    )


@given(_runs)
def test_irc_to_html_to_runs_round_trip(runs: list[Run]) -> None:
    # HTML collapses whitespace, so runs here are words separated by plain spaces
    words = [Run(w, r.style) for r in runs for w in r.text.split()]
    spaced = [x for i, w in enumerate(words) for x in ([Run(" ")] if i else []) + [w]]
    expected = _normalise([Run(r.text, _hex_colours(r.style)) for r in spaced])
    assert html_to_runs(runs_to_html(spaced)) == expected


def _words(text: str) -> list[str]:
    return re.sub(r"[\x00-\x08\x0b\x0e-\x1f\x7f]", "", text).split()


@given(st.text())
def test_any_irc_text_keeps_its_words_through_html(text: str) -> None:
    body, formatted = irc_to_matrix(text)
    assert body == strip_formatting(text)
    html_words = _words(html_to_plain(formatted)) if formatted is not None else _words(body)
    assert html_words == _words(body)


@given(st.text())
def test_any_html_converts_without_control_characters(text: str) -> None:
    irc = html_to_irc(text)
    assert "\x00" not in irc
    assert "\x01" not in irc
    assert "\r" not in irc
