"""The push side's counters and how `/metrics` exposes them with the client's request counts.

Counting is plain integer arithmetic on the hot path; prometheus-client only reads the counters
when `/metrics` is scraped (see `appservice.metrics`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from appservice.metrics import (
    HANDLER_LATENCY_BUCKETS,
    ClientCollector,
    LatencyHistogram,
    RequestStats,
    ServerCollector,
    build_registry,
    render,
)
from appservice.server.dispatcher import Dispatcher

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry


def _handler_histogram() -> LatencyHistogram:
    return LatencyHistogram(HANDLER_LATENCY_BUCKETS)


@dataclass
class ServerMetrics:
    """Intake counters and handler latency; dispatch counters live in ``Dispatcher.stats``."""

    accepted_txns: int = 0
    duplicate_txns: int = 0
    accepted_items: int = 0
    rejected_busy: int = 0
    handler_latency: LatencyHistogram = field(default_factory=_handler_histogram)


class ServerSource:
    """`appservice.metrics.ServerMetricsSource` over the intake counters and the dispatcher
    (which exists only while the service runs: zero before and after)."""

    def __init__(self, metrics: ServerMetrics, dispatcher: Callable[[], Dispatcher | None]) -> None:
        self._metrics = metrics
        self._dispatcher = dispatcher

    @property
    def transactions_accepted(self) -> int:
        return self._metrics.accepted_txns

    @property
    def transactions_duplicate(self) -> int:
        return self._metrics.duplicate_txns

    @property
    def transactions_rejected_busy(self) -> int:
        return self._metrics.rejected_busy

    @property
    def items_accepted(self) -> int:
        return self._metrics.accepted_items

    @property
    def items_handled(self) -> int:
        dispatcher = self._dispatcher()
        return dispatcher.stats.handled if dispatcher is not None else 0

    @property
    def items_failed(self) -> int:
        dispatcher = self._dispatcher()
        return dispatcher.stats.failed if dispatcher is not None else 0

    @property
    def items_retried(self) -> int:
        dispatcher = self._dispatcher()
        return dispatcher.stats.retries if dispatcher is not None else 0

    @property
    def inbox_pending(self) -> int:
        dispatcher = self._dispatcher()
        return dispatcher.pending if dispatcher is not None else 0

    @property
    def handler_latency(self) -> LatencyHistogram:
        return self._metrics.handler_latency


class MetricsExposition:
    """The `/metrics` text: server counters plus the bot client's outgoing requests (shared by
    every puppet's client), built on the first scrape so start-up never imports prometheus."""

    def __init__(self, source: ServerSource, requests: RequestStats) -> None:
        self._source = source
        self._requests = requests
        self._registry: CollectorRegistry | None = None

    def text(self) -> str:
        """The Prometheus text exposition, read from the counters now."""
        if self._registry is None:
            self._registry = build_registry(
                ServerCollector(self._source), ClientCollector(self._requests)
            )
        body, _content_type = render(self._registry)
        return body.decode()
