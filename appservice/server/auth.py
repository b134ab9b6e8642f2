"""Homeserver authentication for the appservice API.

The spec sends the hs_token as ``Authorization: Bearer``; older homeservers used the
``access_token`` query parameter. Both are accepted, compared in constant time, and must agree when
both are present. The token never appears in a log line or an error message.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from appservice.server.http import M_FORBIDDEN, M_MISSING_TOKEN, MatrixHTTPError


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MatrixHTTPError(401, M_MISSING_TOKEN, "Authorization header is not a Bearer token")
    return token.strip()


def check_hs_token(headers: Mapping[str, str], query: Mapping[str, str], expected: str) -> None:
    """Raise :class:`MatrixHTTPError` unless the request carries exactly ``expected``.

    No token: 401 M_MISSING_TOKEN. A wrong token, or header and query giving different tokens:
    403 M_FORBIDDEN.
    """
    header_token = _bearer(headers)
    query_token = query.get("access_token")
    if header_token is None and query_token is None:
        raise MatrixHTTPError(401, M_MISSING_TOKEN, "Missing homeserver token")
    want = expected.encode()
    for given in (header_token, query_token):
        if given is not None and not hmac.compare_digest(given.encode(), want):
            raise MatrixHTTPError(403, M_FORBIDDEN, "Invalid homeserver token")
