"""The HTTP surface: every appservice route under ``/_matrix/app/v1`` and the legacy paths.

Transactions, user and alias queries, the five thirdparty routes (also under
``/_matrix/app/unstable``), ping, plus unauthenticated ``/health/live``, ``/health/ready`` and
``/metrics``. Every error is a Matrix error JSON: unknown route 404 and wrong method 405
``M_UNRECOGNIZED``, bad JSON 400 ``M_NOT_JSON``, a non-transaction 400 ``M_BAD_JSON``, too large a
body 413 ``M_TOO_LARGE``, an unexpected failure 500 ``M_UNKNOWN`` (never a traceback).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Lifespan, Receive, Scope, Send

from appservice.server.auth import check_hs_token
from appservice.server.context import txn_id_var
from appservice.server.http import (
    EMPTY_OK,
    M_MISSING_PARAM,
    M_NOT_FOUND,
    M_NOT_JSON,
    M_TOO_LARGE,
    M_UNKNOWN,
    M_UNRECOGNIZED,
    MatrixHTTPError,
    error_response,
    json_response,
    ok_empty,
)
from appservice.server.thirdparty import ThirdPartyHandler

log = logging.getLogger("appservice.server.routes")

V1 = "/_matrix/app/v1"
UNSTABLE = "/_matrix/app/unstable"


class ServerTarget(Protocol):
    """What the routes need from the application service."""

    hs_token: str
    max_body_bytes: int
    thirdparty: ThirdPartyHandler | None

    async def receive_transaction(self, txn_id: str, body: bytes) -> None:
        """Accept (or recognise as a duplicate) a parsed-once transaction body."""

    async def query_user(self, user_id: str) -> bool | None:
        """The user query handler's answer, or ``None`` when none is registered."""

    async def query_alias(self, alias: str) -> bool | None:
        """The alias query handler's answer, or ``None`` when none is registered."""

    def received_ping(self, transaction_id: str | None) -> None:
        """Note a ping from the homeserver."""

    def readiness(self) -> str | None:
        """``None`` when ready, else why not."""

    def metrics_text(self) -> str:
        """Prometheus text exposition of the counters."""


async def read_raw_body(receive: Receive, content_length: str | None, limit: int) -> bytes:
    """The body from ASGI ``receive``, or 413 ``M_TOO_LARGE`` as soon as it exceeds ``limit``
    bytes (at once when ``Content-Length`` says so); ``ClientDisconnect`` if the client left."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise MatrixHTTPError(413, M_TOO_LARGE, f"Body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise MatrixHTTPError(413, M_TOO_LARGE, f"Body is larger than {limit} bytes")
        if not message.get("more_body", False):
            if not chunks:
                return chunk  # the usual case: the whole body in one message, no copy
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 ``M_TOO_LARGE`` as soon as it exceeds ``limit`` bytes."""
    return await read_raw_body(request.receive, request.headers.get("content-length"), limit)


_OK_START: list[tuple[bytes, bytes]] = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(EMPTY_OK)).encode()),
]


class TransactionEndpoint:
    """``PUT /transactions/{txnId}`` as a plain ASGI app.

    The hottest route reads its two headers straight from the raw list and answers with two
    ASGI messages, without Starlette's Request and Response objects. Errors are raised as
    :class:`MatrixHTTPError` like everywhere else, so the app's exception handlers answer them.
    """

    def __init__(self, target: ServerTarget) -> None:
        self._target = target

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self._target
        txn_id: str = scope["path_params"]["txn_id"]
        txn_id_var.set(txn_id)
        authorization = content_length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is None:  # the first one counts, as in Starlette's Headers
                    authorization = value.decode("latin-1")
            elif name == b"content-length" and content_length is None:
                content_length = value.decode("latin-1")
        headers = {} if authorization is None else {"authorization": authorization}
        query_string: bytes = scope.get("query_string", b"")
        query = QueryParams(query_string) if query_string else {}
        check_hs_token(headers, query, target.hs_token)
        body = await read_raw_body(receive, content_length, target.max_body_bytes)
        await target.receive_transaction(txn_id, body)
        await send({"type": "http.response.start", "status": 200, "headers": _OK_START})
        await send({"type": "http.response.body", "body": EMPTY_OK})


def _fields(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if k != "access_token"}


def _found(results: list[dict[str, Any]], what: str) -> Response:
    if not results:
        raise MatrixHTTPError(404, M_NOT_FOUND, f"No {what} were found")
    return json_response(results)


def build_routes(target: ServerTarget) -> list[BaseRoute]:
    """The route table bound to ``target``."""

    def authed(
        fn: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            check_hs_token(request.headers, request.query_params, target.hs_token)
            return await fn(request)

        return endpoint

    async def user(request: Request) -> Response:
        found = await target.query_user(request.path_params["user_id"])
        if not found:
            raise MatrixHTTPError(404, M_NOT_FOUND, "User not found")
        return ok_empty()

    async def room_alias(request: Request) -> Response:
        found = await target.query_alias(request.path_params["alias"])
        if not found:
            raise MatrixHTTPError(404, M_NOT_FOUND, "Room alias not found")
        return ok_empty()

    async def ping(request: Request) -> Response:
        body = await read_body(request, 65536)
        transaction_id: str | None = None
        if body:
            try:
                decoded = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise MatrixHTTPError(400, M_NOT_JSON, "Body is not valid JSON") from None
            if isinstance(decoded, dict) and isinstance(decoded.get("transaction_id"), str):
                transaction_id = decoded["transaction_id"]
        target.received_ping(transaction_id)
        return ok_empty()

    def third() -> ThirdPartyHandler:
        if target.thirdparty is None:
            raise MatrixHTTPError(404, M_NOT_FOUND, "No third-party protocols are bridged here")
        return target.thirdparty

    async def tp_protocol(request: Request) -> Response:
        result = await third().get_protocol(request.path_params["protocol"])
        if result is None:
            raise MatrixHTTPError(404, M_NOT_FOUND, "Unknown protocol")
        return json_response(result)

    async def tp_location(request: Request) -> Response:
        protocol = request.path_params["protocol"]
        return _found(await third().query_locations(protocol, _fields(request)), "locations")

    async def tp_user(request: Request) -> Response:
        protocol = request.path_params["protocol"]
        return _found(await third().query_users(protocol, _fields(request)), "users")

    async def tp_location_lookup(request: Request) -> Response:
        alias = request.query_params.get("alias")
        if not alias:
            raise MatrixHTTPError(400, M_MISSING_PARAM, "Missing 'alias' parameter")
        return _found(await third().lookup_locations(alias), "locations")

    async def tp_user_lookup(request: Request) -> Response:
        user_id = request.query_params.get("userid")
        if not user_id:
            raise MatrixHTTPError(400, M_MISSING_PARAM, "Missing 'userid' parameter")
        return _found(await third().lookup_users(user_id), "users")

    async def live(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def ready(request: Request) -> Response:
        why = target.readiness()
        if why is not None:
            return error_response(503, M_UNKNOWN, why)
        return json_response({"status": "ready"})

    async def metrics(request: Request) -> Response:
        return Response(target.metrics_text(), media_type="text/plain; version=0.0.4")

    transaction = TransactionEndpoint(target)
    routes: list[BaseRoute] = []
    for prefix in (V1, ""):
        routes += [
            Route(f"{prefix}/transactions/{{txn_id}}", transaction, methods=["PUT"]),
            Route(f"{prefix}/users/{{user_id:path}}", authed(user), methods=["GET"]),
            Route(f"{prefix}/rooms/{{alias:path}}", authed(room_alias), methods=["GET"]),
        ]
    for prefix in (V1, UNSTABLE):
        tp = f"{prefix}/thirdparty"
        routes += [
            Route(f"{tp}/protocol/{{protocol}}", authed(tp_protocol), methods=["GET"]),
            Route(f"{tp}/location/{{protocol}}", authed(tp_location), methods=["GET"]),
            Route(f"{tp}/user/{{protocol}}", authed(tp_user), methods=["GET"]),
            Route(f"{tp}/location", authed(tp_location_lookup), methods=["GET"]),
            Route(f"{tp}/user", authed(tp_user_lookup), methods=["GET"]),
        ]
    routes += [
        Route(f"{V1}/ping", authed(ping), methods=["POST"]),
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return routes


async def _matrix_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MatrixHTTPError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        response = error_response(404, M_UNRECOGNIZED, "Unrecognized request")
    elif exc.status_code == 405:
        response = error_response(405, M_UNRECOGNIZED, "Method not allowed on this endpoint")
    else:
        response = error_response(exc.status_code, M_UNKNOWN, str(exc.detail))
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A client that hung up mid-body: nothing was recorded and nobody is left to answer, so
    this is worth a line in the log, not an error with a traceback."""
    log.info("client left before sending the whole body of %s %s", request.method, request.url.path)
    return error_response(400, M_UNKNOWN, "The request body was cut off")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, M_UNKNOWN, "Internal server error")


def build_app(
    target: ServerTarget,
    lifespan: Lifespan[Starlette] | Callable[[Starlette], AbstractAsyncContextManager[None]],
) -> Starlette:
    """The Starlette ASGI application for ``target``."""
    return Starlette(
        routes=build_routes(target),
        exception_handlers={
            MatrixHTTPError: _matrix_error,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            Exception: _server_error,
        },
        lifespan=lifespan,
    )
