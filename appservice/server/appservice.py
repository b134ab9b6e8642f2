"""AppService: the push side of an application service as an ASGI app.

``PUT /transactions`` is checked, parsed once, committed to the inbox (txnId and items in one
database transaction) and answered 200 only after the commit; the dispatcher then hands the items to
the registered handlers in order per room. ``async with svc`` opens the store and inbox, resumes
unfinished items and starts the dispatcher; it never contacts the homeserver, so it works while the
homeserver is still down.

Echo events (sent by our bot or a puppet in our user namespace, which the homeserver also sends
back to us) are delivered like any other; ``svc.is_echo(event)`` tells them apart, and
``@svc.on_event_type(t, ignore_echo=True)`` skips them for that handler.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpx
from starlette.applications import Starlette

from appservice.client import Client
from appservice.events import Event
from appservice.intent import Intent
from appservice.registration import Registration
from appservice.server.dispatcher import Dispatcher
from appservice.server.fastevent import event_from_payload
from appservice.server.http import M_LIMIT_EXCEEDED, M_TOO_LARGE, M_UNKNOWN, MatrixHTTPError
from appservice.server.inbox import (
    MAX_TXN_ITEMS,
    Accepted,
    Inbox,
    InboxItem,
    MemoryInbox,
    now_ms,
)
from appservice.server.metrics import MetricsExposition, ServerMetrics, ServerSource
from appservice.server.payloads import DeviceLists, OTKCounts, ToDeviceEvent
from appservice.server.routes import build_app
from appservice.server.sql_inbox import SQLInbox, Synchronous
from appservice.server.thirdparty import ThirdPartyHandler
from appservice.server.transaction import (
    DEVICE_LISTS,
    EPHEMERAL,
    EVENT,
    OTK,
    TO_DEVICE,
    RawItem,
    parse_transaction,
)
from appservice.state_cache import (
    TRACKED_EVENT_TYPES,
    CachedStateCache,
    MemoryStateCache,
    SQLStateCache,
    StateCache,
)
from appservice.store import SQLStore

log = logging.getLogger("appservice.server")

T = TypeVar("T")
Callback = Callable[[T], Awaitable[None] | None]
EventCallback = Callable[[Event], Awaitable[None] | None]
QueryCallback = Callable[[str], Awaitable[bool]]
F = TypeVar("F", bound=Callable[..., Any])

ANY_EVENT_TYPE = "*"
"""``on_event_type(ANY_EVENT_TYPE)`` receives every room event, after the type's own handlers."""

DAY_MS = 86_400_000
_MAX_PROGRESS = 10_000


@dataclass(frozen=True, slots=True)
class _Handler(Generic[T]):
    fn: Callable[[T], Awaitable[None] | None]
    ignore_echo: bool = False
    is_coroutine: bool = False

    @classmethod
    def of(cls, fn: Callable[[T], Awaitable[None] | None], ignore_echo: bool = False) -> Self:
        if not callable(fn):
            raise TypeError(f"a handler must be callable, got {type(fn).__name__}")
        return cls(fn, ignore_echo, inspect.iscoroutinefunction(fn))

    async def __call__(self, arg: T) -> None:
        if self.is_coroutine:
            await self.fn(arg)  # type: ignore[misc]
            return
        result = self.fn(arg)
        if result is not None and inspect.isawaitable(result):
            await result


def _store_synchronous(store: SQLStore) -> Synchronous:
    """The store's own SQLite ``synchronous`` setting, so both connections agree."""
    value = str(store.options.sqlite_synchronous).upper()
    return "NORMAL" if value == "NORMAL" else "EXTRA" if value == "EXTRA" else "FULL"


def _sql_state_cache(store: SQLStore) -> StateCache:
    """The state cache on the store's tables, with its answers kept in memory in front."""
    return CachedStateCache(SQLStateCache(store))


class AppService:
    """An application service: the ASGI app (``svc.app``), handlers, and clients for the bot and
    puppets. See the module docstring for the intake and dispatch guarantees."""

    def __init__(
        self,
        registration: Registration,
        homeserver_url: str,
        *,
        database_url: str | None = None,
        store: SQLStore | None = None,
        inbox: Inbox | None = None,
        server_name: str | None = None,
        max_pending: int = 10_000,
        max_parallel_rooms: int = 32,
        max_attempts: int = 3,
        retry_delay: float = 0.5,
        max_body_bytes: int = 64 * 1024 * 1024,
        sqlite_synchronous: Synchronous | None = None,
        done_retention_ms: int = 7 * DAY_MS,
        prune_interval: float = 3600.0,
        close_timeout: float = 10.0,
        thirdparty: ThirdPartyHandler | None = None,
        http: httpx.AsyncClient | None = None,
        state_cache: StateCache | None = None,
    ) -> None:
        if not isinstance(registration, Registration):
            raise TypeError(
                f"registration must be a Registration, got {type(registration).__name__}"
            )
        if sum(x is not None for x in (database_url, store, inbox)) > 1:
            raise ValueError("give at most one of database_url, store and inbox")
        if max_pending < 1 or max_body_bytes < 1:
            raise ValueError("max_pending and max_body_bytes must be >= 1")
        if prune_interval <= 0:
            raise ValueError("prune_interval must be > 0 (seconds)")
        self.registration = registration
        self.hs_token = registration.hs_token
        self.max_body_bytes = max_body_bytes
        self.max_pending = max_pending
        self.thirdparty = thirdparty
        self.server_name = server_name if server_name is not None else registration.server_name
        self._bot_user_id = registration.bot_user_id(self.server_name) if self.server_name else None
        self._database_url = database_url
        self._store: SQLStore | None = store
        self._owns_store = database_url is not None
        self._inbox: Inbox | None = inbox
        self._sqlite_synchronous = sqlite_synchronous
        self._max_parallel_rooms = max_parallel_rooms
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._done_retention_ms = done_retention_ms
        self._prune_interval = prune_interval
        self._pruner: asyncio.Task[None] | None = None
        self._close_timeout = close_timeout
        self._event_handlers: dict[str, list[_Handler[Event]]] = {}
        self._ephemeral: list[_Handler[Event]] = []
        self._to_device: list[_Handler[ToDeviceEvent]] = []
        self._device_lists: list[_Handler[DeviceLists]] = []
        self._otk: list[_Handler[OTKCounts]] = []
        self._user_query: QueryCallback | None = None
        self._alias_query: QueryCallback | None = None
        self._by_type: dict[str, list[_Handler[Event]]] = {}
        self._progress: dict[int, int] = {}
        self._intake: set[asyncio.Future[Accepted | None]] = set()
        self._dispatcher: Dispatcher | None = None
        self._open = False
        self.metrics = ServerMetrics()
        self.pings_received: deque[str | None] = deque(maxlen=100)
        self.client = Client(
            homeserver_url, self._bot_user_id or "", registration.as_token, http=http
        )
        self._exposition = MetricsExposition(
            ServerSource(self.metrics, lambda: self._dispatcher), self.client.request_stats
        )
        self._state_cache: StateCache | None = state_cache
        if state_cache is None and database_url is None:
            self._state_cache = _sql_state_cache(store) if store is not None else MemoryStateCache()
        self._bot_intent: Intent | None = None
        # The state cache sees membership, power level, encryption and create events before any
        # user handler, so intents answer "joined?" and "may I?" without a request.
        for event_type in TRACKED_EVENT_TYPES:
            self.on_event_type(event_type)(self._update_state_cache)
        self.app: Starlette = build_app(self, self._lifespan)

    # --- handler registration ---------------------------------------------------------------

    def on_event_type(
        self, event_type: str, *, ignore_echo: bool = False
    ) -> Callable[[EventCallback], EventCallback]:
        """Decorator: call ``fn(event)`` for room events of ``event_type`` (``"*"``: every type).

        ``ignore_echo=True`` skips events sent by our bot or puppets (see :meth:`is_echo`).
        """
        if not isinstance(event_type, str) or not event_type:
            raise ValueError("event_type must be a non-empty string")

        def register(fn: EventCallback) -> EventCallback:
            self._event_handlers.setdefault(event_type, []).append(_Handler.of(fn, ignore_echo))
            self._by_type.clear()
            return fn

        return register

    def on_ephemeral(self, fn: EventCallback) -> EventCallback:
        """Decorator: ``fn(event)`` for ephemeral events (typing, receipts, presence)."""
        self._ephemeral.append(_Handler.of(fn))
        return fn

    def on_to_device(self, fn: Callback[ToDeviceEvent]) -> Callback[ToDeviceEvent]:
        """Decorator: ``fn(ToDeviceEvent)`` for to-device messages to our users (MSC2409)."""
        self._to_device.append(_Handler.of(fn))
        return fn

    def on_device_lists(self, fn: Callback[DeviceLists]) -> Callback[DeviceLists]:
        """Decorator: ``fn(DeviceLists)`` for MSC3202 device list changes."""
        self._device_lists.append(_Handler.of(fn))
        return fn

    def on_otk_counts(self, fn: Callback[OTKCounts]) -> Callback[OTKCounts]:
        """Decorator: ``fn(OTKCounts)`` for MSC3202 one-time / fallback key counts."""
        self._otk.append(_Handler.of(fn))
        return fn

    def on_user_query(self, fn: QueryCallback) -> QueryCallback:
        """Decorator: ``await fn(user_id) -> bool``: does this namespaced user exist (create it
        now if it should)? Without a handler the answer is 404."""
        self._user_query = fn
        return fn

    def on_alias_query(self, fn: QueryCallback) -> QueryCallback:
        """Decorator: ``await fn(alias) -> bool``: does this namespaced alias exist (create the
        room now if it should)? Without a handler the answer is 404."""
        self._alias_query = fn
        return fn

    # --- identities -------------------------------------------------------------------------

    @property
    def bot_user_id(self) -> str:
        """``@<sender_localpart>:<server_name>``; ValueError when the server name is unknown."""
        if self._bot_user_id is None:
            raise ValueError("server name unknown: pass server_name= to AppService or Registration")
        return self._bot_user_id

    @property
    def state_cache(self) -> StateCache:
        """What the homeserver told us about rooms (membership, power levels, encryption) and
        which puppets are registered: SQL-backed when the service has a store."""
        if self._state_cache is None:
            raise RuntimeError("the state cache opens with the store: start the AppService first")
        return self._state_cache

    @property
    def bot(self) -> Intent:
        """The intent of the appservice's own bot user (the as_token's user); ``bot.client`` is
        its plain Client."""
        if self._bot_intent is None:
            self._bot_intent = Intent.for_bot(
                self.client, self.state_cache, registration=self._registration_with_server()
            )
        return self._bot_intent

    def intent(self, user_id: str) -> Intent:
        """The intent of puppet ``user_id``: acts by identity assertion on the bot's HTTP pool,
        registering and joining first when the state cache does not know it did already."""
        return self.bot.user(user_id)

    def _registration_with_server(self) -> Registration:
        if self.registration.server_name is None and self.server_name is not None:
            return dataclasses.replace(self.registration, server_name=self.server_name)
        return self.registration

    async def _update_state_cache(self, event: Event) -> None:
        await self.state_cache.update_from_event(event)

    def is_echo(self, event: Event) -> bool:
        """Whether ``event`` was sent by our bot or one of our puppets (user namespace)."""
        sender = event.sender
        if self._bot_user_id is not None:
            if sender == self._bot_user_id:
                return True
        elif sender.startswith(f"@{self.registration.sender_localpart}:"):
            return True
        return self.registration.is_user_in_namespace(sender)

    async def ping(self) -> int:
        """Ask the homeserver to ping us; returns its round trip in ms (raises HTTPError on
        failure). A successful ping also makes Synapse retry a backed-off transaction now."""
        transaction_id = uuid.uuid4().hex
        resp = await self.client.ping(self.registration.id, transaction_id)
        return resp.duration_ms

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def inbox(self) -> Inbox:
        """The inbox in use (available after :meth:`start`)."""
        if self._inbox is None:
            raise RuntimeError("the AppService is not started")
        return self._inbox

    @property
    def dispatcher(self) -> Dispatcher:
        """The dispatcher in use (available after :meth:`start`)."""
        if self._dispatcher is None:
            raise RuntimeError("the AppService is not started")
        return self._dispatcher

    async def start(self) -> None:
        """Open the store and inbox, resume unfinished items, start dispatching."""
        if self._open:
            return
        if self._database_url is not None:
            self._store = SQLStore(self._database_url)
            await self._store.open()
            if self._state_cache is None:
                self._state_cache = _sql_state_cache(self._store)
        try:
            inbox, resumed, pruned = await self._open_inbox()
        except BaseException:
            if self._owns_store and self._store is not None:
                await self._store.close()
                self._inbox = None
            raise
        self._dispatcher = Dispatcher(
            inbox,
            self._handle_item,
            max_parallel_rooms=self._max_parallel_rooms,
            max_attempts=self._max_attempts,
            retry_delay=self._retry_delay,
            # Done marks in memory cost nothing to commit: flush them as soon as they are made,
            # so handled items are freed at once instead of piling up for the garbage collector.
            flush_interval=0.0 if isinstance(inbox, MemoryInbox) else 0.02,
            latency=self.metrics.handler_latency,
        )
        self._dispatcher.submit(resumed)
        self._dispatcher.start()
        self._pruner = asyncio.create_task(self._prune_loop(inbox), name="appservice-inbox-pruner")
        self._open = True
        log.info("appservice %s started: %d items resumed, %d old transactions pruned",
                 self.registration.id, len(resumed), pruned)  # fmt: skip

    async def _open_inbox(self) -> tuple[Inbox, list[InboxItem], int]:
        """Open the inbox (from the store unless given), prune old items, load unfinished ones."""
        if self._inbox is None:
            if self._store is not None:
                sync = self._sqlite_synchronous or _store_synchronous(self._store)
                self._inbox = SQLInbox(self._store.engine, sqlite_synchronous=sync)
            else:
                log.warning("no database_url/store given: the inbox is in memory and not durable")
                self._inbox = MemoryInbox()
        inbox = self._inbox
        await inbox.open()
        try:
            pruned = await inbox.prune(now_ms() - self._done_retention_ms)
            resumed = await inbox.pending()
        except BaseException:
            await inbox.close()
            raise
        return inbox, resumed, pruned

    async def close(self) -> None:
        """Stop taking transactions (503), let running handlers finish, commit done marks,
        close the inbox, the store (when opened here) and the HTTP client."""
        if not self._open:
            await self.client.aclose()
            return
        self._open = False
        if self._pruner is not None:
            self._pruner.cancel()
            await asyncio.gather(self._pruner, return_exceptions=True)
            self._pruner = None
        if self._intake:
            await asyncio.gather(*self._intake, return_exceptions=True)
        assert self._dispatcher is not None
        assert self._inbox is not None
        await self._dispatcher.close(grace=self._close_timeout)
        await self._inbox.close()
        if self._owns_store and self._store is not None:
            await self._store.close()
            self._store = None
            self._inbox = None
        await self.client.aclose()

    async def _prune_loop(self, inbox: Inbox) -> None:
        """Every ``prune_interval`` seconds, delete what the retention no longer keeps, so a
        long-running service's inbox does not grow without end (start prunes too)."""
        while True:
            await asyncio.sleep(self._prune_interval)
            try:
                pruned = await inbox.prune(now_ms() - self._done_retention_ms)
            except Exception:
                log.exception("pruning the inbox failed; will try again")
                continue
            if pruned:
                log.info("pruned the items of %d handled transactions", pruned)

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """ASGI lifespan: open the service for the server unless the caller already did."""
        if self._open:
            yield
            return
        async with self:
            yield

    # --- what the routes call ---------------------------------------------------------------

    async def receive_transaction(self, txn_id: str, body: bytes) -> None:
        """Parse, check the bound, commit; returns after the commit (or for a known txnId)."""
        items = parse_transaction(body)
        if len(items) > MAX_TXN_ITEMS:
            raise MatrixHTTPError(
                413, M_TOO_LARGE, f"A transaction may hold at most {MAX_TXN_ITEMS} items"
            )
        if not self._open or self._dispatcher is None:
            raise MatrixHTTPError(503, M_UNKNOWN, "The application service is not running")
        if self._dispatcher.pending >= self.max_pending:
            self.metrics.rejected_busy += 1
            raise MatrixHTTPError(503, M_LIMIT_EXCEEDED, "Too many unhandled events; retry later")
        inbox = self._inbox
        assert inbox is not None
        if isinstance(inbox, MemoryInbox):  # never suspends: nothing to protect
            self._queue_accepted(txn_id, await inbox.accept(txn_id, items))
            return
        # The commit's done callback queues the items, also when this request is cancelled
        # meanwhile (a client that went away must not leave committed items unqueued). They are
        # queued without waking a worker, which happens here just before the 200 goes out, so
        # handlers run after the response instead of delaying it (or when the commit ends,
        # should this request be cancelled first).
        dispatcher = self._dispatcher
        future = (
            inbox.accept_soon(txn_id, items, body)
            if isinstance(inbox, SQLInbox)
            else asyncio.ensure_future(inbox.accept(txn_id, items))
        )
        future.add_done_callback(partial(self._committed, txn_id))
        self._intake.add(future)
        future.add_done_callback(self._intake.discard)
        try:
            await asyncio.shield(future)
        finally:
            if future.done():
                dispatcher.wake()
            else:
                future.add_done_callback(lambda _: dispatcher.wake())

    def _committed(self, txn_id: str, future: asyncio.Future[Accepted | None]) -> None:
        """Queue the items of a delivery whose commit ended (an error is the request's to
        answer: nothing was committed)."""
        if future.cancelled() or future.exception() is not None:
            return
        self._queue_accepted(txn_id, future.result(), wake=False)

    def _queue_accepted(self, txn_id: str, accepted: Accepted | None, *, wake: bool = True) -> None:
        """Count an accepted delivery and hand its items to the dispatcher (``None``: a repeat
        of a known txnId, only counted)."""
        assert self._dispatcher is not None
        if accepted is None:
            self.metrics.duplicate_txns += 1
            log.info("transaction %s was already accepted; ignoring the repeat", txn_id)
            return
        self.metrics.accepted_txns += 1
        self.metrics.accepted_items += len(accepted)
        self._dispatcher.submit(accepted, wake=wake)

    async def query_user(self, user_id: str) -> bool | None:
        """The user query handler's answer (``None``: no handler)."""
        return None if self._user_query is None else bool(await self._user_query(user_id))

    async def query_alias(self, alias: str) -> bool | None:
        """The alias query handler's answer (``None``: no handler)."""
        return None if self._alias_query is None else bool(await self._alias_query(alias))

    def received_ping(self, transaction_id: str | None) -> None:
        """Remember the homeserver's ping (tests and health checks read ``pings_received``)."""
        self.pings_received.append(transaction_id)

    def readiness(self) -> str | None:
        """``None`` when the inbox is open and under its bound, else the reason."""
        if not self._open or self._dispatcher is None:
            return "not started"
        if self._dispatcher.pending >= self.max_pending:
            return "inbox over its bound"
        return None

    def metrics_text(self) -> str:
        """Prometheus exposition of the intake and dispatch counters."""
        return self._exposition.text()

    # --- dispatch -----------------------------------------------------------------------------

    def _handle_item(self, seq: int, item: RawItem) -> Awaitable[None] | None:
        """Hand item ``seq`` to its handlers: ``None`` when that finished synchronously (plain
        handlers, no handler), else an awaitable the dispatcher awaits."""
        kind, _, payload = item
        if kind == EVENT:
            event_type = payload["type"]
            handlers = self._by_type.get(event_type)
            if handlers is None:
                handlers = self._by_type[event_type] = [
                    *self._event_handlers.get(event_type, ()),
                    *self._event_handlers.get(ANY_EVENT_TYPE, ()),
                ]
            if len(handlers) == 1:  # the common case, inlined: no per-handler progress needed
                handler = handlers[0]
                event = event_from_payload(payload)
                if handler.ignore_echo and self.is_echo(event):
                    return None
                result = handler.fn(event)
                if result is None or handler.is_coroutine:
                    return result
                return result if inspect.isawaitable(result) else None
            if handlers:
                return self._run_handlers(seq, handlers, event_from_payload(payload))
        elif kind == EPHEMERAL:
            if self._ephemeral:
                return self._run_handlers(seq, self._ephemeral, event_from_payload(payload))
        elif kind == TO_DEVICE:
            if self._to_device:
                message = ToDeviceEvent.from_dict(payload)
                return self._run_handlers(seq, self._to_device, message)
        elif kind == DEVICE_LISTS:
            if self._device_lists:
                lists = DeviceLists.from_dict(payload)
                return self._run_handlers(seq, self._device_lists, lists)
        elif kind == OTK:
            if self._otk:
                return self._run_handlers(seq, self._otk, OTKCounts.from_dict(payload))
        else:
            log.warning("inbox item %d has unknown kind %r; skipped", seq, kind)
        return None

    async def _run_handlers(self, seq: int, handlers: list[_Handler[T]], arg: T) -> None:
        """Run the handlers in order; a retry resumes at the handler that failed, so handlers
        that already succeeded are not run twice for the same item within this process."""
        start = self._progress.pop(seq, 0) if self._progress else 0
        echo: bool | None = None
        for i in range(start, len(handlers)):
            handler = handlers[i]
            if handler.ignore_echo and isinstance(arg, Event):
                if echo is None:
                    echo = self.is_echo(arg)
                if echo:
                    continue
            try:
                await handler(arg)
            except Exception:
                if len(self._progress) >= _MAX_PROGRESS:  # parked items never come back for it
                    self._progress.clear()
                self._progress[seq] = i
                raise
