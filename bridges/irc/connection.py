"""One IRC connection kept alive: reconnect with backoff, rejoin, and a flood-controlled outbox.

``Connection`` owns an ``IrcClient``. When the server goes away it reconnects (delays doubling
up to ``reconnect_max_delay``) and joins every wanted channel again. Lines to send wait in an
outbox until the connection is registered and, for a channel, until we are in it; they then
leave at most ``flood_burst`` at once and ``flood_rate`` per second after that. ``send`` returns
once the lines are written, so a Matrix message is acknowledged only when it reached IRC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridges.irc.client import (
    Disconnected,
    IrcClient,
    IrcEvent,
    Kicked,
    Registered,
    SelfJoined,
)
from bridges.irc.config import IrcConfig

__all__ = ["Connection", "NotDelivered"]

log = logging.getLogger("bridges.irc.connection")


class NotDelivered(RuntimeError):
    """Lines that could not be sent in time (IRC away too long), or that failed to send."""


@dataclass(eq=False)
class _Outgoing:
    target: str
    command: str
    lines: Sequence[str]
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; ``take`` waits for one."""

    def __init__(self, burst: int, rate: float) -> None:
        self.burst, self.rate = burst, rate
        self.tokens = float(burst)
        self.stamp = asyncio.get_running_loop().time()

    async def take(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


class Connection:
    """A self-healing IRC connection as ``nick``; events go to ``on_event`` in order."""

    def __init__(
        self,
        config: IrcConfig,
        nick: str,
        on_event: Callable[[IrcEvent], None],
        *,
        username: str | None = None,
        realname: str | None = None,
        fallback_nicks: list[str] | None = None,
    ) -> None:
        self.config = config
        self.nick = nick
        self.username = username or config.username
        self._on_event = on_event
        self.client = IrcClient(
            nick,
            self._event,
            username=self.username,
            realname=realname or config.realname,
            fallback_nicks=fallback_nicks,
        )
        self.wanted: dict[str, str] = {}  # folded -> channel name as asked
        self._joined: dict[str, asyncio.Event] = {}
        self.registered = asyncio.Event()
        self._outbox: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._bucket = _TokenBucket(config.flood_burst, config.flood_rate)
        self._tasks: set[asyncio.Task[None]] = set()
        self._reconnecting: asyncio.Task[None] | None = None
        self._stopping = False
        self.reconnects = 0

    @property
    def current_nick(self) -> str:
        """The nick the server knows us by now (``nick`` until registered)."""
        nick = self.client.nickname
        return nick if isinstance(nick, str) and nick != "<unregistered>" else self.nick

    @property
    def where(self) -> str:
        """``host:port`` for logs."""
        return f"{self.config.host}:{self.config.port}"

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (waiting up to ``connect_timeout``; after that it keeps trying in the
        background) and start the sender."""
        self._spawn(self._sender(), "irc-sender")
        try:
            await self.client.connect(self.config.host, self.config.port)
            async with asyncio.timeout(self.config.connect_timeout):
                await self.registered.wait()
        except (OSError, TimeoutError) as err:
            log.warning("IRC %s as %s: not connected yet (%s); retrying in the background",
                        self.where, self.nick, err or type(err).__name__)  # fmt: skip
            self._schedule_reconnect()

    async def stop(self) -> None:
        """QUIT and close. Lines still waiting are neither sent nor failed: their senders keep
        waiting until cancelled (the bridge's dispatcher does that as it stops), so the Matrix
        events behind them stay pending in the inbox and are delivered after a restart."""
        self._stopping = True
        for task in [*self._tasks, self._reconnecting]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._reconnecting is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        if self.client.connected:
            with contextlib.suppress(Exception):
                await self.client.quit("bridge stopping")
            with contextlib.suppress(Exception):
                await self.client.disconnect(expected=True)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- channels -----------------------------------------------------------------------------

    def _ready(self, channel: str) -> asyncio.Event:
        folded = self.client.fold(channel)
        event = self._joined.get(folded)
        if event is None:
            event = self._joined[folded] = asyncio.Event()
        return event

    def is_joined(self, channel: str) -> bool:
        """Whether we are in ``channel`` now (its NAMES list complete)."""
        return self._ready(channel).is_set()

    async def join(self, channel: str) -> None:
        """Want ``channel`` (joined now and after every reconnect); returns once joined, or at
        once while disconnected."""
        folded = self.client.fold(channel)
        self.wanted.setdefault(folded, channel)
        if self.registered.is_set() and not self.is_joined(channel):
            await self.client.rawmsg("JOIN", channel)

    async def part(self, channel: str) -> None:
        """No longer want ``channel``: leave it now (and do not rejoin after a reconnect)."""
        self.wanted.pop(self.client.fold(channel), None)
        if self.is_joined(channel):
            self._ready(channel).clear()
            await self.client.rawmsg("PART", channel)

    async def wait_joined(self, channel: str, within: float) -> bool:
        """Wait until we are in ``channel``; whether we are."""
        try:
            async with asyncio.timeout(within):
                await self._ready(channel).wait()
        except TimeoutError:
            return False
        return True

    def channel_users(self, channel: str) -> tuple[str, ...]:
        """The nicks in ``channel`` as far as we know (ours left out)."""
        return self.client.users_of(channel)

    def channel_topic(self, channel: str) -> str | None:
        """The channel's topic as far as we know."""
        info = self.client.channels.get(channel)
        topic = info.get("topic") if info else None
        return topic if isinstance(topic, str) and topic else None

    # --- events -------------------------------------------------------------------------------

    def _event(self, event: IrcEvent) -> None:
        """Called synchronously by the client for every event, in the order lines arrived."""
        if isinstance(event, Registered):
            self.registered.set()
            log.info("IRC %s: registered as %s; joining %d channel(s)", self.where, event.nick,
                     len(self.wanted))  # fmt: skip
            for channel in self.wanted.values():
                self._spawn(self.client.rawmsg("JOIN", channel), "irc-join")
        elif isinstance(event, SelfJoined):
            self._ready(event.channel).set()
        elif isinstance(event, Kicked) and event.own:
            self._ready(event.channel).clear()
        elif isinstance(event, Disconnected):
            self.registered.clear()
            for ready in self._joined.values():
                ready.clear()
            if not event.expected and not self._stopping:
                log.warning("IRC %s: connection lost; reconnecting", self.where)
                self._schedule_reconnect()
        self._on_event(event)

    def _schedule_reconnect(self) -> None:
        if self._stopping or (self._reconnecting is not None and not self._reconnecting.done()):
            return
        self._reconnecting = asyncio.create_task(self._reconnect(), name="irc-reconnect")

    async def _reconnect(self) -> None:
        delay = 0.1
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self.client.connect(self.config.host, self.config.port)
            except (OSError, TimeoutError) as err:
                delay = min(delay * 2, self.config.reconnect_max_delay)
                log.info("IRC %s: reconnect failed (%s); next try in %.1f s", self.where,
                         err or type(err).__name__, delay)  # fmt: skip
                continue
            self.reconnects += 1
            log.info("IRC %s: reconnected (attempt after %.1f s)", self.where, delay)
            return

    # --- sending ------------------------------------------------------------------------------

    async def send(self, target: str, command: str, lines: Sequence[str], within: float) -> None:
        """Send ``command target :line`` for each line once connected (and joined, for a
        channel); NotDelivered when that did not happen within ``within`` seconds."""
        item = _Outgoing(target, command, lines)
        self._outbox.put_nowait(item)
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(item.done)
        except TimeoutError:
            item.done.cancel()
            raise NotDelivered(
                f"IRC {self.where} was not reachable for {within:.0f} s; {target} not sent"
            ) from None

    async def _sender(self) -> None:
        while True:
            item = await self._outbox.get()
            if item.done.done():
                continue  # the caller gave up
            try:
                await self._deliver(item)
            except Exception as err:  # one bad item must not stop the sender
                log.exception("IRC %s: sending to %s failed", self.where, item.target)
                if not item.done.done():
                    item.done.set_exception(NotDelivered(f"sending to {item.target} failed: {err}"))

    async def _deliver(self, item: _Outgoing) -> None:
        is_channel = item.target[:1] in "#&+!"
        sent = 0
        while sent < len(item.lines):
            await self.registered.wait()
            if is_channel:
                await self._ready(item.target).wait()
            if item.done.done():
                return
            await self._bucket.take()
            if not self.client.connected:
                continue  # lost between the checks: wait for the reconnect
            try:
                await self.client.rawmsg(item.command, item.target, item.lines[sent])
            except (OSError, TimeoutError, AttributeError):
                continue  # the connection died under us; the line is resent after reconnect
            sent += 1
        if not item.done.done():
            item.done.set_result(None)
