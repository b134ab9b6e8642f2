"""appservice.bridge.config: loading, validation (key paths), env overrides, permissions,
registration generation and mismatch detection."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from appservice.bridge.config import (
    DEFAULT_DATABASE,
    BridgeConfig,
    BridgeSection,
    ConfigError,
    LoggingConfig,
)
from appservice.registration import Namespace, Registration

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "config.example.yaml"
AS_TOKEN = "as-7d41c0e9b2a85f36"
HS_TOKEN = "hs-0b9e6a3f58c2d417"


def base() -> dict[str, Any]:
    return {
        "homeserver": {"address": "http://127.0.0.1:8008/", "domain": "example.org"},
        "appservice": {
            "address": "http://127.0.0.1:29331",
            "id": "irc",
            "bot_username": "ircbot",
            "as_token": AS_TOKEN,
            "hs_token": HS_TOKEN,
            "user_prefix": "_irc_",
            "alias_prefix": "_irc_",
        },
        "network": {"connector": "bridges.irc.connector:make", "server": "irc.example.org"},
    }


def write(tmp_path: Path, data: object, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def load_error(tmp_path: Path, data: object, env: dict[str, str] | None = None) -> str:
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        BridgeConfig.load(path, env or {})
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert AS_TOKEN not in message
    assert HS_TOKEN not in message
    return message


def with_value(key: str, value: object) -> dict[str, Any]:
    data = base()
    section, name = key.split(".")
    data.setdefault(section, {})[name] = value
    return data


def without(key: str) -> dict[str, Any]:
    data = base()
    section, _, name = key.partition(".")
    if name:
        del data[section][name]
    else:
        del data[section]
    return data


# --- loading and defaults --------------------------------------------------------------------


def test_example_config_is_valid_and_documents_every_key() -> None:
    config = BridgeConfig.load(EXAMPLE, {}, require_tokens=False)
    assert config.homeserver.domain == "example.org"
    assert config.connector == "mybridge.connector:make_connector"
    text = EXAMPLE.read_text(encoding="utf-8")
    from appservice.bridge.config import SCHEMA

    for section, keys in SCHEMA.items():
        for key in keys:
            assert re.search(rf"^  {key}:", text, re.MULTILINE), f"{section}.{key} not documented"


def test_minimal_config_gets_the_documented_defaults(tmp_path: Path) -> None:
    data = base()
    del data["appservice"]["alias_prefix"]
    config = BridgeConfig.load(write(tmp_path, data), {})
    assert config.homeserver.address == "http://127.0.0.1:8008"  # trailing slash dropped
    assert config.appservice.port == 29331  # taken from appservice.address
    assert config.appservice.hostname == "127.0.0.1"
    assert config.appservice.database == DEFAULT_DATABASE
    assert config.appservice.alias_prefix is None
    assert config.appservice.ephemeral_events is False
    assert config.bridge.permissions == {"example.org": "user"}
    assert config.bridge.command_prefix == "!bridge"
    assert config.logging == LoggingConfig("INFO", "text")
    assert config.network == {
        "connector": "bridges.irc.connector:make",
        "server": "irc.example.org",
    }
    assert config.path == tmp_path / "config.yaml"
    assert config.bot_user_id == "@ircbot:example.org"
    assert AS_TOKEN not in repr(config)
    assert HS_TOKEN not in repr(config)


def test_config_is_frozen(tmp_path: Path) -> None:
    config = BridgeConfig.load(write(tmp_path, base()), {})
    with pytest.raises(AttributeError):
        config.appservice.port = 1  # type: ignore[misc]


def test_explicit_port_and_lowercase_log_level(tmp_path: Path) -> None:
    data = base()
    data["appservice"]["port"] = 8123
    data["logging"] = {"level": "debug", "format": "json"}
    config = BridgeConfig.load(write(tmp_path, data), {})
    assert config.appservice.port == 8123
    assert config.logging == LoggingConfig("DEBUG", "json")


# --- one clear error naming the key ----------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "homeserver",
        "appservice",
        "homeserver.address",
        "homeserver.domain",
        "appservice.address",
        "appservice.id",
        "appservice.bot_username",
        "appservice.user_prefix",
    ],
)
def test_a_missing_required_key_is_named(tmp_path: Path, key: str) -> None:
    message = load_error(tmp_path, without(key))
    assert f": {key}: required" in message


def test_port_missing_when_the_address_has_none(tmp_path: Path) -> None:
    message = load_error(tmp_path, with_value("appservice.address", "http://bridge.internal"))
    assert "appservice.port: required key is missing (or write the port in appservice.address)" in (
        message
    )


def test_the_brief_example_message(tmp_path: Path) -> None:
    path = write(tmp_path, with_value("appservice.port", "abc"))
    with pytest.raises(ConfigError) as info:
        BridgeConfig.load(path, {})
    assert str(info.value) == f"{path}: appservice.port: expected an integer 1-65535, got 'abc'"
    assert info.value.key == "appservice.port"
    assert info.value.variable is None


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("homeserver.address", "ftp://x.org", "expected an http(s) URL such as"),
        ("homeserver.address", "http://127.0.0.1:8008?x=1", "expected an http(s) URL"),
        ("homeserver.address", 8008, "expected a string, got 8008"),
        ("homeserver.domain", "exa mple.org", "expected a server name"),
        ("appservice.address", "127.0.0.1:29331", "expected an http(s) URL"),
        ("appservice.port", 0, "expected an integer 1-65535, got 0"),
        ("appservice.port", 70000, "expected an integer 1-65535, got 70000"),
        ("appservice.port", True, "expected an integer 1-65535, got a boolean"),
        ("appservice.hostname", "", "must not be empty"),
        ("appservice.id", "a|b", "without '|'"),
        ("appservice.bot_username", "Bot", "expected a user localpart"),
        ("appservice.bot_displayname", ["x"], "expected a string, got a list"),
        ("appservice.database", "mysql://u@127.0.0.1/x", "unsupported database URL scheme"),
        ("appservice.user_prefix", "", "must not be empty"),
        ("appservice.user_prefix", "{localpart}_irc", "needs a non-empty prefix"),
        ("appservice.user_prefix", "_IRC_", "using only a-z 0-9"),
        ("appservice.user_prefix", "_a{localpart}{localpart}", "may appear only once"),
        ("appservice.alias_prefix", "a:b", "must not contain spaces, ':' or '#'"),
        ("appservice.ephemeral_events", "yes", "expected true or false, got 'yes'"),
        ("bridge.command_prefix", "! bridge", "must not contain whitespace"),
        ("bridge.permissions", ["*"], "expected a mapping of user/server/'*' to a level"),
        ("logging.level", "LOUD", "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("logging.format", "xml", "expected text or json, got 'xml'"),
        ("network.connector", "no_colon", "expected 'package.module:factory'"),
    ],
)
def test_a_wrong_value_is_named_with_its_key(
    tmp_path: Path, key: str, value: object, expected: str
) -> None:
    message = load_error(tmp_path, with_value(key, value))
    assert f": {key}: " in message
    assert expected in message


def test_a_section_that_is_not_a_mapping(tmp_path: Path) -> None:
    data = base()
    data["logging"] = "INFO"
    assert "logging: expected a mapping, got 'INFO'" in load_error(tmp_path, data)


def test_a_database_password_is_masked_in_the_error(tmp_path: Path) -> None:
    message = load_error(tmp_path, with_value("appservice.database", "mysql://u:hunter2@h/x"))
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            "appservice.bot_usrname",
            "appservice.bot_usrname: unknown key; did you mean 'bot_username'?",
        ),
        ("homeserver.adress", "homeserver.adress: unknown key; did you mean 'address'?"),
        ("bridge.zzz", "bridge.zzz: unknown key; known keys: permissions, command_prefix"),
    ],
)
def test_an_unknown_key_gets_a_hint(tmp_path: Path, key: str, expected: str) -> None:
    assert expected in load_error(tmp_path, with_value(key, "x"))


def test_an_unknown_section_gets_a_hint(tmp_path: Path) -> None:
    data = base()
    data["loging"] = {"level": "INFO"}
    assert "loging: unknown key; did you mean 'logging'?" in load_error(tmp_path, data)


def test_network_is_free_form(tmp_path: Path) -> None:
    data = base()
    data["network"] = {"anything": {"nested": [1, 2]}, "port": 6667}
    config = BridgeConfig.load(write(tmp_path, data), {})
    assert config.network["anything"] == {"nested": [1, 2]}
    assert config.connector is None


# --- tokens ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, ""])
def test_missing_tokens_are_refused_unless_allowed(tmp_path: Path, value: object) -> None:
    data = base()
    data["appservice"]["as_token"] = value
    message = load_error(tmp_path, data)
    assert "appservice.as_token: missing: run `appservice generate-registration" in message
    config = BridgeConfig.load(write(tmp_path, data), {}, require_tokens=False)
    assert config.appservice.as_token == ""
    assert not config.appservice.has_tokens
    with pytest.raises(ConfigError, match="tokens are not generated yet"):
        config.to_registration()


def test_bad_tokens_are_named_but_never_shown(tmp_path: Path) -> None:
    message = load_error(tmp_path, with_value("appservice.as_token", AS_TOKEN + " x"))
    assert "appservice.as_token: expected a string without whitespace" in message
    message = load_error(tmp_path, with_value("appservice.hs_token", AS_TOKEN))
    assert "appservice.hs_token: must differ from appservice.as_token" in message
    message = load_error(tmp_path, with_value("appservice.hs_token", 12345))
    assert "appservice.hs_token" in message
    assert "12345" not in message


# --- YAML problems ---------------------------------------------------------------------------


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("homeserver:\n  address: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"config\.yaml: YAML error at line 3, column 1"):
        BridgeConfig.load(path, {})


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("homeserver:\n  domain: a.org\n  domain: b.org\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="duplicate key 'domain'"):
        BridgeConfig.load(path, {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "homeserver: required section"), ("- a\n", "expected a mapping of sections")],
)
def test_empty_or_list_files(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=expected):
        BridgeConfig.load(path, {})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found"):
        BridgeConfig.load(tmp_path / "nope.yaml", {})


# --- environment overrides -------------------------------------------------------------------


def test_env_overrides_with_type_coercion(tmp_path: Path) -> None:
    env = {
        "APPSERVICE_APPSERVICE_DATABASE": "postgresql+asyncpg://bridge@127.0.0.1/bridge",
        "APPSERVICE_HOMESERVER_ADDRESS": "https://matrix.example.org",
        "APPSERVICE_APPSERVICE_PORT": " 8123 ",
        "APPSERVICE_APPSERVICE_EPHEMERAL_EVENTS": "on",
        "APPSERVICE_BRIDGE_PERMISSIONS": '{"*": relay, "@a:example.org": admin}',
        "APPSERVICE_LOGGING_FORMAT": "json",
        "APPSERVICE_APPSERVICE_ALIAS_PREFIX": "",
        "APPSERVICE_DATABASE_URL": "not a config key: ignored",
        "OTHER": "ignored",
    }
    config = BridgeConfig.load(write(tmp_path, base()), env)
    assert config.appservice.database == "postgresql+asyncpg://bridge@127.0.0.1/bridge"
    assert config.homeserver.address == "https://matrix.example.org"
    assert config.appservice.port == 8123
    assert config.appservice.ephemeral_events is True
    assert config.permission_level("@a:example.org") == "admin"
    assert config.permission_level("@b:example.org") == "relay"
    assert config.logging.format == "json"
    assert config.appservice.alias_prefix is None


def test_env_supplies_a_section_missing_from_the_file(tmp_path: Path) -> None:
    data = without("homeserver")
    env = {
        "APPSERVICE_HOMESERVER_ADDRESS": "http://127.0.0.1:8008",
        "APPSERVICE_HOMESERVER_DOMAIN": "example.org",
    }
    assert BridgeConfig.load(write(tmp_path, data), env).homeserver.domain == "example.org"


def test_env_network_values_keep_the_file_type(tmp_path: Path) -> None:
    data = base()
    data["network"].update({"port": 6667, "tls": False})
    env = {"APPSERVICE_NETWORK_PORT": "6697", "APPSERVICE_NETWORK_TLS": "true",
           "APPSERVICE_NETWORK_NICK": "bridge"}  # fmt: skip
    config = BridgeConfig.load(write(tmp_path, data), env)
    assert config.network["port"] == 6697
    assert config.network["tls"] is True
    assert config.network["nick"] == "bridge"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("APPSERVICE_APPSERVICE_PORT", "abc", "appservice.port (from environment variable "
         "APPSERVICE_APPSERVICE_PORT): expected an integer 1-65535, got 'abc'"),
        ("APPSERVICE_APPSERVICE_PORT", "99999", "appservice.port (from environment variable "
         "APPSERVICE_APPSERVICE_PORT): expected an integer 1-65535, got 99999"),
        ("APPSERVICE_APPSERVICE_EPHEMERAL_EVENTS", "maybe", "(from environment variable "
         "APPSERVICE_APPSERVICE_EPHEMERAL_EVENTS): expected true or false, got 'maybe'"),
        ("APPSERVICE_HOMESERVER_ADDRESS", "matrix.org", "homeserver.address (from environment "
         "variable APPSERVICE_HOMESERVER_ADDRESS): expected an http(s) URL"),
        ("APPSERVICE_BRIDGE_PERMISSIONS", "[1]", "APPSERVICE_BRIDGE_PERMISSIONS): expected a "
         "YAML/JSON mapping"),
        ("APPSERVICE_APPSERVICE_DATABSE", "x", "environment variable APPSERVICE_APPSERVICE_DATABSE"
         " names no key of section 'appservice' (did you mean APPSERVICE_APPSERVICE_DATABASE?)"),
    ],
)  # fmt: skip
def test_a_bad_env_value_names_the_variable(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    assert expected in load_error(tmp_path, base(), {variable: value})


def test_env_token_is_not_shown_when_bad(tmp_path: Path) -> None:
    env = {"APPSERVICE_APPSERVICE_HS_TOKEN": AS_TOKEN}
    message = load_error(tmp_path, base(), env)
    assert "appservice.hs_token (from environment variable APPSERVICE_APPSERVICE_HS_TOKEN)" in (
        message
    )


# --- permissions -----------------------------------------------------------------------------


def test_permission_matching_user_then_domain_then_star() -> None:
    section = BridgeSection(
        permissions={
            "*": "relay",
            "example.org": "user",
            "@admin:example.org": "admin",
            "@banned:example.org": "none",
        }
    )
    assert section.permission_level("@admin:example.org") == "admin"
    assert section.permission_level("@banned:example.org") == "none"
    assert section.permission_level("@alice:example.org") == "user"
    assert section.permission_level("@eve:other.org") == "relay"
    assert section.permission_level("@x:example.org.evil") == "relay"
    assert BridgeSection(permissions={"example.org": "user"}).permission_level("@e:o.rg") == "none"
    assert section.has_permission("@alice:example.org", "relay")
    assert section.has_permission("@alice:example.org", "user")
    assert not section.has_permission("@alice:example.org", "admin")
    assert not section.has_permission("@banned:example.org", "relay")
    with pytest.raises(ValueError, match="unknown permission level 'root'"):
        section.has_permission("@alice:example.org", "root")


@pytest.mark.parametrize(
    ("permissions", "expected"),
    [
        ({"*": "superuser"}, "bridge.permissions['*']: expected one of none, relay, user, admin"),
        ({"@bad": "user"}, "bridge.permissions['@bad']: expected '*', a server name or a user ID"),
        ({"not a server": "user"}, "bridge.permissions['not a server']: expected '*'"),
    ],
)
def test_bad_permissions_are_named(
    tmp_path: Path, permissions: dict[str, str], expected: str
) -> None:
    assert expected in load_error(tmp_path, with_value("bridge.permissions", permissions))


# --- puppets, registration and mismatches ----------------------------------------------------


def config_from(data: dict[str, Any]) -> BridgeConfig:
    return BridgeConfig.from_dict(data, {})


def test_puppet_ids_round_trip_through_the_template() -> None:
    config = config_from(base())
    assert config.puppet_user_id("Alice") == "@_irc__alice:example.org"
    assert config.puppet_remote_name("@_irc__alice:example.org") == "Alice"
    assert config.puppet_remote_name("@_irc_:example.org") is None
    assert config.puppet_remote_name("@alice:example.org") is None
    assert config.puppet_remote_name("@_irc_alice:other.org") is None
    data = with_value("appservice.user_prefix", "irc_{localpart}.bridged")
    templated = config_from(data)
    assert templated.puppet_user_id("bob/1") == "@irc_bob=2f1.bridged:example.org"
    assert templated.puppet_remote_name("@irc_bob=2f1.bridged:example.org") == "bob/1"


def test_to_registration_is_valid_and_claims_the_puppets(tmp_path: Path) -> None:
    data = base()
    data["appservice"]["ephemeral_events"] = True
    config = config_from(data)
    reg = config.to_registration()
    assert (reg.id, reg.url, reg.sender_localpart) == ("irc", "http://127.0.0.1:29331", "ircbot")
    assert (reg.as_token, reg.hs_token) == (AS_TOKEN, HS_TOKEN)
    assert reg.receive_ephemeral is True
    assert reg.namespaces.users == [Namespace(r"@_irc_.*:example\.org", True)]
    assert reg.namespaces.aliases == [Namespace(r"#_irc_.*:example\.org", True)]
    assert reg.is_user_exclusive(config.puppet_user_id("Some One"))
    assert not reg.is_user_in_namespace("@_irc_x:exampleXorg")
    assert reg.is_alias_exclusive("#_irc_chan:example.org")
    reg.save(tmp_path / "registration.yaml")
    assert config.check_registration(Registration.load(tmp_path / "registration.yaml")) == []


def test_to_registration_escapes_templates_and_omits_aliases() -> None:
    data = with_value("appservice.user_prefix", "irc.{localpart}+x")
    data["appservice"]["alias_prefix"] = None
    reg = config_from(data).to_registration()
    assert reg.namespaces.users == [Namespace(r"@irc\..*\+x:example\.org", True)]
    assert reg.namespaces.aliases == []
    assert reg.is_user_in_namespace("@irc.alice+x:example.org")
    assert not reg.is_user_in_namespace("@ircXalice+x:example.org")


def mismatches(change: dict[str, Any]) -> list[str]:
    config = config_from(base())
    reg_dict = config.to_registration().to_dict()
    reg_dict = copy.deepcopy(reg_dict) | change
    problems = config.check_registration(Registration.from_dict(reg_dict))
    for line in problems:
        assert AS_TOKEN not in line
        assert HS_TOKEN not in line
    return problems


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"id": "other"}, "id: registration has 'other', config appservice.id is 'irc'"),
        ({"url": "http://10.0.0.5:29331"}, "url: registration has 'http://10.0.0.5:29331'"),
        ({"url": None}, "url: registration has None"),
        ({"as_token": "changed-token"}, "as_token: the registration's differs"),
        ({"hs_token": "changed-token"}, "hs_token: the registration's differs"),
        ({"sender_localpart": "bot2"}, "config appservice.bot_username is 'ircbot'"),
        ({"receive_ephemeral": True}, "receive_ephemeral: registration has True"),
        (
            {"namespaces": {"users": [{"regex": "@_irc_.*:example\\.org", "exclusive": False}]}},
            "namespaces.users: no exclusive entry with regex '@_irc_.*:example\\\\.org'",
        ),
        ({"namespaces": {"users": []}}, "(from config appservice.user_prefix)"),
    ],
)
def test_check_registration_names_each_mismatch(change: dict[str, Any], expected: str) -> None:
    problems = mismatches(change)
    assert any(expected in line for line in problems), problems


def test_extra_namespaces_in_the_registration_are_accepted() -> None:
    config = config_from(base())
    reg = config.to_registration()
    reg.namespaces.users.append(Namespace(r"@other_.*:example\.org", False))
    reg.namespaces.rooms.append(Namespace(r"!.*:example\.org", False))
    assert config.check_registration(reg) == []
    two = mismatches({"id": "x", "as_token": "changed-token"})
    assert len(two) == 2


def test_secrets_include_tokens_and_database_password() -> None:
    data = with_value("appservice.database", "postgresql+asyncpg://u:pw-s3cret@127.0.0.1/db")
    assert set(config_from(data).secrets()) == {AS_TOKEN, HS_TOKEN, "pw-s3cret"}
    assert set(config_from(base()).secrets()) == {AS_TOKEN, HS_TOKEN}


def test_with_tokens_validates() -> None:
    config = config_from(base())
    assert config.with_tokens("a1", "b2").appservice.as_token == "a1"
    with pytest.raises(ConfigError, match="must differ"):
        config.with_tokens("same", "same")


def test_building_dataclasses_directly_validates() -> None:
    with pytest.raises(ConfigError, match=r"^logging\.format: expected text or json"):
        LoggingConfig(format="yaml")
    with pytest.raises(ConfigError, match=r"^bridge\.permissions\['\*'\]"):
        BridgeSection(permissions={"*": "god"})
