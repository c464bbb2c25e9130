"""Rebuild the read model by replaying the event store, without downtime.

1. Fresh tables `users_rebuild`, `tasks_rebuild`, `task_events_rebuild`, `user_positions_rebuild`
   (no indexes; of the primary keys only `user_positions`', which the workers upsert into).
2. Bulk replay of the store up to its head H1 at the start: the public events are read in big
   windows of positions in store order through the event store's public API
   (event_store.public_reader: the same translation as the relay's) and folded by the live
   projector's handlers. Worker processes split the aggregates between them (an aggregate's events
   stay in order within one worker; each reads only its own aggregates' events); rows are folded
   in memory and written with COPY, in bounded batches (the history rows as they pile up, the
   users and tasks at the end unless they outgrow the budget).
3. Primary keys and secondary indexes are built (on one connection per worker) and the tables
   analysed.
4. Catch-up from H1 to the current head, still while the live projector and the queries run.
5. Swap, in one transaction: take the projection lock exclusively (waits for the live projector's
   batch in flight, pauses the next), catch up to the head H3 read under the lock, then drop the
   live tables and rename the new ones into place, and NOTIFY. Queries keep answering from the old
   tables until the commit (they wait at most for the few milliseconds the rename holds its lock).
   The live projector resumes on the new tables; everything it had applied, and every event up to
   H3 it receives later, is already in them and its version checks skip it: no double apply.

The pieces: rebuild_fold (the fold loop), rebuild_reading (pages of the store),
rebuild_workers (the processes), rebuild_tables (DDL and swap), rebuild_progress (bar, gauges).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from event_store.application import TodoStore
from event_store.public_reader import PublicEventReader
from projector.db import PROJECTION_LOCK_KEY, REBUILD_LOCK_KEY, notify_progress
from projector.rebuild_fold import Replayer, ReplayStats, gc_paused
from projector.rebuild_progress import progress
from projector.rebuild_reading import store_pages
from projector.rebuild_tables import (
    check_schema,
    create_indexes,
    create_tables,
    rename_into_place,
)
from projector.rebuild_workers import replay_in_processes
from projector.settings import ProjectorSettings
from runtime.settings import DatabaseSettings

log = logging.getLogger(__name__)

# Below this many notifications, worker processes cost more than they save.
_PARALLEL_THRESHOLD = 50_000
# Catch-up passes outside the lock before the swap (each one shrinks what the swap must replay).
_CATCH_UP_PASSES = 3
_SWAP_ATTEMPTS = 5
_SWAP_LOCK_TIMEOUT = "2s"


class RebuildInProgressError(Exception):
    pass


@dataclass(frozen=True)
class RebuildSummary:
    events: int
    seconds: float
    head: int
    gaps: int
    workers: int
    refused: int = 0
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"rebuilt users, tasks, task_events and user_positions from {self.events} events"
            f" (store head {self.head}) in {self.seconds:.2f} s:"
            f" {self.events_per_second:,.0f} events/s with {self.workers} worker(s)"
            + (f"; {self.gaps} events skipped for gaps" if self.gaps else "")
            + (f"; {self.refused} events refused" if self.refused else "")
            + (
                " [" + ", ".join(f"{k} {v:.2f} s" for k, v in self.phases.items()) + "]"
                if self.phases
                else ""
            )
        )


class Rebuild:
    def __init__(
        self,
        store: TodoStore,
        db: DatabaseSettings,
        settings: ProjectorSettings,
        *,
        show_progress: bool = True,
        workers: int | None = None,
        before_swap: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._reader = PublicEventReader(store)
        self._db = db
        self._settings = settings
        self._show_progress = show_progress
        self._workers = workers if workers is not None else settings.PROJECTOR_REBUILD_WORKERS
        self._before_swap = before_swap  # tests use it to write events while the rebuild runs

    def run(self) -> RebuildSummary:
        started = time.perf_counter()
        phases: dict[str, float] = {}

        def phase(name: str, since: float) -> float:
            now = time.perf_counter()
            phases[name] = now - since
            log.info("rebuild phase done", extra={"phase": name, "seconds": round(now - since, 3)})
            return now

        with psycopg.connect(self._db.conninfo, autocommit=True) as lock_conn:
            row = lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (REBUILD_LOCK_KEY,))
            if row.fetchone() != (True,):
                raise RebuildInProgressError("another rebuild is running")
            with psycopg.connect(self._db.conninfo) as conn:
                check_schema(conn)
                create_tables(conn)
                head = self._store.head_position()
                workers = self._worker_count(head)
                t = phase("prepare", started)
                bulk = self._bulk(head, workers)
                t = phase("replay", t)
                create_indexes(self._db.conninfo, workers)
                t = phase("index", t)
                replayer = self._catch_up_replayer(conn)
                for _ in range(_CATCH_UP_PASSES):
                    now = self._store.head_position()
                    if now - head < self._settings.PROJECTOR_REBUILD_PAGE_SIZE // 10:
                        break
                    replayer.replay(head, now)
                    head = now
                if self._before_swap is not None:
                    self._before_swap()
                t = phase("catch-up", t)
                head = self._swap(conn, replayer, head)
                phase("swap", t)
        return RebuildSummary(
            events=bulk.events + replayer.stats.events,
            seconds=time.perf_counter() - started,
            head=head,
            gaps=bulk.gaps + replayer.stats.gaps,
            workers=workers,
            refused=bulk.refused + replayer.stats.refused,
            phases=phases,
        )

    def _worker_count(self, head: int) -> int:
        if self._workers > 0:
            return self._workers
        return max(1, os.cpu_count() or 1) if head >= _PARALLEL_THRESHOLD else 1

    def _bulk(self, head: int, workers: int) -> ReplayStats:
        with progress(head, show=self._show_progress) as advance:
            if workers > 1:
                return replay_in_processes(self._db, self._settings, head, workers, advance)
            with psycopg.connect(self._db.conninfo) as conn, gc_paused():
                replayer = Replayer(
                    conn,
                    store_pages(self._reader),
                    page_size=self._settings.PROJECTOR_REBUILD_PAGE_SIZE,
                    cache_rows=self._settings.PROJECTOR_REBUILD_CACHE_ROWS,
                    on_page=lambda s: advance({0: (s.position, s.events)}),
                )
                stats = replayer.replay(0, head)
                replayer.finish()
                return stats

    def _catch_up_replayer(self, conn: psycopg.Connection[Any]) -> Replayer:
        return Replayer(
            conn,
            store_pages(self._reader),
            page_size=self._settings.PROJECTOR_REBUILD_PAGE_SIZE,
            fresh=False,
        )

    def _swap(self, conn: psycopg.Connection[Any], replayer: Replayer, head: int) -> int:
        conn.commit()  # nothing may be pending: the swap must be its own, top-level transaction
        for attempt in range(1, _SWAP_ATTEMPTS + 1):
            replayer.commit_each_flush = False
            events_before = replayer.stats.events
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (PROJECTION_LOCK_KEY,))
                    final = self._store.head_position()
                    replayer.replay(head, final)
                    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(_SWAP_LOCK_TIMEOUT))
                    rename_into_place(conn)
                    with conn.cursor() as cur:
                        notify_progress(cur, None)
                return final
            except psycopg.errors.LockNotAvailable:
                log.warning("swap waited too long for the tables; retrying", extra={"n": attempt})
                replayer.stats.events = events_before  # rolled back: replayed on the next attempt
            finally:
                replayer.commit_each_flush = True
        raise RuntimeError("could not take the read tables' locks to swap them in")
