"""The HTTP contract of the appservice server: auth, routes, methods and bad bodies.

Driven through httpx's ASGI transport (the same ASGI app uvicorn serves); every error must be a
Matrix error JSON with the expected status and errcode, and a rejected delivery records nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from appservice.events import Event
from appservice.registration import Registration
from appservice.server import AppService, MemoryInbox
from tests.server.conftest import message, txn_body

V1 = "/_matrix/app/v1"


@pytest.fixture
async def svc(registration: Registration) -> AsyncIterator[AppService]:
    service = AppService(
        registration, "http://127.0.0.1:1", inbox=MemoryInbox(), max_body_bytes=4096
    )
    async with service:
        yield service


@pytest.fixture
async def http(svc: AppService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=svc.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://as.test") as client:
        yield client


def auth(svc: AppService) -> dict[str, str]:
    return {"Authorization": f"Bearer {svc.registration.hs_token}"}


def assert_error(resp: httpx.Response, status: int, errcode: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["errcode"] == errcode
    assert isinstance(body["error"], str)
    assert body["error"]


def collect(svc: AppService) -> list[Event]:
    seen: list[Event] = []

    @svc.on_event_type("m.room.message")
    def on_message(event: Event) -> None:
        seen.append(event)

    return seen


# --- auth -------------------------------------------------------------------------------------

AUTH_ROUTES = [
    ("PUT", f"{V1}/transactions/a1", txn_body([])),
    ("PUT", "/transactions/a2", txn_body([])),
    ("GET", f"{V1}/users/@_t_x:localhost", None),
    ("GET", "/users/@_t_x:localhost", None),
    ("GET", f"{V1}/rooms/%23_t_x:localhost", None),
    ("GET", "/rooms/%23_t_x:localhost", None),
    ("GET", f"{V1}/thirdparty/protocol/irc", None),
    ("GET", "/_matrix/app/unstable/thirdparty/user?userid=@a:b", None),
    ("POST", f"{V1}/ping", b'{"transaction_id": "p"}'),
]


@pytest.mark.parametrize(("method", "path", "body"), AUTH_ROUTES)
async def test_missing_token_is_401(
    http: httpx.AsyncClient, method: str, path: str, body: bytes | None
) -> None:
    assert_error(await http.request(method, path, content=body), 401, "M_MISSING_TOKEN")


@pytest.mark.parametrize(("method", "path", "body"), AUTH_ROUTES)
async def test_wrong_bearer_token_is_403(
    http: httpx.AsyncClient, method: str, path: str, body: bytes | None
) -> None:
    resp = await http.request(method, path, content=body, headers={"Authorization": "Bearer nope"})
    assert_error(resp, 403, "M_FORBIDDEN")


@pytest.mark.parametrize(
    ("header", "query", "status", "errcode"),
    [
        ("right", None, 200, None),
        (None, "right", 200, None),
        ("right", "right", 200, None),
        (None, "wrong", 403, "M_FORBIDDEN"),
        ("right", "wrong", 403, "M_FORBIDDEN"),
        ("wrong", "right", 403, "M_FORBIDDEN"),
        ("basic", None, 401, "M_MISSING_TOKEN"),
        (None, None, 401, "M_MISSING_TOKEN"),
    ],
)
async def test_header_and_query_token_table(
    svc: AppService,
    http: httpx.AsyncClient,
    header: str | None,
    query: str | None,
    status: int,
    errcode: str | None,
    unique: str,
) -> None:
    token = {"right": svc.registration.hs_token, "wrong": "x" * 64}
    headers = {}
    if header == "basic":
        headers["Authorization"] = "Basic dXNlcjpwYXNz"
    elif header is not None:
        headers["Authorization"] = f"Bearer {token[header]}"
    params = {"access_token": token[query]} if query is not None else {}
    resp = await http.put(
        f"{V1}/transactions/{unique}", content=txn_body([]), headers=headers, params=params
    )
    if errcode is None:
        assert resp.status_code == 200
        assert resp.json() == {}
    else:
        assert_error(resp, status, errcode)


async def test_token_is_never_logged(
    svc: AppService, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = svc.registration.hs_token
    await http.put(f"{V1}/transactions/z", content=b"not json", headers=auth(svc))
    await http.put(f"{V1}/transactions/z", params={"access_token": secret + "x"})
    await http.get(f"{V1}/users/@a:b", params={"access_token": secret})
    ours = "\n".join(
        r.getMessage() + str(r.args) for r in caplog.records if r.name.startswith("appservice")
    )
    assert "transactions/z" in ours or caplog.records  # something was logged around the requests
    assert secret not in ours
    assert svc.registration.as_token not in ours


# --- routes and methods -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "errcode"),
    [
        ("PUT", f"{V1}/transactions/t1", 200, None),
        ("PUT", "/transactions/t2", 200, None),
        ("GET", f"{V1}/users/@_t_x:localhost", 404, "M_NOT_FOUND"),
        ("GET", "/users/@_t_x:localhost", 404, "M_NOT_FOUND"),
        ("GET", f"{V1}/rooms/%23_t_x:localhost", 404, "M_NOT_FOUND"),
        ("GET", "/rooms/%23_t_x:localhost", 404, "M_NOT_FOUND"),
        ("GET", f"{V1}/thirdparty/protocol/irc", 404, "M_NOT_FOUND"),
        ("GET", f"{V1}/thirdparty/location/irc", 404, "M_NOT_FOUND"),
        ("GET", f"{V1}/thirdparty/user/irc", 404, "M_NOT_FOUND"),
        ("GET", f"{V1}/thirdparty/location?alias=%23a:b", 404, "M_NOT_FOUND"),
        ("GET", f"{V1}/thirdparty/user?userid=@a:b", 404, "M_NOT_FOUND"),
        ("GET", "/_matrix/app/unstable/thirdparty/protocol/irc", 404, "M_NOT_FOUND"),
        ("GET", "/_matrix/app/unstable/thirdparty/location/irc", 404, "M_NOT_FOUND"),
        ("GET", "/_matrix/app/unstable/thirdparty/user/irc", 404, "M_NOT_FOUND"),
        ("GET", "/_matrix/app/unstable/thirdparty/location?alias=%23a:b", 404, "M_NOT_FOUND"),
        ("GET", "/_matrix/app/unstable/thirdparty/user?userid=@a:b", 404, "M_NOT_FOUND"),
        ("POST", f"{V1}/ping", 200, None),
        ("GET", f"{V1}/nothing", 404, "M_UNRECOGNIZED"),
        ("GET", "/", 404, "M_UNRECOGNIZED"),
        ("PUT", f"{V1}/transactions/", 404, "M_UNRECOGNIZED"),
        ("GET", "/_matrix/app/v2/transactions/1", 404, "M_UNRECOGNIZED"),
        ("GET", f"{V1}/transactions/t3", 405, "M_UNRECOGNIZED"),
        ("POST", f"{V1}/transactions/t3", 405, "M_UNRECOGNIZED"),
        ("DELETE", "/transactions/t3", 405, "M_UNRECOGNIZED"),
        ("PUT", f"{V1}/users/@a:b", 405, "M_UNRECOGNIZED"),
        ("POST", f"{V1}/rooms/%23a:b", 405, "M_UNRECOGNIZED"),
        ("GET", f"{V1}/ping", 405, "M_UNRECOGNIZED"),
        ("PUT", f"{V1}/thirdparty/protocol/irc", 405, "M_UNRECOGNIZED"),
    ],
)
async def test_route_and_method_table(
    svc: AppService,
    http: httpx.AsyncClient,
    method: str,
    path: str,
    status: int,
    errcode: str | None,
) -> None:
    body = txn_body([]) if method in ("PUT", "POST") else None
    resp = await http.request(method, path, content=body, headers=auth(svc))
    if errcode is None:
        assert resp.status_code == status, resp.text
        assert resp.json() == {}
    else:
        assert_error(resp, status, errcode)
    if status == 405:
        assert resp.headers["allow"]


# --- bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (b"", "M_NOT_JSON"),
        (b"{not json", "M_NOT_JSON"),
        (b"\xff\xfe", "M_NOT_JSON"),
        (b"[]", "M_BAD_JSON"),
        (b'"events"', "M_BAD_JSON"),
        (b"{}", "M_BAD_JSON"),
        (b'{"events": {}}', "M_BAD_JSON"),
        (b'{"events": [1]}', "M_BAD_JSON"),
        (b'{"events": [{"room_id": "!r:x"}]}', "M_BAD_JSON"),
        (b'{"events": [{"type": "m.room.message"}]}', "M_BAD_JSON"),
        (b'{"events": [{"type": 5, "room_id": "!r:x"}]}', "M_BAD_JSON"),
        (b'{"events": [], "ephemeral": {}}', "M_BAD_JSON"),
        (b'{"events": [], "ephemeral": [{"content": {}}]}', "M_BAD_JSON"),
        (b'{"events": [], "de.sorunome.msc2409.to_device": [7]}', "M_BAD_JSON"),
        (b'{"events": [], "device_lists": []}', "M_BAD_JSON"),
        (b'{"events": [], "org.matrix.msc3202.device_lists": {"changed": "x"}}', "M_BAD_JSON"),
        (b'{"events": [], "device_one_time_keys_count": []}', "M_BAD_JSON"),
    ],
)
async def test_bad_bodies_are_400_and_record_nothing(
    svc: AppService, http: httpx.AsyncClient, body: bytes, errcode: str, unique: str
) -> None:
    seen = collect(svc)
    path = f"{V1}/transactions/{unique}"
    assert_error(await http.put(path, content=body, headers=auth(svc)), 400, errcode)
    ok = txn_body([message("!r:localhost", 1)])
    assert (await http.put(path, content=ok, headers=auth(svc))).status_code == 200
    await svc.dispatcher.wait_idle()
    assert [e.id for e in seen] == ["$ev1-!r:localhost"]


async def test_body_over_the_bound_is_413(
    svc: AppService, http: httpx.AsyncClient, unique: str
) -> None:
    big = txn_body([message("!r:localhost", i) for i in range(40)])
    assert len(big) > svc.max_body_bytes
    path = f"{V1}/transactions/{unique}"
    assert_error(await http.put(path, content=big, headers=auth(svc)), 413, "M_TOO_LARGE")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: streamed and cut off
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    resp = await http.put(path, content=chunks(), headers=auth(svc))
    assert_error(resp, 413, "M_TOO_LARGE")
    assert svc.metrics.accepted_txns == 0


async def test_a_client_that_leaves_mid_body_is_logged_not_an_error(
    svc: AppService, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Driven on the raw ASGI app: the body's first half, then ``http.disconnect``. Nothing is
    recorded, nothing raises out of the app, and the log has one INFO line, no error."""
    body = txn_body([message("!r:localhost", 1)])
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT",
        "scheme": "http", "path": f"{V1}/transactions/{unique}", "raw_path": b"",
        "query_string": b"", "root_path": "", "server": ("127.0.0.1", 1),
        "client": ("127.0.0.1", 2),
        "headers": [(b"authorization", f"Bearer {svc.registration.hs_token}".encode())],
    }  # fmt: skip
    with caplog.at_level(logging.INFO, logger="appservice"):
        await svc.app(scope, receive, send)
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "left before sending the whole body" in caplog.records[0].getMessage()
    assert svc.metrics.accepted_txns == 0
    assert sent[0]["status"] != 500
    assert orjson.loads(sent[1]["body"])["errcode"] == "M_UNKNOWN"  # a Matrix error, as always


async def test_duplicate_txn_is_200_and_handled_once(
    svc: AppService, http: httpx.AsyncClient, unique: str
) -> None:
    seen = collect(svc)
    path = f"{V1}/transactions/{unique}"
    first = txn_body([message("!r:localhost", 1), message("!r:localhost", 2)])
    changed = txn_body([message("!r:localhost", 3)])  # a retry's body may differ; the id decides
    for body in (first, first, changed):
        resp = await http.put(path, content=body, headers=auth(svc))
        assert resp.status_code == 200
    await svc.dispatcher.wait_idle()
    assert [e.id for e in seen] == ["$ev1-!r:localhost", "$ev2-!r:localhost"]
    assert svc.metrics.duplicate_txns == 2


async def test_racing_deliveries_of_one_txn_are_handled_once(
    svc: AppService, http: httpx.AsyncClient, unique: str
) -> None:
    seen = collect(svc)
    body = txn_body([message("!r:localhost", i) for i in range(5)])
    path = f"{V1}/transactions/{unique}"
    results = await asyncio.gather(
        *(http.put(path, content=body, headers=auth(svc)) for _ in range(8))
    )
    assert all(r.status_code == 200 for r in results)
    await svc.dispatcher.wait_idle()
    assert len(seen) == 5


async def test_over_the_inbox_bound_is_503_and_loses_nothing(
    registration: Registration, unique: str
) -> None:
    svc = AppService(registration, "http://127.0.0.1:1", inbox=MemoryInbox(), max_pending=3)
    gate = asyncio.Event()
    seen: list[str] = []

    @svc.on_event_type("m.room.message")
    async def on_message(event: Event) -> None:
        await gate.wait()
        seen.append(event.id)

    async with svc:
        transport = httpx.ASGITransport(app=svc.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://as.test") as http:
            first = txn_body([message("!r:localhost", i) for i in range(3)])
            second = txn_body([message("!r:localhost", 3)])
            assert (
                await http.put(f"{V1}/transactions/{unique}-1", content=first, headers=auth(svc))
            ).status_code == 200
            busy = await http.put(
                f"{V1}/transactions/{unique}-2", content=second, headers=auth(svc)
            )
            assert_error(busy, 503, "M_LIMIT_EXCEEDED")
            assert_error(await http.get("/health/ready"), 503, "M_UNKNOWN")
            gate.set()
            await svc.dispatcher.wait_idle()
            assert (await http.get("/health/ready")).status_code == 200
            retry = await http.put(
                f"{V1}/transactions/{unique}-2", content=second, headers=auth(svc)
            )
            assert retry.status_code == 200
            await svc.dispatcher.wait_idle()
    assert seen == [f"$ev{i}-!r:localhost" for i in range(4)]
    assert svc.metrics.rejected_busy == 1


# --- queries, ping, health -------------------------------------------------------------------


async def test_user_and_alias_queries_reach_handlers_decoded(
    svc: AppService, http: httpx.AsyncClient
) -> None:
    asked: list[str] = []

    @svc.on_user_query
    async def user_query(user_id: str) -> bool:
        asked.append(user_id)
        return user_id == "@_t_yes:localhost"

    @svc.on_alias_query
    async def alias_query(alias: str) -> bool:
        asked.append(alias)
        return alias == "#_t_yes:localhost"

    h = auth(svc)
    assert (await http.get(f"{V1}/users/%40_t_yes%3Alocalhost", headers=h)).status_code == 200
    assert_error(await http.get(f"{V1}/users/@_t_no:localhost", headers=h), 404, "M_NOT_FOUND")
    assert (await http.get(f"{V1}/rooms/%23_t_yes%3Alocalhost", headers=h)).json() == {}
    assert_error(await http.get("/rooms/%23_t_no:localhost", headers=h), 404, "M_NOT_FOUND")
    assert asked == [
        "@_t_yes:localhost",
        "@_t_no:localhost",
        "#_t_yes:localhost",
        "#_t_no:localhost",
    ]


async def test_query_handler_error_is_500_json(svc: AppService, http: httpx.AsyncClient) -> None:
    @svc.on_user_query
    async def user_query(user_id: str) -> bool:
        raise RuntimeError("boom")

    transport = httpx.ASGITransport(app=svc.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://as.test") as client:
        resp = await client.get(f"{V1}/users/@_t_x:localhost", headers=auth(svc))
    assert_error(resp, 500, "M_UNKNOWN")
    assert "boom" not in resp.text


class IRC:
    async def get_protocol(self, protocol: str) -> dict[str, Any] | None:
        return (
            {"user_fields": ["nick"], "location_fields": ["channel"]} if protocol == "irc" else None
        )

    async def query_locations(self, protocol: str, fields: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {"alias": f"#irc_{fields['channel']}:localhost", "protocol": protocol, "fields": fields}
        ]

    async def query_users(self, protocol: str, fields: dict[str, str]) -> list[dict[str, Any]]:
        return []

    async def lookup_locations(self, alias: str) -> list[dict[str, Any]]:
        return [{"alias": alias, "protocol": "irc", "fields": {"channel": "x"}}]

    async def lookup_users(self, user_id: str) -> list[dict[str, Any]]:
        return [{"userid": user_id, "protocol": "irc", "fields": {"nick": "x"}}]


async def test_thirdparty_routes_call_the_handler(registration: Registration) -> None:
    svc = AppService(registration, "http://127.0.0.1:1", inbox=MemoryInbox(), thirdparty=IRC())
    async with svc:
        transport = httpx.ASGITransport(app=svc.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://as.test") as http:
            for prefix in (V1, "/_matrix/app/unstable"):
                tp = f"{prefix}/thirdparty"
                h = auth(svc)
                assert (await http.get(f"{tp}/protocol/irc", headers=h)).json()["user_fields"] == [
                    "nick"
                ]
                assert_error(await http.get(f"{tp}/protocol/xmpp", headers=h), 404, "M_NOT_FOUND")
                params = {"channel": "rust", "access_token": svc.registration.hs_token}
                locs = (await http.get(f"{tp}/location/irc", params=params)).json()
                assert locs == [
                    {
                        "alias": "#irc_rust:localhost",
                        "protocol": "irc",
                        "fields": {"channel": "rust"},
                    }
                ]
                assert_error(await http.get(f"{tp}/user/irc", headers=h), 404, "M_NOT_FOUND")
                r = await http.get(f"{tp}/location", params={"alias": "#a:b"}, headers=h)
                assert r.json()[0]["alias"] == "#a:b"
                r = await http.get(f"{tp}/user", params={"userid": "@a:b"}, headers=h)
                assert r.json()[0]["userid"] == "@a:b"
                assert_error(await http.get(f"{tp}/user", headers=h), 400, "M_MISSING_PARAM")
                assert_error(await http.get(f"{tp}/location", headers=h), 400, "M_MISSING_PARAM")


async def test_ping_is_recorded(svc: AppService, http: httpx.AsyncClient) -> None:
    h = auth(svc)
    assert (
        await http.post(f"{V1}/ping", content=b'{"transaction_id": "abc"}', headers=h)
    ).json() == {}
    assert_error(await http.post(f"{V1}/ping", content=b"{", headers=h), 400, "M_NOT_JSON")
    assert list(svc.pings_received) == ["abc"]


async def test_health_and_metrics_need_no_token(svc: AppService, http: httpx.AsyncClient) -> None:
    assert (await http.get("/health/live")).json() == {"status": "ok"}
    assert (await http.get("/health/ready")).json() == {"status": "ready"}
    await http.put(
        f"{V1}/transactions/m1", content=txn_body([message("!r:x", 1)]), headers=auth(svc)
    )
    await svc.dispatcher.wait_idle()
    text = (await http.get("/metrics")).text
    assert "appservice_transactions_accepted_total 1.0\n" in text
    assert "appservice_items_accepted_total 1.0\n" in text


async def test_not_started_is_503_and_ready_says_so(registration: Registration) -> None:
    svc = AppService(registration, "http://127.0.0.1:1", inbox=MemoryInbox())
    transport = httpx.ASGITransport(app=svc.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://as.test") as http:
        resp = await http.put(f"{V1}/transactions/x", content=txn_body([]), headers=auth(svc))
        assert_error(resp, 503, "M_UNKNOWN")
        assert_error(await http.get("/health/ready"), 503, "M_UNKNOWN")
    await svc.close()


async def test_rejected_delivery_records_no_txn_in_sql(
    registration: Registration, engine: Any, unique: str
) -> None:
    from sqlalchemy import text

    from appservice.server import SQLInbox

    svc = AppService(
        registration, "http://127.0.0.1:1", inbox=SQLInbox(engine), max_body_bytes=2048
    )
    async with svc:
        transport = httpx.ASGITransport(app=svc.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://as.test") as http:
            path = f"{V1}/transactions/{unique}"
            big = txn_body([message("!r:x", i) for i in range(30)])
            for body, headers in [
                (b"{", auth(svc)),
                (b"{}", auth(svc)),
                (big, auth(svc)),
                (txn_body([]), {}),
                (txn_body([]), {"Authorization": "Bearer bad"}),
            ]:
                assert (await http.put(path, content=body, headers=headers)).status_code >= 400
            assert (await http.get(path, headers=auth(svc))).status_code == 405
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM as_txn"))).scalar_one() == 0
        assert (await conn.execute(text("SELECT count(*) FROM as_txn_items"))).scalar_one() == 0
        assert (await conn.execute(text("SELECT count(*) FROM inbox"))).scalar_one() == 0


def test_orjson_roundtrip_of_the_helper() -> None:
    assert orjson.loads(txn_body([]))["events"] == []
