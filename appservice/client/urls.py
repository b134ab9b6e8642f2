"""Pure URL helpers for the client: homeserver URL validation, path segment and query encoding.

Each path segment is percent-encoded on its own, so a ``/`` (or ``?``, ``#``, ``..``) inside a
Matrix ID can never change which endpoint is called. ``@ : $ + = , ; &`` stay literal (they are
legal in a path segment and keep IDs readable); ``!``, ``#`` and every other character outside
RFC 3986's unreserved set are encoded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote, urlsplit

__all__ = [
    "QueryValue",
    "encode_query",
    "encode_segment",
    "join_segments",
    "validate_homeserver_url",
]

SEGMENT_SAFE = "@:$+=,;&"
"""Characters (besides unreserved ones) left literal in a path segment."""

QUERY_SAFE = "@:"
"""Characters (besides unreserved ones) left literal in a query key or value (readable user IDs)."""

QueryValue = str | list[str]
"""A query value: one string, or a list for a repeated key (``via=a&via=b``)."""


def validate_homeserver_url(url: object) -> str:
    """Return ``url`` without a trailing slash; ValueError/TypeError saying what is wrong.

    A homeserver URL must be an absolute ``http``/``https`` URL with a host and optional port and
    path, and no credentials, query or fragment.
    """
    if not isinstance(url, str):
        raise TypeError(f"homeserver_url must be a str, got {type(url).__name__}")
    if not url:
        raise ValueError("homeserver_url must not be empty (expected e.g. https://matrix.org)")
    if url != url.strip() or any(c.isspace() or ord(c) < 0x20 for c in url):
        raise ValueError(f"homeserver_url {url!r} contains whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        what = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ValueError(
            f"homeserver_url {url!r} has {what}: it must be an absolute http:// or https:// URL"
        )
    if "@" in parts.netloc:
        raise ValueError(
            "homeserver_url must not contain credentials (user:password@); use access_token instead"
        )
    if not parts.hostname:
        raise ValueError(f"homeserver_url {url!r} has no host")
    try:
        port = parts.port
    except ValueError as err:
        raise ValueError(f"homeserver_url {url!r} has an invalid port: {err}") from None
    if port == 0:
        raise ValueError(f"homeserver_url {url!r} has an invalid port: 0")
    if parts.query or url.endswith("?"):
        raise ValueError(f"homeserver_url {url!r} must not have a query string")
    if parts.fragment or "#" in url:
        raise ValueError(f"homeserver_url {url!r} must not have a fragment")
    return url.rstrip("/")


def encode_segment(segment: object, position: int) -> str:
    """Percent-encode one path segment; ``position`` (1-based) names it in errors."""
    if not isinstance(segment, str):
        raise TypeError(f"path segment {position} must be a str, got {type(segment).__name__}")
    if not segment:
        raise ValueError(f"path segment {position} is empty")
    if segment in (".", ".."):
        # Literal dot segments would be collapsed by URL normalisation and change the path.
        return segment.replace(".", "%2E")
    return quote(segment, safe=SEGMENT_SAFE)


def join_segments(segments: Sequence[str]) -> str:
    """``/seg1/seg2/...`` with each segment encoded by `encode_segment`."""
    if isinstance(segments, str):
        raise TypeError("segments must be a sequence of str, not a single str")
    return "".join("/" + encode_segment(seg, i) for i, seg in enumerate(segments, start=1))


def encode_query(query: Mapping[str, QueryValue]) -> list[str]:
    """Encode ``query`` as ``key=value`` pairs in the mapping's order; lists repeat the key."""
    pairs: list[str] = []
    for key, value in query.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"query keys must be non-empty str, got {key!r}")
        values = value if isinstance(value, list) else [value]
        for item in values:
            if not isinstance(item, str):
                raise TypeError(
                    f"query value for {key!r} must be a str or list[str], got {type(item).__name__}"
                )
            pairs.append(f"{quote(key, safe=QUERY_SAFE)}={quote(item, safe=QUERY_SAFE)}")
    return pairs
