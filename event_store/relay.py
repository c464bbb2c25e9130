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
from collections.abc import Callable, Sequence
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
from event_store.public import public_event_of
from event_store.relay_reader import NotificationReader
from runtime import metrics
from runtime.health import Heartbeat
from runtime.settings import ConsumerSettings, DatabaseSettings, RelaySettings

log = logging.getLogger(__name__)

_ADVISORY_LOCK_KEY = 0x7E1A7  # arbitrary, constant: "the relay"
HEAD_PROBE_SECONDS = 0.25  # how stale event_store_head_position may be (docs/operations.md)


class Checkpoint:
    """The last published position, in Postgres, on the connection that holds the relay lock;
    written at most every `interval` seconds (advance() holds a newer one back, flush_if_due()
    writes it once due, flush() at once)."""

    TABLE = "relay_checkpoints"

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        name: str,
        interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conn = conn
        self._name = name
        self._interval = interval
        self._clock = clock
        self._unsaved: int | None = None
        self._next_save_at = 0.0
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

    def advance(self, position: int) -> None:
        """`position` is published: saved now if the interval has passed, else held back."""
        self._unsaved = position
        self.flush_if_due()

    def due_in(self) -> float | None:
        """Seconds until a held-back position is due (<= 0: now); None when nothing is held."""
        return None if self._unsaved is None else self._next_save_at - self._clock()

    def flush_if_due(self) -> None:
        due_in = self.due_in()
        if due_in is not None and due_in <= 0:
            self.flush()

    def flush(self) -> None:
        if self._unsaved is not None:
            self.save(self._unsaved)
            self._unsaved = None
            self._next_save_at = self._clock() + self._interval


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
            checkpoint = Checkpoint(
                conn, self._settings.RELAY_NAME, self._settings.RELAY_CHECKPOINT_INTERVAL_SECONDS
            )
            self.position = checkpoint.load()
            reader = NotificationReader(conn, self._store)
            log.info("relay started", extra={"position": self.position})
            with psycopg.connect(conninfo, autocommit=True) as listen_conn:
                listen_conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                while not self._stop.is_set():
                    # Every commit notified so far is visible to the read that follows: without
                    # the drain, a turn that read several commits' events would wake at once on
                    # their other notifications for a read that finds nothing.
                    _drain(listen_conn)
                    caught_up = self._relay_one_batch(reader, checkpoint)
                    if caught_up:
                        self._wait_for_new_events(listen_conn, checkpoint)
                checkpoint.flush()  # stopping: the next leader starts from what we published

    def _acquire_lock(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute("select pg_try_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,)).fetchone()
        if row and row[0]:
            return True
        log.info("another relay holds the lock; standing by")
        self._stop.wait(self._settings.RELAY_POLL_INTERVAL_SECONDS)
        return False

    def _relay_one_batch(self, reader: NotificationReader, checkpoint: Checkpoint) -> bool:
        """Publish the next batch; True when there was nothing more to read."""
        self.heartbeat.beat()
        limit = self._settings.RELAY_BATCH_SIZE
        notifications = reader.after(self.position, limit)
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
        # Held back up to RELAY_CHECKPOINT_INTERVAL_SECONDS: under load a batch is a few events,
        # and a checkpoint write per batch was a round trip before the next read plus a
        # PostgreSQL write. A checkpoint lost in a crash only re-sends events Kafka already has,
        # which every consumer skips as duplicates (the module doc).
        checkpoint.advance(self.position)
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

    def _wait_for_new_events(
        self, listen_conn: psycopg.Connection[Any], checkpoint: Checkpoint
    ) -> None:
        deadline = time.monotonic() + self._settings.RELAY_POLL_INTERVAL_SECONDS
        while not self._stop.is_set():
            self.heartbeat.beat()
            checkpoint.flush_if_due()  # a held-back checkpoint is written once due, even idle
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            # Short slices so stop() is honoured quickly and a held-back checkpoint is not kept
            # past its due time; any NOTIFY wakes us at once.
            due_in = checkpoint.due_in()
            slice_ = min(remaining, 0.25, 0.25 if due_in is None else max(due_in, 0.001))
            for _ in listen_conn.notifies(timeout=slice_, stop_after=1):
                return


def _drain(listen_conn: psycopg.Connection[Any]) -> None:
    """Discard the notifications already received (without waiting for any)."""
    for _ in listen_conn.notifies(timeout=0):
        pass
