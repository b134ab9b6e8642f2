"""The IRC bridge's ``network`` config section: server, bot nick, mode, flood and queue limits.

``IrcConfig.from_network(config.network)`` validates the section and raises the framework's
``ConfigError`` naming the key (``network.server.port: expected an integer 1-65535, got 'x'``).
Puppet and alias prefixes are the framework's (``appservice.user_prefix``/``alias_prefix``):
IRC channel ``#chan`` is the portal of alias ``#<alias_prefix>chan:<domain>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from appservice.bridge.config import ConfigError

__all__ = ["MODES", "IrcConfig"]

MODES: Final = ("relay", "per_user")
"""How Matrix users appear on IRC: relayed by one bot, or each with a connection of their own."""

_KNOWN: Final = (
    "connector",
    "server",
    "nick",
    "username",
    "realname",
    "mode",
    "flood_burst",
    "flood_rate",
    "reconnect_max_delay",
    "queue_timeout",
    "connect_timeout",
    "media_base_url",
    "sync_members",
    "nick_suffix",
    "idle_timeout",
)


def _fail(key: str, problem: str) -> ConfigError:
    return ConfigError(problem, key=f"network.{key}")


def _str(data: Mapping[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value or any(c in value for c in " \r\n\x00"):
        raise _fail(key, f"expected a non-empty string without spaces, got {value!r}")
    return value


def _number(data: Mapping[str, Any], key: str, default: float, *, low: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise _fail(key, f"expected a number >= {low}, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class IrcConfig:
    """One IRC network: where it is, the relay bot's identity, and the bridge's limits.

    ``flood_burst`` lines go out at once, then ``flood_rate`` lines per second; a Matrix message
    waits at most ``queue_timeout`` seconds for IRC (while it is away) before its sender is told
    it was not delivered. In ``per_user`` mode each Matrix user who talks gets a connection
    (nick from the display name + ``nick_suffix``), closed after ``idle_timeout`` seconds
    without a message (0: never).
    """

    host: str = "127.0.0.1"
    port: int = 6667
    nick: str = "matrixbridge"
    username: str = "matrix"
    realname: str = "Matrix bridge"
    mode: str = "relay"
    flood_burst: int = 5
    flood_rate: float = 2.0
    reconnect_max_delay: float = 30.0
    queue_timeout: float = 300.0
    connect_timeout: float = 10.0
    media_base_url: str | None = None
    sync_members: bool = True
    nick_suffix: str = "[m]"
    idle_timeout: float = 3600.0

    @classmethod
    def from_network(cls, network: Mapping[str, Any]) -> IrcConfig:
        """Validate the ``network`` section; ConfigError naming the first bad key."""
        unknown = sorted(k for k in network if k not in _KNOWN)
        if unknown:
            raise _fail(unknown[0], f"unknown key; known: {', '.join(_KNOWN)}")
        server = network.get("server", {})
        if not isinstance(server, Mapping):
            raise _fail("server", f"expected a mapping with host and port, got {server!r}")
        for key in server:
            if key not in ("host", "port"):
                raise _fail(f"server.{key}", "unknown key; known: host, port")
        host = _str(server, "host", "127.0.0.1")
        port = server.get("port", 6667)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise _fail("server.port", f"expected an integer 1-65535, got {port!r}")
        mode = network.get("mode", "relay")
        if mode not in MODES:
            raise _fail("mode", f"expected one of {', '.join(MODES)}, got {mode!r}")
        burst = network.get("flood_burst", 5)
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise _fail("flood_burst", f"expected an integer >= 1, got {burst!r}")
        media = network.get("media_base_url")
        if media is not None and (not isinstance(media, str) or "://" not in media):
            raise _fail("media_base_url", f"expected an http(s) URL, got {media!r}")
        sync = network.get("sync_members", True)
        if not isinstance(sync, bool):
            raise _fail("sync_members", f"expected true or false, got {sync!r}")
        suffix = network.get("nick_suffix", "[m]")
        if not isinstance(suffix, str) or len(suffix) > 5 or any(c in suffix for c in " ,!@*?"):
            raise _fail("nick_suffix", f"expected up to 5 nick characters, got {suffix!r}")
        realname = network.get("realname", "Matrix bridge")
        if not isinstance(realname, str) or not realname or "\n" in realname:
            raise _fail("realname", f"expected a one-line string, got {realname!r}")
        return cls(
            host=host,
            port=port,
            nick=_str(network, "nick", "matrixbridge"),
            username=_str(network, "username", "matrix"),
            realname=realname,
            mode=mode,
            flood_burst=burst,
            flood_rate=_number(network, "flood_rate", 2.0, low=0.01),
            reconnect_max_delay=_number(network, "reconnect_max_delay", 30.0, low=0.05),
            queue_timeout=_number(network, "queue_timeout", 300.0, low=0.1),
            connect_timeout=_number(network, "connect_timeout", 10.0, low=0.1),
            media_base_url=media.rstrip("/") if isinstance(media, str) else None,
            sync_members=sync,
            nick_suffix=suffix,
            idle_timeout=_number(network, "idle_timeout", 3600.0, low=0.0),
        )
