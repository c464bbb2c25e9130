"""Group commit: concurrent commands are saved together in one store transaction.

The PostgreSQL recorder serialises writers with a table lock (that is what keeps notification ids in
commit order for the relay), so one transaction per command caps throughput at roughly one lock
round-trip per command. Here one writer thread takes every command that queued up while the previous
transaction was in flight and records them in a single `save()`. If that combined save fails (one
command conflicted), each command is retried alone so only the guilty one sees the error.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import Recording

log = logging.getLogger(__name__)

Save = Callable[..., list[Recording[Any]]]


@dataclass
class _Pending:
    events: Sequence[Any]
    on_done: Callable[[], None]
    recordings: list[Recording[Any]] = field(default_factory=list)
    error: BaseException | None = None

    def result(self) -> list[Recording[Any]]:
        if self.error is not None:
            raise self.error
        return self.recordings


class GroupCommitter:
    def __init__(self, save: Save, max_batch: int = 64) -> None:
        self._save = save
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self.transactions = 0  # observability: commands per transaction = commands / transactions
        self.commands = 0
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def commit(self, events: Sequence[Any]) -> list[Recording[Any]]:
        """Record `events` (collected from aggregates) atomically; block until durable."""
        if not events:
            return []
        done = threading.Event()
        pending = _Pending(events, on_done=done.set)
        self._queue.put(pending)
        done.wait()
        return pending.result()

    async def commit_async(self, events: Sequence[Any]) -> list[Recording[Any]]:
        """As commit(), for the event loop: awaits the writer thread instead of blocking a
        worker thread (saves a thread hop per command on the hot path)."""
        if not events:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            loop.call_soon_threadsafe(future.set_result, None)

        pending = _Pending(events, on_done=wake)
        self._queue.put(pending)
        await future
        return pending.result()

    def close(self) -> None:
        log.info(
            "group commit stats",
            extra={"commands": self.commands, "transactions": self.transactions},
        )
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(nxt)
            self._record(batch)

    def _record(self, batch: list[_Pending]) -> None:
        self.transactions += 1
        self.commands += len(batch)
        if len(batch) > 1:
            try:
                recordings = self._save(*(e for p in batch for e in p.events))
            except Exception:
                log.debug("combined save failed, retrying %d commands one by one", len(batch))
            else:
                offset = 0
                for p in batch:
                    p.recordings = recordings[offset : offset + len(p.events)]
                    offset += len(p.events)
                    p.on_done()
                return
        for p in batch:
            try:
                p.recordings = self._save(*p.events)
            except BaseException as e:
                p.error = e
            p.on_done()
