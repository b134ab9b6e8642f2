"""IRC chats as portal remote IDs: channel ``#chan`` is ``chan`` (casefolded), a private chat
with ``nick`` is ``pm:<casefolded nick>`` (one portal per Matrix user, as its receiver)."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["CHANNEL_PREFIXES", "DM_PREFIX", "channel_for", "is_channel", "remote_id_for"]

CHANNEL_PREFIXES: Final = "#&+!"
DM_PREFIX: Final = "pm:"
"""Remote IDs of private chats: ``pm:<casefolded nick>``, one portal per Matrix user."""

_BAD_CHANNEL: Final = re.compile(r"[\s,\x00-\x1f\x07]")


def is_channel(target: str) -> bool:
    """Whether an IRC message target is a channel (not a nick)."""
    return target[:1] in CHANNEL_PREFIXES


def remote_id_for(channel: str, fold: str = "") -> str:
    """The portal remote ID of a channel: without its ``#``, casefolded (pass ``fold``)."""
    name = fold or channel.lower()
    return name[1:] if name.startswith("#") else name


def channel_for(remote_id: str) -> str | None:
    """The IRC channel of a portal remote ID, or None when it cannot be a channel name (or is
    a private chat, ``pm:<nick>``)."""
    if not remote_id or _BAD_CHANNEL.search(remote_id) or remote_id.startswith(DM_PREFIX):
        return None
    channel = remote_id if remote_id[0] in CHANNEL_PREFIXES[1:] else "#" + remote_id
    return channel if len(channel) <= 200 else None
