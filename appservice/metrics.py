"""Prometheus metrics with no per-event cost: plain counters on the hot path, read at scrape time.

The client and the server only bump ints in dicts and bucket arrays (`RequestStats`,
`LatencyHistogram`); prometheus-client objects exist only while a scrape runs, built by the
custom collectors `ClientCollector` and `ServerCollector`. ``prometheus_client`` is imported
lazily, so importing the client never pays for it.

Outgoing requests are labelled by an endpoint *template* (`endpoint_template`): room, user and
event IDs, aliases, event types, transaction IDs and media IDs become placeholders, so label
cardinality is bounded by the list of endpoints, never by the data.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector, CollectorRegistry

__all__ = [
    "HANDLER_LATENCY_BUCKETS",
    "REQUEST_LATENCY_BUCKETS",
    "RETRY_CONNECTION",
    "RETRY_RATE_LIMITED",
    "RETRY_SERVER_ERROR",
    "STATUS_ERROR",
    "ClientCollector",
    "LatencyHistogram",
    "RequestStats",
    "ServerCollector",
    "ServerMetricsSource",
    "build_registry",
    "endpoint_template",
    "render",
]

REQUEST_LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Upper bounds (seconds) for homeserver request latency; /sync long-polls reach 30 s."""

HANDLER_LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds (seconds) for event handler latency: most handlers take micro- to milliseconds."""

# The ``reason`` label values of ``appservice_client_retries_total``.
RETRY_RATE_LIMITED: Final = "429"
RETRY_SERVER_ERROR: Final = "5xx"  # 502, 503, 504
RETRY_CONNECTION: Final = "connection"  # no answer: refused, reset, timed out

STATUS_ERROR: Final = 0
"""Status recorded for an attempt that got no HTTP answer; rendered as ``status="error"``."""


# --- latency histogram ------------------------------------------------------------------------


class LatencyHistogram:
    """Fixed-bucket latency histogram: ``observe`` is one bisect and two additions.

    ``counts[i]`` holds observations ``<= bounds[i]`` (and above the previous bound); the last
    slot holds those above every bound (Prometheus' ``+Inf``).
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = REQUEST_LATENCY_BUCKETS) -> None:
        checked = tuple(bounds)
        if not checked:
            raise ValueError("LatencyHistogram: bounds must not be empty")
        for i, bound in enumerate(checked):
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise TypeError(f"LatencyHistogram: bound {i} must be a number, got {bound!r}")
            if not (0 < bound < math.inf):
                raise ValueError(
                    f"LatencyHistogram: bound {i} must be positive and finite: {bound}"
                )
            if i and bound <= checked[i - 1]:
                raise ValueError(f"LatencyHistogram: bounds must increase, bound {i} is {bound}")
        self.bounds: tuple[float, ...] = tuple(float(b) for b in checked)
        self.counts: list[int] = [0] * (len(checked) + 1)
        self.sum: float = 0.0

    def observe(self, seconds: float) -> None:
        """Count one duration in seconds (ValueError when negative or NaN)."""
        if not seconds >= 0:
            raise ValueError(f"LatencyHistogram.observe: seconds must be >= 0, got {seconds}")
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        """How many durations were observed."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= bound)`` pairs, ending with ``(inf, count)``."""
        total = 0
        out: list[tuple[float, int]] = []
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out

    def copy(self) -> LatencyHistogram:
        """A snapshot that later observations do not change."""
        twin = LatencyHistogram.__new__(LatencyHistogram)
        twin.bounds, twin.counts, twin.sum = self.bounds, list(self.counts), self.sum
        return twin


# --- endpoint templates -----------------------------------------------------------------------


class _Node:
    """One path position of the endpoint trie: literal children and at most one placeholder."""

    __slots__ = ("literals", "param", "template")

    def __init__(self, template: str) -> None:
        self.template = template  # the label for a path ending here
        self.literals: dict[str, _Node] = {}
        self.param: _Node | None = None

    def add(self, template: str) -> None:
        """Insert one ``a/{b}/c`` template below this node."""
        node = self
        for seg in template.strip("/").split("/"):
            path = f"{node.template.rstrip('/')}/{seg}"
            if seg.startswith("{"):
                if node.param is None:
                    node.param = _Node(path)
                elif node.param.template != path:
                    raise ValueError(f"endpoint table: {path} clashes with {node.param.template}")
                node = node.param
            else:
                node = node.literals.setdefault(seg, _Node(path))


_CLIENT_VERSIONS = ("r0", "v1", "v3", "unstable")
_MEDIA_VERSIONS = ("r0", "v1", "v3")
_ROOM_ACTIONS: Final = """
aliases ban context/{eventId} event/{eventId} forget initialSync invite join joined_members
kick leave members messages read_markers receipt/{receiptType}/{eventId}
redact/{eventId}/{txnId} relations/{eventId} relations/{eventId}/{relType}
relations/{eventId}/{relType}/{eventType} report/{eventId} send/{eventType}/{txnId} state
state/{eventType} state/{eventType}/{stateKey} timestamp_to_event typing/{userId} unban upgrade
"""
"""Endpoints below ``rooms/{roomId}/`` (client API)."""

_CLIENT_ENDPOINTS: Final = """
account/3pid account/deactivate account/password account/whoami appservice/{appserviceId}/ping
capabilities createRoom directory/list/room/{roomId} directory/room/{roomAlias} joined_rooms
join/{roomIdOrAlias} keys/claim keys/query keys/upload knock/{roomIdOrAlias} login logout
logout/all presence/{userId}/status profile/{userId} profile/{userId}/avatar_url
profile/{userId}/displayname publicRooms register register/available
sendToDevice/{eventType}/{txnId} sync user/{userId}/account_data/{type} user/{userId}/filter
user/{userId}/filter/{filterId} user/{userId}/rooms/{roomId}/account_data/{type}
user/{userId}/rooms/{roomId}/tags user/{userId}/rooms/{roomId}/tags/{tag} user_directory/search
voip/turnServer
"""
"""Client API endpoints below ``/_matrix/client/{version}/``."""

_MEDIA_ENDPOINTS: Final = """
config create download/{serverName}/{mediaId} download/{serverName}/{mediaId}/{fileName}
preview_url thumbnail/{serverName}/{mediaId} upload upload/{serverName}/{mediaId}
"""
"""Media endpoints below ``/_matrix/media/{version}/`` and ``/_matrix/client/v1/media/``."""


def _build_trie() -> _Node:
    root = _Node("/")
    root.add("_matrix/client/versions")
    client = [*_CLIENT_ENDPOINTS.split(), *("rooms/{roomId}/" + a for a in _ROOM_ACTIONS.split())]
    for version in _CLIENT_VERSIONS:
        for endpoint in client:
            root.add(f"_matrix/client/{version}/{endpoint}")
    for endpoint in _MEDIA_ENDPOINTS.split():
        root.add(f"_matrix/client/v1/media/{endpoint}")  # authenticated media (v1.11)
        for version in _MEDIA_VERSIONS:
            root.add(f"_matrix/media/{version}/{endpoint}")
    return root


_TRIE: Final = _build_trie()
_UNKNOWN: Final = "{unknown}"
_STATIC_CACHE: dict[str, str] = {}
_STATIC_CACHE_MAX: Final = 4096


def endpoint_template(path: str) -> str:
    """The low-cardinality label for a request path (no query), e.g. ``/_matrix/client/v3/sync``.

    Path parameters become placeholders (``/rooms/{roomId}/send/{eventType}/{txnId}``); the part
    before ``/_matrix`` (a homeserver URL's own path) is dropped. A path this table does not know
    keeps only its known leading part, then ``/{unknown}``, so no ID can ever reach a label.
    """
    cached = _STATIC_CACHE.get(path)
    if cached is not None:
        return cached
    segments = path.split("/")
    try:
        start = segments.index("_matrix")
    except ValueError:
        return "/" + _UNKNOWN
    node = _TRIE
    static = True
    for seg in segments[start:]:
        if not seg:
            continue  # "//" or a trailing "/" (an empty state key is the same endpoint)
        child = node.literals.get(seg)
        if child is not None:
            node = child
        elif node.param is not None:
            node = node.param
            static = False
        else:
            return node.template.rstrip("/") + "/" + _UNKNOWN
    if static and len(_STATIC_CACHE) < _STATIC_CACHE_MAX:
        _STATIC_CACHE[path] = node.template  # only ID-free paths: cannot grow with the data
    return node.template


# --- outgoing request counts ------------------------------------------------------------------


class RequestStats:
    """Counts of one client pool's outgoing HTTP attempts, retries and latency.

    Every try is one request: a 429 answered, then retried and answered 200, counts one request
    with status 429, one with 200 and one retry with reason ``"429"``. ``as_user`` clients share
    their parent's instance. Single event loop use needs no lock; a scrape from another thread
    reads snapshots.
    """

    __slots__ = ("_bounds", "_endpoints", "_retries")

    def __init__(self, buckets: Sequence[float] = REQUEST_LATENCY_BUCKETS) -> None:
        self._bounds = LatencyHistogram(buckets).bounds  # validated once, shared
        # (method, endpoint) -> (status -> attempts, latency of those attempts)
        self._endpoints: dict[tuple[str, str], tuple[dict[int, int], LatencyHistogram]] = {}
        self._retries: dict[tuple[str, str, str], int] = {}

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        """Count one attempt: HTTP ``status`` (`STATUS_ERROR` for no answer) after ``seconds``."""
        entry = self._endpoints.get((method, endpoint))
        if entry is None:
            entry = self._endpoints[method, endpoint] = ({}, LatencyHistogram(self._bounds))
        statuses, hist = entry
        statuses[status] = statuses.get(status, 0) + 1
        hist.observe(seconds)

    def retried(self, method: str, endpoint: str, reason: str) -> None:
        """Count one retry; ``reason`` is one of the ``RETRY_*`` constants."""
        key = (method, endpoint, reason)
        self._retries[key] = self._retries.get(key, 0) + 1

    def requests(self) -> dict[tuple[str, str, str], int]:
        """``(method, endpoint, status)`` -> attempts; status is ``"200"``... or ``"error"``."""
        return {
            (method, endpoint, str(status) if status != STATUS_ERROR else "error"): n
            for (method, endpoint), (statuses, _) in list(self._endpoints.items())
            for status, n in list(statuses.items())
        }

    def retries(self) -> dict[tuple[str, str, str], int]:
        """``(method, endpoint, reason)`` -> retries."""
        return dict(list(self._retries.items()))

    def latency(self) -> dict[tuple[str, str], LatencyHistogram]:
        """``(method, endpoint)`` -> a snapshot of its attempt latency histogram."""
        return {key: hist.copy() for key, (_, hist) in list(self._endpoints.items())}


# --- collectors -------------------------------------------------------------------------------


class ServerMetricsSource(Protocol):
    """What the appservice server offers `ServerCollector`; read only when scraped.

    Plain attributes or properties both fit. Counters only grow; ``inbox_pending`` is the number
    of inbox items not yet handled (a gauge); ``handler_latency`` times each handled item.
    """

    @property
    def transactions_accepted(self) -> int: ...
    @property
    def transactions_duplicate(self) -> int: ...
    @property
    def transactions_rejected_busy(self) -> int: ...
    @property
    def items_accepted(self) -> int: ...
    @property
    def items_handled(self) -> int: ...
    @property
    def items_failed(self) -> int: ...
    @property
    def items_retried(self) -> int: ...
    @property
    def inbox_pending(self) -> int: ...
    @property
    def handler_latency(self) -> LatencyHistogram: ...


_SERVER_COUNTERS: Final = (
    ("transactions_accepted", "appservice_transactions_accepted",
     "Transactions from the homeserver stored in the inbox."),
    ("transactions_duplicate", "appservice_transactions_duplicate",
     "Transactions answered as already received (homeserver retries)."),
    ("transactions_rejected_busy", "appservice_transactions_rejected_busy",
     "Transactions refused with 503 because the inbox was full."),
    ("items_accepted", "appservice_items_accepted",
     "Events and other items accepted into the inbox."),
    ("items_handled", "appservice_items_handled", "Inbox items handled successfully."),
    ("items_failed", "appservice_items_failed", "Inbox items whose handler failed for good."),
    ("items_retried", "appservice_handler_retries", "Handler attempts retried after an error."),
)  # fmt: skip


def _histogram(name: str, doc: str, labels: Sequence[str]) -> Metric:
    from prometheus_client.core import HistogramMetricFamily

    return HistogramMetricFamily(name, doc, labels=labels)


def _add_histogram(family: Metric, labels: Sequence[str], hist: LatencyHistogram) -> None:
    from prometheus_client.core import HistogramMetricFamily

    assert isinstance(family, HistogramMetricFamily)
    buckets = [("+Inf" if b == math.inf else repr(b), float(n)) for b, n in hist.cumulative()]
    family.add_metric(labels, buckets, hist.sum)


class ServerCollector:
    """Collector for the push side: transactions, inbox items, inbox depth, handler latency."""

    def __init__(self, source: ServerMetricsSource) -> None:
        self.source = source

    def describe(self) -> Iterator[Metric]:
        """The metric families without samples (lets a registry refuse duplicates)."""
        return self._families(None)

    def collect(self) -> Iterator[Metric]:
        """The current values, read from the source now."""
        return self._families(self.source)

    @staticmethod
    def _families(src: ServerMetricsSource | None) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for attr, name, doc in _SERVER_COUNTERS:
            value = None if src is None else float(getattr(src, attr))
            yield CounterMetricFamily(name, doc, value=value)
        pending = None if src is None else float(src.inbox_pending)
        yield GaugeMetricFamily(
            "appservice_inbox_pending", "Inbox items waiting to be handled.", value=pending
        )
        latency = _histogram(
            "appservice_handler_latency_seconds", "Time spent handling one inbox item.", ()
        )
        if src is not None:
            _add_histogram(latency, (), src.handler_latency.copy())
        yield latency


class ClientCollector:
    """Collector for outgoing homeserver requests: counts by status, retries, latency."""

    def __init__(self, stats: RequestStats) -> None:
        if not isinstance(stats, RequestStats):
            raise TypeError(f"ClientCollector needs a RequestStats, got {type(stats).__name__}")
        self.stats = stats

    def describe(self) -> Iterator[Metric]:
        """The metric families without samples (lets a registry refuse duplicates)."""
        return self._families(None)

    def collect(self) -> Iterator[Metric]:
        """The current counts, snapshotted from the stats now."""
        return self._families(self.stats)

    @staticmethod
    def _families(stats: RequestStats | None) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily

        requests = CounterMetricFamily(
            "appservice_client_requests",
            "HTTP requests (each try) sent to the homeserver, by endpoint template and status "
            "(error: no answer).",
            labels=("method", "endpoint", "status"),
        )
        retries = CounterMetricFamily(
            "appservice_client_retries",
            "Homeserver requests retried, by endpoint template and reason (429, 5xx, connection).",
            labels=("method", "endpoint", "reason"),
        )
        latency = _histogram(
            "appservice_client_request_duration_seconds",
            "Time from sending a homeserver request to its full answer (or failure), per try.",
            ("method", "endpoint"),
        )
        if stats is not None:
            for labels, n in sorted(stats.requests().items()):
                requests.add_metric(labels, float(n))
            for labels, n in sorted(stats.retries().items()):
                retries.add_metric(labels, float(n))
            for pair, hist in sorted(stats.latency().items()):
                _add_histogram(latency, pair, hist)
        yield from (requests, retries, latency)


def build_registry(*collectors: Collector) -> CollectorRegistry:
    """A fresh registry (not the global one) holding ``collectors``.

    Any prometheus-client collector fits, e.g. ``prometheus_client.ProcessCollector(registry=None)``
    for memory and CPU. Registering the same metric names twice raises ValueError.
    """
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry(auto_describe=True)
    for collector in collectors:
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry, accept: str | None = None) -> tuple[bytes, str]:
    """The exposition body and its Content-Type; ``accept`` (a request's Accept header) may ask
    for OpenMetrics, otherwise the Prometheus text format is used."""
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, choose_encoder, generate_latest

    if accept:
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type
    return generate_latest(registry), CONTENT_TYPE_LATEST
