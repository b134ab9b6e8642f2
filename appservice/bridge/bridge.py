"""Bridge: the lifecycle that ties config, store, appservice server and network connector together.

``start()`` goes config -> store (``SQLStore`` at ``appservice.database``) -> server (the
``AppService`` with its durable inbox, served by uvicorn on ``appservice.hostname:port``) ->
network (``connector.start(bridge)``); ``stop()`` undoes it in reverse, and ``run()`` does both
around a wait for SIGINT/SIGTERM. Transactions the homeserver pushes before the network is up
are accepted into the inbox; their handlers wait until ``connector.start`` has returned.

Connector code reaches everything through the bridge: ``bridge.portals``, ``bridge.puppets``,
``bridge.users``, ``bridge.messages``, ``bridge.commands`` and the bot's ``Intent``
(``bridge.bot``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import signal
import socket
from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import uvicorn

from appservice.bridge.commands import CommandProcessor
from appservice.bridge.config import BridgeConfig
from appservice.bridge.connector import (
    Capabilities,
    ChatInfo,
    NetworkConnector,
    SupportsChatLookup,
    check_connector,
)
from appservice.bridge.matrix import BridgeStats, MatrixHandler
from appservice.bridge.messages import MessageMap
from appservice.bridge.portals import Portals
from appservice.bridge.puppet import Puppets
from appservice.bridge.user import Users
from appservice.errors import HTTPError
from appservice.events import Event
from appservice.intent import Intent
from appservice.registration import Registration
from appservice.server import AppService
from appservice.state_cache import StateCache
from appservice.store import SQLStore

__all__ = ["Bridge", "BridgeError"]

log = logging.getLogger("appservice.bridge")

T = TypeVar("T")


class BridgeError(RuntimeError):
    """The bridge cannot start or is used before it started (never carries a token)."""


class _Server(uvicorn.Server):
    """uvicorn that leaves signal handling to ``Bridge.run`` (and to the host program)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _version() -> str:
    try:
        return importlib.metadata.version("appservice")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class Bridge:
    """A running bridge: ``async with Bridge(config, connector) as bridge:`` or ``await
    bridge.run()``.

    ``registration`` (a loaded registration file) is checked against the config and refused
    with every difference named; without it the config's own is used. ``http`` is the HTTP
    pool every homeserver request goes through; ``serve=False`` leaves serving ``bridge.svc.app``
    to the caller. The ``max_cached_*`` bounds cap the in-memory caches.
    """

    def __init__(
        self,
        config: BridgeConfig,
        connector: NetworkConnector,
        *,
        registration: Registration | None = None,
        http: httpx.AsyncClient | None = None,
        serve: bool = True,
        max_cached_portals: int = 1024,
        max_cached_puppets: int = 4096,
        max_cached_users: int = 1024,
    ) -> None:
        if not isinstance(config, BridgeConfig):
            raise TypeError(f"Bridge: config must be a BridgeConfig, got {type(config).__name__}")
        check_connector(connector)
        if registration is None:
            registration = config.to_registration()
        else:
            problems = config.check_registration(registration)
            if problems:
                where = f" {registration.path}" if registration.path else ""
                raise BridgeError(
                    f"the registration{where} does not match the config; fix the one that is "
                    f"wrong (or regenerate the registration) and restart the homeserver: "
                    + "; ".join(problems)
                )
        self.config = config
        self.connector = connector
        self.capabilities = Capabilities.of(connector)
        self.registration = registration
        self.serve = serve
        self._http = http
        self.puppets = Puppets(self, max_cached=max_cached_puppets)
        self.portals = Portals(self, max_cached=max_cached_portals)
        self.users = Users(self, max_cached=max_cached_users)
        self.commands = CommandProcessor(
            self.reply, prefix=config.bridge.command_prefix, version_text=self._version_text()
        )
        self.matrix = MatrixHandler(self)
        self._store: SQLStore | None = None
        self._svc: AppService | None = None
        self._bot: Intent | None = None
        self._state: StateCache | None = None
        self._messages: MessageMap | None = None
        self._server: _Server | None = None
        self._server_task: asyncio.Task[None] | None = None
        self._network_up = asyncio.Event()
        self._network_started = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False

    # --- what connector code uses -------------------------------------------------------------

    @property
    def store(self) -> SQLStore:
        """The open store."""
        return self._need(self._store, "store")

    @property
    def svc(self) -> AppService:
        """The appservice (its ASGI app is ``svc.app``)."""
        return self._need(self._svc, "svc")

    @property
    def bot(self) -> Intent:
        """The bridge bot's intent; ``bot.user(user_id)`` gives any puppet's."""
        return self._need(self._bot, "bot")

    @property
    def state(self) -> StateCache:
        """The state cache (SQL, shared by every intent)."""
        return self._need(self._state, "state")

    @property
    def messages(self) -> MessageMap:
        """The message map (remote message <-> Matrix event)."""
        return self._need(self._messages, "messages")

    @property
    def stats(self) -> BridgeStats:
        """Counters of the Matrix side (echoes ignored, messages bridged, commands)."""
        return self.matrix.stats

    def _need(self, value: T | None, name: str) -> T:
        if value is None:
            raise BridgeError(f"bridge.{name} is available only after `await bridge.start()`")
        return value

    def is_echo(self, event: Event) -> bool:
        """Whether ``event`` was sent by our bot or one of our puppets."""
        return self.svc.is_echo(event)

    def is_own_user(self, user_id: str) -> bool:
        """Whether ``user_id`` is our bot or in our puppet namespace (never bridged back)."""
        return user_id == self.bot.user_id or self.registration.is_user_in_namespace(user_id)

    async def reply(self, room_id: str, text: str, html: str | None = None) -> None:
        """Send a notice from the bot (the command bot's voice)."""
        if html is None:
            await self.bot.send_notice(room_id, text)
        else:
            await self.bot.send_formatted(room_id, html, text, msgtype="m.notice")

    async def chat_info(self, remote_id: str) -> ChatInfo:
        """The connector's info on a chat (``SupportsChatLookup``), else a default."""
        if isinstance(self.connector, SupportsChatLookup):
            info = await self.connector.get_chat_info(remote_id)
            if info is not None:
                return info
        return ChatInfo(name=remote_id)

    async def network_ready(self) -> None:
        """Return once the connector has started (Matrix handlers wait here)."""
        await self._network_up.wait()

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Store, server, network, in that order; on any failure what started is stopped."""
        if self._started:
            return
        cfg = self.config
        try:
            self._store = store = SQLStore(cfg.appservice.database)
            await store.open()
            self._messages = MessageMap(store)
            self._svc = svc = AppService(
                self.registration,
                cfg.homeserver.address,
                store=store,
                server_name=cfg.homeserver.domain,
                http=self._http,
            )
            self._state = svc.state_cache
            self._bot = svc.bot
            self.matrix.register(svc)
            svc.on_alias_query(self._alias_query)
            svc.on_user_query(self._user_query)
            await svc.start()
            if self.serve:
                await self._listen(svc)
            await self.connector.start(self)
            self._network_started = True
            self._network_up.set()
        except BaseException:
            await self._teardown()
            raise
        self._started = True
        caps = self.capabilities.names()
        log.info("bridge %s started: connector %s, capabilities: %s", self.registration.id,
                 type(self.connector).__name__, ", ".join(caps) or "none")  # fmt: skip
        if cfg.appservice.bot_displayname:
            self._background(self._sync_bot_profile(cfg.appservice.bot_displayname))

    async def stop(self) -> None:
        """Network, server, store, in that order; safe to call twice."""
        self._started = False
        await self._teardown()

    async def settle(self) -> None:
        """Wait for the start-up background work (the bot's profile) to finish."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def run(self) -> None:
        """Start, run until SIGINT or SIGTERM, stop."""
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, stopping.set)
        try:
            await self.start()
            log.info("bridge %s running; SIGINT or SIGTERM stops it", self.registration.id)
            await stopping.wait()
            log.info("bridge %s stopping", self.registration.id)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _teardown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._network_started:
            self._network_started = False
            try:
                await self.connector.stop()
            except Exception:
                log.exception("the network connector failed to stop cleanly")
        server, serving = self._server, self._server_task
        self._server = self._server_task = None
        if server is not None and serving is not None:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, SystemExit):
                await serving
        svc, self._svc = self._svc, None
        if svc is not None:
            await svc.close()
        store, self._store = self._store, None
        if store is not None:
            await store.close()
        self._bot = self._state = self._messages = None
        self._network_up.clear()

    async def _listen(self, svc: AppService) -> None:
        host, port = self.config.appservice.hostname, self.config.appservice.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError as err:
            sock.close()
            raise BridgeError(
                f"cannot listen on {host}:{port} (appservice.hostname/port): {err.strerror}"
            ) from None
        config = uvicorn.Config(svc.app, log_level="warning", access_log=False, lifespan="on")
        self._server = server = _Server(config)
        self._server_task = task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                sock.close()
                raise BridgeError(f"the appservice server on {host}:{port} failed to start")
            await asyncio.sleep(0.01)
        log.info("appservice listening on %s:%d", host, port)

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sync_bot_profile(self, displayname: str) -> None:
        try:
            try:
                current = (await self.bot.client.get_own_display_name()).display_name
            except HTTPError as err:
                if err.code != 404:  # no profile yet: nothing is set
                    raise
                current = None
            if current != displayname:
                await self.bot.set_display_name(displayname)
                log.info("bot %s: display name set", self.bot.user_id)
        except Exception as err:
            log.warning("bot %s: display name not set: %s", self.bot.user_id, err)

    # --- appservice queries -------------------------------------------------------------------

    async def _alias_query(self, alias: str) -> bool:
        """Make the portal of a public remote chat when someone looks up its alias."""
        remote_id = self.portals.remote_id_for_alias(alias)
        if remote_id is None or self.portals.alias_for(remote_id) != alias:
            return False
        if not isinstance(self.connector, SupportsChatLookup):
            log.info("alias %s: the connector cannot look chats up; not found", alias)
            return False
        await self.network_ready()
        info = await self.connector.get_chat_info(remote_id)
        if info is None or not info.public:
            log.info("alias %s: remote chat %s is %s; not found", alias, remote_id,
                     "unknown" if info is None else "not public")  # fmt: skip
            return False
        portal = await self.portals.get(remote_id)
        assert portal is not None
        if portal.room_id is None:
            await portal.ensure_room(info)
        else:
            await self.bot.client.create_alias(alias, portal.room_id)
        return True

    async def _user_query(self, user_id: str) -> bool:
        """A puppet someone invites exists when we have its row; register it now."""
        puppet = await self.puppets.by_user_id(user_id)
        if puppet is None:
            return False
        await puppet.intent.ensure_registered()
        return True

    def _version_text(self) -> str:
        kind = type(self.connector)
        caps = ", ".join(self.capabilities.names()) or "none"
        return (
            f"appservice {_version()}; network connector {kind.__module__}.{kind.__qualname__} "
            f"(capabilities: {caps})"
        )
