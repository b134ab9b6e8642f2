"""URL building and homeserver URL validation of the client core (pure, no network)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from appservice.client.base import ClientBase
from appservice.client.urls import encode_segment, validate_homeserver_url

HS = "https://matrix.example.org"
V3 = HS + "/_matrix/client/v3"


class PuppetClient(ClientBase):
    """A subclass, to check that as_user keeps the caller's class."""


@pytest.fixture
async def client() -> AsyncIterator[ClientBase]:
    c = ClientBase(HS, "@bot:example.org", "secret-token")
    yield c
    await c.aclose()


@pytest.fixture
async def asserting() -> AsyncIterator[ClientBase]:
    c = ClientBase(HS, "@bot:example.org", "as-token", app_service_user_id="@_irc_bob:example.org")
    yield c
    await c.aclose()


def test_prefix_is_v3() -> None:
    assert ClientBase.prefix == "/_matrix/client/v3"


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        (("user", "@example:matrix.org", "filter"), V3 + "/user/@example:matrix.org/filter"),
        (("directory", "room", "#matrix:matrix.org"), V3 + "/directory/room/%23matrix:matrix.org"),
        (("rooms", "!abc/def", "join"), V3 + "/rooms/%21abc%2Fdef/join"),
        (("rooms", "!r:hs", "event", "$ev+x=1,y;z&w"), V3 + "/rooms/%21r:hs/event/$ev+x=1,y;z&w"),
        (("rooms", "!r:hs", "state", "m.room.name"), V3 + "/rooms/%21r:hs/state/m.room.name"),
        (("profile", "@a b?c%d:hs", "displayname"), V3 + "/profile/@a%20b%3Fc%25d:hs/displayname"),
        (("rooms", "!r:hs", "state", "x.type", ".."), V3 + "/rooms/%21r:hs/state/x.type/%2E%2E"),
        (("rooms", "!r:hs", "state", "x.type", "."), V3 + "/rooms/%21r:hs/state/x.type/%2E"),
        (("rooms", "!r:hs", "state", "x", "a..b"), V3 + "/rooms/%21r:hs/state/x/a..b"),
        (("profile", "@é:hs"), V3 + "/profile/@%C3%A9:hs"),
        (("k", "a-b_c.d~e"), V3 + "/k/a-b_c.d~e"),
        ((), V3),
    ],
)
async def test_build_url_encodes_each_segment(
    client: ClientBase, segments: tuple[str, ...], expected: str
) -> None:
    assert client.build_url(*segments) == expected


async def test_encoded_segments_survive_httpx_and_keep_path_shape(client: ClientBase) -> None:
    url = client.build_url("rooms", "!a/../b?x#y", "state", "t", "..")
    raw = httpx.Request("GET", url).url.raw_path.decode()
    assert raw == "/_matrix/client/v3/rooms/%21a%2F..%2Fb%3Fx%23y/state/t/%2E%2E"
    assert raw.count("/") == 8  # _matrix client v3 rooms <id> state t <key>


@pytest.mark.parametrize(
    ("segments", "position"),
    [(("rooms", "", "join"), 2), (("",), 1), (("rooms", "!r:hs", "send", "m.x", ""), 5)],
)
async def test_empty_segment_names_its_position(
    client: ClientBase, segments: tuple[str, ...], position: int
) -> None:
    with pytest.raises(ValueError, match=rf"^path segment {position} is empty$"):
        client.build_url(*segments)
    with pytest.raises(ValueError, match=rf"path segment {position} is empty"):
        client.build_base_url(*segments)
    with pytest.raises(ValueError, match=rf"path segment {position} is empty"):
        client.build_url_with_query(segments, {"a": "b"})


async def test_non_str_segment_is_a_type_error(client: ClientBase) -> None:
    with pytest.raises(TypeError, match="path segment 2 must be a str, got int"):
        client.build_url("rooms", 5, "join")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single str"):
        client.build_url_with_query("rooms", {})


def test_encode_segment_examples() -> None:
    assert encode_segment("!room:hs", 1) == "%21room:hs"
    assert encode_segment("@u:hs", 1) == "@u:hs"


async def test_build_base_url_has_no_prefix(client: ClientBase) -> None:
    assert client.build_base_url("_matrix", "media", "v3", "upload") == (
        HS + "/_matrix/media/v3/upload"
    )
    assert client.build_base_url("_matrix", "client", "v1", "rooms", "!r:hs", "hierarchy") == (
        HS + "/_matrix/client/v1/rooms/%21r:hs/hierarchy"
    )


async def test_build_url_with_query_encodes_and_repeats_list_keys(client: ClientBase) -> None:
    url = client.build_url_with_query(
        ["join", "#room:hs"], {"via": ["a.org", "b.org:8448"], "reason": "x&y=z +%"}
    )
    assert url == (V3 + "/join/%23room:hs?via=a.org&via=b.org:8448&reason=x%26y%3Dz%20%2B%25")
    assert parse_qs(urlsplit(url).query) == {"via": ["a.org", "b.org:8448"], "reason": ["x&y=z +%"]}


async def test_build_url_with_empty_query_has_no_question_mark(client: ClientBase) -> None:
    assert client.build_url_with_query(["sync"], {}) == V3 + "/sync"
    assert client.build_url_with_query(["sync"], {"via": []}) == V3 + "/sync"


async def test_query_values_must_be_strings(client: ClientBase) -> None:
    with pytest.raises(TypeError, match="query value for 'limit' must be a str or list"):
        client.build_url_with_query(["messages"], {"limit": 10})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="query keys must be non-empty"):
        client.build_url_with_query(["messages"], {"": "x"})


async def test_identity_assertion_on_every_built_url(asserting: ClientBase) -> None:
    puppet = "@_irc_bob:example.org"
    urls = [
        asserting.build_url("account", "whoami"),
        asserting.build_base_url("_matrix", "media", "v3", "upload"),
        asserting.build_url_with_query(["rooms", "!r:hs", "messages"], {"dir": "b"}),
        asserting.build_url_with_query(["sync"], {"user_id": "@someone:else"}),
    ]
    for url in urls:
        assert parse_qs(urlsplit(url).query)["user_id"] == [puppet], url
    assert urls[0] == V3 + "/account/whoami?user_id=@_irc_bob:example.org"
    assert urls[2].endswith("/messages?dir=b&user_id=@_irc_bob:example.org")


async def test_no_user_id_without_identity_assertion(client: ClientBase) -> None:
    assert "user_id" not in client.build_url("account", "whoami")
    assert client.build_url_with_query(["sync"], {"user_id": "@x:y"}).endswith("?user_id=@x:y")


async def test_as_user_asserts_the_puppet_and_keeps_the_class() -> None:
    async with PuppetClient(HS, "@bot:example.org", "as-token") as base:
        puppet = base.as_user("@_irc_carol:example.org")
        assert type(puppet) is PuppetClient
        assert puppet.app_service_user_id == "@_irc_carol:example.org"
        assert puppet.user_id == "@_irc_carol:example.org"
        assert puppet.access_token == "as-token"
        assert puppet.http is base.http
        assert puppet.retry is base.retry
        assert puppet.store is base.store
        assert puppet.homeserver_url == base.homeserver_url
        for url in (
            puppet.build_url("profile", "@_irc_carol:example.org", "displayname"),
            puppet.build_base_url("_matrix", "media", "v3", "upload"),
            puppet.build_url_with_query(["sync"], {"since": "s1"}),
        ):
            assert parse_qs(urlsplit(url).query)["user_id"] == ["@_irc_carol:example.org"]
        other = puppet.as_user("@_irc_dave:example.org")
        assert parse_qs(urlsplit(other.build_url("x")).query)["user_id"] == [
            "@_irc_dave:example.org"
        ]
        assert base.app_service_user_id is None


@pytest.mark.parametrize("bad", ["", "bob", "bob:hs", "@bob"])
async def test_as_user_rejects_a_non_user_id(client: ClientBase, bad: str) -> None:
    with pytest.raises(ValueError, match="Matrix user ID"):
        client.as_user(bad)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://matrix.org/", "https://matrix.org"),
        ("https://matrix.org", "https://matrix.org"),
        ("http://127.0.0.1:8008", "http://127.0.0.1:8008"),
        ("http://[::1]:8008/", "http://[::1]:8008"),
        ("https://example.org/matrix//", "https://example.org/matrix"),
    ],
)
def test_valid_homeserver_urls(given: str, expected: str) -> None:
    assert validate_homeserver_url(given) == expected


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("", "must not be empty"),
        ("matrix.org", "has no scheme"),
        ("ftp://matrix.org", "scheme 'ftp'"),
        ("127.0.0.1:8008", "scheme '127.0.0.1'|no scheme"),
        ("http://", "has no host"),
        ("http:///path", "has no host"),
        ("https://matrix.org?x=1", "must not have a query"),
        ("https://matrix.org/?", "must not have a query"),
        ("https://matrix.org/#frag", "must not have a fragment"),
        ("https://user:pw@matrix.org", "must not contain credentials"),
        ("https://matrix.org:99999", "invalid port"),
        ("https://matrix.org:abc", "invalid port"),
        (" https://matrix.org", "whitespace"),
        ("https://matrix.org/a b", "whitespace"),
    ],
)
async def test_invalid_homeserver_urls_raise_value_error(bad: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        ClientBase(bad)


async def test_homeserver_url_credentials_are_not_echoed() -> None:
    with pytest.raises(ValueError, match="credentials") as info:
        ClientBase("https://user:hunter2@matrix.org")
    assert "hunter2" not in str(info.value)


def test_non_str_homeserver_url_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="homeserver_url must be a str"):
        ClientBase(None)  # type: ignore[arg-type]


async def test_trailing_slash_dropped_in_built_urls() -> None:
    async with ClientBase("https://hs.example/base/") as c:
        assert c.homeserver_url == "https://hs.example/base"
        assert c.build_url("versions") == "https://hs.example/base/_matrix/client/v3/versions"


async def test_new_txn_id_is_unique_per_call_and_per_client() -> None:
    async with ClientBase(HS) as one, ClientBase(HS) as two:
        ids = [one.new_txn_id() for _ in range(1000)] + [two.new_txn_id() for _ in range(1000)]
        assert len(set(ids)) == 2000
        assert all(encode_segment(t, 1) == t for t in ids)  # usable as a path segment verbatim


async def test_set_and_clear_credentials(client: ClientBase) -> None:
    client.set_credentials("@new:hs", "tok2")
    assert (client.user_id, client.access_token) == ("@new:hs", "tok2")
    client.clear_credentials()
    assert (client.user_id, client.access_token) == ("", "")
    with pytest.raises(TypeError, match="access_token must be a str"):
        client.set_credentials("@new:hs", None)  # type: ignore[arg-type]


async def test_repr_never_shows_the_token(client: ClientBase) -> None:
    assert "secret-token" not in repr(client)
    assert "@bot:example.org" in repr(client)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_bad_timeout_is_rejected(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout must be a positive finite number"):
        ClientBase(HS, timeout=timeout)
