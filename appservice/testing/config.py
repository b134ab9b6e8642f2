"""The files a test Synapse starts from: homeserver.yaml, the appservice registration, log config.

Pure builders returning dicts (plus a YAML writer), so the settings a test homeserver runs with
can be read in one place: SQLite, loopback only, no federation, cheap bcrypt, rate limits lifted.
"""

from __future__ import annotations

import copy
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "RATE_LIMIT_KEYS",
    "ExtraRegistration",
    "appservice_registration",
    "extra_registration_path",
    "homeserver_config",
    "log_config",
    "merge_overrides",
    "write_yaml",
]

#: Rate-limit settings lifted by default (dotted paths into homeserver.yaml).
RATE_LIMIT_KEYS: tuple[str, ...] = (
    "rc_message",
    "rc_registration",
    "rc_registration_token_validity",
    "rc_login.address",
    "rc_login.account",
    "rc_login.failed_attempts",
    "rc_admin_redaction",
    "rc_joins.local",
    "rc_joins.remote",
    "rc_joins_per_room",
    "rc_3pid_validation",
    "rc_invites.per_room",
    "rc_invites.per_user",
    "rc_invites.per_issuer",
    "rc_third_party_invite",
    "rc_media_create",
    "rc_presence.per_user",
    "rc_delayed_event_mgmt",
    "rc_room_creation",
    "rc_reports",
    "rc_user_directory",
    "rc_profile",
    "rc_key_requests",
)

#: An extra appservice registration: a path to a YAML file, or the registration as a mapping.
ExtraRegistration = str | os.PathLike[str] | Mapping[str, Any]


def homeserver_config(
    *,
    data_dir: Path,
    server_name: str,
    port: int,
    registration_shared_secret: str,
    registration_files: list[Path],
    lift_rate_limits: bool,
) -> dict[str, Any]:
    """homeserver.yaml for a single-process test Synapse listening on 127.0.0.1:`port`."""
    config: dict[str, Any] = {
        "server_name": server_name,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(data_dir / "homeserver.pid"),
        "report_stats": False,
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(data_dir / "homeserver.db")}},
        "log_config": str(data_dir / "log_config.yaml"),
        "media_store_path": str(data_dir / "media_store"),
        "signing_key_path": str(data_dir / f"{server_name}.signing.key"),
        "macaroon_secret_key": secrets.token_urlsafe(32),
        "form_secret": secrets.token_urlsafe(32),
        "registration_shared_secret": registration_shared_secret,
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "allow_guest_access": True,
        "bcrypt_rounds": 4,
        "federation_domain_whitelist": [],
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "url_preview_enabled": False,
        "enable_metrics": False,
        "room_list_publication_rules": [{"action": "allow"}],
        "app_service_config_files": [str(path) for path in registration_files],
    }
    if lift_rate_limits:
        unlimited = {"per_second": 1_000_000, "burst_count": 1_000_000}
        for dotted in RATE_LIMIT_KEYS:
            section, _, sub = dotted.partition(".")
            if sub:
                config.setdefault(section, {})[sub] = dict(unlimited)
            else:
                config[section] = dict(unlimited)
    return config


def appservice_registration(
    *,
    appservice_id: str,
    url: str,
    as_token: str,
    hs_token: str,
    sender_localpart: str,
    server_name: str,
    user_namespace_prefix: str,
    alias_namespace_prefix: str,
) -> dict[str, Any]:
    """The harness's appservice registration: exclusive user and alias namespaces, ephemeral on."""
    domain = re.escape(server_name)
    users = re.escape(user_namespace_prefix)
    aliases = re.escape(alias_namespace_prefix)
    return {
        "id": appservice_id,
        "url": url,
        "as_token": as_token,
        "hs_token": hs_token,
        "sender_localpart": sender_localpart,
        "namespaces": {
            "users": [{"exclusive": True, "regex": f"@{users}.*:{domain}"}],
            "aliases": [{"exclusive": True, "regex": f"#{aliases}.*:{domain}"}],
            "rooms": [],
        },
        "rate_limited": False,
        "receive_ephemeral": True,
        "de.sorunome.msc2409.push_ephemeral": True,
    }


def extra_registration_path(data_dir: Path, index: int, extra: ExtraRegistration) -> Path:
    """The file for one extra registration: a mapping is written into `data_dir` first."""
    if isinstance(extra, Mapping):
        path = data_dir / f"registration-extra-{index}.yaml"
        write_yaml(path, extra)
        return path
    if not isinstance(extra, str | os.PathLike):
        raise TypeError(
            f"start_synapse: extra_registrations[{index}] must be a path or a mapping, "
            f"got {type(extra)!r}"
        )
    path = Path(extra).resolve()
    if not path.is_file():
        raise ValueError(f"start_synapse: extra_registrations[{index}]: no file at {path}")
    return path


def log_config(log_path: Path) -> dict[str, Any]:
    """Python logging config for Synapse: INFO and up, unbuffered, into `log_path`."""
    return {
        "version": 1,
        "formatters": {
            "precise": {
                "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                "%(request)s - %(message)s"
            }
        },
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(log_path),
                "formatter": "precise",
                "encoding": "utf8",
            }
        },
        "loggers": {"synapse.storage.SQL": {"level": "INFO"}},
        "root": {"level": "INFO", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


def merge_overrides(
    base: dict[str, Any], overrides: Mapping[str, Any], where: str = "config_overrides"
) -> None:
    """Merge `overrides` into `base` in place: nested dicts merge, a None value removes the key."""
    for key, value in overrides.items():
        if not isinstance(key, str):
            raise TypeError(f"start_synapse: {where} keys must be str, got {key!r}")
        if value is None:
            base.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge_overrides(base[key], value, f"{where}.{key}")
        else:
            base[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)


def write_yaml(path: Path, data: Mapping[str, Any]) -> None:
    """Write `data` as YAML; a value YAML cannot represent raises TypeError naming the file."""
    try:
        text = yaml.safe_dump(dict(data), sort_keys=False)
    except yaml.YAMLError as err:
        raise TypeError(f"start_synapse: cannot write {path.name} as YAML: {err}") from None
    path.write_text(text, encoding="utf-8")
