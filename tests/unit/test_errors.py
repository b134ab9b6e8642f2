"""RespError parsing and HTTPError messages."""

from __future__ import annotations

import pickle

import pytest

from appservice import errors
from appservice.errors import HTTPError, RespError

NGINX_502 = b"""<html>
<head><title>502 Bad Gateway</title>
<style>body { width: 35em; margin: 0 auto; }</style></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx/1.25.3</center>
</body>
</html>
"""


def test_str_is_errcode_colon_text() -> None:
    e = RespError("M_FORBIDDEN", "You are not invited to this room.")
    assert str(e) == "M_FORBIDDEN: You are not invited to this room."
    assert e.errcode == errors.M_FORBIDDEN
    assert e.retry_after_ms is None


def test_from_body_reads_errcode_error_and_retry() -> None:
    e = RespError.from_body(
        b'{"errcode":"M_LIMIT_EXCEEDED","error":"Too many requests","retry_after_ms":2000}'
    )
    assert e is not None
    assert (e.errcode, e.error, e.retry_after_ms) == ("M_LIMIT_EXCEEDED", "Too many requests", 2000)
    assert str(e) == "M_LIMIT_EXCEEDED: Too many requests"
    assert e.data["retry_after_ms"] == 2000


def test_from_body_keeps_extra_keys() -> None:
    e = RespError.from_body(b'{"errcode":"M_UNKNOWN_TOKEN","error":"gone","soft_logout":true}')
    assert e is not None
    assert e.data["soft_logout"] is True


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"<html>502</html>",
        b"[]",
        b'"M_FORBIDDEN"',
        b"{}",
        b'{"error":"no code"}',
        b'{"errcode":42,"error":"x"}',
        b'{"errcode":null}',
    ],
)
def test_from_body_none_without_string_errcode(raw: bytes) -> None:
    assert RespError.from_body(raw) is None


def test_from_body_tolerates_odd_error_and_retry_values() -> None:
    e = RespError.from_body(b'{"errcode":"M_UNKNOWN","error":5,"retry_after_ms":"soon"}')
    assert e is not None
    assert (e.error, e.retry_after_ms) == ("", None)
    e = RespError.from_body(b'{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":true}')
    assert e is not None
    assert e.retry_after_ms is None
    e = RespError.from_body(b'{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":-5}')
    assert e is not None
    assert e.retry_after_ms is None
    e = RespError.from_body(b'{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":1500.0}')
    assert e is not None
    assert e.retry_after_ms == 1500


def test_http_error_with_matrix_error() -> None:
    body = b'{"errcode":"M_FORBIDDEN","error":"You are not invited"}'
    wrapped = RespError.from_body(body)
    e = HTTPError(403, "POST /_matrix/client/v3/join/!r", body, wrapped)
    assert (e.code, e.contents, e.wrapped_error) == (403, body, wrapped)
    assert str(e) == "HTTP 403: POST /_matrix/client/v3/join/!r: M_FORBIDDEN: You are not invited"


def test_http_error_html_body_gives_readable_snippet() -> None:
    e = HTTPError(502, "GET /_matrix/client/v3/sync", NGINX_502)
    text = str(e)
    assert text.startswith("HTTP 502: GET /_matrix/client/v3/sync: response body: ")
    assert "502 Bad Gateway" in text
    assert "nginx/1.25.3" in text
    for noise in ("<", ">", "width: 35em", "\n"):
        assert noise not in text


def test_http_error_long_body_is_truncated() -> None:
    e = HTTPError(500, "PUT /x", b"x" * 10_000)
    text = str(e)
    assert len(text) < 300
    assert text.endswith("…")


def test_http_error_empty_body_and_no_status() -> None:
    assert str(HTTPError(503, "GET /sync", b"")) == "HTTP 503: GET /sync (empty response body)"
    assert str(HTTPError(0, "", b"")) == "HTTP request failed (empty response body)"


def test_http_error_never_carries_a_token() -> None:
    e = HTTPError(
        401,
        "GET https://hs/_matrix/client/v3/sync?access_token=syt_secret&since=s1",
        b"access_token=syt_other",
    )
    assert "syt_secret" not in e.message
    assert "syt_secret" not in str(e)
    assert "syt_secret" not in repr(e)
    assert "syt_other" not in str(e)
    assert "since=s1" in e.message


def test_errors_survive_pickling() -> None:
    wrapped = RespError("M_NOT_FOUND", "no room", 10, {"errcode": "M_NOT_FOUND"})
    e = pickle.loads(pickle.dumps(HTTPError(404, "GET /x", b"{}", wrapped)))
    assert isinstance(e, HTTPError)
    assert e.code == 404
    assert e.wrapped_error is not None
    assert str(e.wrapped_error) == "M_NOT_FOUND: no room"
    assert e.wrapped_error.retry_after_ms == 10


def test_errcode_constants_are_their_own_names() -> None:
    names = [n for n in dir(errors) if n.startswith("M_")]
    assert len(names) >= 30
    for name in names:
        assert getattr(errors, name) == name
    for needed in ("M_FORBIDDEN", "M_UNKNOWN_TOKEN", "M_LIMIT_EXCEEDED", "M_USER_IN_USE"):
        assert needed in names
