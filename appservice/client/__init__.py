"""The Matrix client: transport (``ClientBase``) composed with every endpoint group."""

from __future__ import annotations

from appservice.client.account import AccountAPI
from appservice.client.appservice_api import AppserviceAPI
from appservice.client.base import ClientBase, RetryPolicy
from appservice.client.media import MediaAPI
from appservice.client.messages import MessagesAPI
from appservice.client.profile import ProfileAPI
from appservice.client.rooms import RoomsAPI
from appservice.client.syncing import SyncAPI

__all__ = ["Client", "ClientBase", "RetryPolicy"]


class Client(
    AccountAPI,
    RoomsAPI,
    MessagesAPI,
    ProfileAPI,
    MediaAPI,
    AppserviceAPI,
    SyncAPI,
):
    """A Matrix client-server API client: every gomatrix method plus what bridges need.

    Acts as ``user_id`` with ``access_token``, or — for an appservice using its as_token — as
    the puppet ``app_service_user_id`` (identity assertion); see ``as_user``.
    """
