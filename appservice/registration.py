"""Application service registration: load, validate, generate, save and match namespaces.

The registration is the YAML file a homeserver admin lists under Synapse's
`app_service_config_files`; it tells the homeserver where the appservice lives, the two shared
tokens, and which user IDs, room aliases and room IDs the appservice claims.

Namespace regexes are matched against the whole ID (`re.fullmatch`), so `@_irc_.*:example\\.org`
never claims `@_irc_x:example.org.evil.com`. Synapse itself uses `re.match`, anchored only at the
start: write regexes that end with the server name so both sides agree on what they claim.
"""

from __future__ import annotations

import copy
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote, urlsplit

import yaml

KEY_PUSH_EPHEMERAL = "de.sorunome.msc2409.push_ephemeral"
"""Unstable MSC2409 key: ephemeral events under `de.sorunome.msc2409.ephemeral` in transactions."""
KEY_MSC3202 = "org.matrix.msc3202"
"""Unstable MSC3202 key: device list changes and one-time/fallback key counts in transactions."""
NAMESPACE_KINDS = ("users", "aliases", "rooms")
TOKEN_LENGTH = 64
_REQUIRED_KEYS = ("id", "url", "as_token", "hs_token", "sender_localpart", "namespaces")
_KNOWN_KEYS = frozenset(
    (
        *_REQUIRED_KEYS,
        "rate_limited",
        "protocols",
        "receive_ephemeral",
        KEY_PUSH_EPHEMERAL,
        KEY_MSC3202,
    )
)
_USER_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
_REDACTED = "<redacted>"


class RegistrationError(ValueError):
    """A registration that cannot be used; the message names the file (when known) and the key."""

    def __init__(self, problem: str, *, key: str | None = None, path: str | None = None) -> None:
        self.problem = problem
        self.key = key
        self.path = path
        super().__init__(": ".join(p for p in (path, key, problem) if p))


def _type_name(value: object) -> str:
    names = {type(None): "null", bool: "a boolean", int: "an integer", float: "a number"}
    names |= {str: "a string", list: "a list", dict: "a mapping"}
    return names.get(type(value), type(value).__name__)


def _expect(value: object, kind: type, what: str, key: str) -> None:
    if not isinstance(value, kind):
        raise RegistrationError(f"expected {what}, got {_type_name(value)}", key=key)


@dataclass(frozen=True)
class Namespace:
    """One namespace entry: a regex over whole IDs, and whether the appservice claims it alone."""

    regex: str
    exclusive: bool
    extra: Mapping[str, Any] = field(default_factory=dict)
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _expect(self.regex, str, "a string", "regex")
        _expect(self.exclusive, bool, "a boolean (true or false)", "exclusive")
        if "regex" in self.extra or "exclusive" in self.extra:
            raise RegistrationError(
                "extra keys must not repeat 'regex' or 'exclusive'", key="extra"
            )
        try:
            pattern = re.compile(self.regex)
        except re.error as e:
            raise RegistrationError(
                f"regex {self.regex!r} does not compile: {e}", key="regex"
            ) from None
        object.__setattr__(self, "_pattern", pattern)

    def __hash__(self) -> int:
        return hash((self.regex, self.exclusive))

    def matches(self, value: str) -> bool:
        """Whether the whole of `value` matches this namespace's regex."""
        return self._pattern.fullmatch(value) is not None

    def to_dict(self) -> dict[str, Any]:
        """The entry as it appears in the YAML file (unknown keys such as `group_id` kept)."""
        return {"exclusive": self.exclusive, "regex": self.regex, **copy.deepcopy(dict(self.extra))}

    @classmethod
    def from_dict(cls, data: object, key: str = "namespace") -> Self:
        """Parse one entry; errors name `key` (e.g. `namespaces.users[0]`) and the field."""
        _expect(data, dict, "a mapping with 'regex' and 'exclusive'", key)
        assert isinstance(data, dict)
        for name in ("regex", "exclusive"):
            if name not in data:
                raise RegistrationError("required key is missing", key=f"{key}.{name}")
        extra = {k: copy.deepcopy(v) for k, v in data.items() if k not in ("regex", "exclusive")}
        try:
            return cls(data["regex"], data["exclusive"], extra)
        except RegistrationError as e:
            raise RegistrationError(e.problem, key=f"{key}.{e.key}") from None


@dataclass
class Namespaces:
    """The user, alias and room namespaces of a registration (other kinds are kept in `extra`)."""

    users: list[Namespace] = field(default_factory=list)
    aliases: list[Namespace] = field(default_factory=list)
    rooms: list[Namespace] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The `namespaces` mapping as it appears in the YAML file."""
        out: dict[str, Any] = {
            kind: [ns.to_dict() for ns in self._of(kind)] for kind in NAMESPACE_KINDS
        }
        return out | copy.deepcopy(self.extra)

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Parse the `namespaces` mapping; a missing kind is an empty list, as in Synapse."""
        _expect(data, dict, "a mapping of users/aliases/rooms lists", "namespaces")
        assert isinstance(data, dict)
        lists: dict[str, list[Namespace]] = {}
        for kind in NAMESPACE_KINDS:
            entries = data.get(kind, [])
            _expect(entries, list, "a list of namespace entries", f"namespaces.{kind}")
            lists[kind] = [
                Namespace.from_dict(entry, f"namespaces.{kind}[{i}]")
                for i, entry in enumerate(entries)
            ]
        extra = {k: copy.deepcopy(v) for k, v in data.items() if k not in NAMESPACE_KINDS}
        return cls(lists["users"], lists["aliases"], lists["rooms"], extra)

    def validate(self) -> None:
        """Check every kind is a list of `Namespace` (for objects built or edited in code)."""
        for kind in NAMESPACE_KINDS:
            entries = self._of(kind)
            _expect(entries, list, "a list of namespace entries", f"namespaces.{kind}")
            for i, entry in enumerate(entries):
                if not isinstance(entry, Namespace):
                    got = _type_name(entry)
                    raise RegistrationError(
                        f"expected a Namespace, got {got}", key=f"namespaces.{kind}[{i}]"
                    )
        _expect(self.extra, dict, "a mapping", "namespaces")

    def _of(self, kind: str) -> list[Namespace]:
        entries: list[Namespace] = getattr(self, kind)
        return entries


def _check_url(url: object) -> None:
    if url is None:
        return
    _expect(url, str, "null or an absolute http(s) URL", "url")
    assert isinstance(url, str)
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as e:
        raise RegistrationError(f"not a valid URL: {e}", key="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistrationError(
            f"must be null or an absolute http(s) URL such as http://127.0.0.1:29331, got {url!r}",
            key="url",
        )
    if parts.query or parts.fragment:
        raise RegistrationError(f"must not have a query or fragment, got {url!r}", key="url")


def _check_token(token: object, key: str) -> None:
    _expect(token, str, "a string", key)
    assert isinstance(token, str)
    if not token:
        raise RegistrationError("must not be empty", key=key)
    if any(c.isspace() for c in token):
        raise RegistrationError("must not contain whitespace", key=key)


@dataclass
class Registration:
    """An application service registration: what the homeserver knows about the appservice.

    `server_name` and `path` are not part of the file: `server_name` (the homeserver's name) is
    needed only for `bot_user_id`/`is_own_user`, `path` is where `load` read it from.
    """

    id: str
    url: str | None
    as_token: str = field(repr=False)
    hs_token: str = field(repr=False)
    sender_localpart: str
    namespaces: Namespaces = field(default_factory=Namespaces)
    rate_limited: bool | None = None
    protocols: list[str] | None = None
    receive_ephemeral: bool = False
    push_ephemeral: bool = False
    msc3202: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    server_name: str | None = field(default=None, compare=False)
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise `RegistrationError` naming the key when any field is unusable."""
        try:
            self._validate()
        except RegistrationError as e:
            raise RegistrationError(
                self._redact(e.problem), key=e.key, path=str(self.path) if self.path else None
            ) from None

    def _validate(self) -> None:
        _expect(self.id, str, "a string", "id")
        if not self.id or "|" in self.id:
            raise RegistrationError("must be a non-empty string without '|'", key="id")
        _check_url(self.url)
        _check_token(self.as_token, "as_token")
        _check_token(self.hs_token, "hs_token")
        if self.as_token == self.hs_token:
            raise RegistrationError(
                "as_token and hs_token must be different secrets", key="hs_token"
            )
        _expect(self.sender_localpart, str, "a string", "sender_localpart")
        if not self.sender_localpart or quote(self.sender_localpart) != self.sender_localpart:
            raise RegistrationError(
                f"must be a non-empty localpart without characters that need URL-encoding, "
                f"got {self.sender_localpart!r}",
                key="sender_localpart",
            )
        _expect(self.namespaces, Namespaces, "a Namespaces", "namespaces")
        self.namespaces.validate()
        if self.rate_limited is not None:
            _expect(self.rate_limited, bool, "a boolean (true or false)", "rate_limited")
        if self.protocols is not None:
            _expect(self.protocols, list, "a list of strings", "protocols")
            for i, protocol in enumerate(self.protocols):
                _expect(protocol, str, "a string", f"protocols[{i}]")
        for key, value in (
            ("receive_ephemeral", self.receive_ephemeral),
            (KEY_PUSH_EPHEMERAL, self.push_ephemeral),
            (KEY_MSC3202, self.msc3202),
        ):
            _expect(value, bool, "a boolean (true or false)", key)
        _expect(self.extra, dict, "a mapping", "extra")
        clash = sorted(k for k in self.extra if not isinstance(k, str) or k in _KNOWN_KEYS)
        if clash:
            raise RegistrationError(
                f"unknown-key store holds known or non-string keys {clash}", key="extra"
            )
        if self.server_name is not None and (
            not isinstance(self.server_name, str) or not self.server_name
        ):
            raise RegistrationError("must be a non-empty string or None", key="server_name")

    def _redact(self, text: str) -> str:
        for token in (self.as_token, self.hs_token):
            if isinstance(token, str) and token:
                text = text.replace(token, _REDACTED)
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, server_name: str | None = None) -> Self:
        """Build from the parsed YAML mapping; keys this class does not know are kept in `extra`."""
        if not isinstance(data, Mapping):
            raise RegistrationError(
                f"expected a mapping of keys at the top level, got {_type_name(data)}"
            )
        for key in _REQUIRED_KEYS:
            if key not in data:
                hint = (
                    " (write `url: null` for an appservice that takes no traffic)"
                    if key == "url"
                    else ""
                )
                raise RegistrationError(f"required key is missing{hint}", key=key)
        secrets_seen = [
            data[k] for k in ("as_token", "hs_token") if isinstance(data[k], str) and data[k]
        ]
        try:
            return cls(
                id=data["id"],
                url=data["url"],
                as_token=data["as_token"],
                hs_token=data["hs_token"],
                sender_localpart=data["sender_localpart"],
                namespaces=Namespaces.from_dict(data["namespaces"]),
                rate_limited=data.get("rate_limited"),
                protocols=copy.deepcopy(data.get("protocols")),
                receive_ephemeral=data.get("receive_ephemeral", False),
                push_ephemeral=data.get(KEY_PUSH_EPHEMERAL, False),
                msc3202=data.get(KEY_MSC3202, False),
                extra={k: copy.deepcopy(v) for k, v in data.items() if k not in _KNOWN_KEYS},
                server_name=server_name,
            )
        except RegistrationError as e:
            problem = e.problem
            for token in secrets_seen:
                problem = problem.replace(token, _REDACTED)
            raise RegistrationError(problem, key=e.key) from None

    def to_dict(self) -> dict[str, Any]:
        """The registration as the YAML mapping (tokens included; unknown keys kept)."""
        out: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "as_token": self.as_token,
            "hs_token": self.hs_token,
            "sender_localpart": self.sender_localpart,
            "namespaces": self.namespaces.to_dict(),
        }
        if self.rate_limited is not None:
            out["rate_limited"] = self.rate_limited
        if self.protocols is not None:
            out["protocols"] = list(self.protocols)
        out["receive_ephemeral"] = self.receive_ephemeral
        if self.push_ephemeral:
            out[KEY_PUSH_EPHEMERAL] = True
        if self.msc3202:
            out[KEY_MSC3202] = True
        return out | copy.deepcopy(self.extra)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, server_name: str | None = None) -> Self:
        """Read and validate a registration YAML file; every failure is a `RegistrationError`."""
        p = Path(path)
        where = str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RegistrationError("file not found", path=where) from None
        except UnicodeDecodeError as e:
            raise RegistrationError(
                f"not UTF-8 text (bad byte at offset {e.start})", path=where
            ) from None
        except OSError as e:
            raise RegistrationError(
                f"cannot read: {e.strerror or type(e).__name__}", path=where
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            # Never str(e): PyYAML quotes the offending line, which may hold a token.
            raise RegistrationError(_describe_yaml_error(e), path=where) from None
        if data is None:
            raise RegistrationError("file is empty", path=where)
        try:
            registration = cls.from_dict(data, server_name=server_name)
        except RegistrationError as e:
            raise RegistrationError(e.problem, key=e.key, path=where) from None
        registration.path = p
        return registration

    def save(self, path: str | os.PathLike[str] | None = None) -> None:
        """Write the YAML atomically (temp file, fsync, rename), mode 0600 since it holds tokens.

        `path` defaults to the file this registration was loaded from. Comments are not kept.
        """
        if path is None and self.path is None:
            raise RegistrationError("no path given and the registration was not loaded from a file")
        target = Path(path) if path is not None else self.path
        assert target is not None
        where = str(target)
        try:
            self._validate()
            text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        except RegistrationError as e:
            raise RegistrationError(self._redact(e.problem), key=e.key, path=where) from None
        except yaml.YAMLError as e:
            raise RegistrationError(
                f"cannot be written as YAML ({type(e).__name__})", path=where
            ) from None
        try:
            _atomic_write(target.resolve() if target.is_symlink() else target, text)
        except OSError as e:
            raise RegistrationError(
                f"cannot write: {e.strerror or type(e).__name__}", path=where
            ) from None
        self.path = target

    @classmethod
    def generate(
        cls,
        id: str,
        url: str | None,
        sender_localpart: str,
        user_prefix: str,
        alias_prefix: str | None = None,
        *,
        server_name: str,
        exclusive: bool = True,
        rate_limited: bool = False,
        receive_ephemeral: bool = False,
        push_ephemeral: bool = False,
        msc3202: bool = False,
        protocols: list[str] | None = None,
    ) -> Self:
        """A new registration with fresh random tokens and namespaces for a bridge.

        Users `@<user_prefix>.*:<server_name>` and, when given, aliases
        `#<alias_prefix>.*:<server_name>` (prefixes and server name regex-escaped).
        Puppets are not rate limited by default, as bridges relay many users' messages.
        """
        _expect(server_name, str, "a string", "server_name")
        if not server_name or any(c.isspace() or c in "/@" for c in server_name):
            raise RegistrationError(f"not a server name: {server_name!r}", key="server_name")
        _expect(user_prefix, str, "a string", "user_prefix")
        if not _USER_LOCALPART.fullmatch(user_prefix):
            raise RegistrationError(
                f"must be non-empty and use only a-z 0-9 . _ = - / +, got {user_prefix!r}",
                key="user_prefix",
            )
        server = re.escape(server_name)
        users = [Namespace(f"@{re.escape(user_prefix)}.*:{server}", exclusive)]
        aliases: list[Namespace] = []
        if alias_prefix is not None:
            _expect(alias_prefix, str, "a string", "alias_prefix")
            if not alias_prefix or any(c.isspace() or c == ":" for c in alias_prefix):
                raise RegistrationError(
                    f"must be non-empty, without spaces or ':', got {alias_prefix!r}",
                    key="alias_prefix",
                )
            aliases.append(Namespace(f"#{re.escape(alias_prefix)}.*:{server}", exclusive))
        return cls(
            id=id,
            url=url,
            as_token=secrets.token_hex(TOKEN_LENGTH // 2),
            hs_token=secrets.token_hex(TOKEN_LENGTH // 2),
            sender_localpart=sender_localpart,
            namespaces=Namespaces(users=users, aliases=aliases),
            rate_limited=rate_limited,
            protocols=protocols,
            receive_ephemeral=receive_ephemeral,
            push_ephemeral=push_ephemeral,
            msc3202=msc3202,
            server_name=server_name,
        )

    def is_user_in_namespace(self, user_id: str) -> bool:
        """Whether a user namespace regex matches the whole user ID."""
        return any(ns.matches(user_id) for ns in self.namespaces.users)

    def is_alias_in_namespace(self, alias: str) -> bool:
        """Whether an alias namespace regex matches the whole room alias."""
        return any(ns.matches(alias) for ns in self.namespaces.aliases)

    def is_room_in_namespace(self, room_id: str) -> bool:
        """Whether a room namespace regex matches the whole room ID."""
        return any(ns.matches(room_id) for ns in self.namespaces.rooms)

    def is_user_exclusive(self, user_id: str) -> bool:
        """Whether an exclusive user namespace claims this ID (others may not register it)."""
        return any(ns.exclusive and ns.matches(user_id) for ns in self.namespaces.users)

    def is_alias_exclusive(self, alias: str) -> bool:
        """Whether an exclusive alias namespace claims this alias."""
        return any(ns.exclusive and ns.matches(alias) for ns in self.namespaces.aliases)

    def is_room_exclusive(self, room_id: str) -> bool:
        """Whether an exclusive room namespace claims this room ID."""
        return any(ns.exclusive and ns.matches(room_id) for ns in self.namespaces.rooms)

    def bot_user_id(self, server_name: str | None = None) -> str:
        """The appservice bot's user ID, `@<sender_localpart>:<server_name>`."""
        server = server_name if server_name is not None else self.server_name
        if not server:
            raise ValueError(
                "server name unknown: pass server_name= here or to Registration.load()/from_dict()"
            )
        return f"@{self.sender_localpart}:{server}"

    def is_own_user(self, user_id: str, *, server_name: str | None = None) -> bool:
        """Whether `user_id` is our bot or a puppet in our user namespace (for echo suppression)."""
        return user_id == self.bot_user_id(server_name) or self.is_user_in_namespace(user_id)


def _describe_yaml_error(e: yaml.YAMLError) -> str:
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        mark = e.problem_mark
        problem = e.problem or "syntax error"
        context = f" ({e.context})" if e.context else ""
        return f"YAML error at line {mark.line + 1}, column {mark.column + 1}: {problem}{context}"
    if isinstance(e, yaml.reader.ReaderError):
        return f"YAML error at character offset {e.position}: {e.reason}"
    return f"not valid YAML ({type(e).__name__})"


def _atomic_write(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
