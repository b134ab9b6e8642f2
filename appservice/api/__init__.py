"""Typed request and response bodies of the client-server API (``Req*`` and ``Resp*``)."""

from appservice.api.requests import *  # noqa: F403
from appservice.api.requests import __all__ as _requests_all
from appservice.api.responses import *  # noqa: F403
from appservice.api.responses import __all__ as _responses_all

__all__ = [*_requests_all, *_responses_all]
