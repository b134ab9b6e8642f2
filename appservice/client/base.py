"""The client's transport core: URLs, credentials, identity assertion, timeouts and retries.

Every endpoint group (``RoomsAPI``, ``SyncAPI``, ...) subclasses ``ClientBase`` and builds its
requests with ``build_url*`` and ``make_request``. The access token travels only in the
``Authorization`` header; an appservice acting as a puppet sets ``app_service_user_id`` and every
built URL carries ``user_id=`` (identity assertion).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Protocol, Self, runtime_checkable
from urllib.parse import urlsplit

import httpx
import orjson

from appservice.client.retry import (
    IDEMPOTENT_METHODS,
    ConnectionFailedError,
    RequestTimeoutError,
    RetryPolicy,
    is_retryable_answer,
    never_sent,
    retry_hint,
)
from appservice.client.urls import (
    QueryValue,
    encode_query,
    join_segments,
    validate_homeserver_url,
)
from appservice.errors import HTTPError, RespError
from appservice.metrics import (
    RETRY_CONNECTION,
    RETRY_RATE_LIMITED,
    RETRY_SERVER_ERROR,
    STATUS_ERROR,
    RequestStats,
    endpoint_template,
)
from appservice.store import InMemoryStore, Storer
from appservice.sync import DefaultSyncer, Syncer

__all__ = [
    "ClientBase",
    "ConnectionFailedError",
    "RequestTimeoutError",
    "RetryPolicy",
]

log = logging.getLogger("appservice.client")

JSON_CONTENT_TYPE: Final = "application/json"
DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"


@runtime_checkable
class _ToDict(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class ClientBase:
    """Transport for the Matrix client-server API: one shared HTTP pool, auth, retries.

    ``homeserver_url`` is validated up front (absolute http/https, host, no query/fragment).
    Requests time out after ``timeout`` seconds (per call overridable) and are retried according
    to ``retry`` (``RetryPolicy()`` by default: at most 6 tries within 60 s). Every try is counted
    in ``request_stats`` (shared with ``as_user`` clients; pass one to share it further).
    """

    prefix: str = "/_matrix/client/v3"
    homeserver_url: str
    user_id: str
    access_token: str
    app_service_user_id: str | None
    store: Storer
    syncer: Syncer
    http: httpx.AsyncClient
    retry: RetryPolicy
    timeout: float
    request_stats: RequestStats

    def __init__(
        self,
        homeserver_url: str,
        user_id: str = "",
        access_token: str = "",
        *,
        http: httpx.AsyncClient | None = None,
        store: Storer | None = None,
        syncer: Syncer | None = None,
        app_service_user_id: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        request_stats: RequestStats | None = None,
    ) -> None:
        self.homeserver_url = validate_homeserver_url(homeserver_url)
        _check_str(user_id, "user_id")
        _check_token(access_token)
        if app_service_user_id == "":
            app_service_user_id = None  # gomatrix's "unset"
        if app_service_user_id is not None:
            _check_user_id(app_service_user_id, "app_service_user_id")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        if request_stats is not None and not isinstance(request_stats, RequestStats):
            raise TypeError(
                f"request_stats must be a RequestStats, got {type(request_stats).__name__}"
            )
        self.timeout = _check_timeout(timeout, "timeout")
        self.request_stats = request_stats if request_stats is not None else RequestStats()
        self.user_id = user_id
        self.access_token = access_token
        self.app_service_user_id = app_service_user_id
        self.retry = retry if retry is not None else RetryPolicy()
        self.store = store if store is not None else InMemoryStore()
        # The default syncer follows this client's user (set_credentials); a given one is the
        # caller's to manage.
        self._default_syncer: DefaultSyncer | None = None
        if syncer is None:
            syncer = self._default_syncer = DefaultSyncer(user_id, self.store)
        self.syncer: Syncer = syncer
        self._owns_http = http is None
        self.http = (
            http
            if http is not None
            else httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), follow_redirects=False)
        )
        self._txn_base = uuid.uuid4().hex
        self._txn_counter = itertools.count(1)

    def __repr__(self) -> str:
        who = f" as {self.app_service_user_id}" if self.app_service_user_id else ""
        return f"<{type(self).__name__} {self.homeserver_url} user={self.user_id!r}{who}>"

    # --- URLs -------------------------------------------------------------------------------

    def build_url(self, *segments: str) -> str:
        """``homeserver_url + prefix + /seg/...``, each segment percent-encoded on its own.

        Adds ``?user_id=<app_service_user_id>`` when set. An empty segment raises ValueError
        naming its position.
        """
        return self.build_url_with_query(segments, {})

    def build_base_url(self, *segments: str) -> str:
        """Like `build_url` but without the client prefix (media, ``/_matrix/client/v1``...)."""
        return self._finish(self.homeserver_url + join_segments(segments), {})

    def build_url_with_query(self, segments: Sequence[str], query: Mapping[str, QueryValue]) -> str:
        """`build_url` plus a query string; list values repeat their key (``via=a&via=b``).

        The ``user_id`` of identity assertion is appended last and wins over a ``user_id`` key
        in ``query`` (as in gomatrix).
        """
        return self._finish(self.homeserver_url + self.prefix + join_segments(segments), query)

    def _finish(self, url: str, query: Mapping[str, QueryValue]) -> str:
        if not isinstance(query, Mapping):
            raise TypeError(f"query must be a mapping, got {type(query).__name__}")
        if self.app_service_user_id:
            query = {k: v for k, v in query.items() if k != "user_id"}
            query["user_id"] = self.app_service_user_id
        pairs = encode_query(query)
        return f"{url}?{'&'.join(pairs)}" if pairs else url

    # --- requests ---------------------------------------------------------------------------

    async def make_request(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        content: bytes | None = None,
        content_type: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (per-request HTTP timeout, in the contract)
    ) -> Any:
        """Send a request and return its decoded JSON answer (``{}`` for an empty 2xx body).

        ``body`` is JSON-encoded (an object with ``to_dict()`` is converted first); ``content``
        sends raw bytes instead. Raises `HTTPError` for a non-2xx answer (wrapping `RespError`
        when the body has an errcode) or a 2xx answer that is not JSON, and
        `ConnectionFailedError`/`RequestTimeoutError` when no answer came. Retries per
        ``self.retry`` always re-send the same URL, so a txnId in it is reused.

        Each try is bounded by ``timeout`` (default ``self.timeout``) and the whole call, waits
        included, by ``self.retry.deadline`` — or by ``timeout`` when that is given and longer.
        """
        if not isinstance(method, str) or not method.isalpha():
            raise ValueError(f"method must be an HTTP method name, got {method!r}")
        method = method.upper()
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, got {type(url).__name__}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"{method}: url must be an absolute http(s) URL (see build_url), got a "
                f"{parts.scheme or 'relative'} URL with path {parts.path!r}"
            )
        path = parts.path or "/"
        where = f"{method} {path}"
        stats, endpoint = self.request_stats, endpoint_template(path)
        payload, headers = self._encode_body(body, content, content_type, where)
        if self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        policy = self.retry
        if timeout is None:
            per_try, budget = self.timeout, policy.deadline
        else:  # an explicit long-poll timeout may outlast the retry deadline
            per_try = _check_timeout(timeout, "timeout")
            budget = max(policy.deadline, per_try)
        start = time.monotonic()
        attempt = 0
        answered: HTTPError | None = None  # the last retryable answer, should the deadline end it
        while True:
            attempt += 1
            limit = max(0.001, min(per_try, budget - (time.monotonic() - start)))
            sent = time.perf_counter()
            try:
                async with asyncio.timeout(limit):
                    resp = await self.http.request(
                        method,
                        url,
                        content=payload,
                        headers=headers,
                        timeout=httpx.Timeout(limit),
                    )
            except (httpx.UnsupportedProtocol, httpx.LocalProtocolError):
                raise  # a bad request, not a network failure: retrying cannot help
            except (httpx.TransportError, TimeoutError) as exc:
                stats.observe(method, endpoint, STATUS_ERROR, time.perf_counter() - sent)
                delay = policy.backoff(attempt)
                retryable = never_sent(exc) or method in IDEMPOTENT_METHODS
                if not retryable or not self._may_retry(attempt, delay, start, budget):
                    timed_out = isinstance(exc, TimeoutError | httpx.TimeoutException)
                    if answered is not None and limit < per_try and timed_out:
                        # the deadline, not the server, cut this last try short: the server's
                        # last answer says more than "no answer within a few ms"
                        raise answered from exc
                    raise _transport_failure(exc, method, path, attempt, limit, retryable) from exc
                stats.retried(method, endpoint, RETRY_CONNECTION)
                log.warning(
                    "%s failed (%s: %s); retry %d/%d in %.2f s",
                    where,
                    type(exc).__name__,
                    exc,
                    attempt,
                    policy.max_attempts - 1,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            stats.observe(method, endpoint, resp.status_code, time.perf_counter() - sent)
            contents = resp.content
            if 200 <= resp.status_code < 300:
                return _decode_json(resp.status_code, contents, where)
            error = _http_error(resp.status_code, contents, where)
            if not is_retryable_answer(error):
                raise error
            wrapped = error.wrapped_error
            hint = retry_hint(
                resp.headers.get("Retry-After"),
                wrapped.retry_after_ms if wrapped is not None else None,
            )
            delay = hint if hint is not None else policy.backoff(attempt)
            if not self._may_retry(attempt, delay, start, budget):
                raise error
            answered = error
            stats.retried(
                method,
                endpoint,
                RETRY_RATE_LIMITED if resp.status_code == 429 else RETRY_SERVER_ERROR,
            )
            log.warning(
                "%s answered HTTP %d; retry %d/%d in %.2f s%s",
                where,
                resp.status_code,
                attempt,
                policy.max_attempts - 1,
                delay,
                " (server's hint)" if hint is not None else "",
            )
            await asyncio.sleep(delay)

    def _may_retry(self, attempt: int, delay: float, start: float, budget: float) -> bool:
        if attempt >= self.retry.max_attempts:
            return False
        return time.monotonic() - start + delay < budget

    @staticmethod
    def _encode_body(
        body: Any, content: bytes | None, content_type: str | None, where: str
    ) -> tuple[bytes | None, dict[str, str]]:
        if content is not None:
            if body is not None:
                raise TypeError(f"{where}: pass either body (JSON) or content (bytes), not both")
            if not isinstance(content, bytes | bytearray | memoryview):
                raise TypeError(f"{where}: content must be bytes, got {type(content).__name__}")
            return bytes(content), {"Content-Type": content_type or DEFAULT_CONTENT_TYPE}
        if body is None:
            return None, {}
        if isinstance(body, _ToDict):
            body = body.to_dict()
        try:
            payload = orjson.dumps(body)
        except TypeError as err:
            raise TypeError(f"{where}: request body is not JSON-serialisable: {err}") from None
        return payload, {"Content-Type": content_type or JSON_CONTENT_TYPE}

    # --- identity and credentials -----------------------------------------------------------

    def new_txn_id(self) -> str:
        """A transaction ID unique to this client instance, across processes and restarts."""
        return f"{self._txn_base}.{next(self._txn_counter)}"

    def as_user(self, user_id: str) -> Self:
        """A client of the same class acting as ``user_id`` (identity assertion).

        It shares this client's HTTP pool, homeserver, access token, retry policy, timeout,
        store and request stats, and gets its own default syncer. Closing it never closes the
        shared pool.
        """
        _check_user_id(user_id, "as_user: user_id")
        return type(self)(
            self.homeserver_url,
            user_id,
            self.access_token,
            http=self.http,
            store=self.store,
            app_service_user_id=user_id,
            retry=self.retry,
            timeout=self.timeout,
            request_stats=self.request_stats,
        )

    def set_credentials(self, user_id: str, access_token: str) -> None:
        """Use ``user_id`` and ``access_token`` for subsequent requests."""
        _check_str(user_id, "user_id")
        _check_token(access_token)
        self.user_id = user_id
        self.access_token = access_token
        if self._default_syncer is not None:
            self._default_syncer.user_id = user_id

    def clear_credentials(self) -> None:
        """Forget the user ID and access token (requests go out unauthenticated)."""
        self.user_id = ""
        self.access_token = ""
        if self._default_syncer is not None:
            self._default_syncer.user_id = ""

    # --- lifecycle --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the HTTP pool if this client created it (a pool passed in is left open)."""
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _check_str(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")


def _check_token(value: object) -> None:
    _check_str(value, "access_token")
    if isinstance(value, str) and not all(0x21 <= ord(c) <= 0x7E for c in value):
        # The token itself is never echoed.
        raise ValueError("access_token must be printable ASCII without spaces")


def _check_user_id(value: object, name: str) -> None:
    _check_str(value, name)
    if not isinstance(value, str) or not value.startswith("@") or ":" not in value:
        raise ValueError(f"{name} must be a Matrix user ID like @name:server, got {value!r}")


def _check_timeout(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value}")
    return float(value)


def _decode_json(status: int, contents: bytes, where: str) -> Any:
    if not contents.strip():
        return {}
    try:
        return orjson.loads(contents)
    except orjson.JSONDecodeError:
        raise HTTPError(
            status,
            f"{where} answered HTTP {status} with a body that is not JSON",
            contents,
        ) from None


def _http_error(status: int, contents: bytes, where: str) -> HTTPError:
    return HTTPError(status, f"{where} failed", contents, RespError.from_body(contents))


def _transport_failure(
    exc: BaseException, method: str, path: str, attempt: int, limit: float, retried: bool
) -> ConnectionFailedError:
    tries = f"{attempt} attempt{'s' if attempt != 1 else ''}"
    note = "" if retried else "; not retried: the request may have reached the server"
    if isinstance(exc, TimeoutError | httpx.TimeoutException) and not never_sent(exc):
        return RequestTimeoutError(
            f"{method} {path}: no complete answer within {limit:.3g} s ({tries}{note})",
            method=method,
            path=path,
            attempts=attempt,
        )
    detail = str(exc) or "no details"
    return ConnectionFailedError(
        f"{method} {path}: request failed ({tries}{note}): {type(exc).__name__}: {detail}",
        method=method,
        path=path,
        attempts=attempt,
    )
