"""Relay: store notification log → Kafka topic `events`, in notification-id order, without loss.

- Reads public notifications after its checkpoint, publishes them (key = user id) with an
  idempotent producer, waits for Kafka's acknowledgement of the whole batch, and only then advances
  the checkpoint in Postgres. A crash re-sends at most the unacknowledged batch (consumers are
  idempotent on event_id/version) and loses nothing.
- Wakes on the store's LISTEN/NOTIFY channel, and also polls on a timer in case that connection
  dies. While Kafka is down it keeps retrying the same batch; commands keep succeeding meanwhile.
- A Postgres advisory lock makes extra relay replicas wait as hot standbys instead of racing.
- Failures follow the shared poison policy (consuming.poison) with one difference: the relay never
  dead-letters. The store holds only events our own domain wrote, in an order consumers rely on
  (per-aggregate versions), so a stored event that cannot be read or translated to the public
  contract is OUR bug, not bad input: skipping it would leave a hole in every consumer. TRANSIENT
  failures (PostgreSQL, Kafka) are retried with capped backoff forever; anything else (POISON or
  BUG) is retried CONSUMER_BUG_RETRIES times, then the relay halts: it publishes nothing more and
  /ready answers 503 with the reason, until the code is fixed and the relay restarted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import Notification
from psycopg import sql

from consuming.poison import (
    Backoff,
    BugBudget,
    HaltedError,
    Kind,
    classify,
    describe,
)
from contracts.events import PublicEvent
from event_store.application import TodoStore
from event_store.kafka_publisher import Publisher
from event_store.public import PUBLIC_TOPICS, public_event_of
from runtime import metrics
from runtime.health import Heartbeat
from runtime.settings import ConsumerSettings, DatabaseSettings, RelaySettings

log = logging.getLogger(__name__)

_ADVISORY_LOCK_KEY = 0x7E1A7  # arbitrary, constant: "the relay"
HEAD_PROBE_SECONDS = 0.25  # how stale event_store_head_position may be (docs/operations.md)


class Checkpoint:
    """The last published position, in Postgres, on the connection that holds the relay lock."""

    TABLE = "relay_checkpoints"

    def __init__(self, conn: psycopg.Connection[Any], name: str) -> None:
        self._conn = conn
        self._name = name
        table = sql.Identifier(self.TABLE)
        conn.execute(
            sql.SQL(
                "create table if not exists {} (name text primary key, position bigint not null,"
                " updated_at timestamptz not null default now())"
            ).format(table)
        )
        # Rendered once: psycopg would render a composed statement again at every batch's save.
        self._save = (
            sql.SQL(
                "insert into {} (name, position) values (%s, %s) on conflict (name) do update"
                " set position = excluded.position, updated_at = now()"
            )
            .format(table)
            .as_bytes(conn)
        )

    def load(self) -> int:
        row = self._conn.execute(
            sql.SQL("select position from {} where name = %s").format(sql.Identifier(self.TABLE)),
            (self._name,),
        ).fetchone()
        return int(row[0]) if row else 0

    def save(self, position: int) -> None:
        self._conn.execute(self._save, (self._name, position))


class Relay:
    def __init__(
        self,
        store: TodoStore,
        publisher: Publisher,
        db: DatabaseSettings,
        settings: RelaySettings,
        heartbeat: Heartbeat | None = None,
        policy: ConsumerSettings | None = None,
    ) -> None:
        self._store = store
        self.heartbeat = heartbeat or Heartbeat()
        policy = policy or ConsumerSettings()
        self._backoff = Backoff.from_settings(policy)
        self._budget = BugBudget(policy.CONSUMER_BUG_RETRIES, lambda r: self.heartbeat.halt(r))
        self._publisher = publisher
        self._db = db
        self._settings = settings
        self._stop = threading.Event()
        self.position = 0
        self.published = 0
        self._caught_up_at = time.monotonic()
        self._head, self._head_probed_at = 0, -HEAD_PROBE_SECONDS
        metrics.register(*metrics.RELAY)

    def stop(self) -> None:
        self._stop.set()

    @property
    def _channel(self) -> str:
        """The channel the store's recorder NOTIFYs after each insert."""
        recorder: Any = self._store.recorder
        return str(recorder.channel_name)

    def run(self) -> None:
        """Run until stop(); survives Postgres and Kafka outages by retrying with backoff; halts
        (alive, not ready, publishing nothing) on a failure that outlasts its retries."""
        while not self._stop.is_set():
            try:
                self._run_as_leader()
                self._backoff.reset()
            except Exception as e:
                if classify(e) is Kind.TRANSIENT:
                    log.warning("relay interrupted, retrying", extra={"error": describe(e)})
                else:
                    # Never skip a stored event (see the module doc): retry, then halt.
                    try:
                        self._budget.failed(e, f"relaying after position {self.position}")
                    except HaltedError:
                        self._stop.wait()
                        return
                self._stop.wait(self._backoff.next_delay())

    def _run_as_leader(self) -> None:
        conninfo = self._db.conninfo
        with psycopg.connect(conninfo, autocommit=True) as conn:
            if not self._acquire_lock(conn):
                return
            # The checkpoint need not wait for its WAL flush (an fsync per batch, milliseconds to
            # tens of them on a busy disk, before the next batch may start): a checkpoint lost in
            # a PostgreSQL crash only re-sends events Kafka already has, which every consumer
            # skips as duplicates; nothing is ever skipped.
            conn.execute("SET synchronous_commit = off")
            checkpoint = Checkpoint(conn, self._settings.RELAY_NAME)
            self.position = checkpoint.load()
            log.info("relay started", extra={"position": self.position})
            with psycopg.connect(conninfo, autocommit=True) as listen_conn:
                listen_conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                while not self._stop.is_set():
                    # Every commit notified so far is visible to the read that follows: without
                    # the drain, a turn that read several commits' events would wake at once on
                    # their other notifications for a read that finds nothing.
                    _drain(listen_conn)
                    caught_up = self._relay_one_batch(checkpoint)
                    if caught_up:
                        self._wait_for_new_events(listen_conn)

    def _acquire_lock(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute("select pg_try_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,)).fetchone()
        if row and row[0]:
            return True
        log.info("another relay holds the lock; standing by")
        self._stop.wait(self._settings.RELAY_POLL_INTERVAL_SECONDS)
        return False

    def _relay_one_batch(self, checkpoint: Checkpoint) -> bool:
        """Publish the next batch; True when there was nothing more to read."""
        self.heartbeat.beat()
        limit = self._settings.RELAY_BATCH_SIZE
        notifications = self._read_after(self.position, limit)
        if not notifications:
            self._observe(caught_up=True)
            return True
        read_at = time.time()
        events, traceparents = self._translate(notifications)
        self._publisher.publish(events, self._stop.is_set, traceparents)
        metrics.observe_hop("read_to_acked", time.time() - read_at, len(events))
        for event in events:
            metrics.observe_hop("stored_to_read", read_at - event.occurred_at.timestamp())
        self.position = notifications[-1].id
        checkpoint.save(self.position)
        self._budget.succeeded()
        self.published += len(events)
        log.debug("relayed batch", extra={"count": len(events), "position": self.position})
        self._observe(caught_up=len(notifications) < limit)
        return len(notifications) < limit

    def _observe(self, caught_up: bool) -> None:
        # the head counts every notification (also non-public ones): one index probe, at most
        # every HEAD_PROBE_SECONDS, not per batch: under load batches are small and many, and the
        # probe is a round trip before the next one may start (caught up: nothing public is
        # left, whatever non-public notifications follow)
        now = time.monotonic()
        if now - self._head_probed_at >= HEAD_PROBE_SECONDS:
            self._head = self._store.head_position()
            self._head_probed_at = now
        head = self._head = max(self._head, self.position)
        if caught_up:
            self._caught_up_at = now
        metrics.STORE_HEAD_POSITION.set(head)
        metrics.RELAY_POSITION.set(self.position)
        metrics.RELAY_LAG_EVENTS.set(0 if caught_up else head - self.position)
        metrics.RELAY_LAG_SECONDS.set(now - self._caught_up_at)

    def _translate(
        self, notifications: Sequence[Notification]
    ) -> tuple[list[PublicEvent], list[str | None]]:
        """The public events and the trace each was stored under (None for older events)."""
        mapper = self._store.tracing_mapper
        events: list[PublicEvent] = []
        traceparents: list[str | None] = []
        for n in notifications:
            domain_event, traceparent = mapper.to_domain_event_with_trace(n)
            if (public := public_event_of(domain_event, n.id)) is not None:
                events.append(public)
                traceparents.append(traceparent)
        return events, traceparents

    def _read_after(self, position: int, limit: int) -> Sequence[Notification]:
        return self._store.recorder.select_notifications(
            start=position, limit=limit, topics=PUBLIC_TOPICS, inclusive_of_start=False
        )

    def _wait_for_new_events(self, listen_conn: psycopg.Connection[Any]) -> None:
        deadline = time.monotonic() + self._settings.RELAY_POLL_INTERVAL_SECONDS
        while not self._stop.is_set():
            self.heartbeat.beat()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            # Short slices so stop() is honoured quickly; any NOTIFY wakes us at once.
            for _ in listen_conn.notifies(timeout=min(remaining, 0.25), stop_after=1):
                return


def _drain(listen_conn: psycopg.Connection[Any]) -> None:
    """Discard the notifications already received (without waiting for any)."""
    for _ in listen_conn.notifies(timeout=0):
        pass
