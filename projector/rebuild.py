"""Rebuild the read model by replaying the event store, without downtime.

1. Fresh tables `users_rebuild`, `tasks_rebuild`, `task_events_rebuild`, `user_positions_rebuild`
   (primary keys only).
2. Bulk replay of the store up to its head H1 at the start: the notifications are read in big pages
   in store order, translated by event_store.public.to_public (exactly what the relay publishes) and
   folded by the live projector's handlers. Worker processes split the aggregates between them (an
   aggregate's events stay in order within one worker; each reads only its own aggregates' events,
   in windows of notification ids); rows are folded in memory and written with COPY, in bounded
   batches.
3. Secondary indexes are built and the tables analysed.
4. Catch-up from H1 to the current head, still while the live projector and the queries run.
5. Swap, in one transaction: take the projection lock exclusively (waits for the live projector's
   batch in flight, pauses the next), catch up to the head H3 read under the lock, then drop the
   live tables and rename the new ones into place, and NOTIFY. Queries keep answering from the old
   tables until the commit (they wait at most for the few milliseconds the rename holds its lock).
   The live projector resumes on the new tables; everything it had applied, and every event up to
   H3 it receives later, is already in them and its version checks skip it: no double apply.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing as mp
import os
import queue
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import Mapper, Notification
from psycopg import sql
from sqlalchemy import MetaData, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.sql.elements import conv
from tqdm import tqdm

from common import metrics
from common.read_model import NAMING_CONVENTION, REBUILT_TABLES
from common.settings import DatabaseSettings
from event_store.application import TodoStore, store_env
from event_store.public import PUBLIC_TOPICS, to_public
from projector.db import (
    LIVE,
    PROJECTION_LOCK_KEY,
    REBUILD,
    REBUILD_LOCK_KEY,
    TableNames,
    copy_rows,
    load_rows,
    notify_progress,
    save_positions,
    save_rows,
)
from projector.handlers import ProjectionError, Rows, apply_event, referenced_ids
from projector.settings import ProjectorSettings

log = logging.getLogger(__name__)

_SUFFIX = "_rebuild"
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
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


# --- the replay ------------------------------------------------------------------------------


# read(after, limit, stop) -> (notifications in store order, position read up to)
ReadPage = Callable[[int, int, int], tuple[Sequence[Notification], int]]


@dataclass
class ReplayStats:
    events: int = 0
    gaps: int = 0
    refused: int = 0  # events the handlers refused (the live projector dead-letters them)
    position: int = 0


@dataclass
class Replayer:
    """Folds the store's public events, in store order, into a set of tables.

    `fresh=True` (bulk phase): the tables start empty and only this replayer writes the rows of its
    shard, so rows are kept in memory until `cache_rows`, then written (COPY for new rows) and
    forgotten; a row that comes back later is loaded again. `fresh=False` (catch-up): rows the
    events touch are loaded from the tables first, and written back per page.
    """

    conn: psycopg.Connection[Any]
    read_page: ReadPage
    mapper: Mapper[Any]
    tables: TableNames = REBUILD
    page_size: int = 10_000
    cache_rows: int = 500_000
    fresh: bool = True
    commit_each_flush: bool = True
    on_page: Callable[[ReplayStats], None] | None = None
    stats: ReplayStats = field(default_factory=ReplayStats)
    _cache: Rows = field(default_factory=Rows)
    _loaded: set[UUID] = field(default_factory=set)  # cached rows that exist in the tables
    _positions: dict[UUID, int] = field(default_factory=dict)
    _flushed: bool = False

    def replay(self, start: int, stop: int) -> ReplayStats:
        """Apply the public events with start < position <= stop; leaves them to flush()."""
        position = start
        while position < stop:
            page, position = self.read_page(position, self.page_size, stop)
            events = [e for n in page if (e := to_public(self.mapper, n)) is not None]
            if not self.fresh or self._flushed:
                self._load_missing(events)
            for event in events:
                try:
                    apply_event(self._cache, event)
                except ProjectionError as e:
                    self.stats.refused += 1
                    log.warning(
                        "event refused",
                        extra={"position": event.position, "type": event.type, "error": str(e)},
                    )
            self.stats.events += len(events)
            self.stats.position = position
            cached = len(self._cache.users) + len(self._cache.tasks) + len(self._cache.task_events)
            if not self.fresh or cached > self.cache_rows:
                self.flush()
            if self.on_page is not None:
                self.on_page(self.stats)
        self.stats.position = max(self.stats.position, stop)
        return self.stats

    def _load_missing(self, events: Sequence[Any]) -> None:
        user_ids, task_ids = referenced_ids(events)
        user_ids -= self._cache.users.keys()
        task_ids -= self._cache.tasks.keys()
        if not user_ids and not task_ids:
            return
        with self.conn.cursor() as cur:
            load_rows(cur, self.tables, user_ids, task_ids, for_update=False, into=self._cache)
        self._loaded.update(i for i in user_ids if i in self._cache.users)
        self._loaded.update(i for i in task_ids if i in self._cache.tasks)

    def flush(self, *, collect: bool = True) -> None:
        """Write what changed and forget the cached rows."""
        cache = self._cache
        self.stats.gaps += cache.gaps
        for user, position in cache.positions.items():
            if position > self._positions.get(user, 0):
                self._positions[user] = position
        existing = Rows(
            users=cache.users,
            tasks=cache.tasks,
            changed_users={i for i in cache.changed_users if i in self._loaded},
            changed_tasks={i for i in cache.changed_tasks if i in self._loaded},
            # History rows are new in a fresh table (COPY); a catch-up inserts them idempotently.
            task_events=[] if self.fresh else cache.task_events,
        )
        new_users = [cache.users[i] for i in cache.changed_users if i not in self._loaded]
        new_tasks = [cache.tasks[i] for i in cache.changed_tasks if i not in self._loaded]
        new_events = cache.task_events if self.fresh else []
        with self.conn.cursor() as cur:
            copy_rows(cur, self.tables, new_users, new_tasks, new_events)
            save_rows(cur, self.tables, existing)
            if not self.fresh:
                save_positions(cur, self.tables, self._positions)
                self._positions.clear()
        if self.commit_each_flush:
            self.conn.commit()
        self._cache = Rows()
        self._loaded.clear()
        self._flushed = True
        if self.fresh and collect:
            gc.collect()  # cheap now that the cache is empty (the bulk replay runs without gc)

    def finish(self) -> None:
        """Flush the rows and the per-user positions."""
        self.flush(collect=False)
        if self._positions:
            with self.conn.cursor() as cur:
                save_positions(cur, self.tables, self._positions)
            self._positions.clear()
        if self.commit_each_flush:
            self.conn.commit()


def _store_reader(store: TodoStore) -> ReadPage:
    def read(start: int, limit: int, stop: int) -> tuple[Sequence[Notification], int]:
        page = store.recorder.select_notifications(
            start, limit, stop=stop, topics=PUBLIC_TOPICS, inclusive_of_start=False
        )
        return page, page[-1].id if len(page) == limit else stop

    return read


def _shard_reader(
    conn: psycopg.Connection[Any], store: TodoStore, shard: tuple[int, int]
) -> ReadPage:
    """select_notifications' query plus a predicate on the aggregate id, evaluated by PostgreSQL:
    parallel workers each read only their own aggregates' events, still in store order.

    Pages are windows of notification ids (about `limit` rows of this shard each), not LIMITs: with
    the shard predicate the planner cannot estimate how soon a LIMIT would stop and may scan the
    whole rest of the table for every page, whereas a bounded id range is a short index scan."""
    index, count = shard
    recorder = store.recorder
    statement = sql.SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {}.{}"
        " WHERE notification_id > %s AND notification_id <= %s AND topic = ANY(%s)"
        " AND get_byte(uuid_send(originator_id), 15) %% {} = {}"
        " ORDER BY notification_id"
    ).format(
        sql.Identifier(recorder.datastore.schema),  # type: ignore[attr-defined]
        sql.Identifier(recorder.events_table_name),  # type: ignore[attr-defined]
        sql.Literal(count),
        sql.Literal(index),
    )
    topics = list(PUBLIC_TOPICS)
    # A parallel plan (Gather Merge) for each page only burns the CPU the workers need.
    conn.execute("SET max_parallel_workers_per_gather = 0")

    def read(start: int, limit: int, stop: int) -> tuple[Sequence[Notification], int]:
        until = min(stop, start + limit * count)
        with conn.cursor(binary=True) as cur:
            cur.execute(statement, (start, until, topics))
            page = [
                Notification(
                    id=r[0], originator_id=r[1], originator_version=r[2], topic=r[3], state=r[4]
                )
                for r in cur
            ]
        return page, until

    return read


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The bulk replay allocates millions of short-lived objects beside a large cache: generational
    gc would rescan the cache over and over (it halves the rate). Nothing here makes cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- worker processes ------------------------------------------------------------------------


def _worker(
    db: DatabaseSettings,
    settings: ProjectorSettings,
    shard: tuple[int, int],
    stop: int,
    reports: Any,
    done: Pipe,
) -> None:
    """Bulk-replay one shard of the aggregates, in a process of its own."""
    reports.cancel_join_thread()  # progress reports are best effort: never block the exit on them
    store = TodoStore(env=store_env(db))
    try:
        with (
            psycopg.connect(db.conninfo) as conn,
            psycopg.connect(db.conninfo, autocommit=True) as read_conn,
            _gc_paused(),
        ):

            def report(stats: ReplayStats) -> None:
                reports.put((shard[0], stats.position, stats.events))

            replayer = Replayer(
                conn,
                _shard_reader(read_conn, store, shard),
                store.mapper,
                page_size=settings.PROJECTOR_REBUILD_PAGE_SIZE,
                cache_rows=settings.PROJECTOR_REBUILD_CACHE_ROWS,
                on_page=report,
            )
            stats = replayer.replay(0, stop)
            replayer.finish()
        done.send((stats.events, stats.gaps, stats.refused, None))
    except BaseException as e:
        done.send((0, 0, 0, f"{type(e).__name__}: {e}"))
        raise
    finally:
        store.close()


# --- the rebuild -----------------------------------------------------------------------------


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
                _check_schema(conn)
                self._create_tables(conn)
                head = self._store.recorder.max_notification_id() or 0
                workers = self._worker_count(head)
                t = phase("prepare", started)
                bulk = self._bulk(head, workers)
                t = phase("replay", t)
                self._create_indexes(conn)
                t = phase("index", t)
                replayer = self._catch_up_replayer(conn)
                for _ in range(_CATCH_UP_PASSES):
                    now = self._store.recorder.max_notification_id() or 0
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

    # --- phases ----------------------------------------------------------------------------

    def _create_tables(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            for table in REBUILT_TABLES:
                copy = _rebuild_copy(table)
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(copy.name)))
                conn.execute(str(CreateTable(copy).compile(dialect=_DIALECT)))

    def _create_indexes(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            for table in REBUILT_TABLES:
                copy = _rebuild_copy(table)
                for index in copy.indexes:
                    conn.execute(str(CreateIndex(index).compile(dialect=_DIALECT)))
                conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(copy.name)))

    def _bulk(self, head: int, workers: int) -> ReplayStats:
        with self._progress(head) as advance:
            if workers == 1:
                with psycopg.connect(self._db.conninfo) as conn, _gc_paused():
                    replayer = Replayer(
                        conn,
                        _store_reader(self._store),
                        self._store.mapper,
                        page_size=self._settings.PROJECTOR_REBUILD_PAGE_SIZE,
                        cache_rows=self._settings.PROJECTOR_REBUILD_CACHE_ROWS,
                        on_page=lambda s: advance({0: (s.position, s.events)}),
                    )
                    stats = replayer.replay(0, head)
                    replayer.finish()
                    return stats
            return self._bulk_in_processes(head, workers, advance)

    def _bulk_in_processes(
        self, head: int, workers: int, advance: Callable[[dict[int, tuple[int, int]]], None]
    ) -> ReplayStats:
        ctx = mp.get_context("spawn")
        reports = ctx.Queue()
        pipes: list[Pipe] = []
        processes = []
        for index in range(workers):
            receive, send = ctx.Pipe(duplex=False)
            process = ctx.Process(
                target=_worker,
                args=(self._db, self._settings, (index, workers), head, reports, send),
                name=f"rebuild-{index}",
                daemon=True,
            )
            process.start()
            send.close()
            pipes.append(receive)
            processes.append(process)
        state: dict[int, tuple[int, int]] = {}
        results: dict[int, tuple[int, int, int, str | None]] = {}
        try:
            while len(results) < workers:
                try:
                    index, position, events = reports.get(timeout=0.2)
                    state[index] = (position, events)
                    advance(state)
                except queue.Empty:
                    pass
                for index, pipe in enumerate(pipes):
                    if index not in results and pipe.poll():
                        results[index] = pipe.recv()
                    elif index not in results and not processes[index].is_alive():
                        exitcode = processes[index].exitcode
                        results[index] = (0, 0, 0, f"worker exited with {exitcode}")
        finally:
            for process in processes:
                process.join(timeout=10)
                if process.is_alive():
                    process.terminate()
                    process.join(timeout=10)
        errors = [r[3] for r in results.values() if r[3]]
        if errors:
            raise RuntimeError(f"rebuild worker failed: {errors[0]}")
        return ReplayStats(
            events=sum(r[0] for r in results.values()),
            gaps=sum(r[1] for r in results.values()),
            refused=sum(r[2] for r in results.values()),
            position=head,
        )

    def _catch_up_replayer(self, conn: psycopg.Connection[Any]) -> Replayer:
        return Replayer(
            conn,
            _store_reader(self._store),
            self._store.mapper,
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
                    final = self._store.recorder.max_notification_id() or 0
                    replayer.replay(head, final)
                    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(_SWAP_LOCK_TIMEOUT))
                    _rename_into_place(conn)
                    with conn.cursor() as cur:
                        notify_progress(cur, None)
                return final
            except psycopg.errors.LockNotAvailable:
                log.warning("swap waited too long for the tables; retrying", extra={"n": attempt})
                replayer.stats.events = events_before  # rolled back: replayed on the next attempt
            finally:
                replayer.commit_each_flush = True
        raise RuntimeError("could not take the read tables' locks to swap them in")

    @contextmanager
    def _progress(self, head: int) -> Iterator[Callable[[dict[int, tuple[int, int]]], None]]:
        bar = tqdm(
            total=head,
            unit="pos",
            unit_scale=True,
            desc="replaying store",
            file=sys.stderr,
            disable=not self._show_progress,
            dynamic_ncols=True,
        )

        metrics.register(*metrics.REBUILD)
        metrics.REBUILD_TARGET.set(head)

        def advance(state: dict[int, tuple[int, int]]) -> None:
            position = min(p for p, _ in state.values())
            metrics.REBUILD_POSITION.set(position)
            bar.update(max(0, position - bar.n))
            bar.set_postfix(events=sum(e for _, e in state.values()), refresh=False)

        try:
            yield advance
        finally:
            bar.close()


def _check_schema(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        for table in REBUILT_TABLES:
            row = conn.execute("SELECT to_regclass(%s)", (table.name,)).fetchone()
            if row is None or row[0] is None:
                raise RuntimeError(
                    f"table {table.name!r} does not exist: run `alembic upgrade head` first"
                )


def _rebuild_copy(table: Table) -> Table:
    copy = table.to_metadata(
        MetaData(naming_convention=NAMING_CONVENTION), name=table.name + _SUFFIX
    )
    copy.primary_key.name = conv(f"pk_{copy.name}")
    for index in copy.indexes:
        index.name = conv(f"{index.name}{_SUFFIX}")
    return copy


def _rename_into_place(conn: psycopg.Connection[Any]) -> None:
    names = {t.name for t in REBUILT_TABLES}
    assert names == {LIVE.users, LIVE.tasks, LIVE.user_positions, LIVE.task_events}
    conn.execute(
        sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
            sql.SQL(", ").join(sql.Identifier(t.name) for t in REBUILT_TABLES)
        )
    )
    for table in REBUILT_TABLES:
        new = table.name + _SUFFIX
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table.name)))
        conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                sql.Identifier(new), sql.Identifier(table.name)
            )
        )
        conn.execute(
            sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                sql.Identifier(table.name),
                sql.Identifier(f"pk_{new}"),
                sql.Identifier(f"pk_{table.name}"),
            )
        )
        for index in table.indexes:
            assert index.name is not None
            conn.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    sql.Identifier(f"{index.name}{_SUFFIX}"), sql.Identifier(index.name)
                )
            )
