"""Third-party network lookups (``/_matrix/app/v1/thirdparty/...``): an optional capability.

A bridge that can answer them passes an object implementing :class:`ThirdPartyHandler` to
``AppService(thirdparty=...)``; without one every thirdparty route answers 404 ``M_NOT_FOUND``.
Results are the spec's JSON objects (``Protocol``, ``Location``, ``User``).
"""

from __future__ import annotations

from typing import Any, Protocol


class ThirdPartyHandler(Protocol):
    """Answers the homeserver's third-party protocol, location and user queries."""

    async def get_protocol(self, protocol: str) -> dict[str, Any] | None:
        """Metadata for ``protocol`` (``user_fields``, ``location_fields``, ``instances``, ...),
        or ``None`` when unknown."""

    async def query_locations(self, protocol: str, fields: dict[str, str]) -> list[dict[str, Any]]:
        """Portal rooms for a remote location described by ``fields``."""

    async def query_users(self, protocol: str, fields: dict[str, str]) -> list[dict[str, Any]]:
        """Matrix users for a remote user described by ``fields``."""

    async def lookup_locations(self, alias: str) -> list[dict[str, Any]]:
        """Remote locations for a Matrix room alias."""

    async def lookup_users(self, user_id: str) -> list[dict[str, Any]]:
        """Remote users for a Matrix user ID."""
