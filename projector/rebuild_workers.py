"""The rebuild's bulk replay split into shards of the aggregates: this process replays one,
child processes the others."""

from __future__ import annotations

import multiprocessing as mp
import queue
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from typing import Any

import psycopg

from event_store.application import TodoStore, store_env
from event_store.public_reader import PublicEventReader
from event_store.store_queries import Shard
from projector.rebuild_fold import Replayer, ReplayStats, gc_paused
from projector.rebuild_reading import store_pages
from projector.settings import ProjectorSettings
from runtime.settings import DatabaseSettings

# advance({worker index: (position, events)}), called as workers report progress
Advance = Callable[[dict[int, tuple[int, int]]], None]


def _replay_shard(
    db: DatabaseSettings,
    settings: ProjectorSettings,
    shard: Shard,
    stop: int,
    report: Callable[[ReplayStats], None],
) -> ReplayStats:
    """Bulk-replay one shard of the aggregates into the fresh tables."""
    # One reading connection is all a shard uses of the store's pool.
    store = TodoStore(env=store_env(db.model_copy(update={"POSTGRES_POOL_SIZE": 1})))
    try:
        with psycopg.connect(db.conninfo) as conn, gc_paused():
            replayer = Replayer(
                conn,
                store_pages(PublicEventReader(store), shard),
                page_size=settings.PROJECTOR_REBUILD_PAGE_SIZE,
                cache_rows=settings.PROJECTOR_REBUILD_CACHE_ROWS,
                on_page=report,
            )
            stats = replayer.replay(0, stop)
            replayer.finish()
            return stats
    finally:
        store.close()


def _worker(
    db: DatabaseSettings,
    settings: ProjectorSettings,
    shard: Shard,
    stop: int,
    reports: Any,
    done: Pipe,
) -> None:
    """A shard in a process of its own."""
    reports.cancel_join_thread()  # progress reports are best effort: never block the exit on them

    def report(stats: ReplayStats) -> None:
        reports.put((shard.index, stats.position, stats.events))

    try:
        stats = _replay_shard(db, settings, shard, stop, report)
        done.send((stats.events, stats.gaps, stats.refused, None))
    except BaseException as e:
        done.send((0, 0, 0, f"{type(e).__name__}: {e}"))
        raise


def replay_in_processes(
    db: DatabaseSettings,
    settings: ProjectorSettings,
    head: int,
    workers: int,
    advance: Advance,
) -> ReplayStats:
    """Replay positions 1..head into the fresh tables in `workers` shards: this process replays
    the first itself while child processes replay the others (a spawned child first spends about
    a second of CPU importing what this process has imported already)."""
    ctx = mp.get_context("spawn")
    reports = ctx.Queue()
    children: dict[int, tuple[Any, Pipe]] = {}
    for index in range(1, workers):
        receive, send = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=_worker,
            args=(db, settings, Shard(index, workers), head, reports, send),
            name=f"rebuild-{index}",
            daemon=True,
        )
        process.start()
        send.close()
        children[index] = (process, receive)
    state: dict[int, tuple[int, int]] = {}

    def take_reports(timeout: float) -> None:
        """The children's progress so far (waiting up to `timeout` for the first report)."""
        try:
            while True:
                index, position, events = reports.get(timeout=timeout)
                state[index] = (position, events)
                timeout = 0.0
        except queue.Empty:
            advance(state)

    def own_progress(stats: ReplayStats) -> None:
        state[0] = (stats.position, stats.events)
        take_reports(0.0)

    results: dict[int, tuple[int, int, int, str | None]] = {}
    try:
        own = _replay_shard(db, settings, Shard(0, workers), head, own_progress)
        results[0] = (own.events, own.gaps, own.refused, None)
        while len(results) < workers:
            take_reports(0.2)
            for index, (process, pipe) in children.items():
                if index not in results and pipe.poll():
                    results[index] = pipe.recv()
                elif index not in results and not process.is_alive():
                    results[index] = (0, 0, 0, f"worker exited with {process.exitcode}")
    finally:
        for process, _ in children.values():
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
