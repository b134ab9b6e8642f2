"""Nicks: casefolding, validity, Matrix user -> nick, puppets, collisions and 433 handling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appservice.ids import decode_user_localpart
from bridges.irc.nicks import (
    NickNegotiation,
    NickUnavailableError,
    irc_casefold,
    is_valid_nick,
    nick_candidates,
    nick_from_matrix,
    nick_from_puppet_localpart,
    nicklen_from_isupport,
    nicks_equal,
    puppet_localpart,
    sanitize_nick,
    unique_nick,
)


def test_casefold_by_casemapping() -> None:
    assert irc_casefold("Nick[A]\\~", "rfc1459") == "nick{a}|^"
    assert irc_casefold("Nick[A]\\~", "strict-rfc1459") == "nick{a}|~"
    assert irc_casefold("Nick[A]\\~", "ascii") == "nick[a]\\~"
    assert irc_casefold("ÉCOLE", "ascii") == "École"  # only ASCII letters fold
    assert nicks_equal("Bob[away]", "bob{AWAY}")
    assert not nicks_equal("Bob[away]", "bob{AWAY}", "ascii")
    with pytest.raises(ValueError, match="unknown IRC casemapping 'utf8'"):
        irc_casefold("x", "utf8")


def test_nicklen_from_isupport() -> None:
    assert nicklen_from_isupport("30") == 30
    assert nicklen_from_isupport(None) == 9
    assert nicklen_from_isupport(True, default=16) == 16  # NICKLEN without a value
    assert nicklen_from_isupport("0") == 9
    assert nicklen_from_isupport("\uff13\uff10") == 9  # full-width digits are not a number here


@pytest.mark.parametrize(
    ("nick", "valid"),
    [
        ("alice", True),
        ("[x]`^{|}-", True),
        ("_9", True),
        ("a" * 9, True),
        ("a" * 10, False),
        ("9lives", False),
        ("-dash", False),
        ("", False),
        ("has space", False),
        ("é", False),
        ("a.b", False),
    ],
)
def test_is_valid_nick(nick: str, valid: bool) -> None:
    assert is_valid_nick(nick) is valid


@pytest.mark.parametrize(
    ("user_id", "displayname", "nick"),
    [
        ("@alice:example.org", "Alice", "Alice"),
        ("@alice:example.org", None, "alice"),
        ("@alice:example.org", "Jean Dupont", "Jean_Dupo"),
        ("@alice:example.org", "Zoë", "Zoe"),
        ("@alice:example.org", "2pac", "_2pac"),
        ("@alice:example.org", "李雷", "alice"),  # nothing usable: the localpart
        ("@bob.smith:example.org", "", "bobsmith"),
        ("@alice:example.org", "  [Dev] Bob  ", "[Dev]_Bob"),
    ],
)
def test_nick_from_matrix(user_id: str, displayname: str | None, nick: str) -> None:
    assert nick_from_matrix(user_id, displayname) == nick


def test_nick_from_matrix_length_suffix_and_fallback() -> None:
    assert nick_from_matrix("@a:x", "Averyverylongname", max_len=30) == "Averyverylongname"
    assert nick_from_matrix("@a:x", "Averyverylongname", max_len=10, suffix="[m]") == "Averyve[m]"
    hashed = nick_from_matrix("@李:x", "李雷")
    assert hashed.startswith("m")
    assert is_valid_nick(hashed)
    assert nick_from_matrix("@李:x", "李雷") == hashed  # stable
    assert nick_from_matrix("@王:x", "王") != hashed
    with pytest.raises(ValueError, match="not a user ID"):
        nick_from_matrix("alice", "Alice")
    with pytest.raises(ValueError, match="suffix"):
        nick_from_matrix("@a:x", "A", suffix="[m ]")
    with pytest.raises(ValueError, match="no room"):
        nick_from_matrix("@a:x", "A", max_len=3, suffix="[m]")


@given(st.text(), st.text(min_size=1).filter(lambda s: ":" not in s), st.integers(1, 30))
def test_any_matrix_user_gets_a_valid_nick(displayname: str, localpart: str, max_len: int) -> None:
    nick = nick_from_matrix(f"@{localpart}:example.org", displayname, max_len=max_len)
    assert is_valid_nick(nick, max_len)


def test_sanitize_nick() -> None:
    assert sanitize_nick("a b\tc\n d") == "a_b_c_d"
    assert sanitize_nick("Ünïcödé") == "Unicode"
    assert sanitize_nick("!!!") == ""


def test_candidates_unique_and_fitting() -> None:
    cands = list(nick_candidates("alice", max_len=6, user_id="@alice:x", count=5))
    assert cands[:2] == ["alice", "alice_"]
    assert cands[2].startswith("a-")
    assert len(cands[2]) == 6
    assert cands[3:] == ["alice2", "alice3"]
    assert all(is_valid_nick(c, 6) for c in cands)
    assert len(set(cands)) == len(cands)
    with pytest.raises(ValueError, match="not a valid IRC nick"):
        list(nick_candidates("1bad"))


def test_unique_nick_uses_casemapping() -> None:
    assert unique_nick("Alice", ["alice"], casemapping="ascii") == "Alice_"
    assert unique_nick("Alice", ["bob"]) == "Alice"
    assert unique_nick("a[1]", ["A{1}"], casemapping="rfc1459") == "a[1]_"
    assert unique_nick("a[1]", ["A{1}"], casemapping="ascii") == "a[1]"
    taken = list(nick_candidates("x", max_len=3, count=50))
    with pytest.raises(NickUnavailableError, match="every nick"):
        unique_nick("x", taken, max_len=3)


def test_nick_negotiation_on_433_then_432() -> None:
    neg = NickNegotiation("alice", max_len=9, user_id="@alice:example.org")
    assert neg.current == "alice"
    assert neg.refused("433") == "alice_"
    assert neg.refused(433).startswith("alic-")
    fallback = neg.refused("432")
    assert fallback.startswith("m")
    assert is_valid_nick(fallback, 9)
    assert neg.refused("433") == fallback[:8] + "_"
    with pytest.raises(NickUnavailableError, match="fallback"):
        neg.refused("432")
    with pytest.raises(ValueError, match="not a nick refusal"):
        neg.refused("401")
    assert neg.attempts == 5


def test_puppet_localpart_round_trip() -> None:
    assert puppet_localpart("Alice") == "irc_alice"
    assert puppet_localpart("Alice", fold=False) == "irc__alice"
    assert puppet_localpart("[Bob]", casemapping="rfc1459") == "irc_=7bbob=7d"
    assert puppet_localpart("[Bob]", casemapping="ascii") == "irc_=5bbob=5d"
    assert nick_from_puppet_localpart("irc_=7bbob=7d") == "{bob}"
    assert nick_from_puppet_localpart("irc__alice") == "Alice"
    with pytest.raises(ValueError, match="does not start with the puppet prefix"):
        nick_from_puppet_localpart("xmpp_alice")
    with pytest.raises(ValueError, match="may only contain"):
        puppet_localpart("alice", prefix="IRC_")
    with pytest.raises(ValueError, match="not an IRC nick"):
        puppet_localpart("#channel")
    with pytest.raises(ValueError, match="not an IRC nick"):
        nick_from_puppet_localpart("irc_a=20b")  # "a b"


@given(st.from_regex(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]{0,29}", fullmatch=True))
def test_any_nick_maps_to_a_puppet_and_back(nick: str) -> None:
    localpart = puppet_localpart(nick, prefix="irc_", fold=False)
    assert nick_from_puppet_localpart(localpart, prefix="irc_") == nick
    folded = puppet_localpart(nick, prefix="irc_")
    assert nicks_equal(nick_from_puppet_localpart(folded), nick)
    assert decode_user_localpart(folded[4:]) == irc_casefold(nick)
