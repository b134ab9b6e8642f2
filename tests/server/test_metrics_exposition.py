"""`/metrics`: the server's intake and dispatch counters and the bot client's outgoing requests,
in the Prometheus text format, as a scraper parses them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from appservice.events import Event
from appservice.registration import Registration
from appservice.server import AppService, MemoryInbox
from tests.helpers.loopback import Reply, ScriptedApp, serve
from tests.server.conftest import message, txn_body

V1 = "/_matrix/app/v1"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition keyed by name and sorted labels."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture
async def homeserver() -> AsyncIterator[str]:
    async with serve(ScriptedApp(Reply(200, {"versions": ["v1.19"]}))) as url:
        yield url


async def test_metrics_count_intake_dispatch_failures_and_outgoing_requests(
    registration: Registration, homeserver: str
) -> None:
    svc = AppService(registration, homeserver, inbox=MemoryInbox(), max_attempts=2,
                     retry_delay=0.01)  # fmt: skip

    @svc.on_event_type("m.room.message")
    def fail_on_two(event: Event) -> None:
        if event.body() == "message 2":
            raise RuntimeError("handler broke")

    async with svc:
        transport = httpx.ASGITransport(app=svc.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://as.test") as http:
            auth = {"Authorization": f"Bearer {registration.hs_token}"}
            body = txn_body([message("!r:x", 1), message("!r:x", 2), message("!s:x", 3)])
            assert (
                await http.put(f"{V1}/transactions/1", content=body, headers=auth)
            ).status_code == 200
            assert (
                await http.put(f"{V1}/transactions/1", content=body, headers=auth)
            ).status_code == 200
            await svc.dispatcher.wait_idle()
            await svc.bot.client.versions()
            await svc.intent("@_test_x:localhost").client.versions()
            got = samples((await http.get("/metrics")).text)

    assert got[("appservice_transactions_accepted_total", ())] == 1
    assert got[("appservice_transactions_duplicate_total", ())] == 1
    assert got[("appservice_items_accepted_total", ())] == 3
    assert got[("appservice_items_handled_total", ())] == 2
    assert got[("appservice_items_failed_total", ())] == 1
    assert got[("appservice_handler_retries_total", ())] == 1
    # the two items handled at the first try, each timed
    assert got[("appservice_handler_latency_seconds_count", ())] == 2
    assert 0 < got[("appservice_handler_latency_seconds_sum", ())] < 5
    assert got[("appservice_inbox_pending", ())] == 0
    # the bot and a puppet share one pool and one set of request counts
    versions = (("endpoint", "/_matrix/client/versions"), ("method", "GET"), ("status", "200"))
    assert got[("appservice_client_requests_total", versions)] == 2
