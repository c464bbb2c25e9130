"""Every Prometheus metric of the platform, defined once (name, help, labels, buckets).

The collectors are created unregistered: a process exposes on `GET /metrics` only the families
it `register()`s at start (the relay its positions, an API its HTTP histogram...), each process with
its own default registry (no multiprocess mode: every process has its own port). Code that updates a
metric a process did not register (e.g. the group commit inside a CLI) costs a few attribute writes
and is never exposed. docs/operations.md says what each metric means and which alerts use it.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# -- HTTP (both APIs; http_api/metrics.py) ---------------------------------------------------
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP requests by route template (not raw path), method and status, with their latency; "
    "_count is the request counter.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
    registry=None,
)

HTTP_REQUESTS_SHED = Counter(
    "http_requests_shed",
    "Requests answered 503 at once because too many were in progress (http_api/load_shedding.py).",
    registry=None,
)

# -- write side: group commit (event_store/group_commit.py) -------------------------------------
GROUP_COMMIT_COMMANDS_PER_TRANSACTION = Histogram(
    "group_commit_commands_per_transaction",
    "Commands saved per event-store transaction; _count = transactions, _sum = commands.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    registry=None,
)

QUERY_STREAMS_OPEN = Gauge(
    "query_streams_open", "Open GET /stream connections (Server-Sent Events).", registry=None
)

# -- positions and lag per hop -----------------------------------------------------------------
STORE_HEAD_POSITION = Gauge(
    "event_store_head_position",
    "Highest notification id in the event store, as last read by the relay.",
    registry=None,
)
RELAY_POSITION = Gauge(
    "relay_position", "Store position of the last event published to Kafka.", registry=None
)
RELAY_LAG_EVENTS = Gauge(
    "relay_lag_events", "Store head minus relay position (events not yet on Kafka).", registry=None
)
RELAY_LAG_SECONDS = Gauge(
    "relay_lag_seconds",
    "Seconds since the relay last had nothing left to publish (0 while caught up).",
    registry=None,
)


def _per_consumer_partition(name: str, documentation: str) -> Gauge:
    """A consumer's gauge (the projector's or the mailer's: `service`), one per Kafka partition."""
    return Gauge(name, documentation, ["service", "partition"], registry=None)


CONSUMER_OFFSET = _per_consumer_partition(
    "consumer_committed_offset", "Next Kafka offset the consumer committed, per partition."
)
CONSUMER_POSITION = _per_consumer_partition(
    "consumer_position", "Store position of the last event the consumer applied, per partition."
)
CONSUMER_LAG_EVENTS = _per_consumer_partition(
    "consumer_lag_events",
    "Messages on the partition not yet applied (high watermark minus committed offset).",
)
CONSUMER_LAG_SECONDS = _per_consumer_partition(
    "consumer_lag_seconds",
    "now - occurred_at of the last applied event of the partition; 0 once caught up.",
)

# One command's way to the read tables, hop by hop (docs/read-side.md "Freshness"): fine buckets
# in the milliseconds, where a read-your-writes read waits. Per event (relay, projector) or per
# X-Min-Position read (query API); `hop` is one of FRESHNESS_HOPS.
_HOP_BUCKETS = (
    *(n / 2000 for n in range(1, 20)),  # 0.5 ms steps up to 10 ms
    0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03, 0.035, 0.04, 0.05, 0.06, 0.075,
    0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 5.0,
)  # fmt: skip
FRESHNESS_HOPS = (
    "stored_to_read",  # relay: the event's occurred_at -> the relay read it from the store
    "read_to_acked",  # relay: read -> Kafka acknowledged its batch
    "produced_to_received",  # projector: the message's Kafka timestamp (produce) -> polled
    "received_to_applied",  # projector: polled -> its batch committed in PostgreSQL (+ NOTIFY)
    "applied_to_offsets",  # projector: committed -> Kafka offsets committed (next poll after)
    "wait",  # query API: an X-Min-Position read's wait for the projection
)
EVENT_HOP_SECONDS = Histogram(
    "event_hop_seconds",
    "Time an event (relay, projector) or a read-your-writes read (query API) spent in one hop of "
    "the command -> read table path; `hop` names it.",
    ["hop"],
    buckets=_HOP_BUCKETS,
    registry=None,
)


def observe_hop(hop: str, seconds: float, times: int = 1) -> None:
    """`times` observations of `seconds` (every event of a batch shares the batch's hop time)."""
    child = EVENT_HOP_SECONDS.labels(hop)
    for _ in range(times):
        child.observe(max(seconds, 0.0))


# -- Kafka consumers (projector, mailer; consuming/source.py) -------------------------------------
KAFKA_CONSUMERS_REPLACED = Counter(
    "kafka_consumers_replaced",
    "Kafka consumers closed and created anew, by group and reason: `fatal` (librdkafka made the "
    "client unusable) or `outside_group` (no assignment for a minute while the cluster answered).",
    ["group", "reason"],
    registry=None,
)


def count_consumer_replaced(group: str, reason: str) -> None:
    KAFKA_CONSUMERS_REPLACED.labels(group, reason).inc()


# -- dead letters (projector, mailer) ------------------------------------------------------------
DEAD_LETTERS = Counter(
    "dead_letters",
    "Messages parked, by service, kind (poison / parked behind one) and reason class.",
    ["service", "kind", "reason"],
    registry=None,
)

# -- mailer --------------------------------------------------------------------------------------
EMAILS_SENT = Counter(
    "emails_sent", "Digest emails accepted by the SMTP server and recorded.", registry=None
)
EMAILS_SKIPPED = Counter(
    "emails_skipped",
    "Digests not sent because their user turned the digest off after it was recorded (recorded "
    "as handled, so a redelivery sends nothing either).",
    registry=None,
)
EMAILS_RETRIED = Counter(
    "emails_retried",
    "Digest sends that failed transiently (SMTP unavailable...): the batch is rewound and the "
    "email retried.",
    registry=None,
)
EMAILS_FAILED = Counter(
    "emails_failed",
    "Digest emails refused for good (bad recipient, permanent SMTP refusal): parked as dead "
    "letters.",
    registry=None,
)

# -- scheduler -----------------------------------------------------------------------------------
DIGEST_BATCH_DURATION = Histogram(
    "digest_batch_duration_seconds",
    "Wall time of a completed digest batch (read-side wait included).",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600),
    registry=None,
)
DIGEST_BATCH_SIZE = Histogram(
    "digest_batch_users",
    "Users a completed digest batch went through.",
    buckets=(10, 100, 1_000, 10_000, 100_000, 1_000_000),
    registry=None,
)

# -- projector rebuild ---------------------------------------------------------------------------
REBUILD_POSITION = Gauge(
    "rebuild_replayed_position",
    "Store position a running rebuild has replayed up to (every worker past it).",
    registry=None,
)
REBUILD_TARGET = Gauge(
    "rebuild_target_position",
    "Store head the running rebuild replays to; replayed / target = progress.",
    registry=None,
)

# What each process exposes (registered once, at start, by register()).
HTTP = (HTTP_REQUEST_DURATION,)
COMMAND_API = (*HTTP, HTTP_REQUESTS_SHED, GROUP_COMMIT_COMMANDS_PER_TRANSACTION)
QUERY_API = (*HTTP, QUERY_STREAMS_OPEN, EVENT_HOP_SECONDS)
RELAY = (
    STORE_HEAD_POSITION,
    RELAY_POSITION,
    RELAY_LAG_EVENTS,
    RELAY_LAG_SECONDS,
    EVENT_HOP_SECONDS,
)
CONSUMER = (
    CONSUMER_OFFSET,
    CONSUMER_POSITION,
    CONSUMER_LAG_EVENTS,
    CONSUMER_LAG_SECONDS,
    KAFKA_CONSUMERS_REPLACED,
)
PROJECTOR = (*CONSUMER, DEAD_LETTERS, EVENT_HOP_SECONDS)
REBUILD = (REBUILD_POSITION, REBUILD_TARGET)  # the `projector rebuild` CLI process
MAILER = (*CONSUMER, DEAD_LETTERS, EMAILS_SENT, EMAILS_SKIPPED, EMAILS_RETRIED, EMAILS_FAILED)
SCHEDULER = (DIGEST_BATCH_DURATION, DIGEST_BATCH_SIZE)

# Each collector once (several processes expose the same one, e.g. event_hop_seconds).
ALL: tuple[Collector, ...] = tuple(
    dict.fromkeys((*COMMAND_API, *QUERY_API, *RELAY, *PROJECTOR, *REBUILD, *MAILER, *SCHEDULER))
)

_registered: set[int] = set()


def register(*collectors: Collector) -> None:
    """Expose `collectors` on this process's /metrics; registering one twice is a no-op."""
    for c in collectors:
        if id(c) not in _registered:
            REGISTRY.register(c)
            _registered.add(id(c))


def exposition() -> bytes:
    """This process's metrics in the Prometheus text format."""
    return _generate_latest(REGISTRY)


def metric_names() -> set[str]:
    """Every sample name our code can expose (with _bucket/_sum/_count/_total/_created)."""
    names: set[str] = set()
    for c in ALL:
        for family in c.collect():
            base = family.name
            if family.type == "histogram":
                names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
            elif family.type == "counter":
                names |= {f"{base}_total"}
            else:
                names.add(base)
    return names


# -- a consumer's lag needs the partition's end (consuming/source.py) ----------------------------
def high_watermark(consumer: Any, topic: str, partition: int) -> int | None:
    """A confluent-kafka consumer's cached end offset of a partition (None if not known yet)."""
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
    except Exception:
        return None
    return int(high) if high >= 0 else None
