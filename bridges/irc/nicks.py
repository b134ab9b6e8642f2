"""IRC nicks: casefolding, validity, Matrix user -> nick, nick -> puppet localpart, collisions.

Nick syntax is RFC 2812's (a letter or one of ``[]\\`_^{|}`` first, then letters, digits,
those specials and ``-``), with the length the server announces in ISUPPORT ``NICKLEN``
(9 when it announces none, RFC 2812's and ngIRCd's default). Comparisons use the server's
``CASEMAPPING`` (``rfc1459`` by default; ngIRCd announces ``ascii``).
"""

from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Final

from appservice.ids import decode_user_localpart, encode_user_localpart, extract_user_localpart

__all__ = [
    "CASEMAPPINGS",
    "DEFAULT_CASEMAPPING",
    "DEFAULT_NICKLEN",
    "ERR_ERRONEUSNICKNAME",
    "ERR_NICKCOLLISION",
    "ERR_NICKNAMEINUSE",
    "ERR_UNAVAILRESOURCE",
    "NickNegotiation",
    "NickUnavailableError",
    "irc_casefold",
    "is_valid_nick",
    "nick_candidates",
    "nick_from_matrix",
    "nick_from_puppet_localpart",
    "nicklen_from_isupport",
    "nicks_equal",
    "puppet_localpart",
    "sanitize_nick",
    "unique_nick",
]

DEFAULT_NICKLEN: Final = 9
DEFAULT_CASEMAPPING: Final = "rfc1459"

ERR_ERRONEUSNICKNAME: Final = "432"
ERR_NICKNAMEINUSE: Final = "433"
ERR_NICKCOLLISION: Final = "436"
ERR_UNAVAILRESOURCE: Final = "437"

_UPPER = string.ascii_uppercase
_LOWER = string.ascii_lowercase
CASEMAPPINGS: Final = {
    "ascii": str.maketrans(_UPPER, _LOWER),
    "rfc1459": str.maketrans(_UPPER + "[]\\~", _LOWER + "{}|^"),
    "strict-rfc1459": str.maketrans(_UPPER + "[]\\", _LOWER + "{}|"),
}

_SPECIAL: Final = "[]\\`_^{|}"
_FIRST: Final = frozenset(string.ascii_letters + _SPECIAL)
_REST: Final = frozenset(string.ascii_letters + string.digits + _SPECIAL + "-")
_NOT_IN_NICK: Final = frozenset(" \r\n\x00,!@*?")
_SPACES: Final = re.compile(r"\s+")
_LOCALPART_PREFIX: Final = re.compile(r"[a-z0-9._=/+-]*")


class NickUnavailableError(RuntimeError):
    """Every nick candidate was refused by the server (or already taken)."""


def irc_casefold(s: str, casemapping: str = DEFAULT_CASEMAPPING) -> str:
    """`s` folded by an IRC CASEMAPPING (``ascii``, ``rfc1459``, ``strict-rfc1459``).

    ValueError for another mapping name; callers reading ISUPPORT should fall back to
    `DEFAULT_CASEMAPPING` for names they do not know.
    """
    table = CASEMAPPINGS.get(casemapping.lower())
    if table is None:
        raise ValueError(
            f"unknown IRC casemapping {casemapping!r}; expected one of {sorted(CASEMAPPINGS)}"
        )
    return s.translate(table)


def nicks_equal(a: str, b: str, casemapping: str = DEFAULT_CASEMAPPING) -> bool:
    """Whether two nicks (or channel names) are the same under the casemapping."""
    return irc_casefold(a, casemapping) == irc_casefold(b, casemapping)


def nicklen_from_isupport(value: str | bool | None, default: int = DEFAULT_NICKLEN) -> int:
    """The nick length from an ISUPPORT ``NICKLEN`` value; `default` when absent or malformed."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) > 0:
        return int(value)
    return default


def is_valid_nick(nick: str, max_len: int = DEFAULT_NICKLEN) -> bool:
    """Whether `nick` is an RFC 2812 nick of at most `max_len` characters."""
    return 0 < len(nick) <= max_len and nick[0] in _FIRST and all(c in _REST for c in nick[1:])


def sanitize_nick(name: str) -> str:
    """`name` reduced to nick characters (no length limit): accents dropped (``é`` -> ``e``),
    whitespace runs as ``_``, anything else that is not allowed removed, and a ``_`` put first
    when the first character may not start a nick. Empty when nothing usable is left."""
    decomposed = unicodedata.normalize("NFKD", _SPACES.sub("_", name.strip()))
    kept = "".join(c for c in decomposed if c in _REST)
    if kept and kept[0] not in _FIRST:
        kept = "_" + kept
    return kept


def _fallback_nick(user_id: str) -> str:
    return "m" + hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:7]


def _check_tail(suffix: str, max_len: int) -> None:
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    if any(c not in _REST for c in suffix):
        raise ValueError(f"nick suffix {suffix!r} has characters not allowed in a nick")
    if len(suffix) >= max_len:
        raise ValueError(f"nick suffix {suffix!r} leaves no room in a {max_len}-character nick")


def nick_from_matrix(
    user_id: str,
    displayname: str | None = None,
    *,
    max_len: int = DEFAULT_NICKLEN,
    suffix: str = "",
) -> str:
    """A valid nick for a Matrix user: from the display name, else the user ID's localpart,
    else ``m`` + a hash of the user ID; cut to `max_len` including `suffix` (e.g. ``"[m]"``).

    ValueError for a malformed user ID or a suffix that is not nick characters or too long.
    """
    localpart = extract_user_localpart(user_id)
    _check_tail(suffix, max_len)
    base = sanitize_nick(displayname or "") or sanitize_nick(localpart) or _fallback_nick(user_id)
    nick = base[: max_len - len(suffix)] + suffix
    return nick if is_valid_nick(nick, max_len) else _fallback_nick(user_id)[:max_len]


def nick_candidates(
    base: str, *, max_len: int = DEFAULT_NICKLEN, user_id: str | None = None, count: int = 50
) -> Iterator[str]:
    """Nicks to try for `base`, in order: itself, with ``_``, with ``-`` + 4 hex digits of a hash
    of `user_id` (stable across restarts), then with 2, 3, ...; each cut to fit `max_len`.

    At most `count` candidates, all distinct; ValueError when `base` is not a valid nick.
    """
    if not is_valid_nick(base, max(max_len, len(base))):
        raise ValueError(f"{base!r} is not a valid IRC nick")
    tails = ["", "_"]
    if user_id is not None:
        tails.append("-" + hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:4])
    seen: set[str] = set()
    n = 2
    while len(seen) < count:
        if tails:
            tail = tails.pop(0)
        else:
            tail, n = str(n), n + 1
        room = max_len - len(tail)
        if room < 1:
            return
        candidate = base[:room] + tail
        if candidate not in seen:
            seen.add(candidate)
            yield candidate


def unique_nick(
    base: str,
    taken: Iterable[str],
    *,
    max_len: int = DEFAULT_NICKLEN,
    casemapping: str = DEFAULT_CASEMAPPING,
    user_id: str | None = None,
) -> str:
    """The first of `nick_candidates(base)` not in `taken` (compared under the casemapping).

    NickUnavailableError when every candidate is taken.
    """
    folded = {irc_casefold(nick, casemapping) for nick in taken}
    for candidate in nick_candidates(base, max_len=max_len, user_id=user_id):
        if irc_casefold(candidate, casemapping) not in folded:
            return candidate
    raise NickUnavailableError(f"every nick derived from {base!r} is taken")


class NickNegotiation:
    """Walks nick candidates while the server refuses them: call `refused(numeric)` on 432, 433,
    436 or 437 and send ``NICK`` with the returned nick.

    An erroneous-nick answer (432) switches to a hash nick derived from `user_id`, which has only
    the safest characters; NickUnavailableError once everything was refused.
    """

    def __init__(
        self, base: str, *, max_len: int = DEFAULT_NICKLEN, user_id: str | None = None
    ) -> None:
        self.max_len = max_len
        self.user_id = user_id
        self._candidates = nick_candidates(base, max_len=max_len, user_id=user_id)
        self.current = next(self._candidates)
        self.attempts = 1
        self._fell_back = False

    def refused(self, numeric: str | int) -> str:
        """The next nick to try after the server refused `current` with `numeric`."""
        code = str(numeric).zfill(3)
        if code not in (
            ERR_ERRONEUSNICKNAME,
            ERR_NICKNAMEINUSE,
            ERR_NICKCOLLISION,
            ERR_UNAVAILRESOURCE,
        ):
            raise ValueError(f"numeric {code} is not a nick refusal (432, 433, 436, 437)")
        if code == ERR_ERRONEUSNICKNAME and not self._fell_back:
            self._fell_back = True
            fallback = _fallback_nick(self.user_id or self.current)[: self.max_len]
            self._candidates = nick_candidates(fallback, max_len=self.max_len, user_id=self.user_id)
        elif code == ERR_ERRONEUSNICKNAME:
            raise NickUnavailableError(
                f"the server refused even the fallback nick {self.current!r}"
            )
        try:
            self.current = next(self._candidates)
        except StopIteration:
            raise NickUnavailableError(
                f"the server refused all {self.attempts} nicks tried (last {self.current!r})"
            ) from None
        self.attempts += 1
        return self.current


def _check_nickish(nick: str) -> None:
    """Reject what no IRC server sends as a nick (servers differ on the rest, so it passes)."""
    if not nick or nick[0] in "#&:$+" or any(c in _NOT_IN_NICK for c in nick):
        raise ValueError(f"{nick!r} is not an IRC nick")


def _check_prefix(prefix: str) -> None:
    if not _LOCALPART_PREFIX.fullmatch(prefix):
        raise ValueError(f"puppet prefix {prefix!r} may only contain a-z, 0-9 and . _ = - / +")


def puppet_localpart(
    nick: str, *, prefix: str = "irc_", casemapping: str = DEFAULT_CASEMAPPING, fold: bool = True
) -> str:
    """The Matrix localpart of the puppet for an IRC nick: `prefix` + the encoded nick.

    With `fold` (default) the nick is casefolded first, so ``Alice`` and ``alice`` (one IRC user)
    get one puppet. ValueError for an empty nick or a prefix with characters a localpart can't hold.
    """
    _check_prefix(prefix)
    _check_nickish(nick)
    return prefix + encode_user_localpart(irc_casefold(nick, casemapping) if fold else nick)


def nick_from_puppet_localpart(localpart: str, *, prefix: str = "irc_") -> str:
    """The nick a puppet localpart stands for (as `puppet_localpart` stored it).

    ValueError when the localpart lacks the prefix, does not decode, or is not a nick.
    """
    _check_prefix(prefix)
    if not localpart.startswith(prefix):
        raise ValueError(
            f"localpart {localpart!r} does not start with the puppet prefix {prefix!r}"
        )
    nick = decode_user_localpart(localpart[len(prefix) :])
    _check_nickish(nick)
    return nick
