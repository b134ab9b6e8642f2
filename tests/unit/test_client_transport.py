"""Request building and response decoding of ClientBase.make_request.

httpx.MockTransport is used only to capture the exact request bytes the client builds; failures
and timing run against real loopback servers (tests/helpers/loopback.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from appservice.client.base import ClientBase, ConnectionFailedError, RequestTimeoutError
from appservice.client.retry import RetryPolicy
from appservice.errors import HTTPError, RespError
from appservice.sync import DefaultSyncer
from tests.helpers.loopback import Reply, ScriptedApp, serve

HS = "https://hs.example"
TOKEN = "syt_very_secret_token"


class Capture:
    """A MockTransport handler that records requests and answers a fixed response."""

    def __init__(self, response: httpx.Response | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.response = response or httpx.Response(200, json={"ok": True})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.response


@pytest.fixture
async def capture() -> AsyncIterator[tuple[ClientBase, Capture]]:
    cap = Capture()
    http = httpx.AsyncClient(transport=httpx.MockTransport(cap))
    client = ClientBase(HS, "@bot:hs.example", TOKEN, http=http)
    yield client, cap
    await http.aclose()


async def test_token_only_in_authorization_header(capture: tuple[ClientBase, Capture]) -> None:
    client, cap = capture
    url = client.build_url_with_query(["sync"], {"since": "s1"})
    assert await client.make_request("GET", url) == {"ok": True}
    (req,) = cap.requests
    assert req.method == "GET"
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert str(req.url) == HS + "/_matrix/client/v3/sync?since=s1"
    assert TOKEN not in str(req.url)
    assert req.content == b""
    assert "content-type" not in req.headers


async def test_no_authorization_header_without_token(capture: tuple[ClientBase, Capture]) -> None:
    client, cap = capture
    client.clear_credentials()
    await client.make_request("GET", client.build_url("versions"))
    assert "authorization" not in cap.requests[0].headers


async def test_json_body_and_raw_path_are_exact(capture: tuple[ClientBase, Capture]) -> None:
    client, cap = capture
    txn = client.new_txn_id()
    url = client.build_url("rooms", "!room/x:hs", "send", "m.room.message", txn)
    await client.make_request("put", url, {"msgtype": "m.text", "body": "héllo"})
    (req,) = cap.requests
    assert req.method == "PUT"
    assert (
        req.url.raw_path
        == f"/_matrix/client/v3/rooms/%21room%2Fx:hs/send/m.room.message/{txn}".encode()
    )
    assert req.headers["content-type"] == "application/json"
    assert req.content == orjson.dumps({"msgtype": "m.text", "body": "héllo"})


@dataclass
class _Req:
    name: str
    topic: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.topic is not None:
            out["topic"] = self.topic
        return out


async def test_body_with_to_dict_is_converted(capture: tuple[ClientBase, Capture]) -> None:
    client, cap = capture
    await client.make_request("POST", client.build_url("createRoom"), _Req("r"))
    assert orjson.loads(cap.requests[0].content) == {"name": "r"}


async def test_raw_content_upload(capture: tuple[ClientBase, Capture]) -> None:
    client, cap = capture
    url = client.build_base_url("_matrix", "media", "v3", "upload")
    await client.make_request("POST", url, content=b"\x89PNG", content_type="image/png")
    await client.make_request("POST", url, content=b"raw")
    first, second = cap.requests
    assert (first.content, first.headers["content-type"]) == (b"\x89PNG", "image/png")
    assert (second.content, second.headers["content-type"]) == (b"raw", "application/octet-stream")
    assert first.headers["authorization"] == f"Bearer {TOKEN}"


async def test_identity_assertion_reaches_the_wire(capture: tuple[ClientBase, Capture]) -> None:
    client, cap = capture
    puppet = client.as_user("@_p_alice:hs.example")
    await puppet.make_request("GET", puppet.build_url("account", "whoami"))
    (req,) = cap.requests
    assert req.url.params.get_list("user_id") == ["@_p_alice:hs.example"]
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    await puppet.aclose()
    assert not client.http.is_closed  # the shared pool survives the puppet


async def test_bad_arguments_are_clear_errors(capture: tuple[ClientBase, Capture]) -> None:
    client, cap = capture
    url = client.build_url("x")
    with pytest.raises(TypeError, match=r"either body .* or content"):
        await client.make_request("POST", url, {"a": 1}, content=b"x")
    with pytest.raises(TypeError, match=r"POST /_matrix/client/v3/x: request body is not JSON"):
        await client.make_request("POST", url, {"a": object()})
    with pytest.raises(ValueError, match="HTTP method"):
        await client.make_request("GE T", url)
    with pytest.raises(ValueError, match="timeout must be a positive"):
        await client.make_request("GET", url, timeout=0)
    with pytest.raises(ValueError, match="absolute http"):
        await client.make_request("GET", "/_matrix/client/v3/x")
    with pytest.raises(ValueError, match="absolute http"):
        await client.make_request("GET", "ftp://hs.example/x")
    with pytest.raises(TypeError, match="url must be a str"):
        await client.make_request("GET", None)  # type: ignore[arg-type]
    assert cap.requests == []


@pytest.mark.parametrize("body", [b"", b"  \n"])
async def test_empty_2xx_body_is_an_empty_dict(body: bytes) -> None:
    cap = Capture(httpx.Response(200, content=body))
    async with httpx.AsyncClient(transport=httpx.MockTransport(cap)) as http:
        assert await ClientBase(HS, http=http).make_request("PUT", HS + "/x") == {}


async def test_non_json_2xx_body_is_an_http_error() -> None:
    cap = Capture(httpx.Response(200, content=b"<html>Welcome to nginx!</html>"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(cap)) as http:
        with pytest.raises(HTTPError) as info:
            await ClientBase(HS, http=http).make_request("GET", HS + "/x?user_id=@a:b")
    err = info.value
    assert err.code == 200
    assert err.contents == b"<html>Welcome to nginx!</html>"
    assert "GET /x answered HTTP 200 with a body that is not JSON" in str(err)
    assert "Welcome to nginx!" in str(err)
    assert "user_id" not in str(err)


@pytest.mark.parametrize("token", ["bad\ntoken", "with space", "tök"])
async def test_access_token_that_could_break_the_header_is_rejected(token: str) -> None:
    with pytest.raises(ValueError, match="access_token must be printable ASCII") as info:
        ClientBase(HS, access_token=token)
    assert token not in str(info.value)
    async with ClientBase(HS) as client:
        with pytest.raises(ValueError, match="access_token must be printable ASCII"):
            client.set_credentials("@u:hs", token)
        assert client.access_token == ""


async def test_empty_app_service_user_id_means_unset() -> None:
    async with ClientBase(HS, app_service_user_id="") as client:
        assert client.app_service_user_id is None
        assert "user_id" not in client.build_url("x")
    with pytest.raises(ValueError, match="app_service_user_id must be a Matrix user ID"):
        ClientBase(HS, app_service_user_id="bob")


async def test_owned_pool_closed_passed_pool_left_open() -> None:
    owned = ClientBase(HS)
    await owned.aclose()
    assert owned.http.is_closed
    await owned.aclose()  # idempotent
    async with httpx.AsyncClient() as http:
        async with ClientBase(HS, http=http) as borrowed:
            pass
        assert borrowed.http is http
        assert not http.is_closed


async def test_as_user_of_owning_client_does_not_close_pool() -> None:
    async with ClientBase(HS, "@as:hs", TOKEN) as parent:
        async with parent.as_user("@_x:hs"):
            pass
        assert not parent.http.is_closed
    assert parent.http.is_closed


# --- against a real loopback server -----------------------------------------------------------


async def test_error_body_becomes_http_error_wrapping_resp_error() -> None:
    app = ScriptedApp(Reply(404, {"errcode": "M_NOT_FOUND", "error": "Room alias not found"}))
    async with serve(app) as url, ClientBase(url, access_token=TOKEN) as client:
        with pytest.raises(HTTPError) as info:
            await client.make_request("GET", client.build_url("directory", "room", "#a:hs"))
    err = info.value
    assert err.code == 404
    assert isinstance(err.wrapped_error, RespError)
    assert err.wrapped_error.errcode == "M_NOT_FOUND"
    assert str(err.wrapped_error) == "M_NOT_FOUND: Room alias not found"
    assert "GET /_matrix/client/v3/directory/room/%23a:hs" in str(err)
    assert "M_NOT_FOUND: Room alias not found" in str(err)
    assert TOKEN not in str(err)
    assert len(app.requests) == 1


async def test_error_without_errcode_has_no_wrapped_error() -> None:
    app = ScriptedApp(Reply(400, {"error": "bad"}))
    async with serve(app) as url, ClientBase(url) as client:
        with pytest.raises(HTTPError) as info:
            await client.make_request("POST", client.build_url("x"), {})
    assert info.value.code == 400
    assert info.value.wrapped_error is None
    assert info.value.contents == b'{"error": "bad"}'


async def test_request_reaches_a_real_server_exactly(caplog: pytest.LogCaptureFixture) -> None:
    app = ScriptedApp(Reply(200, {"event_id": "$e"}))
    caplog.set_level(logging.DEBUG)
    async with serve(app) as url, ClientBase(url, "@as:hs", TOKEN) as client:
        puppet = client.as_user("@_p:hs")
        target = puppet.build_url("rooms", "!r/1:hs", "send", "m.room.message", "t1")
        assert await puppet.make_request("PUT", target, {"body": "x"}) == {"event_id": "$e"}
    (seen,) = app.requests
    assert seen.method == "PUT"
    assert seen.raw_path == "/_matrix/client/v3/rooms/%21r%2F1:hs/send/m.room.message/t1"
    assert seen.query == "user_id=@_p:hs"
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    assert orjson.loads(seen.body) == {"body": "x"}
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


async def test_per_call_timeout_bounds_a_slow_post_and_it_is_not_retried() -> None:
    app = ScriptedApp(Reply(200, {}, delay=1.0))
    policy = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.01, deadline=5)
    async with serve(app) as url, ClientBase(url, retry=policy, timeout=10) as client:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError) as info:
            await client.make_request("POST", client.build_url("createRoom"), {}, timeout=0.3)
        elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 0.9
    assert len(app.requests) == 1
    err = info.value
    assert isinstance(err, TimeoutError)
    assert isinstance(err, ConnectionFailedError)
    assert isinstance(err, HTTPError)
    assert err.code == 0
    assert err.attempts == 1
    assert "POST /_matrix/client/v3/createRoom" in str(err)
    assert "may have reached the server" in str(err)


async def test_default_timeout_applies_when_no_override() -> None:
    app = ScriptedApp(Reply(200, {}, delay=1.0))
    async with serve(app) as url, ClientBase(url, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            await client.make_request("POST", client.build_url("x"), {})
        assert time.monotonic() - started < 0.9


def test_set_credentials_moves_the_default_syncer_to_the_new_user() -> None:
    client = ClientBase("http://127.0.0.1:1")
    client.set_credentials("@alice:hs", "tok")
    assert isinstance(client.syncer, DefaultSyncer)
    assert client.syncer.user_id == "@alice:hs"
    client.clear_credentials()
    assert client.syncer.user_id == ""

    mine = DefaultSyncer("@bot:hs", client.store)
    custom = ClientBase("http://127.0.0.1:1", syncer=mine)
    custom.set_credentials("@alice:hs", "tok")
    assert mine.user_id == "@bot:hs"
