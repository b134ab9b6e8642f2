"""Intent: one Matrix user's view for acting in rooms — a puppet (identity assertion) or the bot.

Every room action first makes sure, from the state cache and without a request when it already
knows, that the user is registered (puppets: ``m.login.application_service`` with
``inhibit_login``; ``M_USER_IN_USE`` counts as success) and joined to the room (when the join is
forbidden, the bot invites the puppet and the join is retried). Successful calls update the cache,
so a puppet's second message in a room costs exactly one request.

Intents are cheap (a client sharing the bot's HTTP pool, plus references) and hold no state of
their own: make one per use with ``bot_intent.user(user_id)``; the bounded or durable state lives
in the ``StateCache``. Sends take ``timestamp`` (the appservice-only ``ts`` query parameter, for
backfill) and an optional caller ``txn_id`` (to make a resend idempotent).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

from appservice.api import ReqInviteUser, ReqRedact, ReqRegister, RespSendEvent
from appservice.client import Client
from appservice.errors import M_USER_IN_USE, HTTPError
from appservice.events import HTML_FORMAT, Event, EventContent, get_html_message
from appservice.ids import extract_user_localpart, validate_event_id, validate_room_id
from appservice.registration import Registration
from appservice.state_cache import StateCache

__all__ = ["MEDIA_MSGTYPES", "TEXT_MSGTYPES", "Intent", "IntentError", "KeyedLocks"]

log = logging.getLogger("appservice.intent")

T = TypeVar("T")

APPSERVICE_LOGIN: Final = "m.login.application_service"
TEXT_MSGTYPES: Final = frozenset({"m.text", "m.notice", "m.emote"})
MEDIA_MSGTYPES: Final = frozenset({"m.image", "m.video", "m.audio", "m.file"})
MESSAGE: Final = "m.room.message"


class IntentError(RuntimeError):
    """The homeserver answered in a way an intent cannot act on (never carries a token)."""


class KeyedLocks:
    """One ``asyncio.Lock`` per key while anyone holds or waits for it, then forgotten.

    Concurrent first sends of a new puppet share one register and one join instead of racing;
    memory is bounded by operations in flight, not by puppets ever seen.
    """

    def __init__(self) -> None:
        self._locks: dict[tuple[str, ...], tuple[asyncio.Lock, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, *key: str) -> AsyncIterator[None]:
        """Hold the lock of ``key`` for the ``async with`` block."""
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]


class Intent:
    """What one user (a puppet, or the appservice bot when ``bot`` is None) does in rooms.

    Build the bot's with ``Intent.for_bot(client, state)`` and puppets' with
    ``bot_intent.user(user_id)``. ``registration``, when given, lets ``ensure_registered``
    refuse a user outside the appservice's user namespace before any request.
    """

    __slots__ = ("_locks", "bot", "client", "registration", "state", "user_id")

    def __init__(
        self,
        user_id: str,
        client: Client,
        state: StateCache,
        *,
        bot: Intent | None,
        registration: Registration | None = None,
    ) -> None:
        if not isinstance(user_id, str) or not user_id:
            raise ValueError(f"Intent: user_id must be a non-empty user ID, got {user_id!r}")
        if not isinstance(client, Client):
            raise TypeError(f"Intent: client must be a Client, got {type(client).__name__}")
        if not isinstance(state, StateCache):
            raise TypeError(f"Intent: state must be a StateCache, got {type(state).__name__}")
        if bot is not None and not isinstance(bot, Intent):
            raise TypeError(f"Intent: bot must be an Intent or None, got {type(bot).__name__}")
        self.user_id = user_id
        self.client = client
        self.state = state
        self.bot = bot
        self.registration = registration
        self._locks: KeyedLocks = bot._locks if bot is not None else KeyedLocks()

    @classmethod
    def for_bot(
        cls, client: Client, state: StateCache, *, registration: Registration | None = None
    ) -> Intent:
        """The appservice bot's intent: ``client`` acts with the as_token as the sender user."""
        user_id = client.user_id
        if not user_id and registration is not None:
            user_id = registration.bot_user_id()
        if not user_id:
            raise ValueError(
                "Intent.for_bot: the client has no user_id and no registration with a server "
                "name gives the bot's user ID"
            )
        return cls(user_id, client, state, bot=None, registration=registration)

    def user(self, user_id: str) -> Intent:
        """The intent of ``user_id`` (the bot's own when it is the bot), sharing the HTTP pool."""
        bot = self.bot or self
        if user_id == bot.user_id:
            return bot
        client = bot.client.as_user(user_id)  # ValueError on a malformed user ID
        return Intent(user_id, client, self.state, bot=bot, registration=self.registration)

    @property
    def is_bot(self) -> bool:
        """Whether this is the appservice bot (which exists without registration)."""
        return self.bot is None

    def __repr__(self) -> str:
        return f"<Intent {self.user_id}{' (bot)' if self.is_bot else ''}>"

    # --- ensure -------------------------------------------------------------------------------

    async def ensure_registered(self) -> None:
        """Register the puppet unless the cache knows it is; ``M_USER_IN_USE`` is success."""
        if self.bot is None:
            return
        user_id = self.user_id
        reg = self.registration
        if reg is not None and not reg.is_user_in_namespace(user_id):
            patterns = [ns.regex for ns in reg.namespaces.users]
            raise ValueError(
                f"ensure_registered: {user_id} is outside the appservice's user namespace "
                f"{patterns}; only namespaced puppets can be registered and asserted"
            )
        if await self.state.is_registered(user_id):
            return
        async with self._locks.hold("register", user_id):
            if not await self.state.is_registered(user_id):  # another task may have done it
                await self._register(self.bot.client)

    async def _register(self, bot_client: Client) -> None:
        user_id = self.user_id
        req = ReqRegister(
            type=APPSERVICE_LOGIN, username=extract_user_localpart(user_id), inhibit_login=True
        )
        try:
            resp, uia = await bot_client.register(req)
        except HTTPError as err:
            if _errcode(err) != M_USER_IN_USE:
                raise
            log.debug("puppet %s was already registered", user_id)
        else:
            if resp is None:
                flows = [f.stages for f in uia.flows] if uia is not None else []
                raise IntentError(
                    f"ensure_registered {user_id}: the homeserver asked for interactive auth "
                    f"(flows {flows}); is the appservice registration loaded by the homeserver?"
                )
            log.info("registered puppet %s", user_id)
        await self.state.mark_registered(user_id)

    async def ensure_joined(self, room_id: str) -> None:
        """Join ``room_id`` unless the cache says joined; when forbidden, the bot invites first."""
        await self._ensure_joined(_room_id(room_id, "ensure_joined"))

    async def _ensure_joined(self, room_id: str) -> bool:
        """``ensure_joined``; True when the cache answered (no join request was made)."""
        await self.ensure_registered()
        if await self.state.membership(room_id, self.user_id) == "join":
            return True
        async with self._locks.hold("join", room_id, self.user_id):
            if await self.state.membership(room_id, self.user_id) != "join":
                await self._join(room_id)
        return False

    async def _join(self, room_id: str) -> None:
        """Join with a request; on 403 the bot (when this is a puppet) invites and we retry."""
        try:
            await self.client.join_room(room_id)
        except HTTPError as err:
            if self.bot is None or err.code != 403:
                raise
            log.info(
                "%s may not join %s (%s); the bot %s invites it",
                self.user_id,
                room_id,
                _errcode(err) or err.code,
                self.bot.user_id,
            )
            invite_error: HTTPError | None = None
            try:
                await self.bot.invite(room_id, self.user_id)
            except HTTPError as refused:  # e.g. a concurrent task got the puppet in already
                invite_error = refused
            try:
                await self.client.join_room(room_id)
            except HTTPError:
                if invite_error is not None:
                    raise invite_error from None
                raise
        log.debug("%s joined %s", self.user_id, room_id)
        await self.state.set_membership(room_id, self.user_id, "join")

    async def _in_room(self, room_id: str, action: Callable[[], Awaitable[T]], what: str) -> T:
        """Run ``action`` once joined. When the cache said joined but the homeserver answers
        403 (a kick or leave the cache has not seen yet), join with a request and retry once.
        """
        from_cache = await self._ensure_joined(room_id)
        try:
            return await action()
        except HTTPError as err:
            if not from_cache or err.code != 403:
                raise
            log.info(
                "%s: %s in %s refused (%s) though the cache said joined; joining again",
                self.user_id,
                what,
                room_id,
                _errcode(err) or err.code,
            )
        await self._join(room_id)
        return await action()

    async def _put_event(
        self,
        room_id: str,
        segments: list[str],
        query: dict[str, str],
        body: dict[str, Any],
        what: str,
    ) -> str:
        url = self.client.build_url_with_query(segments, query)

        async def put() -> Any:
            return await self.client.make_request("PUT", url, body)

        return RespSendEvent.from_dict(await self._in_room(room_id, put, what)).event_id

    # --- sending ------------------------------------------------------------------------------

    async def send_message_event(
        self,
        room_id: str,
        event_type: str,
        content: Mapping[str, Any] | EventContent,
        *,
        timestamp: int | None = None,
        txn_id: str | None = None,
    ) -> str:
        """Send any message event as this user; returns the event ID."""
        where = "send_message_event"
        room_id = _room_id(room_id, where)
        _non_empty(event_type, "event_type", where)
        body = _content(content, where)
        query = _ts_query(timestamp, where)
        txn = self.client.new_txn_id() if txn_id is None else _non_empty(txn_id, "txn_id", where)
        segments = ["rooms", room_id, "send", event_type, txn]
        event_id = await self._put_event(room_id, segments, query, body, event_type)
        log.debug("%s sent %s %s in %s", self.user_id, event_type, event_id, room_id)
        return event_id

    async def send_text(
        self, room_id: str, text: str, *, timestamp: int | None = None, txn_id: str | None = None
    ) -> str:
        """Send an ``m.text`` message."""
        content = {"msgtype": "m.text", "body": _text(text, "text", "send_text")}
        return await self.send_message_event(
            room_id, MESSAGE, content, timestamp=timestamp, txn_id=txn_id
        )

    async def send_notice(
        self, room_id: str, text: str, *, timestamp: int | None = None, txn_id: str | None = None
    ) -> str:
        """Send an ``m.notice`` message (what bots send, so other bots don't answer)."""
        content = {"msgtype": "m.notice", "body": _text(text, "text", "send_notice")}
        return await self.send_message_event(
            room_id, MESSAGE, content, timestamp=timestamp, txn_id=txn_id
        )

    async def send_emote(
        self, room_id: str, text: str, *, timestamp: int | None = None, txn_id: str | None = None
    ) -> str:
        """Send an ``m.emote`` message ("/me waves")."""
        content = {"msgtype": "m.emote", "body": _text(text, "text", "send_emote")}
        return await self.send_message_event(
            room_id, MESSAGE, content, timestamp=timestamp, txn_id=txn_id
        )

    async def send_formatted(
        self,
        room_id: str,
        html: str,
        text: str | None = None,
        *,
        msgtype: str = "m.text",
        timestamp: int | None = None,
        txn_id: str | None = None,
    ) -> str:
        """Send an HTML message; ``text`` is the plain fallback (the HTML stripped when None)."""
        content = _formatted(html, text, msgtype, "send_formatted")
        return await self.send_message_event(
            room_id, MESSAGE, content, timestamp=timestamp, txn_id=txn_id
        )

    async def send_media(
        self,
        room_id: str,
        msgtype: str,
        url: str,
        body: str,
        *,
        info: Mapping[str, Any] | EventContent | None = None,
        filename: str | None = None,
        timestamp: int | None = None,
        txn_id: str | None = None,
    ) -> str:
        """Send an ``m.image``/``m.video``/``m.audio``/``m.file`` of an ``mxc://`` ``url``."""
        where = "send_media"
        if msgtype not in MEDIA_MSGTYPES:
            raise ValueError(f"{where}: msgtype must be one of {sorted(MEDIA_MSGTYPES)}")
        if not isinstance(url, str) or not url.startswith("mxc://"):
            raise ValueError(f"{where}: url must be an mxc:// URI, got {url!r}")
        content: dict[str, Any] = {"msgtype": msgtype, "body": _text(body, "body", where)}
        content["url"] = url
        if info is not None:
            content["info"] = _content(info, where)
        if filename is not None:
            content["filename"] = _text(filename, "filename", where)
        return await self.send_message_event(
            room_id, MESSAGE, content, timestamp=timestamp, txn_id=txn_id
        )

    async def send_reaction(
        self,
        room_id: str,
        event_id: str,
        key: str,
        *,
        timestamp: int | None = None,
        txn_id: str | None = None,
    ) -> str:
        """React to ``event_id`` with ``key`` (an ``m.annotation``, usually an emoji)."""
        relates = {
            "rel_type": "m.annotation",
            "event_id": validate_event_id(event_id),
            "key": _non_empty(key, "key", "send_reaction"),
        }
        return await self.send_message_event(
            room_id, "m.reaction", {"m.relates_to": relates}, timestamp=timestamp, txn_id=txn_id
        )

    async def send_edit(
        self,
        room_id: str,
        event_id: str,
        text: str,
        *,
        html: str | None = None,
        msgtype: str = "m.text",
        timestamp: int | None = None,
        txn_id: str | None = None,
    ) -> str:
        """Replace ``event_id``'s content (``m.replace``); clients without edits see ``* text``."""
        where = "send_edit"
        target = validate_event_id(event_id)
        if html is None:
            if msgtype not in TEXT_MSGTYPES:
                raise ValueError(f"{where}: msgtype must be one of {sorted(TEXT_MSGTYPES)}")
            new: dict[str, Any] = {"msgtype": msgtype, "body": _text(text, "text", where)}
        else:
            new = _formatted(html, text, msgtype, where)
        content = {**new, "body": f"* {new['body']}"}
        if html is not None:
            content["formatted_body"] = f"* {new['formatted_body']}"
        content["m.new_content"] = new
        content["m.relates_to"] = {"rel_type": "m.replace", "event_id": target}
        return await self.send_message_event(
            room_id, MESSAGE, content, timestamp=timestamp, txn_id=txn_id
        )

    async def send_state(
        self,
        room_id: str,
        event_type: str,
        state_key: str,
        content: Mapping[str, Any] | EventContent,
        *,
        timestamp: int | None = None,
    ) -> str:
        """Set a piece of room state as this user; the state cache learns it on success."""
        where = "send_state"
        room_id = _room_id(room_id, where)
        _non_empty(event_type, "event_type", where)
        if not isinstance(state_key, str):
            raise TypeError(f"{where}: state_key must be a str, got {type(state_key).__name__}")
        body = _content(content, where)
        query = _ts_query(timestamp, where)
        segments = ["rooms", room_id, "state", event_type, *([state_key] if state_key else [])]
        event_id = await self._put_event(room_id, segments, query, body, event_type)
        event = Event(event_type, self.user_id, body, state_key, id=event_id, room_id=room_id)
        await self.state.update_from_event(event)
        log.debug("%s set %s/%r in %s", self.user_id, event_type, state_key, room_id)
        return event_id

    async def redact(
        self, room_id: str, event_id: str, reason: str | None = None, *, txn_id: str | None = None
    ) -> str:
        """Redact ``event_id``; returns the redaction's event ID."""
        room_id = _room_id(room_id, "redact")
        target = validate_event_id(event_id)
        if reason is not None:
            _text(reason, "reason", "redact")
        txn = self.client.new_txn_id() if txn_id is None else _non_empty(txn_id, "txn_id", "redact")

        def call() -> Awaitable[RespSendEvent]:
            return self.client.redact_event(room_id, target, ReqRedact(reason), txn)

        resp = await self._in_room(room_id, call, "redaction")
        log.debug("%s redacted %s in %s", self.user_id, target, room_id)
        return resp.event_id

    async def set_typing(self, room_id: str, typing: bool = True, timeout_ms: int = 30_000) -> None:
        """Show (for ``timeout_ms``) or stop showing this user as typing."""
        room_id = _room_id(room_id, "set_typing")
        await self._in_room(
            room_id, lambda: self.client.user_typing(room_id, typing, timeout_ms), "typing"
        )

    async def mark_read(self, room_id: str, event_id: str) -> None:
        """Send a read receipt for ``event_id``."""
        room_id = _room_id(room_id, "mark_read")
        target = validate_event_id(event_id)
        await self._in_room(room_id, lambda: self.client.mark_read(room_id, target), "receipt")

    # --- membership and profile ---------------------------------------------------------------

    async def join_room(self, room_id_or_alias: str, *, server_name: str = "") -> str:
        """Join by ID or alias with a request even when the cache says joined; returns the ID."""
        target = _non_empty(room_id_or_alias, "room_id_or_alias", "join_room")
        if target[0] not in "!#":
            raise ValueError(
                f"join_room: expected a room ID (!...) or alias (#...), got {target!r}"
            )
        await self.ensure_registered()
        room_id = (await self.client.join_room(target, server_name)).room_id
        log.debug("%s joined %s (%s)", self.user_id, room_id, target)
        await self.state.set_membership(room_id, self.user_id, "join")
        return room_id

    async def leave_room(self, room_id: str) -> None:
        """Leave ``room_id``; the cache then says ``leave``."""
        room_id = _room_id(room_id, "leave_room")
        await self.client.leave_room(room_id)
        log.debug("%s left %s", self.user_id, room_id)
        await self.state.set_membership(room_id, self.user_id, "leave")

    async def invite(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        """Invite ``user_id`` into ``room_id`` (joining it first when needed)."""
        room_id = _room_id(room_id, "invite")
        _non_empty(user_id, "user_id", "invite")
        req = ReqInviteUser(user_id, reason)
        await self._in_room(room_id, lambda: self.client.invite_user(room_id, req), "invite")
        log.debug("%s invited %s to %s", self.user_id, user_id, room_id)
        await self.state.set_membership(room_id, user_id, "invite")

    async def set_display_name(self, display_name: str) -> None:
        """Set this user's display name; the cache updates it in every room known joined."""
        _text(display_name, "display_name", "set_display_name")
        await self.ensure_registered()
        await self.client.set_display_name(display_name)
        await self.state.set_profile(self.user_id, displayname=display_name or None)

    async def set_avatar_url(self, url: str) -> None:
        """Set this user's avatar (an ``mxc://`` URI, or ``""`` to remove it)."""
        if not isinstance(url, str) or (url and not url.startswith("mxc://")):
            raise ValueError(f"set_avatar_url: url must be an mxc:// URI or '', got {url!r}")
        await self.ensure_registered()
        await self.client.set_avatar_url(url)
        await self.state.set_profile(self.user_id, avatar_url=url or None)


# --- argument checks and content builders ---------------------------------------------------


def _errcode(err: HTTPError) -> str | None:
    return err.wrapped_error.errcode if err.wrapped_error is not None else None


def _non_empty(value: object, name: str, where: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{where}: {name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{where}: {name} must not be empty")
    return value


def _text(value: object, name: str, where: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{where}: {name} must be a str, got {type(value).__name__}")
    return value


def _room_id(room_id: object, where: str) -> str:
    value = _non_empty(room_id, "room_id", where)
    try:
        return validate_room_id(value)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _ts_query(timestamp: object, where: str) -> dict[str, str]:
    if timestamp is None:
        return {}
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError(f"{where}: timestamp must be a non-negative int (ms), got {timestamp!r}")
    return {"ts": str(timestamp)}


def _content(content: object, where: str) -> dict[str, Any]:
    if isinstance(content, Mapping):
        return dict(content)
    to_dict = getattr(content, "to_dict", None)
    if callable(to_dict):
        out = to_dict()
        if isinstance(out, dict):
            return out
    raise TypeError(
        f"{where}: content must be a mapping or have to_dict(), got {type(content).__name__}"
    )


def _formatted(html: object, text: object, msgtype: str, where: str) -> dict[str, Any]:
    if msgtype not in TEXT_MSGTYPES:
        raise ValueError(
            f"{where}: msgtype must be one of {sorted(TEXT_MSGTYPES)}, got {msgtype!r}"
        )
    markup = _text(html, "html", where)
    plain = get_html_message(msgtype, markup).body if text is None else _text(text, "text", where)
    return {"msgtype": msgtype, "body": plain, "format": HTML_FORMAT, "formatted_body": markup}
