"""The rebuild's fold loop: public events, in store order, folded into a set of read tables."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
import psycopg
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.pq import Format

from contracts.events import PublicEvent
from projector.db import REBUILD, TableNames, copy_rows, load_rows, save_positions, save_rows
from projector.handlers import ProjectionError, apply_event, referenced_ids
from projector.rebuild_tables import add_keys
from projector.rows import Rows

log = logging.getLogger(__name__)

# read(after, limit, stop) -> (public events in store order, position read up to)
ReadPage = Callable[[int, int, int], tuple[Sequence[PublicEvent], int]]


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
    shard, so rows are kept in memory until `cache_rows`, then written (COPY for new rows): the
    history rows each time, the users and tasks only once they alone fill half of it (then they
    are forgotten, and a row that comes back later is loaded again). `fresh=False` (catch-up):
    rows the events touch are loaded from the tables first, and written back per page.
    """

    conn: psycopg.Connection[Any]
    read_page: ReadPage
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

    def __post_init__(self) -> None:
        if self.fresh:
            # The history's `changes` go to COPY as dicts, serialised by the jsonb dumper: ours,
            # with orjson (a tenth of json.dumps' cost; jsonb stores the parsed value, so the
            # table holds the same bytes) and without psycopg's generic layers, per history row.
            self.conn.adapters.register_dumper(None, _ChangesDumper)

    def replay(self, start: int, stop: int) -> ReplayStats:
        """Apply the public events with start < position <= stop; leaves them to flush()."""
        position = start
        while position < stop:
            events, position = self.read_page(position, self.page_size, stop)
            if not self.fresh or self._flushed:
                self._load_missing(events)
            self._fold(events)
            self.stats.events += len(events)
            self.stats.position = position
            if not self.fresh:
                self.flush()
            elif self._cached_rows() > self.cache_rows:
                self._write_out()
            if self.on_page is not None:
                self.on_page(self.stats)
        self.stats.position = max(self.stats.position, stop)
        return self.stats

    def _cached_rows(self) -> int:
        cache = self._cache
        return len(cache.users) + len(cache.tasks) + len(cache.task_events)

    def _write_out(self) -> None:
        """Over the budget (bulk phase): the history rows go first, as no event reads them back;
        the users and tasks stay cached (a later event of theirs needs no load from the tables)
        unless they alone fill more than half the budget."""
        cache = self._cache
        if len(cache.users) + len(cache.tasks) > self.cache_rows // 2:
            if not self._flushed:
                # From now on rows come back from the tables (loads, upserts): they need the
                # primary keys the bulk phase otherwise leaves to the index phase.
                self.conn.commit()
                add_keys(self.conn)
            self.flush()
            return
        with self.conn.cursor() as cur:
            copy_rows(cur, self.tables, (), (), cache.task_events)
        if self.commit_each_flush:
            self.conn.commit()
        cache.task_events = []

    def _fold(self, events: Sequence[PublicEvent]) -> None:
        cache = self._cache
        for event in events:
            try:
                apply_event(cache, event)
            except ProjectionError as e:
                self.stats.refused += 1
                log.warning(
                    "event refused",
                    extra={"position": event.position, "type": event.type, "error": str(e)},
                )

    def _load_missing(self, events: Sequence[PublicEvent]) -> None:
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
        loaded = self._loaded
        existing = Rows(
            users=cache.users,
            tasks=cache.tasks,
            changed_users={i for i in cache.changed_users if i in loaded} if loaded else set(),
            changed_tasks={i for i in cache.changed_tasks if i in loaded} if loaded else set(),
            # History rows are new in a fresh table (COPY); a catch-up inserts them idempotently.
            task_events=[] if self.fresh else cache.task_events,
        )
        if loaded or not self.fresh:
            new_users = [cache.users[i] for i in cache.changed_users if i not in loaded]
            new_tasks = [cache.tasks[i] for i in cache.changed_tasks if i not in loaded]
        else:  # nothing loaded: every cached row was created by this replayer (no id lookups)
            new_users, new_tasks = list(cache.users.values()), list(cache.tasks.values())
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


class _ChangesDumper(Dumper):
    """A jsonb value in COPY's binary format: version 1, then the JSON text."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        try:
            return b"\x01" + orjson.dumps(obj)
        except orjson.JSONEncodeError:  # what orjson refuses (e.g. a lone surrogate): as before
            return b"\x01" + json.dumps(obj).encode()


@contextmanager
def gc_paused() -> Iterator[None]:
    """The bulk replay allocates millions of short-lived objects beside a large cache: generational
    gc would rescan the cache over and over (it halves the rate). Nothing here makes cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
