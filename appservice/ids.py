"""Matrix identifiers: the user-localpart codec for puppets, and ID parsing/validation.

The codec is gomatrix's, byte for byte: lowercase ``a-z``, digits, ``-`` and ``.`` are kept,
``A-Z`` becomes ``_`` + the lowercase letter, ``_`` becomes ``__``, and every other UTF-8 byte
(including ``/``, ``+`` and ``=``) becomes ``=`` + two lowercase hex digits. Puppet user IDs
derived with it must never change, so the mapping is frozen.
"""

from __future__ import annotations

import re
from typing import Final, NewType

UserID = NewType("UserID", str)
RoomID = NewType("RoomID", str)
RoomAlias = NewType("RoomAlias", str)
EventID = NewType("EventID", str)

MAX_ID_BYTES: Final = 255

_LOWER = frozenset(b"abcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset(b"0123456789")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _encode_table() -> tuple[str, ...]:
    table: list[str] = []
    for b in range(256):
        if b in _LOWER or b in _DIGITS or b in b"-.":
            table.append(chr(b))
        elif ord("A") <= b <= ord("Z"):
            table.append("_" + chr(b + 0x20))
        elif b == ord("_"):
            table.append("__")
        else:
            table.append(f"={b:02x}")
    return tuple(table)


_ENCODE: Final = _encode_table()
_ENCODED_BYTES: Final = _LOWER | _DIGITS | frozenset(b"-._=")


def encode_user_localpart(s: str) -> str:
    """Encode any string into the characters ``a-z0-9._=-`` (gomatrix's ``EncodeUserLocalpart``).

    ``"Alph@Bet_50up"`` -> ``"_alph=40_bet__50up"``. ``ValueError`` for a string that cannot
    be UTF-8 encoded (a lone surrogate).
    """
    try:
        raw = s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"cannot encode user localpart: character {e.start} is a lone surrogate "
            f"({s[e.start]!r}) and has no UTF-8 form"
        ) from None
    return "".join([_ENCODE[b] for b in raw])


def decode_user_localpart(s: str) -> str:
    """Reverse ``encode_user_localpart``; ``ValueError`` naming the byte position on bad input.

    Like gomatrix, ``=XX`` accepts upper- or lowercase hex. The decoded bytes must be UTF-8.
    """
    raw = s.encode("utf-8", errors="surrogatepass")
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        b = raw[i]
        if b not in _ENCODED_BYTES:
            raise ValueError(_invalid_byte_message(raw, i))
        if b == ord("_"):
            if i + 1 >= n:
                raise ValueError(
                    f"byte position {i}: '_' ends the string; expected '_' followed by a-z or '_'"
                )
            nxt = raw[i + 1]
            if nxt == ord("_"):
                out.append(nxt)
            elif nxt in _LOWER:
                out.append(nxt - 0x20)
            else:
                raise ValueError(
                    f"byte position {i}: '_' is followed by {_show(raw, i + 1)}; "
                    "expected a-z or '_'"
                )
            i += 2
        elif b == ord("="):
            if i + 2 >= n:
                raise ValueError(
                    f"byte position {i}: '=' must be followed by two hex digits, "
                    "but the string ends"
                )
            pair = raw[i + 1 : i + 3]
            if not all(c in _HEX for c in pair):
                raise ValueError(
                    f"byte position {i}: '=' must be followed by two hex digits, "
                    f"got {pair.decode('utf-8', errors='replace')!r}"
                )
            out.append(int(pair, 16))
            i += 3
        else:
            out.append(b)
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"decoded localpart is not valid UTF-8: decoded byte {e.start} ({e.reason})"
        ) from None


def _show(raw: bytes, i: int) -> str:
    b = raw[i]
    if 0x20 < b < 0x7F:
        return repr(chr(b))
    return f"byte 0x{b:02x}"


def _invalid_byte_message(raw: bytes, i: int) -> str:
    b = raw[i]
    if ord("A") <= b <= ord("Z"):
        why = f"uppercase {chr(b)!r} is not allowed (it is written as '_{chr(b + 0x20)}')"
    else:
        why = f"{_show(raw, i)} is not allowed (only a-z 0-9 . _ = - may appear)"
    return f"byte position {i}: {why}"


def extract_user_localpart(user_id: str) -> str:
    """The localpart of ``@localpart:server``; ``ValueError`` without the ``@`` or ``:``."""
    if not user_id.startswith("@"):
        raise ValueError(f"{user_id!r} is not a user ID: it must start with '@'")
    localpart, sep, _server = user_id[1:].partition(":")
    if not sep:
        raise ValueError(f"{user_id!r} is not a user ID: it has no ':server' part")
    if not localpart:
        raise ValueError(f"{user_id!r} is not a user ID: its localpart is empty")
    return localpart


_SERVER_NAME = re.compile(
    r"(?:\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.-]{1,255})(?::[0-9]{1,5})?", re.ASCII
)


def _check_server_name(server: str, full: str, kind: str) -> None:
    if not server:
        raise ValueError(f"{full!r} is not a {kind}: the server name after ':' is empty")
    if not _SERVER_NAME.fullmatch(server):
        raise ValueError(
            f"{full!r} is not a {kind}: {server!r} is not a valid server name "
            "(hostname, IPv4 or [IPv6], optional :port)"
        )


def _check_length(full: str, kind: str) -> None:
    size = len(full.encode("utf-8", errors="surrogatepass"))
    if size > MAX_ID_BYTES:
        raise ValueError(f"{kind} is {size} bytes long; the limit is {MAX_ID_BYTES}")


def _check_printable_ascii(full: str, start: int, kind: str) -> None:
    for pos in range(start, len(full)):
        ch = full[pos]
        if not "!" <= ch <= "~":
            raise ValueError(
                f"{full!r} is not a {kind}: character {pos} ({ch!r}) is not printable ASCII"
            )


def parse_user_id(user_id: str) -> tuple[str, str]:
    """Split ``@localpart:server`` into ``(localpart, server_name)``; ``ValueError`` if invalid.

    Historical localparts (any printable ASCII but ``:``) are accepted, as the spec requires.
    """
    _check_length(user_id, "user ID")
    localpart = extract_user_localpart(user_id)
    _check_printable_ascii(user_id, 1, "user ID")
    server = user_id[len(localpart) + 2 :]
    _check_server_name(server, user_id, "user ID")
    return localpart, server


def parse_room_alias(alias: str) -> tuple[str, str]:
    """Split ``#localpart:server`` into ``(localpart, server_name)``; ``ValueError`` if invalid."""
    _check_length(alias, "room alias")
    if not alias.startswith("#"):
        raise ValueError(f"{alias!r} is not a room alias: it must start with '#'")
    localpart, sep, server = alias[1:].partition(":")
    if not sep:
        raise ValueError(f"{alias!r} is not a room alias: it has no ':server' part")
    if not localpart:
        raise ValueError(f"{alias!r} is not a room alias: its localpart is empty")
    if "\x00" in localpart:
        raise ValueError(f"{alias!r} is not a room alias: its localpart contains NUL")
    _check_server_name(server, alias, "room alias")
    return localpart, server


def validate_room_id(room_id: str) -> RoomID:
    """Check ``room_id`` is ``!`` followed by printable ASCII and return it typed.

    Room IDs are opaque: room version 12 IDs have no server part, so no domain is parsed.
    """
    _check_length(room_id, "room ID")
    if not room_id.startswith("!"):
        raise ValueError(f"{room_id!r} is not a room ID: it must start with '!'")
    if len(room_id) == 1:
        raise ValueError(f"{room_id!r} is not a room ID: nothing follows the '!'")
    _check_printable_ascii(room_id, 1, "room ID")
    return RoomID(room_id)


def validate_event_id(event_id: str) -> EventID:
    """Check ``event_id`` is ``$`` followed by printable ASCII and return it typed."""
    _check_length(event_id, "event ID")
    if not event_id.startswith("$"):
        raise ValueError(f"{event_id!r} is not an event ID: it must start with '$'")
    if len(event_id) == 1:
        raise ValueError(f"{event_id!r} is not an event ID: nothing follows the '$'")
    _check_printable_ascii(event_id, 1, "event ID")
    return EventID(event_id)
