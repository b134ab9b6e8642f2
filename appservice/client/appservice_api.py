"""Appservice-only client endpoints: the homeserver-to-appservice connectivity ping."""

from __future__ import annotations

from typing import Any

from appservice.api import RespAppservicePing
from appservice.client._common import check_id
from appservice.client.base import ClientBase

__all__ = ["AppserviceAPI"]


class AppserviceAPI(ClientBase):
    """Endpoint group for appservices: ``ping``."""

    async def ping(
        self, appservice_id: str, transaction_id: str | None = None
    ) -> RespAppservicePing:
        """Have the homeserver ping this appservice (POST /_matrix/client/v1/appservice/{id}/ping).

        The homeserver calls the appservice's ``/_matrix/app/v1/ping`` with ``transaction_id``
        and answers with the round trip time; a failure raises ``HTTPError`` whose errcode says
        why (``M_URL_NOT_SET``, ``M_CONNECTION_FAILED``, ``M_BAD_STATUS``, ...).
        Needs the appservice's as_token as the access token.
        """
        check_id(appservice_id, "appservice_id", "ping")
        body: dict[str, Any] = {}
        if transaction_id is not None:
            body["transaction_id"] = check_id(transaction_id, "transaction_id", "ping")
        url = self.build_base_url("_matrix", "client", "v1", "appservice", appservice_id, "ping")
        return RespAppservicePing.from_dict(await self.make_request("POST", url, body))
