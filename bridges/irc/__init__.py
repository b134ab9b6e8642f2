"""Matrix <-> IRC bridge: the IRC network connector (relay mode) and its groundwork
(formatting, line splits, nicks, an ngIRCd test harness).

Run it with ``network.connector: bridges.irc:create_connector`` in the bridge config.
"""

from bridges.irc.config import IrcConfig
from bridges.irc.connector import IRCConnector, create_connector

__all__ = ["IRCConnector", "IrcConfig", "create_connector"]
