"""The localpart codec (byte-for-byte gomatrix) and ID parsing."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appservice.ids import (
    decode_user_localpart,
    encode_user_localpart,
    extract_user_localpart,
    parse_room_alias,
    parse_user_id,
    validate_event_id,
    validate_room_id,
)

# (decoded, encoded) pairs; the encoded side is what gomatrix produces for the decoded side.
VECTORS = [
    ("Alph@Bet_50up", "_alph=40_bet__50up"),
    ("abcdef", "abcdef"),
    ("i_like_pie_", "i__like__pie__"),
    ("ABCDEF", "_a_b_c_d_e_f"),
    ("!£", "=21=c2=a3"),
    ("___", "______"),
    ("hello-world.", "hello-world."),
    ("5+5=10", "5=2b5=3d10"),
    ("東方Project", "=e6=9d=b1=e6=96=b9_project"),
    ("\tfoo bar", "=09foo=20bar"),
    ("a/b+c", "a=2fb=2bc"),
    ("", ""),
    ("Zz09", "_zz09"),
    ("\x00\x7f", "=00=7f"),
]

# The spec's user-ID localpart grammar (current, not historical).
LOCALPART = re.compile(r"[a-z0-9._=\-/+]*")


@pytest.mark.parametrize(("decoded", "encoded"), VECTORS)
def test_encode_matches_gomatrix(decoded: str, encoded: str) -> None:
    assert encode_user_localpart(decoded) == encoded


@pytest.mark.parametrize(("decoded", "encoded"), VECTORS)
def test_decode_matches_gomatrix(decoded: str, encoded: str) -> None:
    assert decode_user_localpart(encoded) == decoded


def test_decode_accepts_gomatrix_doc_form_and_uppercase_hex() -> None:
    # gomatrix's doc comment spells "_" as "=5f"; its hex decoder also takes uppercase digits.
    assert decode_user_localpart("_alph=40_bet=5f50up") == "Alph@Bet_50up"
    assert decode_user_localpart("=2F=2b") == "/+"


def test_every_byte_value_encodes_as_gomatrix_does() -> None:
    for b in range(0x80):
        ch = chr(b)
        if ch.isascii() and (ch.islower() or ch.isdigit() or ch in "-."):
            expected = ch
        elif "A" <= ch <= "Z":
            expected = "_" + ch.lower()
        elif ch == "_":
            expected = "__"
        else:
            expected = f"={b:02x}"
        assert encode_user_localpart(ch) == expected, repr(ch)


@pytest.mark.parametrize(
    ("encoded", "position", "why"),
    [
        ("foo@bar", 3, "'@' is not allowed"),
        ("fooBar", 3, "uppercase 'B' is not allowed"),
        ("foo_5bar", 3, "'_' is followed by '5'"),
        ("foo_._-bar", 3, "'_' is followed by '.'"),
        ("foo=2Hbar", 3, "got '2H'"),
        ("foo=2hbar", 3, "got '2h'"),
        ("foo=======2fbar", 3, "got '=='"),
        ("foo=2", 3, "the string ends"),
        ("foo=", 3, "the string ends"),
        ("foo_", 3, "'_' ends the string"),
        ("a b", 1, "byte 0x20 is not allowed"),
        ("aé", 1, "byte 0xc3 is not allowed"),
        ("ab/", 2, "'/' is not allowed"),
    ],
)
def test_decode_errors_name_position_and_reason(encoded: str, position: int, why: str) -> None:
    with pytest.raises(ValueError, match="byte position") as info:
        decode_user_localpart(encoded)
    message = str(info.value)
    assert message.startswith(f"byte position {position}:"), message
    assert why in message


@pytest.mark.parametrize("encoded", ["=ff", "=c3", "ok=e6=9d", "=c3=28"])
def test_decode_rejects_invalid_utf8(encoded: str) -> None:
    with pytest.raises(ValueError, match="not valid UTF-8"):
        decode_user_localpart(encoded)


def test_encode_rejects_lone_surrogate() -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        encode_user_localpart("a\ud800b")


@given(st.text())
def test_round_trip_any_text(s: str) -> None:
    encoded = encode_user_localpart(s)
    assert decode_user_localpart(encoded) == s
    assert LOCALPART.fullmatch(encoded)
    assert "/" not in encoded
    assert "+" not in encoded


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-."))
def test_plain_localparts_are_unchanged(s: str) -> None:
    assert encode_user_localpart(s) == s


@pytest.mark.parametrize(
    ("user_id", "localpart"),
    [("@foo:bar", "foo"), ("@foo:bar:8448", "foo"), ("@foo.bar:baz.quuz", "foo.bar")],
)
def test_extract_user_localpart(user_id: str, localpart: str) -> None:
    assert extract_user_localpart(user_id) == localpart


@pytest.mark.parametrize(
    ("user_id", "why"),
    [
        ("foo:bar", "must start with '@'"),
        ("", "must start with '@'"),
        ("@foo", "no ':server' part"),
        ("@:bar", "localpart is empty"),
    ],
)
def test_extract_user_localpart_errors(user_id: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        extract_user_localpart(user_id)


@pytest.mark.parametrize(
    ("user_id", "parts"),
    [
        ("@alice:example.org", ("alice", "example.org")),
        ("@alice:localhost:8448", ("alice", "localhost:8448")),
        ("@_irc_bob:127.0.0.1", ("_irc_bob", "127.0.0.1")),
        ("@x:[::1]:8008", ("x", "[::1]:8008")),
        ("@Historical!User:hs.test", ("Historical!User", "hs.test")),
    ],
)
def test_parse_user_id(user_id: str, parts: tuple[str, str]) -> None:
    assert parse_user_id(user_id) == parts


@pytest.mark.parametrize(
    ("user_id", "why"),
    [
        ("alice:example.org", "must start with '@'"),
        ("@alice", "no ':server' part"),
        ("@alice:", "server name after ':' is empty"),
        ("@alice:exa_mple.org", "not a valid server name"),
        ("@alice:host:port", "not a valid server name"),
        ("@al ice:example.org", "character 3 (' ') is not printable ASCII"),
        ("@" + "a" * 260 + ":x", "the limit is 255"),
    ],
)
def test_parse_user_id_errors(user_id: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_user_id(user_id)


def test_parse_room_alias() -> None:
    assert parse_room_alias("#matrix:matrix.org") == ("matrix", "matrix.org")
    assert parse_room_alias("#irc_#chan:localhost:8008") == ("irc_#chan", "localhost:8008")
    for alias, why in [
        ("!room:x", "must start with '#'"),
        ("#room", "no ':server' part"),
        ("#:x", "localpart is empty"),
        ("#room:", "server name after ':' is empty"),
        ("#a\x00b:x", "contains NUL"),
    ]:
        with pytest.raises(ValueError, match=re.escape(why)):
            parse_room_alias(alias)


def test_validate_room_id_accepts_v12_ids_without_server() -> None:
    v12 = "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM"
    assert validate_room_id(v12) == v12
    assert validate_room_id("!abc:example.org") == "!abc:example.org"


@pytest.mark.parametrize(
    ("room_id", "why"),
    [
        ("#abc:example.org", "must start with '!'"),
        ("!", "nothing follows"),
        ("!abc def", "character 4 (' ') is not printable ASCII"),
        ("!abc\n", "is not printable ASCII"),
        ("!" + "x" * 300, "the limit is 255"),
    ],
)
def test_validate_room_id_errors(room_id: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        validate_room_id(room_id)


def test_validate_event_id() -> None:
    assert validate_event_id("$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg") == (
        "$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"
    )
    with pytest.raises(ValueError, match="must start with '\\$'"):
        validate_event_id("!abc")
    with pytest.raises(ValueError, match="nothing follows"):
        validate_event_id("$")
