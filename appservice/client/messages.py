"""Sending into rooms: message and state events, message helpers, redactions, receipts, typing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from appservice.api import ReqRedact, ReqTyping, RespSendEvent, RespTyping
from appservice.client._common import check_id, content_dict, own_user_id
from appservice.client.base import ClientBase
from appservice.events import HTML_FORMAT, EventContent, ImageMessage, TextMessage, VideoMessage

__all__ = ["MessagesAPI"]

MESSAGE_EVENT = "m.room.message"


class MessagesAPI(ClientBase):
    """Endpoint group for sending: every send carries one txnId, reused by retries."""

    async def send_message_event(
        self,
        room_id: str,
        event_type: str,
        content: Mapping[str, Any] | EventContent,
        txn_id: str | None = None,
    ) -> RespSendEvent:
        """Send a message event (PUT /rooms/{roomId}/send/{eventType}/{txnId}).

        The txnId is made once per call (or given by the caller, to make a resend idempotent),
        so a retried request is deduplicated by the homeserver instead of sent twice.
        """
        check_id(room_id, "room_id", "send_message_event")
        check_id(event_type, "event_type", "send_message_event")
        body = content_dict(content, "send_message_event")
        txn = (
            self.new_txn_id()
            if txn_id is None
            else check_id(txn_id, "txn_id", "send_message_event")
        )
        url = self.build_url("rooms", room_id, "send", event_type, txn)
        return RespSendEvent.from_dict(await self.make_request("PUT", url, body))

    async def send_state_event(
        self,
        room_id: str,
        event_type: str,
        state_key: str,
        content: Mapping[str, Any] | EventContent,
    ) -> RespSendEvent:
        """Set a piece of room state (PUT /rooms/{roomId}/state/{eventType}/{stateKey})."""
        check_id(room_id, "room_id", "send_state_event")
        check_id(event_type, "event_type", "send_state_event")
        if not isinstance(state_key, str):
            raise TypeError(
                f"send_state_event: state_key must be a str, got {type(state_key).__name__}"
            )
        body = content_dict(content, "send_state_event")
        segments = ["rooms", room_id, "state", event_type]
        if state_key:
            segments.append(state_key)
        url = self.build_url(*segments)
        return RespSendEvent.from_dict(await self.make_request("PUT", url, body))

    async def send_text(self, room_id: str, text: str) -> RespSendEvent:
        """Send an ``m.text`` message."""
        return await self.send_message_event(
            room_id, MESSAGE_EVENT, TextMessage(msgtype="m.text", body=text)
        )

    async def send_formatted_text(
        self, room_id: str, text: str, formatted_text: str
    ) -> RespSendEvent:
        """Send an ``m.text`` message with a plain ``text`` body and an HTML ``formatted_text``."""
        message = TextMessage(
            msgtype="m.text", body=text, format=HTML_FORMAT, formatted_body=formatted_text
        )
        return await self.send_message_event(room_id, MESSAGE_EVENT, message)

    async def send_image(self, room_id: str, body: str, url: str) -> RespSendEvent:
        """Send an ``m.image`` message showing the ``mxc://`` ``url``."""
        return await self.send_message_event(
            room_id, MESSAGE_EVENT, ImageMessage(msgtype="m.image", body=body, url=url)
        )

    async def send_video(self, room_id: str, body: str, url: str) -> RespSendEvent:
        """Send an ``m.video`` message showing the ``mxc://`` ``url``."""
        return await self.send_message_event(
            room_id, MESSAGE_EVENT, VideoMessage(msgtype="m.video", body=body, url=url)
        )

    async def send_notice(self, room_id: str, text: str) -> RespSendEvent:
        """Send an ``m.notice`` message (what bots send, so other bots don't answer)."""
        return await self.send_message_event(
            room_id, MESSAGE_EVENT, TextMessage(msgtype="m.notice", body=text)
        )

    async def redact_event(
        self,
        room_id: str,
        event_id: str,
        req: ReqRedact | None = None,
        txn_id: str | None = None,
    ) -> RespSendEvent:
        """Redact an event (PUT /rooms/{roomId}/redact/{eventId}/{txnId})."""
        check_id(room_id, "room_id", "redact_event")
        check_id(event_id, "event_id", "redact_event")
        if req is not None and not isinstance(req, ReqRedact):
            raise TypeError(f"redact_event: req must be a ReqRedact, got {type(req).__name__}")
        body = {} if req is None else req.to_dict()
        txn = self.new_txn_id() if txn_id is None else check_id(txn_id, "txn_id", "redact_event")
        url = self.build_url("rooms", room_id, "redact", event_id, txn)
        return RespSendEvent.from_dict(await self.make_request("PUT", url, body))

    async def mark_read(self, room_id: str, event_id: str) -> None:
        """Mark ``event_id`` and all before it read (POST /rooms/{roomId}/receipt/m.read/...)."""
        check_id(room_id, "room_id", "mark_read")
        check_id(event_id, "event_id", "mark_read")
        url = self.build_url("rooms", room_id, "receipt", "m.read", event_id)
        await self.make_request("POST", url, {})

    async def user_typing(
        self,
        room_id: str,
        typing: bool,
        timeout: int,  # noqa: ASYNC109 (the typing notice's lifetime in ms, not a call timeout)
    ) -> RespTyping:
        """Start (for ``timeout`` milliseconds) or stop showing the user as typing.

        PUT /rooms/{roomId}/typing/{userId}; the user is the asserted puppet when one is set.
        """
        check_id(room_id, "room_id", "user_typing")
        if not isinstance(typing, bool):
            raise TypeError(f"user_typing: typing must be a bool, got {type(typing).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
            raise ValueError(
                f"user_typing: timeout must be a non-negative int (ms), got {timeout!r}"
            )
        req = ReqTyping(typing=typing, timeout=timeout if typing else None)
        user_id = own_user_id(self, "user_typing")
        url = self.build_url("rooms", room_id, "typing", user_id)
        return RespTyping.from_dict(await self.make_request("PUT", url, req.to_dict()))
