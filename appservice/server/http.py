"""Matrix error responses for the appservice API: every error is ``{"errcode", "error"}`` JSON."""

from __future__ import annotations

import orjson
from starlette.responses import Response

M_MISSING_TOKEN = "M_MISSING_TOKEN"  # noqa: S105 (an errcode, not a secret)
M_FORBIDDEN = "M_FORBIDDEN"
M_UNRECOGNIZED = "M_UNRECOGNIZED"
M_NOT_JSON = "M_NOT_JSON"
M_BAD_JSON = "M_BAD_JSON"
M_TOO_LARGE = "M_TOO_LARGE"
M_NOT_FOUND = "M_NOT_FOUND"
M_LIMIT_EXCEEDED = "M_LIMIT_EXCEEDED"
M_UNKNOWN = "M_UNKNOWN"
M_MISSING_PARAM = "M_MISSING_PARAM"


class MatrixHTTPError(Exception):
    """An error answered to the homeserver as a Matrix error body with an HTTP status."""

    def __init__(self, status: int, errcode: str, error: str) -> None:
        super().__init__(f"{status} {errcode}: {error}")
        self.status = status
        self.errcode = errcode
        self.error = error

    def response(self) -> Response:
        """The JSON response for this error."""
        return error_response(self.status, self.errcode, self.error)


def json_response(body: object, status: int = 200) -> Response:
    """A JSON response serialised with orjson."""
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def error_response(status: int, errcode: str, error: str) -> Response:
    """A Matrix error response: ``{"errcode": ..., "error": ...}`` with the given status."""
    return json_response({"errcode": errcode, "error": error}, status)


EMPTY_OK = b"{}"


def ok_empty() -> Response:
    """The ``{}`` 200 answer used by transactions and ping."""
    return Response(EMPTY_OK, media_type="application/json")
