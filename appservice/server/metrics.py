"""Counters of the push side, rendered in the Prometheus text format (no extra dependency)."""

from __future__ import annotations

from dataclasses import dataclass

from appservice.server.dispatcher import Dispatcher


@dataclass
class ServerMetrics:
    """Intake counters; dispatch counters live in ``Dispatcher.stats``."""

    accepted_txns: int = 0
    duplicate_txns: int = 0
    accepted_items: int = 0
    rejected_busy: int = 0

    def render(self, dispatcher: Dispatcher | None) -> str:
        """Prometheus text exposition of these counters and the dispatcher's."""
        stats = dispatcher.stats if dispatcher is not None else None
        rows = [
            ("appservice_transactions_accepted_total", "counter", self.accepted_txns),
            ("appservice_transactions_duplicate_total", "counter", self.duplicate_txns),
            ("appservice_transactions_rejected_busy_total", "counter", self.rejected_busy),
            ("appservice_items_accepted_total", "counter", self.accepted_items),
            ("appservice_items_handled_total", "counter", stats.handled if stats else 0),
            ("appservice_items_failed_total", "counter", stats.failed if stats else 0),
            ("appservice_handler_retries_total", "counter", stats.retries if stats else 0),
            ("appservice_inbox_pending", "gauge", dispatcher.pending if dispatcher else 0),
        ]
        lines: list[str] = []
        for name, kind, value in rows:
            lines += [f"# TYPE {name} {kind}", f"{name} {value}"]
        return "\n".join(lines) + "\n"
