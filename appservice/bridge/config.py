"""A bridge's configuration: one YAML file, environment overrides, one clear error per problem.

``BridgeConfig.load("config.yaml")`` reads the file, applies ``APPSERVICE_<SECTION>_<KEY>``
environment variables over it (``APPSERVICE_APPSERVICE_PORT=29331``, coerced to the key's type),
and validates everything. A missing, wrong or unknown key raises one ``ConfigError`` naming the
file and the key path (``config.yaml: appservice.port: expected an integer 1-65535, got 'abc'``),
or the environment variable when the value came from one. Tokens never appear in a message.

The registration the homeserver needs is derived from the config (``to_registration``), and a
registration file can be compared with it (``check_registration``) so a bridge refuses to start
when the two disagree.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, NoReturn, Self
from urllib.parse import urlsplit

import yaml

from appservice.ids import decode_user_localpart, encode_user_localpart, parse_user_id
from appservice.registration import Namespace, Namespaces, Registration

__all__ = [
    "DEFAULT_COMMAND_PREFIX",
    "DEFAULT_DATABASE",
    "ENV_PREFIX",
    "PERMISSION_LEVELS",
    "AppserviceConfig",
    "BridgeConfig",
    "BridgeSection",
    "ConfigError",
    "HomeserverConfig",
    "LoggingConfig",
]

DEFAULT_DATABASE: Final = "sqlite+aiosqlite:///bridge.db"
DEFAULT_COMMAND_PREFIX: Final = "!bridge"
ENV_PREFIX: Final = "APPSERVICE_"
PERMISSION_LEVELS: Final = ("none", "relay", "user", "admin")
"""Permission levels from least to most: each level may do everything the ones before it may."""
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS: Final = ("text", "json")
LOCALPART_PLACEHOLDER: Final = "{localpart}"

# Every key of every section but `network` (free-form), with its kind: how an environment
# variable's text is coerced ("int", "bool", "mapping", anything else stays a string).
SCHEMA: Final[Mapping[str, Mapping[str, str]]] = {
    "homeserver": {"address": "str", "domain": "str"},
    "appservice": {
        "address": "str",
        "hostname": "str",
        "port": "int",
        "id": "str",
        "bot_username": "str",
        "bot_displayname": "str?",
        "as_token": "str?",
        "hs_token": "str?",
        "database": "str",
        "user_prefix": "str",
        "alias_prefix": "str?",
        "ephemeral_events": "bool",
    },
    "bridge": {"permissions": "mapping", "command_prefix": "str"},
    "logging": {"level": "str", "format": "str"},
}
SECTIONS: Final = (*SCHEMA, "network")
_REQUIRED_SECTIONS: Final = ("homeserver", "appservice")
_SECRET_KEYS: Final = frozenset({"appservice.as_token", "appservice.hs_token"})
_TRUE: Final = frozenset({"true", "yes", "on", "1"})
_FALSE: Final = frozenset({"false", "no", "off", "0"})
_LOCALPART_CHARS = re.compile(r"[a-z0-9._=\-/+]*")
_SENDER = re.compile(r"[a-z0-9._\-]+")
_CONNECTOR = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", re.ASCII)


class ConfigError(ValueError):
    """A config that cannot be used: one message naming the file, the key path and the problem.

    ``variable`` is the environment variable the bad value came from, when it came from one.
    """

    def __init__(
        self,
        problem: str,
        *,
        key: str | None = None,
        path: str | None = None,
        variable: str | None = None,
    ) -> None:
        self.problem = problem
        self.key = key
        self.path = path
        self.variable = variable
        where = f"{key} (from environment variable {variable})" if key and variable else key
        super().__init__(": ".join(p for p in (path, where, problem) if p))


def _fail(key: str, problem: str) -> NoReturn:
    raise ConfigError(problem, key=key)


def _show(value: object) -> str:
    kinds = {type(None): "null", bool: "a boolean", list: "a list", dict: "a mapping"}
    if type(value) in kinds:
        return kinds[type(value)]
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _string(value: object, key: str, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        _fail(key, f"expected a string, got {_show(value)}")
    if not value and not empty_ok:
        _fail(key, "must not be empty")
    return value


def _url(value: object, key: str, example: str) -> str:
    text = _string(value, key)
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or port in (-1, 0)
        or "@" in parts.netloc
        or parts.query
        or parts.fragment
        or any(c.isspace() for c in text)
    ):
        _fail(key, f"expected an http(s) URL such as {example}, got {text!r}")
    return text.rstrip("/")


def _server_name(value: object, key: str) -> str:
    text = _string(value, key)
    try:
        parse_user_id(f"@x:{text}")
    except ValueError:
        _fail(key, f"expected a server name such as example.org or localhost:8448, got {text!r}")
    return text


def _check_user_template(value: object, key: str) -> str:
    text = _string(value, key)
    if text.count(LOCALPART_PLACEHOLDER) > 1:
        _fail(key, f"{LOCALPART_PLACEHOLDER} may appear only once, got {text!r}")
    prefix, _, suffix = text.partition(LOCALPART_PLACEHOLDER)
    if not prefix:
        _fail(key, f"needs a non-empty prefix before the remote name (e.g. '_irc_'), got {text!r}")
    if not _LOCALPART_CHARS.fullmatch(prefix + suffix):
        _fail(
            key,
            f"expected a prefix such as '_irc_' or a template such as '_irc_{{localpart}}' using "
            f"only a-z 0-9 . _ = - / +, got {text!r}",
        )
    return text


def _permission_key(entity: object, key: str) -> str:
    entity = _string(entity, key)
    if entity == "*":
        return entity
    try:
        if entity.startswith("@"):
            parse_user_id(entity)
        else:
            parse_user_id(f"@x:{entity}")
    except ValueError:
        _fail(key, f"expected '*', a server name or a user ID (@user:server), got {entity!r}")
    return entity


@dataclass(frozen=True)
class HomeserverConfig:
    """Where the homeserver is (``address``, a URL) and its server name (``domain``)."""

    address: str
    domain: str

    def __post_init__(self) -> None:
        url = _url(self.address, "homeserver.address", "http://127.0.0.1:8008")
        object.__setattr__(self, "address", url)
        _server_name(self.domain, "homeserver.domain")


@dataclass(frozen=True)
class AppserviceConfig:
    """The appservice side: how the homeserver reaches us, where we listen, tokens and namespaces.

    ``user_prefix`` is either a prefix (``_irc_``) or a template with ``{localpart}``
    (``_irc_{localpart}``); puppets are ``@<template with the encoded remote name>:<domain>``.
    Empty tokens mean "not generated yet" (``appservice generate-registration`` fills them).
    """

    address: str
    port: int
    id: str
    bot_username: str
    user_prefix: str
    hostname: str = "127.0.0.1"
    bot_displayname: str | None = None
    as_token: str = field(default="", repr=False)
    hs_token: str = field(default="", repr=False)
    database: str = DEFAULT_DATABASE
    alias_prefix: str | None = None
    ephemeral_events: bool = False

    def __post_init__(self) -> None:
        url = _url(self.address, "appservice.address", "http://127.0.0.1:29331")
        object.__setattr__(self, "address", url)
        _string(self.hostname, "appservice.hostname")
        if (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not 0 < self.port < 65536
        ):
            _fail("appservice.port", f"expected an integer 1-65535, got {_show(self.port)}")
        if not isinstance(self.id, str) or not self.id or any(c in "| \t\n" for c in self.id):
            _fail(
                "appservice.id",
                f"expected a non-empty string without '|' or spaces, got {_show(self.id)}",
            )
        if not isinstance(self.bot_username, str) or not _SENDER.fullmatch(self.bot_username):
            _fail(
                "appservice.bot_username",
                "expected a user localpart using only a-z 0-9 . _ -, "
                f"got {_show(self.bot_username)}",
            )
        if self.bot_displayname is not None:
            _string(self.bot_displayname, "appservice.bot_displayname")
        for name in ("as_token", "hs_token"):
            token = getattr(self, name)
            if not isinstance(token, str) or any(c.isspace() for c in token):
                _fail(f"appservice.{name}", "expected a string without whitespace")
        if self.as_token and self.as_token == self.hs_token:
            _fail("appservice.hs_token", "must differ from appservice.as_token")
        self._check_database()
        _check_user_template(self.user_prefix, "appservice.user_prefix")
        if self.alias_prefix is not None:
            alias = _string(self.alias_prefix, "appservice.alias_prefix")
            if any(c.isspace() or c in ":#" for c in alias):
                _fail(
                    "appservice.alias_prefix", f"must not contain spaces, ':' or '#', got {alias!r}"
                )
        if not isinstance(self.ephemeral_events, bool):
            _fail(
                "appservice.ephemeral_events",
                f"expected true or false, got {_show(self.ephemeral_events)}",
            )

    def _check_database(self) -> None:
        from appservice.store.engine import parse_url  # SQLAlchemy only when a config is built
        from appservice.store.errors import DatabaseURLError

        url = _string(self.database, "appservice.database")
        try:
            parse_url(url)
        except DatabaseURLError as e:
            _fail("appservice.database", str(e))

    @property
    def user_template(self) -> str:
        """The puppet localpart template, always with ``{localpart}`` (``_irc_{localpart}``)."""
        if LOCALPART_PLACEHOLDER in self.user_prefix:
            return self.user_prefix
        return self.user_prefix + LOCALPART_PLACEHOLDER

    @property
    def has_tokens(self) -> bool:
        """Whether both tokens are set (else run ``appservice generate-registration``)."""
        return bool(self.as_token and self.hs_token)


@dataclass(frozen=True)
class BridgeSection:
    """Who may use the bridge (``permissions``: user ID, server name or ``*`` -> level) and the
    command prefix in portal rooms."""

    permissions: Mapping[str, str] = field(default_factory=dict, hash=False)
    command_prefix: str = DEFAULT_COMMAND_PREFIX

    def __post_init__(self) -> None:
        if not isinstance(self.permissions, Mapping):
            _fail(
                "bridge.permissions",
                f"expected a mapping of user/server/'*' to a level, got {_show(self.permissions)}",
            )
        checked: dict[str, str] = {}
        for entity, level in self.permissions.items():
            key = f"bridge.permissions[{entity!r}]"
            _permission_key(entity, key)
            if level not in PERMISSION_LEVELS:
                _fail(key, f"expected one of {', '.join(PERMISSION_LEVELS)}, got {_show(level)}")
            checked[entity] = level
        object.__setattr__(self, "permissions", checked)
        prefix = _string(self.command_prefix, "bridge.command_prefix")
        if any(c.isspace() for c in prefix):
            _fail("bridge.command_prefix", f"must not contain whitespace, got {prefix!r}")

    def permission_level(self, user_id: str) -> str:
        """The user's level: an entry for the exact user ID, else for its server name, else
        ``*``, else ``none``."""
        if user_id in self.permissions:
            return self.permissions[user_id]
        _, sep, server = user_id.partition(":")
        if sep and server in self.permissions:
            return self.permissions[server]
        return self.permissions.get("*", "none")

    def has_permission(self, user_id: str, level: str) -> bool:
        """Whether the user's level is at least ``level``."""
        if level not in PERMISSION_LEVELS:
            raise ValueError(f"unknown permission level {level!r}; known: {PERMISSION_LEVELS}")
        have = PERMISSION_LEVELS.index(self.permission_level(user_id))
        return have >= PERMISSION_LEVELS.index(level)


@dataclass(frozen=True)
class LoggingConfig:
    """Log level (``DEBUG`` ... ``CRITICAL``) and format (``text`` or ``json`` lines)."""

    level: str = "INFO"
    format: str = "text"

    def __post_init__(self) -> None:
        level = _string(self.level, "logging.level").upper()
        if level not in LOG_LEVELS:
            _fail("logging.level", f"expected one of {', '.join(LOG_LEVELS)}, got {self.level!r}")
        object.__setattr__(self, "level", level)
        if self.format not in LOG_FORMATS:
            _fail("logging.format", f"expected text or json, got {_show(self.format)}")


@dataclass(frozen=True)
class BridgeConfig:
    """The whole config. ``network`` is handed to the connector as is; ``network.connector``
    (``"package.module:factory"``) names the connector factory ``appservice run`` imports."""

    homeserver: HomeserverConfig
    appservice: AppserviceConfig
    bridge: BridgeSection = field(default_factory=BridgeSection)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    network: Mapping[str, Any] = field(default_factory=dict, hash=False)
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.network, Mapping):
            _fail("network", f"expected a mapping, got {_show(self.network)}")
        for key in self.network:
            if not isinstance(key, str):
                _fail("network", f"keys must be strings, got {_show(key)}")
        connector = self.network.get("connector")
        if connector is not None and (
            not isinstance(connector, str) or not _CONNECTOR.fullmatch(connector)
        ):
            _fail("network.connector", f"expected 'package.module:factory', got {_show(connector)}")

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        env: Mapping[str, str] = os.environ,
        *,
        require_tokens: bool = True,
    ) -> Self:
        """Read ``path``, apply ``APPSERVICE_<SECTION>_<KEY>`` overrides from ``env``, validate.

        ``require_tokens=False`` accepts a config whose tokens are not generated yet.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError("file not found", path=str(p)) from None
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or type(e).__name__
            raise ConfigError(f"cannot read: {reason}", path=str(p)) from None
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
        except yaml.YAMLError as e:
            raise ConfigError(_describe_yaml_error(e), path=str(p)) from None
        config = cls.from_dict(data, env, where=str(p), require_tokens=require_tokens)
        return replace(config, path=p)

    @classmethod
    def from_dict(
        cls,
        data: object,
        env: Mapping[str, str] | None = None,
        *,
        where: str | None = None,
        require_tokens: bool = True,
    ) -> Self:
        """Build from the parsed YAML mapping (plus ``env`` overrides); ``where`` names the
        source in errors."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"expected a mapping of sections, got {_show(data)}", path=where)
        merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
        origins = _apply_env(merged, env or {}, where)
        try:
            config = cls._build(merged)
            if require_tokens:
                for name in ("as_token", "hs_token"):
                    if not getattr(config.appservice, name):
                        _fail(
                            f"appservice.{name}",
                            "missing: run `appservice "
                            "generate-registration -c CONFIG -r REGISTRATION` to generate it",
                        )
        except ConfigError as e:
            variable = origins.get(e.key or "")
            raise ConfigError(e.problem, key=e.key, path=where, variable=variable) from None
        return config

    @classmethod
    def _build(cls, data: dict[str, Any]) -> Self:
        _reject_unknown(data, SECTIONS, "")
        for name in _REQUIRED_SECTIONS:
            if name not in data:
                _fail(name, "required section is missing")
        sections: dict[str, dict[str, Any]] = {}
        for name in SECTIONS:
            value = data.get(name)
            if value is None:
                value = {}
            if not isinstance(value, dict):
                _fail(name, f"expected a mapping, got {_show(value)}")
            if name != "network":
                _reject_unknown(value, tuple(SCHEMA[name]), f"{name}.")
            sections[name] = value
        hs = sections["homeserver"]
        _require(hs, "homeserver", ("address", "domain"))
        homeserver = HomeserverConfig(**hs)
        aps = dict(sections["appservice"])
        if aps.get("address") is not None:  # checked before its port is taken as the default
            _url(aps["address"], "appservice.address", "http://127.0.0.1:29331")
        if "port" not in aps and (port := _port_of(aps.get("address"))) is not None:
            aps["port"] = port
        _require(aps, "appservice", ("address", "port", "id", "bot_username", "user_prefix"))
        for name in ("as_token", "hs_token"):
            if aps.get(name) is None:
                aps[name] = ""
        if aps.get("database") is None:
            aps.pop("database", None)
        appservice = AppserviceConfig(**aps)
        br = dict(sections["bridge"])
        if br.get("permissions") is None:
            br["permissions"] = {homeserver.domain: "user"}
        return cls(
            homeserver=homeserver,
            appservice=appservice,
            bridge=BridgeSection(**br),
            logging=LoggingConfig(**sections["logging"]),
            network=sections["network"],
        )

    @property
    def bot_user_id(self) -> str:
        """The bridge bot's user ID, ``@<bot_username>:<domain>``."""
        return f"@{self.appservice.bot_username}:{self.homeserver.domain}"

    @property
    def connector(self) -> str | None:
        """``network.connector``, the ``"package.module:factory"`` of the network connector."""
        value = self.network.get("connector")
        return value if isinstance(value, str) else None

    def puppet_user_id(self, remote_name: str) -> str:
        """The puppet's user ID for a remote user name (encoded with ``encode_user_localpart``)."""
        localpart = self.appservice.user_template.replace(
            LOCALPART_PLACEHOLDER, encode_user_localpart(remote_name)
        )
        return f"@{localpart}:{self.homeserver.domain}"

    def puppet_remote_name(self, user_id: str) -> str | None:
        """The remote user name behind a puppet's user ID, or None when it is not a puppet."""
        prefix, _, suffix = self.appservice.user_template.partition(LOCALPART_PLACEHOLDER)
        head, tail = f"@{prefix}", f"{suffix}:{self.homeserver.domain}"
        if not (user_id.startswith(head) and user_id.endswith(tail)):
            return None
        encoded = user_id[len(head) : len(user_id) - len(tail)]
        if not encoded:
            return None
        try:
            return decode_user_localpart(encoded)
        except ValueError:
            return None

    def permission_level(self, user_id: str) -> str:
        """The user's permission level (see ``BridgeSection.permission_level``)."""
        return self.bridge.permission_level(user_id)

    def secrets(self) -> tuple[str, ...]:
        """Values that must never be logged: the tokens and any database password."""
        found = [self.appservice.as_token, self.appservice.hs_token]
        from sqlalchemy.engine import make_url

        password = make_url(self.appservice.database).password
        if password:
            found.append(str(password))
        return tuple(s for s in found if s)

    def with_tokens(self, as_token: str, hs_token: str) -> Self:
        """A copy with the given tokens (validated)."""
        return replace(
            self, appservice=replace(self.appservice, as_token=as_token, hs_token=hs_token)
        )

    def namespaces(self) -> Namespaces:
        """The exclusive user (and alias, when ``alias_prefix`` is set) namespaces we claim."""
        server = re.escape(self.homeserver.domain)
        prefix, _, suffix = self.appservice.user_template.partition(LOCALPART_PLACEHOLDER)
        users = [Namespace(f"@{re.escape(prefix)}.*{re.escape(suffix)}:{server}", True)]
        aliases = []
        if self.appservice.alias_prefix is not None:
            alias = re.escape(self.appservice.alias_prefix)
            aliases.append(Namespace(f"#{alias}.*:{server}", True))
        return Namespaces(users=users, aliases=aliases)

    def to_registration(self) -> Registration:
        """The registration the homeserver needs for this config (tokens must be set)."""
        if not self.appservice.has_tokens:
            raise ConfigError(
                "tokens are not generated yet: run `appservice generate-registration`",
                key="appservice.as_token",
                path=str(self.path) if self.path else None,
            )
        return Registration(
            id=self.appservice.id,
            url=self.appservice.address,
            as_token=self.appservice.as_token,
            hs_token=self.appservice.hs_token,
            sender_localpart=self.appservice.bot_username,
            namespaces=self.namespaces(),
            rate_limited=False,
            receive_ephemeral=self.appservice.ephemeral_events,
            server_name=self.homeserver.domain,
        )

    def check_registration(self, reg: Registration) -> list[str]:
        """How ``reg`` differs from this config, one line each (empty when they agree).

        The registration may claim more namespaces than the config needs, never fewer.
        """
        a = self.appservice
        problems: list[str] = []
        if reg.id != a.id:
            problems.append(f"id: registration has {reg.id!r}, config appservice.id is {a.id!r}")
        if (reg.url or "").rstrip("/") != a.address:
            problems.append(
                f"url: registration has {reg.url!r}, config appservice.address is {a.address!r}"
            )
        for name in ("as_token", "hs_token"):
            if getattr(reg, name) != getattr(a, name):
                problems.append(f"{name}: the registration's differs from config appservice.{name}")
        if reg.sender_localpart != a.bot_username:
            problems.append(
                f"sender_localpart: registration has {reg.sender_localpart!r}, config "
                f"appservice.bot_username is {a.bot_username!r}"
            )
        wanted = self.namespaces()
        for kind, source in (("users", "user_prefix"), ("aliases", "alias_prefix")):
            have = {(ns.regex, ns.exclusive) for ns in getattr(reg.namespaces, kind)}
            for ns in getattr(wanted, kind):
                if (ns.regex, ns.exclusive) not in have:
                    problems.append(
                        f"namespaces.{kind}: no exclusive entry with regex {ns.regex!r} "
                        f"(from config appservice.{source})"
                    )
        if reg.receive_ephemeral != a.ephemeral_events:
            problems.append(
                f"receive_ephemeral: registration has {reg.receive_ephemeral}, config "
                f"appservice.ephemeral_events is {a.ephemeral_events}"
            )
        return problems


def _port_of(address: object) -> int | None:
    """The port written in ``address``, the default for ``appservice.port``."""
    if not isinstance(address, str):
        return None
    try:
        return urlsplit(address).port
    except ValueError:
        return None


def _require(section: Mapping[str, Any], name: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key not in section:
            hint = " (or write the port in appservice.address)" if key == "port" else ""
            _fail(f"{name}.{key}", f"required key is missing{hint}")
        if section[key] is None:
            _fail(f"{name}.{key}", "required key is null")


def _reject_unknown(section: Mapping[str, Any], known: tuple[str, ...], prefix: str) -> None:
    for key in section:
        if key in known:
            continue
        if not isinstance(key, str):
            _fail(prefix.rstrip(".") or "config", f"keys must be strings, got {_show(key)}")
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
        _fail(f"{prefix}{key}", f"unknown key; {hint}")


def _apply_env(data: dict[str, Any], env: Mapping[str, str], where: str | None) -> dict[str, str]:
    """Apply ``APPSERVICE_<SECTION>_<KEY>`` variables to ``data``; returns key path -> variable."""
    origins: dict[str, str] = {}
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX):
            continue
        rest = variable[len(ENV_PREFIX) :]
        section = next((s for s in SECTIONS if rest.startswith(s.upper() + "_")), None)
        if section is None:
            continue  # APPSERVICE_DATABASE_URL and other variables that are not config keys
        key = rest[len(section) + 1 :].lower()
        path = f"{section}.{key}"
        target = data.get(section)
        if target is None:
            target = data[section] = {}
        if not isinstance(target, dict):
            raise ConfigError(f"expected a mapping, got {_show(target)}", key=section, path=where)
        if section == "network":
            kind = {bool: "bool", int: "int"}.get(type(target.get(key)), "str")
        elif key in SCHEMA[section]:
            kind = SCHEMA[section][key]
        else:
            close = difflib.get_close_matches(key, tuple(SCHEMA[section]), n=1, cutoff=0.6)
            hint = (
                f" (did you mean {ENV_PREFIX}{section.upper()}_{close[0].upper()}?)"
                if close
                else ""
            )
            raise ConfigError(
                f"environment variable {variable} names no key of section {section!r}{hint}",
                path=where,
            )
        try:
            target[key] = _coerce(env[variable], kind, path)
        except ConfigError as e:
            raise ConfigError(e.problem, key=path, path=where, variable=variable) from None
        origins[path] = variable
    return origins


def _coerce(text: str, kind: str, path: str) -> object:
    if kind == "int":
        try:
            return int(text.strip())
        except ValueError:
            wanted = "an integer 1-65535" if path == "appservice.port" else "an integer"
            _fail(path, f"expected {wanted}, got {text!r}")
    if kind == "bool":
        low = text.strip().lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        _fail(path, f"expected true or false, got {text!r}")
    if kind == "mapping":
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = None
        if not isinstance(value, dict):
            _fail(path, "expected a YAML/JSON mapping such as '{\"*\": relay}'")
        return value
    if kind == "str?" and text == "":
        return None
    return text if path not in _SECRET_KEYS else text.strip()


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def _describe_yaml_error(e: yaml.YAMLError) -> str:
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        mark = e.problem_mark
        return f"YAML error at line {mark.line + 1}, column {mark.column + 1}: {e.problem}"
    return f"not valid YAML ({type(e).__name__})"
