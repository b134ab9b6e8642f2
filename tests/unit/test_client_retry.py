"""Retry behaviour of the client core: the policy's arithmetic, and retries against real servers.

Every network test here talks to a real uvicorn server on 127.0.0.1 (or a closed port).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from appservice.client.base import ClientBase, ConnectionFailedError
from appservice.client.retry import RetryPolicy, parse_retry_after, retry_hint
from appservice.errors import HTTPError
from tests.helpers.loopback import LoopbackServer, Reply, ScriptedApp, free_port, serve

TOKEN = "as_secret_token_value"
FAST = RetryPolicy(max_attempts=5, base_delay=0.05, max_delay=0.2, deadline=10.0, jitter=0.0)


# --- policy arithmetic ------------------------------------------------------------------------


def test_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0, jitter=0.0)
    assert [policy.backoff(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert policy.backoff(10_000) == 4.0


def test_backoff_jitter_only_shortens_within_bounds() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, jitter=0.25)
    assert policy.backoff(2, rand=0.0) == 2.0
    assert policy.backoff(2, rand=0.5) == 1.75
    draws = [policy.backoff(3) for _ in range(200)]
    assert all(3.0 < d <= 4.0 for d in draws)
    assert len(set(draws)) > 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be >= 1"),
        ({"base_delay": -1}, "base_delay must be >= 0"),
        ({"deadline": 0}, "deadline must be > 0"),
        ({"jitter": 1.5}, "jitter must be within"),
        ({"base_delay": 5, "max_delay": 1}, "max_delay .* must be >= base_delay"),
        ({"deadline": float("nan")}, "deadline must be >= 0"),
    ],
)
def test_policy_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_defaults_give_up_within_60_seconds() -> None:
    assert RetryPolicy().deadline == 60.0
    assert RetryPolicy.no_retries().max_attempts == 1


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now) == 7.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=7), usegmt=True), now) == 0.0
    for bad in (None, "", "-1", "soon", "inf"):
        assert parse_retry_after(bad) is None


def test_retry_hint_takes_the_longer_of_header_and_body() -> None:
    assert retry_hint("2", 500) == 2.0
    assert retry_hint("1", 2500) == 2.5
    assert retry_hint(None, 1200) == 1.2
    assert retry_hint("junk", None) is None


# --- against real loopback servers ------------------------------------------------------------


async def test_429_retry_after_ms_is_honoured_with_the_same_txn_id() -> None:
    app = ScriptedApp(
        Reply(429, {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many", "retry_after_ms": 600}),
        Reply(200, {"event_id": "$ok"}),
    )
    async with serve(app) as url, ClientBase(url, "@as:hs", TOKEN, retry=FAST) as client:
        puppet = client.as_user("@_p:hs")
        target = puppet.build_url("rooms", "!r:hs", "send", "m.room.message", puppet.new_txn_id())
        started = time.monotonic()
        assert await puppet.make_request("PUT", target, {"body": "hi"}) == {"event_id": "$ok"}
        elapsed = time.monotonic() - started
    first, second = app.requests
    assert first.raw_path == second.raw_path
    assert "/send/m.room.message/" in first.raw_path
    assert first.query == second.query == "user_id=@_p:hs"
    assert first.body == second.body
    assert second.at - first.at >= 0.6  # the hint beats FAST's 0.05 s backoff
    assert elapsed < 3


async def test_429_retry_after_header_is_honoured() -> None:
    app = ScriptedApp(
        Reply(429, {"errcode": "M_LIMIT_EXCEEDED", "error": "slow"}, headers={"Retry-After": "1"}),
        Reply(200, {}),
    )
    async with serve(app) as url, ClientBase(url, retry=FAST) as client:
        await client.make_request("POST", client.build_url("join", "#a:hs"), {})
    first, second = app.requests
    assert second.at - first.at >= 1.0
    assert first.raw_path == second.raw_path == "/_matrix/client/v3/join/%23a:hs"


async def test_503_then_200_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    app = ScriptedApp(Reply(503, body=b"busy"), Reply(503, body=b"busy"), Reply(200, {"a": 1}))
    caplog.set_level(logging.DEBUG)
    async with serve(app) as url, ClientBase(url, "@as:hs", TOKEN, retry=FAST) as client:
        target = client.build_url_with_query(["rooms", "!r:hs", "messages"], {"from": "t1"})
        assert await client.make_request("GET", target) == {"a": 1}
    assert len(app.requests) == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("GET /_matrix/client/v3/rooms/%21r:hs/messages" in w for w in warnings)
    assert all("503" in w for w in warnings)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


async def test_server_down_then_up_succeeds() -> None:
    app = ScriptedApp(Reply(200, {"versions": ["v1.19"]}))
    server = LoopbackServer(app)  # port reserved, refusing connections
    policy = RetryPolicy(max_attempts=30, base_delay=0.1, max_delay=0.3, deadline=10.0)

    async def come_up_later() -> None:
        await asyncio.sleep(1.0)
        await server.start()

    starter = asyncio.create_task(come_up_later())
    try:
        async with ClientBase(server.base_url, retry=policy) as client:
            started = time.monotonic()
            url = client.build_base_url("_matrix", "client", "versions")
            assert await client.make_request("POST", url, {}) == {"versions": ["v1.19"]}
            assert time.monotonic() - started >= 0.9
    finally:
        await starter
        await server.stop()
    assert len(app.requests) == 1  # refused attempts never reached it; POST retried safely


async def test_server_that_stays_down_raises_within_the_deadline() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    policy = RetryPolicy(max_attempts=100, base_delay=0.1, max_delay=0.3, deadline=1.5)
    async with ClientBase(url, retry=policy, app_service_user_id="@_p:hs") as client:
        started = time.monotonic()
        with pytest.raises(ConnectionFailedError) as info:
            await client.make_request("GET", client.build_url("rooms", "!r:hs", "state"))
        elapsed = time.monotonic() - started
    assert 1.0 <= elapsed <= 2.5
    err = info.value
    assert isinstance(err, ConnectionError)
    assert isinstance(err, HTTPError)
    assert err.code == 0
    assert err.attempts > 3
    assert err.path == "/_matrix/client/v3/rooms/%21r:hs/state"
    assert str(err).startswith("GET /_matrix/client/v3/rooms/%21r:hs/state: request failed")
    assert "ConnectError" in str(err)
    assert "user_id" not in str(err)
    assert isinstance(err.__cause__, Exception)


async def test_attempts_are_capped_and_the_last_http_error_raised() -> None:
    html = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
    html += b"<hr><center>nginx/1.27</center></body></html>"
    app = ScriptedApp(Reply(502, body=html, content_type="text/html"))
    policy = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.05, deadline=10.0)
    async with serve(app) as url, ClientBase(url, retry=policy) as client:
        with pytest.raises(HTTPError) as info:
            await client.make_request("GET", client.build_url("sync"))
    assert len(app.requests) == 3
    err = info.value
    assert err.code == 502
    assert err.wrapped_error is None
    assert err.contents == html
    text = str(err)
    assert text.startswith("HTTP 502: GET /_matrix/client/v3/sync failed")
    assert "502 Bad Gateway" in text
    assert "nginx/1.27" in text
    assert "<" not in text


async def test_proxy_502_forever_gives_up_at_the_deadline() -> None:
    app = ScriptedApp(Reply(502, body=b"<h1>Bad Gateway</h1>", content_type="text/html"))
    policy = RetryPolicy(max_attempts=1000, base_delay=0.1, max_delay=0.2, deadline=1.0)
    async with serve(app) as url, ClientBase(url, retry=policy) as client:
        started = time.monotonic()
        with pytest.raises(HTTPError) as info:
            await client.make_request("PUT", client.build_url("x"), {})
        elapsed = time.monotonic() - started
    assert elapsed <= 1.5
    assert info.value.code == 502
    assert 3 <= len(app.requests) < 20


async def test_unknown_token_is_not_retried() -> None:
    app = ScriptedApp(
        Reply(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token passed."}),
        Reply(200, {}),
    )
    async with serve(app) as url, ClientBase(url, "@u:hs", TOKEN, retry=FAST) as client:
        with pytest.raises(HTTPError) as info:
            await client.make_request("GET", client.build_url("account", "whoami"))
    assert len(app.requests) == 1
    err = info.value
    assert err.code == 401
    assert err.wrapped_error is not None
    assert err.wrapped_error.errcode == "M_UNKNOWN_TOKEN"
    assert TOKEN not in str(err)


async def test_hint_longer_than_the_deadline_raises_at_once() -> None:
    app = ScriptedApp(
        Reply(429, {"errcode": "M_LIMIT_EXCEEDED", "error": "x", "retry_after_ms": 30_000})
    )
    policy = RetryPolicy(max_attempts=5, base_delay=0.05, max_delay=0.1, deadline=2.0)
    async with serve(app) as url, ClientBase(url, retry=policy) as client:
        started = time.monotonic()
        with pytest.raises(HTTPError) as info:
            await client.make_request("POST", client.build_url("x"), {})
        assert time.monotonic() - started < 1.0
    assert info.value.code == 429
    assert info.value.wrapped_error is not None
    assert info.value.wrapped_error.retry_after_ms == 30_000
    assert len(app.requests) == 1


async def test_read_timeout_retries_get_but_not_post() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.05, deadline=10.0)
    slow_then_fast = ScriptedApp(Reply(200, {}, delay=1.0), Reply(200, {"second": True}))
    async with serve(slow_then_fast) as url, ClientBase(url, retry=policy) as client:
        result = await client.make_request("GET", client.build_url("x"), timeout=0.3)
    assert result == {"second": True}
    assert len(slow_then_fast.requests) == 2

    slow = ScriptedApp(Reply(200, {}, delay=1.0), Reply(200, {"second": True}))
    async with serve(slow) as url, ClientBase(url, retry=policy) as client:
        with pytest.raises(ConnectionFailedError, match="not retried"):
            await client.make_request("POST", client.build_url("x"), {}, timeout=0.3)
    assert len(slow.requests) == 1


async def test_no_retries_policy_makes_one_attempt() -> None:
    app = ScriptedApp(Reply(503, body=b"down"), Reply(200, {}))
    async with serve(app) as url, ClientBase(url, retry=RetryPolicy.no_retries()) as client:
        with pytest.raises(HTTPError) as info:
            await client.make_request("GET", client.build_url("x"))
    assert info.value.code == 503
    assert len(app.requests) == 1


async def test_as_user_client_shares_the_retry_policy() -> None:
    app = ScriptedApp(Reply(504, body=b"timeout"), Reply(200, {"ok": 1}))
    async with serve(app) as url, ClientBase(url, "@as:hs", TOKEN, retry=FAST) as client:
        puppet = client.as_user("@_p:hs")
        assert await puppet.make_request("GET", puppet.build_url("x")) == {"ok": 1}
    assert [r.query for r in app.requests] == ["user_id=@_p:hs", "user_id=@_p:hs"]


async def test_deadline_bounds_a_hanging_server_despite_a_longer_default_timeout() -> None:
    app = ScriptedApp(Reply(200, {}, delay=1.5))
    policy = RetryPolicy(max_attempts=5, base_delay=0.05, max_delay=0.05, deadline=0.5)
    async with serve(app) as url, ClientBase(url, retry=policy, timeout=30) as client:
        started = time.monotonic()
        with pytest.raises(ConnectionFailedError):
            await client.make_request("GET", client.build_url("x"))
        assert time.monotonic() - started < 1.0


async def test_a_last_try_cut_short_by_the_deadline_reports_the_servers_last_answer() -> None:
    """The deadline, not the server, ends the second try: the 502 the server gave is the error,
    not "no answer within a few milliseconds"."""
    app = ScriptedApp(Reply(502, body=b"<h1>Bad Gateway</h1>"), Reply(200, {}, delay=5.0))
    policy = RetryPolicy(max_attempts=5, base_delay=0.05, max_delay=0.05, deadline=0.5)
    async with serve(app) as url, ClientBase(url, retry=policy, timeout=30) as client:
        with pytest.raises(HTTPError) as info:
            await client.make_request("PUT", client.build_url("x"), {})
    assert info.value.code == 502
    assert len(app.requests) == 2


async def test_explicit_long_poll_timeout_may_outlast_the_deadline() -> None:
    app = ScriptedApp(Reply(200, {"next_batch": "s2"}, delay=0.8))
    policy = RetryPolicy(max_attempts=5, base_delay=0.05, max_delay=0.05, deadline=0.3)
    async with serve(app) as url, ClientBase(url, retry=policy) as client:
        result = await client.make_request("GET", client.build_url("sync"), timeout=3)
    assert result == {"next_batch": "s2"}
    assert len(app.requests) == 1


@pytest.mark.parametrize(
    ("status", "errcode"), [(502, "M_CONNECTION_FAILED"), (504, "M_CONNECTION_TIMEOUT")]
)
async def test_homeserver_report_of_a_failed_third_party_is_not_retried(
    status: int, errcode: str
) -> None:
    # The appservice ping endpoint answers so when the appservice is down: a final answer.
    app = ScriptedApp(Reply(status, {"errcode": errcode, "error": "appservice unreachable"}))
    async with serve(app) as url, ClientBase(url, access_token=TOKEN, retry=FAST) as client:
        with pytest.raises(HTTPError) as info:
            await client.make_request("POST", client.build_base_url("ping"), {})
    assert len(app.requests) == 1
    assert info.value.code == status
    assert info.value.wrapped_error is not None
    assert info.value.wrapped_error.errcode == errcode


async def test_gateway_error_with_other_errcode_is_retried() -> None:
    app = ScriptedApp(
        Reply(502, {"errcode": "M_UNKNOWN", "error": "upstream"}), Reply(200, {"ok": True})
    )
    async with serve(app) as url, ClientBase(url, access_token=TOKEN, retry=FAST) as client:
        assert await client.make_request("GET", client.build_base_url("x")) == {"ok": True}
    assert len(app.requests) == 2
