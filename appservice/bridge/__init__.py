"""The bridge framework: everything a bridge needs except what is specific to the other network.

A bridge author writes a ``NetworkConnector`` (plus the optional capability Protocols it
supports) and runs ``Bridge(config, connector)``. The framework keeps portals (remote chat <->
room), puppets (remote user <-> Matrix user), users (real Matrix users with permission levels),
the message map, the command bot, and echo suppression.
"""

from appservice.bridge.bridge import Bridge, BridgeError
from appservice.bridge.commands import Command, CommandEvent, CommandHandler, CommandProcessor
from appservice.bridge.connector import (
    Capabilities,
    ChatInfo,
    MatrixMessage,
    NetworkConnector,
    RemoteMessage,
    RemoteUser,
    SupportsChatLookup,
    SupportsEdits,
    SupportsMembership,
    SupportsReactions,
    SupportsRedactions,
    SupportsRoomMeta,
    SupportsTyping,
    check_connector,
)
from appservice.bridge.matrix import BridgeStats
from appservice.bridge.messages import MessageMap, MessageRef
from appservice.bridge.portal import Portal
from appservice.bridge.portals import Portals
from appservice.bridge.puppet import Puppet, Puppets
from appservice.bridge.user import LEVELS, User, Users, has_level, level_rank

__all__ = [
    "LEVELS",
    "Bridge",
    "BridgeError",
    "BridgeStats",
    "Capabilities",
    "ChatInfo",
    "Command",
    "CommandEvent",
    "CommandHandler",
    "CommandProcessor",
    "MatrixMessage",
    "MessageMap",
    "MessageRef",
    "NetworkConnector",
    "Portal",
    "Portals",
    "Puppet",
    "Puppets",
    "RemoteMessage",
    "RemoteUser",
    "SupportsChatLookup",
    "SupportsEdits",
    "SupportsMembership",
    "SupportsReactions",
    "SupportsRedactions",
    "SupportsRoomMeta",
    "SupportsTyping",
    "User",
    "Users",
    "check_connector",
    "has_level",
    "level_rank",
]
