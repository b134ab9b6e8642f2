"""Matrix messages as IRC lines in relay mode: ``<name> text``, split to fit one IRC line each.

Text and notices keep their formatting (Matrix HTML -> IRC codes); ``/me`` becomes a CTCP
ACTION (``* bot name waves``); media become a link to the homeserver's media download
endpoint; a reply is prefixed with the replied-to sender's name; an edit is sent again with a
``*`` correction mark. Every line is cut by `split_message` to the byte budget of the relay
bot's PRIVMSG/NOTICE line, never inside a UTF-8 sequence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from bridges.irc.formatting import matrix_to_irc
from bridges.irc.split import ACTION_OVERHEAD, split_message

__all__ = ["MEDIA_TYPES", "IrcOut", "media_url", "relay_lines", "strip_reply_fallback"]

MEDIA_TYPES: Final = {
    "m.image": "image",
    "m.file": "file",
    "m.video": "video",
    "m.audio": "audio",
}


@dataclass(frozen=True, slots=True)
class IrcOut:
    """What to send: ``command`` (PRIVMSG or NOTICE) with each of ``lines``."""

    command: str
    lines: tuple[str, ...]


def media_url(mxc: str, base_url: str, filename: str | None = None) -> str | None:
    """The download URL of an ``mxc://server/id`` URI on ``base_url``; None when malformed."""
    if not mxc.startswith("mxc://"):
        return None
    server, _, media_id = mxc[len("mxc://") :].partition("/")
    if not server or not media_id or "/" in media_id:
        return None
    url = (
        f"{base_url.rstrip('/')}/_matrix/client/v1/media/download/{quote(server)}/{quote(media_id)}"
    )
    if filename:
        url += "/" + quote(filename)
    return url


def strip_reply_fallback(body: str) -> str:
    """``body`` without the ``> <@user> quoted`` lines older clients put before a reply."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> "):
        return body
    i = 0
    while i < len(lines) and lines[i].startswith(">"):
        i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    return "\n".join(lines[i:])


def _text(content: Mapping[str, Any], body: str, html: str | None, reply: bool) -> str:
    if html is not None:
        return matrix_to_irc(body, html)  # the HTML renderer drops <mx-reply>
    return matrix_to_irc(strip_reply_fallback(body) if reply else body)


def relay_lines(
    name: str | None,
    msgtype: str,
    body: str,
    html: str | None,
    content: Mapping[str, Any],
    *,
    budget: int,
    media_base_url: str,
    reply_to_name: str | None = None,
    edit: bool = False,
) -> IrcOut | None:
    """The IRC lines relaying one Matrix message from ``name`` (None: the sender has a
    connection of their own, so no name is added); None when there is nothing to send.
    ``budget`` is the bytes one line's text may use (see ``line_budget``)."""
    mark = "* " if edit else ""
    address = f"{reply_to_name}: " if reply_to_name else ""
    if msgtype == "m.emote":
        text = _text(content, body, html, reply_to_name is not None)
        head = f"{name} {mark}" if name else mark
        lines = split_message(text, budget - ACTION_OVERHEAD - len(head.encode()))
        if not lines:
            return None
        return IrcOut("PRIVMSG", tuple(f"\x01ACTION {head}{line}\x01" for line in lines))
    if msgtype in MEDIA_TYPES:
        url = content.get("url")
        filename = content.get("filename") if isinstance(content.get("filename"), str) else body
        link = media_url(url, media_base_url, filename) if isinstance(url, str) else None
        label = body or MEDIA_TYPES[msgtype]
        text = f"{MEDIA_TYPES[msgtype]}: {label}" + (f" {link}" if link else "")
    else:
        text = _text(content, body, html, reply_to_name is not None)
    prefix = (f"<{name}> " if name else "") + mark + address
    lines = split_message(text, budget - len(prefix.encode()))
    if not lines:
        return None
    command = "NOTICE" if msgtype == "m.notice" else "PRIVMSG"
    return IrcOut(command, tuple(prefix + line for line in lines))
