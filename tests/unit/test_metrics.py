"""Metrics: endpoint templates, request counting in the client core, and the Prometheus exposition.

Request counting is checked against real uvicorn servers on 127.0.0.1 (or a closed port).
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from appservice.api import (
    ReqBanUser,
    ReqCreateRoom,
    ReqInviteUser,
    ReqKickUser,
    ReqLogin,
    ReqRegister,
    ReqUnbanUser,
)
from appservice.client import Client
from appservice.client.base import ConnectionFailedError
from appservice.client.retry import RetryPolicy
from appservice.errors import HTTPError
from appservice.metrics import (
    HANDLER_LATENCY_BUCKETS,
    ClientCollector,
    LatencyHistogram,
    RequestStats,
    ServerCollector,
    build_registry,
    endpoint_template,
    render,
)
from tests.helpers.loopback import Reply, ScriptedApp, free_port, serve

TOKEN = "SECRETTOKENVALUE"
FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02, deadline=10.0, jitter=0.0)

# IDs with distinctive words, so a leak into a label is easy to spot; some contain "/" or ".."
ROOM = "!ROOMID/../x:srvname"
USER = "@USERID/x:srvname"
EVENT = "$EVENTID/y"
ALIAS = "#ALIASNAME/z:srvname"
PUPPET = "@PUPPETID:srvname"
SECRET_WORDS = ("ROOMID", "USERID", "EVENTID", "ALIASNAME", "PUPPETID", "APPSVCID", "srvname")

C = "/_matrix/client/v3"


def _path(url: str) -> str:
    return urlsplit(url).path


# --- endpoint templates -----------------------------------------------------------------------


def _client_paths() -> list[tuple[str, str]]:
    """(path as the client builds it, expected template) for every path form the client uses."""
    c = Client("http://127.0.0.1:1", USER, TOKEN, app_service_user_id=PUPPET)
    r = "/_matrix/client/v3/rooms/{roomId}"
    pairs = [
        (
            c.build_url("rooms", ROOM, "send", "m.room.message", "txn.1"),
            f"{r}/send/{{eventType}}/{{txnId}}",
        ),
        (c.build_url("rooms", ROOM, "send", "state", "send"), f"{r}/send/{{eventType}}/{{txnId}}"),
        (
            c.build_url("rooms", ROOM, "state", "m.room.member", USER),
            f"{r}/state/{{eventType}}/{{stateKey}}",
        ),
        (c.build_url("rooms", ROOM, "state", "m.room.name"), f"{r}/state/{{eventType}}"),
        (
            c.build_url("rooms", ROOM, "state", "state", "sync"),
            f"{r}/state/{{eventType}}/{{stateKey}}",
        ),
        (c.build_url("rooms", ROOM, "state"), f"{r}/state"),
        (c.build_url("rooms", ROOM, "redact", EVENT, "txn.2"), f"{r}/redact/{{eventId}}/{{txnId}}"),
        (
            c.build_url("rooms", ROOM, "receipt", "m.read", EVENT),
            f"{r}/receipt/{{receiptType}}/{{eventId}}",
        ),
        (c.build_url("rooms", ROOM, "typing", USER), f"{r}/typing/{{userId}}"),
        (c.build_url("rooms", ROOM, "messages"), f"{r}/messages"),
        (c.build_url("rooms", ROOM, "joined_members"), f"{r}/joined_members"),
        (c.build_url("rooms", ROOM, "aliases"), f"{r}/aliases"),
        *(
            (c.build_url("rooms", ROOM, a), f"{r}/{a}")
            for a in ("leave", "forget", "invite", "kick", "ban", "unban")
        ),
        (c.build_url("user", USER, "filter"), f"{C}/user/{{userId}}/filter"),
        (c.build_url("profile", USER, "displayname"), f"{C}/profile/{{userId}}/displayname"),
        (c.build_url("profile", USER, "avatar_url"), f"{C}/profile/{{userId}}/avatar_url"),
        (c.build_url("presence", USER, "status"), f"{C}/presence/{{userId}}/status"),
        (c.build_url("join", ALIAS), f"{C}/join/{{roomIdOrAlias}}"),
        (c.build_url("join", ROOM), f"{C}/join/{{roomIdOrAlias}}"),
        (c.build_url("directory", "room", ALIAS), f"{C}/directory/room/{{roomAlias}}"),
        (c.build_base_url("_matrix", "media", "v3", "upload"), "/_matrix/media/v3/upload"),
        (
            c.build_base_url("_matrix", "client", "v1", "appservice", "APPSVCID", "ping"),
            "/_matrix/client/v1/appservice/{appserviceId}/ping",
        ),
        (
            c.build_url_with_query(["sync"], {"since": "s72594_4483", "timeout": "30000"}),
            f"{C}/sync",
        ),
        (c.build_base_url("_matrix", "client", "versions"), "/_matrix/client/versions"),
        *(
            (c.build_url(*p.split("/")), f"{C}/{p}")
            for p in (
                "createRoom",
                "joined_rooms",
                "publicRooms",
                "login",
                "logout",
                "logout/all",
                "register",
                "account/whoami",
                "voip/turnServer",
            )
        ),
    ]
    return [(_path(url), template) for url, template in pairs]


@pytest.mark.parametrize(("path", "template"), _client_paths())
def test_every_client_path_form_maps_to_its_template(path: str, template: str) -> None:
    got = endpoint_template(path)
    assert got == template
    for word in SECRET_WORDS:
        assert word not in got


@pytest.mark.parametrize(
    ("path", "template"),
    [
        # the homeserver URL's own path is dropped; an empty state key (trailing "/") is the same
        ("/proxy/matrix/_matrix/client/v3/sync", f"{C}/sync"),
        (
            f"{C}/rooms/!ROOMID:srvname/state/m.room.name/",
            f"{C}/rooms/{{roomId}}/state/{{eventType}}",
        ),
        # unknown endpoints keep only their known head
        (f"{C}/rooms/!ROOMID:srvname/frobnicate/EVENTID", f"{C}/rooms/{{roomId}}/{{unknown}}"),
        (f"{C}/pushrules/global/override/USERID", f"{C}/{{unknown}}"),
        (
            f"{C}/rooms/!ROOMID:srvname/send/m.x/TXN/EVENTID",
            f"{C}/rooms/{{roomId}}/send/{{eventType}}/{{txnId}}/{{unknown}}",
        ),
        ("/_matrix/federation/v1/send/ROOMID", "/_matrix/{unknown}"),
        ("/_matrix/client/v99/sync", "/_matrix/client/{unknown}"),
        ("/ROOMID/elsewhere", "/{unknown}"),
        ("/", "/{unknown}"),
        # other versions and media forms
        ("/_matrix/client/r0/profile/@USERID:srvname", "/_matrix/client/r0/profile/{userId}"),
        (
            "/_matrix/media/v3/download/srvname/MEDIAID",
            "/_matrix/media/v3/download/{serverName}/{mediaId}",
        ),
        (
            "/_matrix/client/v1/media/thumbnail/srvname/MEDIAID",
            "/_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}",
        ),
        (
            "/_matrix/media/v3/upload/srvname/MEDIAID",
            "/_matrix/media/v3/upload/{serverName}/{mediaId}",
        ),
    ],
)
def test_unknown_and_odd_paths_never_leak_ids(path: str, template: str) -> None:
    got = endpoint_template(path)
    assert got == template
    for word in (*SECRET_WORDS, "MEDIAID", "TXN", "proxy"):
        assert word not in got
    assert endpoint_template(path) == got  # stable (the static-path cache agrees)


# --- latency histogram ------------------------------------------------------------------------


def test_histogram_buckets_are_upper_inclusive_with_an_overflow_slot() -> None:
    hist = LatencyHistogram((0.1, 1.0))
    for seconds in (0.0, 0.1, 0.2, 1.0, 1.5, 99.0):
        hist.observe(seconds)
    assert hist.counts == [2, 2, 2]
    assert hist.cumulative() == [(0.1, 2), (1.0, 4), (math.inf, 6)]
    assert hist.count == 6
    assert hist.sum == pytest.approx(101.8)
    snap = hist.copy()
    hist.observe(0.5)
    assert (snap.count, hist.count) == (6, 7)


@pytest.mark.parametrize(
    ("bounds", "error", "message"),
    [
        ((), ValueError, "must not be empty"),
        ((0.1, 0.1), ValueError, "must increase"),
        ((0.0, 1.0), ValueError, "positive and finite"),
        ((1.0, math.inf), ValueError, "positive and finite"),
        ((1.0, "2"), TypeError, "must be a number"),
    ],
)
def test_histogram_rejects_bad_bounds(
    bounds: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        LatencyHistogram(bounds)
    with pytest.raises(error, match=message):
        RequestStats(bounds)


@pytest.mark.parametrize("seconds", [-0.001, math.nan])
def test_histogram_rejects_negative_or_nan_durations(seconds: float) -> None:
    hist = LatencyHistogram()
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        hist.observe(seconds)
    assert hist.count == 0


# --- counting real requests -------------------------------------------------------------------

OK_BODY = {
    "room_id": "!r:x",
    "event_id": "$e",
    "content_uri": "mxc://x/y",
    "filter_id": "f1",
    "joined": {},
    "chunk": [],
    "displayname": "d",
    "avatar_url": "mxc://a/b",
    "aliases": [],
    "joined_rooms": [],
    "user_id": "@u:x",
    "servers": [],
    "presence": "online",
    "duration_ms": 1,
    "versions": [],
    "access_token": "t",
    "device_id": "D",
    "uris": [],
    "ttl": 1,
}


async def test_every_client_method_is_counted_under_its_template() -> None:
    app = ScriptedApp(Reply(200, OK_BODY))
    lists = ScriptedApp(Reply(200, []))
    syncs = ScriptedApp(Reply(200, {"next_batch": "s1"}))
    stats = RequestStats()
    async with serve(app) as url, serve(lists) as url2, serve(syncs) as url3:
        c = Client(url, USER, TOKEN, request_stats=stats)
        p = c.as_user(PUPPET)
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: c.register(ReqRegister(username="u", password="p")),
            lambda: c.login(ReqLogin(type="m.login.password", user="u", password="p")),
            c.logout,
            c.logout_all,
            c.whoami,
            c.versions,
            c.turn_server,
            lambda: c.ping("APPSVCID", "txn1"),
            lambda: c.upload_to_content_repo(b"x", "text/plain", 1),
            lambda: p.send_text(ROOM, "hello"),
            lambda: p.send_message_event(ROOM, "m.room.message", {"body": "x"}),
            lambda: p.send_state_event(ROOM, "m.room.member", USER, {}),
            lambda: p.send_state_event(ROOM, "m.room.name", "", {}),
            lambda: p.redact_event(ROOM, EVENT),
            lambda: p.mark_read(ROOM, EVENT),
            lambda: p.user_typing(ROOM, True, 1000),
            lambda: c.get_display_name(USER),
            lambda: p.set_display_name("x"),
            c.get_avatar_url,
            lambda: p.set_avatar_url("mxc://a/b"),
            lambda: c.get_status(USER),
            lambda: p.set_status("online"),
            lambda: c.create_room(ReqCreateRoom()),
            lambda: p.join_room(ROOM),
            lambda: p.join_room(ALIAS, "srvname"),
            lambda: p.leave_room(ROOM),
            lambda: p.forget_room(ROOM),
            lambda: c.invite_user(ROOM, ReqInviteUser(user_id=USER)),
            lambda: c.kick_user(ROOM, ReqKickUser(user_id=USER)),
            lambda: c.ban_user(ROOM, ReqBanUser(user_id=USER)),
            lambda: c.unban_user(ROOM, ReqUnbanUser(user_id=USER)),
            lambda: c.state_event(ROOM, "m.room.member", USER),
            lambda: c.state_event(ROOM, "m.room.name", ""),
            lambda: c.joined_members(ROOM),
            c.joined_rooms,
            lambda: c.messages(ROOM, "s1", "", "b", 10),
            lambda: c.public_rooms(10, "", "srvname"),
            lambda: c.public_rooms_filtered(10, "", "srvname", "term"),
            lambda: c.create_alias(ALIAS, ROOM),
            lambda: c.delete_alias(ALIAS),
            lambda: c.resolve_alias(ALIAS),
            lambda: c.get_aliases(ROOM),
            lambda: c.create_filter({}),
        ]
        for call in calls:
            await call()
        # endpoints answering other shapes, on clients that share the same stats
        async with Client(url2, USER, TOKEN, request_stats=stats) as c2:
            await c2.get_state(ROOM)
        async with Client(url3, USER, TOKEN, request_stats=stats) as c3:
            await c3.sync_request(0, "s0", "f1", False, "")
        await c.aclose()

    r = f"{C}/rooms/{{roomId}}"
    expected = {
        ("POST", f"{C}/register"): 1,
        ("POST", f"{C}/login"): 1,
        ("POST", f"{C}/logout"): 1,
        ("POST", f"{C}/logout/all"): 1,
        ("GET", f"{C}/account/whoami"): 1,
        ("GET", "/_matrix/client/versions"): 1,
        ("GET", f"{C}/voip/turnServer"): 1,
        ("POST", "/_matrix/client/v1/appservice/{appserviceId}/ping"): 1,
        ("POST", "/_matrix/media/v3/upload"): 1,
        ("PUT", f"{r}/send/{{eventType}}/{{txnId}}"): 2,
        ("PUT", f"{r}/state/{{eventType}}/{{stateKey}}"): 1,
        ("PUT", f"{r}/state/{{eventType}}"): 1,
        ("PUT", f"{r}/redact/{{eventId}}/{{txnId}}"): 1,
        ("POST", f"{r}/receipt/{{receiptType}}/{{eventId}}"): 1,
        ("PUT", f"{r}/typing/{{userId}}"): 1,
        ("GET", f"{C}/profile/{{userId}}/displayname"): 1,
        ("PUT", f"{C}/profile/{{userId}}/displayname"): 1,
        ("GET", f"{C}/profile/{{userId}}/avatar_url"): 1,
        ("PUT", f"{C}/profile/{{userId}}/avatar_url"): 1,
        ("GET", f"{C}/presence/{{userId}}/status"): 1,
        ("PUT", f"{C}/presence/{{userId}}/status"): 1,
        ("POST", f"{C}/createRoom"): 1,
        ("POST", f"{C}/join/{{roomIdOrAlias}}"): 2,
        ("POST", f"{r}/leave"): 1,
        ("POST", f"{r}/forget"): 1,
        ("POST", f"{r}/invite"): 1,
        ("POST", f"{r}/kick"): 1,
        ("POST", f"{r}/ban"): 1,
        ("POST", f"{r}/unban"): 1,
        ("GET", f"{r}/state/{{eventType}}/{{stateKey}}"): 1,
        ("GET", f"{r}/state/{{eventType}}"): 1,
        ("GET", f"{r}/joined_members"): 1,
        ("GET", f"{C}/joined_rooms"): 1,
        ("GET", f"{r}/messages"): 1,
        ("GET", f"{C}/publicRooms"): 1,
        ("POST", f"{C}/publicRooms"): 1,
        ("PUT", f"{C}/directory/room/{{roomAlias}}"): 1,
        ("DELETE", f"{C}/directory/room/{{roomAlias}}"): 1,
        ("GET", f"{C}/directory/room/{{roomAlias}}"): 1,
        ("GET", f"{r}/aliases"): 1,
        ("POST", f"{C}/user/{{userId}}/filter"): 1,
        ("GET", f"{r}/state"): 1,
        ("GET", f"{C}/sync"): 1,
    }
    got = stats.requests()
    assert got == {(m, e, "200"): n for (m, e), n in expected.items()}
    assert len(app.requests) + len(lists.requests) + len(syncs.requests) == sum(expected.values())
    assert stats.retries() == {}
    latency = stats.latency()
    assert {key: h.count for key, h in latency.items()} == expected

    body, _ = render(build_registry(ClientCollector(stats)))
    text = body.decode()
    for word in (*SECRET_WORDS, TOKEN, c._txn_base, "m.room", "hello"):
        assert word not in text


async def test_429_then_200_counts_two_tries_and_one_retry() -> None:
    app = ScriptedApp(
        Reply(429, {"errcode": "M_LIMIT_EXCEEDED", "error": "slow", "retry_after_ms": 10}),
        Reply(200, {"event_id": "$e"}),
    )
    async with serve(app) as url, Client(url, USER, TOKEN, retry=FAST) as c:
        await c.send_text(ROOM, "hi")
    send = ("PUT", f"{C}/rooms/{{roomId}}/send/{{eventType}}/{{txnId}}")
    assert c.request_stats.requests() == {(*send, "429"): 1, (*send, "200"): 1}
    assert c.request_stats.retries() == {(*send, "429"): 1}
    assert c.request_stats.latency()[send].count == 2


async def test_503_retry_is_counted_as_5xx_and_a_final_404_is_not_retried() -> None:
    app = ScriptedApp(
        Reply(503, {"errcode": "M_UNKNOWN"}),
        Reply(404, {"errcode": "M_NOT_FOUND", "error": "no"}),
    )
    async with serve(app) as url, Client(url, USER, TOKEN, retry=FAST) as c:
        with pytest.raises(HTTPError) as caught:
            await c.resolve_alias(ALIAS)
    assert caught.value.code == 404
    alias = ("GET", f"{C}/directory/room/{{roomAlias}}")
    assert c.request_stats.requests() == {(*alias, "503"): 1, (*alias, "404"): 1}
    assert c.request_stats.retries() == {(*alias, "5xx"): 1}


async def test_connection_refused_is_counted_as_error_with_connection_retries() -> None:
    async with Client(f"http://127.0.0.1:{free_port()}", USER, TOKEN, retry=FAST) as c:
        with pytest.raises(ConnectionFailedError):
            await c.whoami()
    whoami = ("GET", f"{C}/account/whoami")
    assert c.request_stats.requests() == {(*whoami, "error"): 3}
    assert c.request_stats.retries() == {(*whoami, "connection"): 2}
    assert c.request_stats.latency()[whoami].count == 3


async def test_latency_is_measured_per_try() -> None:
    app = ScriptedApp(Reply(200, {"user_id": USER}, delay=0.06))
    async with serve(app) as url, Client(url, USER, TOKEN) as c:
        await c.whoami()
    hist = c.request_stats.latency()[("GET", f"{C}/account/whoami")]
    assert hist.sum >= 0.06
    assert dict(hist.cumulative())[0.05] == 0
    assert hist.count == 1


async def test_as_user_clients_share_their_parents_stats() -> None:
    app = ScriptedApp(Reply(200, {"event_id": "$e"}))
    async with serve(app) as url, Client(url, USER, TOKEN) as parent:
        puppet = parent.as_user(PUPPET)
        grandchild = puppet.as_user("@other:srvname")
        assert puppet.request_stats is parent.request_stats is grandchild.request_stats
        await puppet.send_text(ROOM, "a")
        await grandchild.send_text(ROOM, "b")
        await parent.send_text(ROOM, "c")
        async with Client(url, USER, TOKEN) as stranger:
            assert stranger.request_stats is not parent.request_stats
            await stranger.send_text(ROOM, "d")
    send = ("PUT", f"{C}/rooms/{{roomId}}/send/{{eventType}}/{{txnId}}", "200")
    assert parent.request_stats.requests() == {send: 3}
    assert stranger.request_stats.requests() == {send: 1}


def test_request_stats_argument_is_type_checked() -> None:
    with pytest.raises(TypeError, match="request_stats must be a RequestStats"):
        Client("http://127.0.0.1:1", request_stats={})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ClientCollector needs a RequestStats"):
        ClientCollector(object())  # type: ignore[arg-type]


# --- exposition -------------------------------------------------------------------------------


def _samples(text: str) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, family.name
        out.setdefault(family.name, []).extend(family.samples)
    return out


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    hits = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(hits) == 1, (name, labels, samples)
    return hits[0]


def test_client_exposition_parses_with_counts_retries_and_latency() -> None:
    stats = RequestStats((0.1, 1.0))
    send, sync = f"{C}/rooms/{{roomId}}/send/{{eventType}}/{{txnId}}", f"{C}/sync"
    stats.observe("PUT", send, 429, 0.05)
    stats.observe("PUT", send, 200, 0.5)
    stats.retried("PUT", send, "429")
    stats.observe("GET", sync, 0, 2.0)
    stats.observe("GET", sync, 0, 0.01)
    stats.retried("GET", sync, "connection")
    body, content_type = render(build_registry(ClientCollector(stats)))
    assert content_type.startswith("text/plain")
    fams = _samples(body.decode())
    reqs = fams["appservice_client_requests"]
    name = "appservice_client_requests_total"
    assert _value(reqs, name, method="PUT", endpoint=send, status="429") == 1
    assert _value(reqs, name, method="PUT", endpoint=send, status="200") == 1
    assert _value(reqs, name, method="GET", endpoint=sync, status="error") == 2
    assert len(reqs) == 3
    retries = fams["appservice_client_retries"]
    name = "appservice_client_retries_total"
    assert _value(retries, name, method="PUT", endpoint=send, reason="429") == 1
    assert _value(retries, name, method="GET", endpoint=sync, reason="connection") == 1
    lat = fams["appservice_client_request_duration_seconds"]
    bucket = "appservice_client_request_duration_seconds_bucket"
    assert _value(lat, bucket, method="GET", endpoint=sync, le="0.1") == 1
    assert _value(lat, bucket, method="GET", endpoint=sync, le="1.0") == 1
    assert _value(lat, bucket, method="GET", endpoint=sync, le="+Inf") == 2
    count = "appservice_client_request_duration_seconds_count"
    assert _value(lat, count, method="PUT", endpoint=send) == 2
    total = "appservice_client_request_duration_seconds_sum"
    assert _value(lat, total, method="PUT", endpoint=send) == pytest.approx(0.55)


@dataclass
class FakeServer:
    """A ServerMetricsSource as plain attributes (the Protocol also accepts properties)."""

    transactions_accepted: int = 7
    transactions_duplicate: int = 2
    transactions_rejected_busy: int = 1
    items_accepted: int = 40
    items_handled: int = 35
    items_failed: int = 3
    items_retried: int = 5
    inbox_pending: int = 2
    handler_latency: LatencyHistogram = field(
        default_factory=lambda: LatencyHistogram(HANDLER_LATENCY_BUCKETS)
    )


def test_server_exposition_renders_every_server_metric() -> None:
    source = FakeServer()
    for seconds in (0.0002, 0.003, 0.003, 20.0):
        source.handler_latency.observe(seconds)
    registry = build_registry(ServerCollector(source))
    fams = _samples(render(registry)[0].decode())
    counters = {
        "appservice_transactions_accepted": 7,
        "appservice_transactions_duplicate": 2,
        "appservice_transactions_rejected_busy": 1,
        "appservice_items_accepted": 40,
        "appservice_items_handled": 35,
        "appservice_items_failed": 3,
        "appservice_handler_retries": 5,
    }
    for name, value in counters.items():
        assert _value(fams[name], f"{name}_total") == value
    assert _value(fams["appservice_inbox_pending"], "appservice_inbox_pending") == 2
    lat = fams["appservice_handler_latency_seconds"]
    assert _value(lat, "appservice_handler_latency_seconds_bucket", le="0.0005") == 1
    assert _value(lat, "appservice_handler_latency_seconds_bucket", le="0.005") == 3
    assert _value(lat, "appservice_handler_latency_seconds_bucket", le="10.0") == 3
    assert _value(lat, "appservice_handler_latency_seconds_bucket", le="+Inf") == 4
    assert _value(lat, "appservice_handler_latency_seconds_count") == 4
    assert set(fams) == {
        *counters,
        "appservice_inbox_pending",
        "appservice_handler_latency_seconds",
    }

    source.items_handled, source.inbox_pending = 36, 0  # read again at every scrape
    fams = _samples(render(registry)[0].decode())
    assert _value(fams["appservice_items_handled"], "appservice_items_handled_total") == 36
    assert _value(fams["appservice_inbox_pending"], "appservice_inbox_pending") == 0


def test_one_registry_serves_both_collectors_and_refuses_duplicates() -> None:
    stats = RequestStats()
    stats.observe("GET", f"{C}/sync", 200, 0.1)
    registry = build_registry(ServerCollector(FakeServer()), ClientCollector(stats))
    names = {f.name for f in text_string_to_metric_families(render(registry)[0].decode())}
    assert {"appservice_items_handled", "appservice_client_requests"} <= names
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        build_registry(ClientCollector(stats), ClientCollector(RequestStats()))


def test_render_negotiates_openmetrics() -> None:
    registry = build_registry(ServerCollector(FakeServer()))
    body, content_type = render(registry, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    plain, plain_type = render(registry, "text/plain")
    assert plain_type.startswith("text/plain")
    assert b"# EOF" not in plain


def test_importing_the_client_does_not_import_prometheus_client() -> None:
    code = "import sys, appservice.client; print('prometheus_client' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
