"""Errors raised for failed homeserver requests, and the spec's common ``errcode`` values.

``RespError`` is the Matrix error body (``{"errcode": ..., "error": ...}``); ``HTTPError`` is any
non-2xx response, wrapping a ``RespError`` when the body carried one.
"""

from __future__ import annotations

import html
import re
from typing import Any, Final

import orjson

M_FORBIDDEN: Final = "M_FORBIDDEN"
M_UNKNOWN_TOKEN: Final = "M_UNKNOWN_TOKEN"  # noqa: S105 (an errcode, not a secret)
M_MISSING_TOKEN: Final = "M_MISSING_TOKEN"  # noqa: S105 (an errcode, not a secret)
M_USER_LOCKED: Final = "M_USER_LOCKED"
M_USER_SUSPENDED: Final = "M_USER_SUSPENDED"
M_BAD_JSON: Final = "M_BAD_JSON"
M_NOT_JSON: Final = "M_NOT_JSON"
M_NOT_FOUND: Final = "M_NOT_FOUND"
M_LIMIT_EXCEEDED: Final = "M_LIMIT_EXCEEDED"
M_UNRECOGNIZED: Final = "M_UNRECOGNIZED"
M_UNKNOWN: Final = "M_UNKNOWN"
M_UNAUTHORIZED: Final = "M_UNAUTHORIZED"
M_USER_DEACTIVATED: Final = "M_USER_DEACTIVATED"
M_USER_IN_USE: Final = "M_USER_IN_USE"
M_INVALID_USERNAME: Final = "M_INVALID_USERNAME"
M_ROOM_IN_USE: Final = "M_ROOM_IN_USE"
M_INVALID_ROOM_STATE: Final = "M_INVALID_ROOM_STATE"
M_THREEPID_IN_USE: Final = "M_THREEPID_IN_USE"
M_THREEPID_NOT_FOUND: Final = "M_THREEPID_NOT_FOUND"
M_THREEPID_AUTH_FAILED: Final = "M_THREEPID_AUTH_FAILED"
M_THREEPID_DENIED: Final = "M_THREEPID_DENIED"
M_THREEPID_MEDIUM_NOT_SUPPORTED: Final = "M_THREEPID_MEDIUM_NOT_SUPPORTED"
M_SERVER_NOT_TRUSTED: Final = "M_SERVER_NOT_TRUSTED"
M_UNSUPPORTED_ROOM_VERSION: Final = "M_UNSUPPORTED_ROOM_VERSION"
M_INCOMPATIBLE_ROOM_VERSION: Final = "M_INCOMPATIBLE_ROOM_VERSION"
M_BAD_STATE: Final = "M_BAD_STATE"
M_GUEST_ACCESS_FORBIDDEN: Final = "M_GUEST_ACCESS_FORBIDDEN"
M_CAPTCHA_NEEDED: Final = "M_CAPTCHA_NEEDED"
M_CAPTCHA_INVALID: Final = "M_CAPTCHA_INVALID"
M_MISSING_PARAM: Final = "M_MISSING_PARAM"
M_INVALID_PARAM: Final = "M_INVALID_PARAM"
M_TOO_LARGE: Final = "M_TOO_LARGE"
M_EXCLUSIVE: Final = "M_EXCLUSIVE"
M_RESOURCE_LIMIT_EXCEEDED: Final = "M_RESOURCE_LIMIT_EXCEEDED"
M_CANNOT_LEAVE_SERVER_NOTICE_ROOM: Final = "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM"
M_WEAK_PASSWORD: Final = "M_WEAK_PASSWORD"  # noqa: S105 (an errcode, not a secret)
M_UNABLE_TO_AUTHORISE_JOIN: Final = "M_UNABLE_TO_AUTHORISE_JOIN"
M_UNABLE_TO_GRANT_JOIN: Final = "M_UNABLE_TO_GRANT_JOIN"
M_NOT_YET_UPLOADED: Final = "M_NOT_YET_UPLOADED"
M_CANNOT_OVERWRITE_MEDIA: Final = "M_CANNOT_OVERWRITE_MEDIA"
M_URL_NOT_SET: Final = "M_URL_NOT_SET"
M_BAD_STATUS: Final = "M_BAD_STATUS"
M_CONNECTION_FAILED: Final = "M_CONNECTION_FAILED"
M_CONNECTION_TIMEOUT: Final = "M_CONNECTION_TIMEOUT"

_SNIPPET_LIMIT: Final = 200
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^<>]*>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")
_SECRET_QUERY = re.compile(r"((?:access_token|as_token|hs_token)=)[^&\s#]*", re.IGNORECASE)


class RespError(Exception):
    """A Matrix error response body: ``errcode`` (e.g. ``M_FORBIDDEN``) and a human ``error``.

    ``retry_after_ms`` is set when the server said how long to wait (``M_LIMIT_EXCEEDED``);
    ``data`` holds the whole decoded body for errcode-specific keys (``soft_logout``, ...).
    """

    errcode: str
    error: str
    retry_after_ms: int | None
    data: dict[str, Any]

    def __init__(
        self,
        errcode: str,
        error: str,
        retry_after_ms: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(errcode, error, retry_after_ms, data)
        self.errcode = errcode
        self.error = error
        self.retry_after_ms = retry_after_ms
        self.data = {} if data is None else data

    def __str__(self) -> str:
        return f"{self.errcode}: {self.error}"

    def __repr__(self) -> str:
        return (
            f"RespError(errcode={self.errcode!r}, error={self.error!r}, "
            f"retry_after_ms={self.retry_after_ms!r})"
        )

    @classmethod
    def from_body(cls, raw: bytes) -> RespError | None:
        """Parse a response body; ``None`` unless it is a JSON object with a string ``errcode``."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(body, dict):
            return None
        errcode = body.get("errcode")
        if not isinstance(errcode, str):
            return None
        error = body.get("error")
        retry = body.get("retry_after_ms")
        retry_after_ms: int | None = None
        if isinstance(retry, int | float) and not isinstance(retry, bool) and retry >= 0:
            retry_after_ms = int(retry)
        return cls(errcode, error if isinstance(error, str) else "", retry_after_ms, body)


def redact_secrets(text: str) -> str:
    """Replace the values of ``access_token``/``as_token``/``hs_token`` query parameters."""
    return _SECRET_QUERY.sub(r"\1<redacted>", text)


def body_snippet(contents: bytes, limit: int = _SNIPPET_LIMIT) -> str:
    """A short readable one-line summary of a response body (HTML tags stripped, truncated)."""
    text = contents.decode("utf-8", errors="replace")
    if "<" in text and ">" in text:
        text = html.unescape(_TAG.sub(" ", text))
    text = _SPACE.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return redact_secrets(text)


class HTTPError(Exception):
    """A request that got a non-2xx answer (or none).

    ``code`` is the HTTP status (0 when no response arrived), ``message`` says what was being
    done, ``contents`` is the raw body and ``wrapped_error`` the parsed ``RespError`` when the
    body carried an ``errcode``. Query-string tokens are redacted from ``message``.
    """

    code: int
    message: str
    contents: bytes
    wrapped_error: RespError | None

    def __init__(
        self,
        code: int,
        message: str,
        contents: bytes = b"",
        wrapped_error: RespError | None = None,
    ) -> None:
        message = redact_secrets(message)
        super().__init__(code, message, contents, wrapped_error)
        self.code = code
        self.message = message
        self.contents = contents
        self.wrapped_error = wrapped_error

    def __str__(self) -> str:
        head = f"HTTP {self.code}" if self.code else "HTTP request failed"
        if self.message:
            head = f"{head}: {self.message}"
        if self.wrapped_error is not None:
            return f"{head}: {self.wrapped_error}"
        snippet = body_snippet(self.contents)
        if not snippet:
            return f"{head} (empty response body)"
        return f"{head}: response body: {snippet}"

    def __repr__(self) -> str:
        return (
            f"HTTPError(code={self.code!r}, message={self.message!r}, "
            f"contents=<{len(self.contents)} bytes>, wrapped_error={self.wrapped_error!r})"
        )
