"""The push side: ``AppService`` (ASGI app, auth, routes, durable inbox, dispatcher)."""

from appservice.server.appservice import ANY_EVENT_TYPE, AppService
from appservice.server.dispatcher import Dispatcher, DispatchStats
from appservice.server.inbox import Accepted, Inbox, InboxItem, MemoryInbox
from appservice.server.payloads import DeviceLists, OTKCounts, ToDeviceEvent
from appservice.server.sql_inbox import SQLInbox
from appservice.server.thirdparty import ThirdPartyHandler

__all__ = [
    "ANY_EVENT_TYPE",
    "Accepted",
    "AppService",
    "DeviceLists",
    "DispatchStats",
    "Dispatcher",
    "Inbox",
    "InboxItem",
    "MemoryInbox",
    "OTKCounts",
    "SQLInbox",
    "ThirdPartyHandler",
    "ToDeviceEvent",
]
