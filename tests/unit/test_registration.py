"""Tests for appservice.registration: files, validation, generation and namespace matching."""

from __future__ import annotations

import copy
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from appservice.registration import (
    KEY_MSC3202,
    KEY_PUSH_EPHEMERAL,
    Namespace,
    Namespaces,
    Registration,
    RegistrationError,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "registration.yaml.example"
AS_TOKEN = "as-secret-7f3c9a1e5b"
HS_TOKEN = "hs-secret-2d8e4b6f0c"


def base_dict() -> dict[str, Any]:
    return {
        "id": "irc",
        "url": "http://127.0.0.1:29331",
        "as_token": AS_TOKEN,
        "hs_token": HS_TOKEN,
        "sender_localpart": "_irc_bot",
        "namespaces": {
            "users": [{"exclusive": True, "regex": r"@_irc_.*:example\.org"}],
            "aliases": [{"exclusive": False, "regex": r"#_irc_.*:example\.org"}],
            "rooms": [],
        },
        "rate_limited": False,
        "protocols": ["irc"],
        "receive_ephemeral": True,
    }


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def assert_no_tokens(text: str, *tokens: str) -> None:
    for token in tokens or (AS_TOKEN, HS_TOKEN):
        assert token not in text


# --- round trip ------------------------------------------------------------------------------


def test_round_trip_keeps_unknown_keys_and_writes_0600(tmp_path: Path) -> None:
    data = base_dict()
    data["ip_range_whitelist"] = ["127.0.0.1/32"]
    data["io.element.msc4190"] = True
    data[KEY_PUSH_EPHEMERAL] = True
    data[KEY_MSC3202] = True
    data["namespaces"]["users"][0]["group_id"] = "+irc:example.org"
    data["namespaces"]["x.custom_kind"] = [{"regex": "x"}]
    src = write_yaml(tmp_path / "in.yaml", data)

    first = Registration.load(src)
    assert first.push_ephemeral
    assert first.msc3202
    assert first.receive_ephemeral
    assert first.rate_limited is False
    out = tmp_path / "out.yaml"
    first.save(out)

    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert yaml.safe_load(out.read_text()) == data
    second = Registration.load(out)
    assert second == first
    assert second.extra == {"ip_range_whitelist": ["127.0.0.1/32"], "io.element.msc4190": True}
    assert second.namespaces.users[0].extra == {"group_id": "+irc:example.org"}
    assert second.namespaces.extra == {"x.custom_kind": [{"regex": "x"}]}


def test_absent_optional_keys_stay_unset(tmp_path: Path) -> None:
    data = base_dict()
    for key in ("rate_limited", "protocols", "receive_ephemeral"):
        del data[key]
    del data["namespaces"]["rooms"]
    reg = Registration.load(write_yaml(tmp_path / "r.yaml", data))
    assert reg.rate_limited is None
    assert reg.protocols is None
    assert reg.receive_ephemeral is False
    assert reg.namespaces.rooms == []
    saved = reg.to_dict()
    assert "rate_limited" not in saved
    assert "protocols" not in saved
    assert KEY_PUSH_EPHEMERAL not in saved


def test_save_replaces_existing_file_tightens_mode_and_leaves_no_temp(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "reg.yaml", base_dict())
    path.chmod(0o644)
    reg = Registration.load(path)
    reg.url = "https://bridge.example.org/irc"
    reg.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Registration.load(path).url == "https://bridge.example.org/irc"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reg.yaml"]


def test_save_through_symlink_keeps_the_link(tmp_path: Path) -> None:
    real = write_yaml(tmp_path / "real.yaml", base_dict())
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    reg = Registration.load(link)
    reg.id = "irc2"
    reg.save()
    assert link.is_symlink()
    assert Registration.load(real).id == "irc2"


def test_failed_save_leaves_the_old_file_untouched(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "reg.yaml", base_dict())
    before = path.read_bytes()
    reg = Registration.load(path)
    reg.extra["not_yaml"] = object()
    with pytest.raises(RegistrationError) as info:
        reg.save()
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reg.yaml"]


def test_save_refuses_an_edited_invalid_registration(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "reg.yaml", base_dict())
    before = path.read_bytes()
    reg = Registration.load(path)
    reg.hs_token = reg.as_token
    with pytest.raises(RegistrationError, match="hs_token") as info:
        reg.save()
    assert_no_tokens(str(info.value))
    assert path.read_bytes() == before


def test_save_without_a_path_is_an_error() -> None:
    reg = Registration.from_dict(base_dict())
    with pytest.raises(RegistrationError, match="no path"):
        reg.save()


def test_save_into_missing_directory_is_a_registration_error(tmp_path: Path) -> None:
    reg = Registration.from_dict(base_dict())
    target = tmp_path / "nope" / "reg.yaml"
    with pytest.raises(RegistrationError, match="cannot write") as info:
        reg.save(target)
    assert str(target) in str(info.value)


# --- generate --------------------------------------------------------------------------------


def test_generate_makes_distinct_random_tokens_and_a_loadable_file(tmp_path: Path) -> None:
    one = Registration.generate(
        "irc", "http://127.0.0.1:29331", "_irc_bot", "_irc_", "_irc_", server_name="example.org"
    )
    two = Registration.generate(
        "irc", "http://127.0.0.1:29331", "_irc_bot", "_irc_", "_irc_", server_name="example.org"
    )
    tokens = [one.as_token, one.hs_token, two.as_token, two.hs_token]
    assert all(len(t) == 64 for t in tokens)
    assert len(set(tokens)) == 4
    path = tmp_path / "generated.yaml"
    one.save(path)
    loaded = Registration.load(path, server_name="example.org")
    assert loaded == one
    assert loaded.is_user_in_namespace("@_irc_alice:example.org")
    assert loaded.is_user_exclusive("@_irc_alice:example.org")
    assert loaded.is_alias_in_namespace("#_irc_#python:example.org")
    assert not loaded.is_user_in_namespace("@_irc_alice:exampleXorg")
    assert not loaded.is_user_in_namespace("@_irc_alice:example.org.evil.com")
    assert loaded.rate_limited is False
    assert loaded.bot_user_id() == "@_irc_bot:example.org"


def test_generate_escapes_prefixes_and_skips_aliases_when_none() -> None:
    reg = Registration.generate("t", None, "bot", "a.b", None, server_name="hs.local:8448")
    assert reg.url is None
    assert reg.namespaces.aliases == []
    assert reg.is_user_in_namespace("@a.bcd:hs.local:8448")
    assert not reg.is_user_in_namespace("@aXbcd:hs.local:8448")


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"user_prefix": ""}, "user_prefix"),
        ({"user_prefix": "Bad Prefix"}, "user_prefix"),
        ({"alias_prefix": "a:b"}, "alias_prefix"),
        ({"server_name": ""}, "server_name"),
        ({"server_name": "evil.org/x"}, "server_name"),
        ({"sender_localpart": "bot bot"}, "sender_localpart"),
        ({"url": "not a url"}, "url"),
    ],
)
def test_generate_rejects_bad_arguments(kwargs: dict[str, Any], key: str) -> None:
    args: dict[str, Any] = {
        "id": "irc",
        "url": "http://127.0.0.1:1",
        "sender_localpart": "_irc_bot",
        "user_prefix": "_irc_",
        "alias_prefix": "_irc_",
        "server_name": "example.org",
    } | kwargs
    with pytest.raises(RegistrationError) as info:
        Registration.generate(**args)
    assert info.value.key == key
    assert key in str(info.value)


# --- validation ------------------------------------------------------------------------------


def _set(path: str, value: Any) -> Any:
    def mutate(d: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        target: Any = d
        for p in parents:
            target = target[int(p)] if p.isdigit() else target[p]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value

    return mutate


_DELETE = object()

VALIDATION_CASES = [
    *[
        (_set(key, _DELETE), key, "required key is missing")
        for key in ("id", "url", "as_token", "hs_token", "sender_localpart", "namespaces")
    ],
    (_set("id", 7), "id", "expected a string, got an integer"),
    (_set("id", ""), "id", "non-empty"),
    (_set("id", "a|b"), "id", "'|'"),
    (_set("url", 8080), "url", "got an integer"),
    (_set("url", "ftp://example.org"), "url", "absolute http(s) URL"),
    (_set("url", "/relative/path"), "url", "absolute http(s) URL"),
    (_set("url", "localhost:8080"), "url", "absolute http(s) URL"),
    (_set("url", "http://"), "url", "absolute http(s) URL"),
    (_set("url", "http://h:port"), "url", "not a valid URL"),
    (_set("url", "http://h/?x=1"), "url", "query"),
    (_set("as_token", ""), "as_token", "must not be empty"),
    (_set("hs_token", ""), "hs_token", "must not be empty"),
    (_set("as_token", 12345), "as_token", "expected a string"),
    (_set("hs_token", None), "hs_token", "got null"),
    (_set("hs_token", "two words"), "hs_token", "whitespace"),
    (_set("hs_token", AS_TOKEN), "hs_token", "must be different"),
    (_set("sender_localpart", ""), "sender_localpart", "non-empty"),
    (_set("sender_localpart", "bot name"), "sender_localpart", "URL-encoding"),
    (_set("sender_localpart", ["bot"]), "sender_localpart", "got a list"),
    (_set("namespaces", []), "namespaces", "expected a mapping"),
    (_set("namespaces/users", "@_irc_.*"), "namespaces.users", "expected a list"),
    (_set("namespaces/aliases", None), "namespaces.aliases", "got null"),
    (_set("namespaces/users/0", "@_irc_.*"), "namespaces.users[0]", "expected a mapping"),
    (_set("namespaces/users/0/regex", _DELETE), "namespaces.users[0].regex", "missing"),
    (_set("namespaces/users/0/exclusive", _DELETE), "namespaces.users[0].exclusive", "missing"),
    (_set("namespaces/users/0/exclusive", "yes"), "namespaces.users[0].exclusive", "boolean"),
    (_set("namespaces/users/0/regex", 5), "namespaces.users[0].regex", "expected a string"),
    (
        _set("namespaces/aliases/0/regex", "#_irc_[a-z:example.org"),
        "namespaces.aliases[0].regex",
        "'#_irc_[a-z:example.org' does not compile: unterminated character set",
    ),
    (_set("rate_limited", "no"), "rate_limited", "boolean"),
    (_set("protocols", "irc"), "protocols", "expected a list"),
    (_set("protocols", ["irc", 3]), "protocols[1]", "expected a string"),
    (_set("receive_ephemeral", "true"), "receive_ephemeral", "boolean"),
    (_set(KEY_PUSH_EPHEMERAL, 1), KEY_PUSH_EPHEMERAL, "boolean"),
    (_set(KEY_MSC3202, "yes"), KEY_MSC3202, "boolean"),
]


@pytest.mark.parametrize(("mutate", "key", "fragment"), VALIDATION_CASES)
def test_validation_errors_name_file_and_key(
    tmp_path: Path, mutate: Any, key: str, fragment: str
) -> None:
    data = base_dict()
    mutate(data)
    path = write_yaml(tmp_path / "bad.yaml", data)
    with pytest.raises(RegistrationError) as info:
        Registration.load(path)
    message = str(info.value)
    assert info.value.key == key
    assert message.startswith(f"{path}: {key}: ")
    assert fragment in message
    assert_no_tokens(message)


@pytest.mark.parametrize(("mutate", "key", "fragment"), VALIDATION_CASES)
def test_from_dict_errors_name_the_key_without_a_path(mutate: Any, key: str, fragment: str) -> None:
    data = base_dict()
    mutate(data)
    with pytest.raises(RegistrationError) as info:
        Registration.from_dict(data)
    assert info.value.path is None
    assert str(info.value).startswith(f"{key}: ")
    assert_no_tokens(str(info.value))


def test_null_url_is_accepted() -> None:
    data = base_dict() | {"url": None}
    assert Registration.from_dict(data).url is None
    assert Registration.from_dict(data).to_dict()["url"] is None


def test_token_pasted_into_another_field_is_redacted(tmp_path: Path) -> None:
    data = base_dict() | {"url": AS_TOKEN}
    path = write_yaml(tmp_path / "r.yaml", data)
    with pytest.raises(RegistrationError, match="url") as info:
        Registration.load(path)
    assert_no_tokens(str(info.value))
    assert "<redacted>" in str(info.value)


def test_constructing_in_code_validates_too() -> None:
    with pytest.raises(RegistrationError, match="as_token: must not be empty"):
        Registration("irc", None, "", HS_TOKEN, "bot")
    with pytest.raises(RegistrationError, match=r"regex: regex '\(' does not compile"):
        Namespace("(", exclusive=True)
    with pytest.raises(RegistrationError, match=r"namespaces.rooms\[0\]: expected a Namespace"):
        Registration("irc", None, AS_TOKEN, HS_TOKEN, "bot", Namespaces(rooms=["!x"]))  # type: ignore[list-item]
    with pytest.raises(RegistrationError, match="extra"):
        Registration("irc", None, AS_TOKEN, HS_TOKEN, "bot", extra={"url": "http://x"})
    with pytest.raises(RegistrationError, match="extra"):
        Namespace("@a_.*", True, {"regex": "@.*"})


# --- file-level errors -----------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(RegistrationError, match="file not found") as info:
        Registration.load(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(RegistrationError, match="cannot read") as info:
        Registration.load(str(tmp_path))
    assert str(tmp_path) in str(info.value)


def test_yaml_syntax_error_gives_line_and_hides_the_line_text(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(f'id: irc\nurl: null\nas_token: "{AS_TOKEN}\nhs_token: {HS_TOKEN}\n')
    with pytest.raises(RegistrationError) as info:
        Registration.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: YAML error at line ")
    assert_no_tokens(message)
    bad_indent = tmp_path / "indent.yaml"
    bad_indent.write_text(f"id: irc\n  url: x\nas_token: {AS_TOKEN}\n")
    with pytest.raises(RegistrationError, match=r"line 2, column 6") as info:
        Registration.load(bad_indent)
    assert_no_tokens(str(info.value))


def test_control_character_is_a_yaml_error(tmp_path: Path) -> None:
    path = tmp_path / "ctl.yaml"
    path.write_text("id: ir\x01c\n")
    with pytest.raises(RegistrationError, match="YAML error at character offset 6"):
        Registration.load(path)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"id: caf\xe9\n")
    with pytest.raises(RegistrationError, match="not UTF-8"):
        Registration.load(path)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("- a\n- b\n", "got a list"), ("just a string\n", "got a string"), ("", "file is empty")],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "top.yaml"
    path.write_text(text)
    with pytest.raises(RegistrationError, match=fragment) as info:
        Registration.load(os.fspath(path))
    assert str(info.value).startswith(str(path))


# --- namespaces and identity -----------------------------------------------------------------


def test_namespace_regex_is_anchored_at_both_ends() -> None:
    reg = Registration.from_dict(base_dict())
    assert reg.is_user_in_namespace("@_irc_x:example.org")
    assert not reg.is_user_in_namespace("@_irc_x:example.org.evil.com")
    assert not reg.is_user_in_namespace("@evil@_irc_x:example.org")
    assert not reg.is_user_in_namespace("x@_irc_x:example.org")
    assert reg.is_alias_in_namespace("#_irc_#chan:example.org")
    assert not reg.is_alias_in_namespace("#_irc_#chan:example.org:1")


def test_namespace_equality_and_hash() -> None:
    a = Namespace("@a_.*", True, {"group_id": "+g"})
    assert a == Namespace("@a_.*", True, {"group_id": "+g"})
    assert a != Namespace("@a_.*", True)
    assert a != Namespace("@a_.*", False, {"group_id": "+g"})
    assert len({a, Namespace("@a_.*", True, {"group_id": "+g"})}) == 1


def test_exclusive_versus_non_exclusive() -> None:
    data = base_dict()
    data["namespaces"]["users"].append({"exclusive": False, "regex": r"@shared_.*:example\.org"})
    data["namespaces"]["rooms"] = [{"exclusive": True, "regex": r"![a-z]+"}]
    reg = Registration.from_dict(data)
    assert reg.is_user_exclusive("@_irc_a:example.org")
    assert reg.is_user_in_namespace("@shared_a:example.org")
    assert not reg.is_user_exclusive("@shared_a:example.org")
    assert not reg.is_user_exclusive("@nobody:example.org")
    assert reg.is_alias_in_namespace("#_irc_x:example.org")
    assert not reg.is_alias_exclusive("#_irc_x:example.org")
    assert reg.is_room_in_namespace("!abc")
    assert reg.is_room_exclusive("!abc")
    assert not reg.is_room_in_namespace("!ABC")


def test_is_own_user_and_bot_user_id() -> None:
    reg = Registration.from_dict(base_dict(), server_name="example.org")
    assert reg.bot_user_id() == "@_irc_bot:example.org"
    assert reg.bot_user_id("other.org") == "@_irc_bot:other.org"
    assert reg.is_own_user("@_irc_bot:example.org")
    assert reg.is_own_user("@_irc_alice:example.org")
    assert not reg.is_own_user("@alice:example.org")
    other_server = Registration.from_dict(base_dict() | {"sender_localpart": "ircbot"})
    assert not other_server.is_own_user("@ircbot:evil.org", server_name="example.org")
    assert other_server.is_own_user("@ircbot:example.org", server_name="example.org")


def test_is_own_user_needs_a_server_name() -> None:
    reg = Registration.from_dict(base_dict())
    with pytest.raises(ValueError, match="server name unknown"):
        reg.is_own_user("@_irc_bot:example.org")


# --- secrets ---------------------------------------------------------------------------------


def test_tokens_absent_from_repr_and_str() -> None:
    reg = Registration.from_dict(base_dict(), server_name="example.org")
    assert_no_tokens(repr(reg))
    assert_no_tokens(str(reg))
    generated = Registration.generate("x", None, "bot", "p_", None, server_name="example.org")
    assert_no_tokens(repr(generated), generated.as_token, generated.hs_token)


def test_from_dict_does_not_share_state_with_its_input() -> None:
    data = base_dict()
    data["custom"] = {"nested": [1]}
    snapshot = copy.deepcopy(data)
    reg = Registration.from_dict(data)
    reg.extra["custom"]["nested"].append(2)
    assert reg.protocols is not None
    reg.protocols.append("slack")
    assert data == snapshot


# --- the example file ------------------------------------------------------------------------


def test_example_file_loads_and_describes_a_bridge() -> None:
    reg = Registration.load(EXAMPLE, server_name="example.org")
    assert reg.url is not None
    assert reg.as_token != reg.hs_token
    assert reg.is_own_user("@_irc_bot:example.org")
    assert reg.is_user_exclusive("@_irc_alice:example.org")
    assert reg.is_alias_exclusive("#_irc_#matrix:example.org")
    assert not reg.is_user_in_namespace("@_irc_x:example.org.evil.com")
    assert reg.extra == {}
    for key in ("id", "url", "as_token", "hs_token", "sender_localpart", "namespaces"):
        assert f"\n{key}:" in EXAMPLE.read_text()


def test_synapse_accepts_the_example_and_a_generated_file(tmp_path: Path) -> None:
    pytest.importorskip("synapse.config.appservice")
    from synapse.config.appservice import load_appservices

    generated = Registration.generate(
        "gen", "http://127.0.0.1:1", "_gen_bot", "_gen_", "_gen_", server_name="example.org"
    )
    generated.save(tmp_path / "gen.yaml")
    services = load_appservices("example.org", [str(EXAMPLE), str(tmp_path / "gen.yaml")])
    by_id = {s.id: s for s in services}
    assert by_id["irc"].is_exclusive_user("@_irc_alice:example.org")
    assert by_id["irc"].supports_ephemeral is True
    assert by_id["gen"].token == generated.as_token
    assert by_id["gen"].is_interested_in_user("@_gen_bob:example.org")
