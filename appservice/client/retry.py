"""When and how long the client waits before retrying a request, and the errors it gives up with.

Retried: HTTP 429 (honouring ``Retry-After`` and ``retry_after_ms``), 502/503/504, failures where
the request provably never reached the server (connection refused, connect timeout), and — for
idempotent methods only — failures after it may have been sent (read timeout, dropped
connection). Waits grow exponentially, are capped and jittered, and all of it fits in a deadline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

import httpx

from appservice.errors import HTTPError

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "ConnectionFailedError",
    "RequestTimeoutError",
    "RetryPolicy",
    "is_retryable_answer",
    "never_sent",
    "parse_retry_after",
    "retry_hint",
]

RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})

# Errcodes the homeserver itself uses on a 502/504 to report that a third party (the appservice
# it was asked to ping) failed: a final answer about that party, not a gateway hiccup to retry.
REMOTE_FAILURE_ERRCODES: Final = frozenset({"M_CONNECTION_FAILED", "M_CONNECTION_TIMEOUT"})
"""HTTP statuses worth retrying: rate limited, or a proxy/server that is temporarily unavailable."""

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
"""Methods safe to repeat when a request may already have reached the server."""

_rng = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a client retries: at most ``max_attempts`` tries within ``deadline`` seconds.

    The wait before retry ``n`` (1-based) is ``min(max_delay, base_delay * 2**(n-1))``, reduced by
    up to ``jitter`` (a fraction) at random so many clients do not retry in lockstep. A server's
    ``Retry-After``/``retry_after_ms`` hint replaces the computed wait. Once the next wait would
    end past the deadline, the client gives up and raises the last error.
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 10.0
    deadline: float = 60.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError(f"RetryPolicy.max_attempts must be an int, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("base_delay", "max_delay", "deadline", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"RetryPolicy.{name} must be a number, got {value!r}")
            if not value >= 0:  # also rejects NaN
                raise ValueError(f"RetryPolicy.{name} must be >= 0, got {value}")
        if self.deadline <= 0:
            raise ValueError(f"RetryPolicy.deadline must be > 0, got {self.deadline}")
        if self.max_delay < self.base_delay:
            raise ValueError(
                f"RetryPolicy.max_delay ({self.max_delay}) must be >= base_delay "
                f"({self.base_delay})"
            )
        if self.jitter > 1:
            raise ValueError(f"RetryPolicy.jitter must be within [0, 1], got {self.jitter}")

    @classmethod
    def no_retries(cls) -> RetryPolicy:
        """A policy that makes exactly one attempt."""
        return cls(max_attempts=1)

    def backoff(self, attempt: int, rand: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        ``rand`` in [0, 1) picks the jitter; a random draw when None (tests pass a fixed value).
        """
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt}")
        if rand is None:
            rand = _rng.random()
        elif not 0 <= rand < 1:
            raise ValueError(f"rand must be within [0, 1), got {rand}")
        exponent = min(attempt - 1, 62)  # keeps 2**n a finite float
        delay = min(self.max_delay, self.base_delay * float(2**exponent))
        return delay * (1.0 - self.jitter * rand)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    None when absent or unparsable; a date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, delta)


def retry_hint(header: str | None, retry_after_ms: int | None) -> float | None:
    """The server's requested wait in seconds: the longer of the header and the body's hint."""
    hints = [parse_retry_after(header)]
    if retry_after_ms is not None and retry_after_ms >= 0:
        hints.append(retry_after_ms / 1000.0)
    present = [h for h in hints if h is not None]
    return max(present) if present else None


def never_sent(exc: BaseException) -> bool:
    """True when ``exc`` proves the request never reached the server (safe to retry any method)."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


class ConnectionFailedError(HTTPError, ConnectionError):
    """No HTTP answer: the request could not be completed (``code`` is 0, ``contents`` empty).

    Raised after retries were exhausted, or without retrying when the request may already
    have been processed. ``method``/``path`` name the request (never its query string);
    ``attempts`` is how many tries were made. The transport error is the ``__cause__``.
    """

    def __init__(self, message: str, *, method: str, path: str, attempts: int) -> None:
        super().__init__(0, message)
        self.method = method
        self.path = path
        self.attempts = attempts

    def __str__(self) -> str:
        return self.message


class RequestTimeoutError(ConnectionFailedError, TimeoutError):
    """No complete HTTP answer in time (also a ``TimeoutError``)."""


def is_retryable_answer(error: HTTPError) -> bool:
    """Whether an HTTP error answer is transient: 429, or 502/503/504 from a gateway or an
    overloaded server, but not the homeserver's own report that a party it called failed."""
    if error.code not in RETRY_STATUSES:
        return False
    wrapped = error.wrapped_error
    return wrapped is None or wrapped.errcode not in REMOTE_FAILURE_ERRCODES
