"""Content repository: upload bytes, or fetch a URL and upload what it serves."""

from __future__ import annotations

import logging
from urllib.parse import quote, urlencode, urlsplit

import httpx

from appservice.api import RespMediaUpload
from appservice.client.base import ClientBase
from appservice.client.retry import ConnectionFailedError
from appservice.errors import HTTPError, body_snippet

__all__ = ["MediaAPI"]

log = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE = "application/octet-stream"


class MediaAPI(ClientBase):
    """Endpoint group for media: ``upload_to_content_repo`` and ``upload_link``."""

    async def upload_to_content_repo(
        self,
        content: bytes,
        content_type: str,
        content_length: int | None = None,
        *,
        filename: str | None = None,
    ) -> RespMediaUpload:
        """Upload bytes (POST /_matrix/media/v3/upload) and return their ``mxc://`` URI.

        ``content_length`` (gomatrix's argument) must match ``len(content)`` when given; -1 or
        None means "the length of ``content``". An empty ``content_type`` is sent as
        ``application/octet-stream``.
        """
        if not isinstance(content, bytes | bytearray | memoryview):
            raise TypeError(
                f"upload_to_content_repo: content must be bytes, got {type(content).__name__}"
            )
        data = bytes(content)
        if not isinstance(content_type, str):
            raise TypeError(
                f"upload_to_content_repo: content_type must be a str, "
                f"got {type(content_type).__name__}"
            )
        if content_length is not None and content_length != -1 and content_length != len(data):
            raise ValueError(
                f"upload_to_content_repo: content_length {content_length} does not match the "
                f"{len(data)} bytes given"
            )
        url = self.build_base_url("_matrix", "media", "v3", "upload")
        if filename:
            url += ("&" if "?" in url else "?") + urlencode({"filename": filename}, quote_via=quote)
        resp = await self.make_request(
            "POST", url, content=data, content_type=content_type or DEFAULT_CONTENT_TYPE
        )
        return RespMediaUpload.from_dict(resp)

    async def upload_link(self, link: str) -> RespMediaUpload:
        """Download ``link`` (http/https, redirects followed) and upload it to the content repo.

        The download uses the client's connection pool but never its credentials. A download
        answered with a non-2xx status raises ``HTTPError`` with that status and body; one that
        gets no answer raises ``ConnectionFailedError`` (an ``HTTPError`` with code 0).
        """
        if not isinstance(link, str):
            raise TypeError(f"upload_link: link must be a str, got {type(link).__name__}")
        parts = urlsplit(link)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"upload_link: link must be an absolute http(s) URL, got {link!r}")
        where = f"{parts.scheme}://{parts.netloc}{parts.path}"  # no query: it may hold secrets
        try:
            # A bare pool request: the homeserver's Authorization header is never sent here.
            resp = await self.http.get(link, follow_redirects=True, timeout=self.timeout)
        except httpx.HTTPError as err:
            raise ConnectionFailedError(
                f"upload_link: downloading {where} failed: {type(err).__name__}: {err}",
                method="GET",
                path=parts.path or "/",
                attempts=1,
            ) from err
        if not 200 <= resp.status_code < 300:
            log.warning("upload_link: %s answered HTTP %d", where, resp.status_code)
            raise HTTPError(
                resp.status_code,
                f"upload_link: downloading {where} failed with HTTP {resp.status_code}: "
                f"{body_snippet(resp.content)}",
                resp.content,
            )
        content_type = resp.headers.get("Content-Type", "") or DEFAULT_CONTENT_TYPE
        return await self.upload_to_content_repo(resp.content, content_type, len(resp.content))
