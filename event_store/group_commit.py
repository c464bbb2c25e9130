"""Group commit: concurrent commands are saved together in one store transaction.

The PostgreSQL recorder serialises writers with a table lock (that is what keeps notification ids in
commit order for the relay), so one transaction per command caps throughput at roughly one lock
round-trip per command. Here one writer thread takes every command that queued up while the previous
transaction was in flight and records them in a single `save()`. If that combined save fails (one
command conflicted), each command is retried alone so only the guilty one sees the error.
"""

from __future__ import annotations

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
    done: threading.Event = field(default_factory=threading.Event)
    recordings: list[Recording[Any]] = field(default_factory=list)
    error: BaseException | None = None


class GroupCommitter:
    def __init__(self, save: Save, max_batch: int = 64) -> None:
        self._save = save
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def commit(self, events: Sequence[Any]) -> list[Recording[Any]]:
        """Record `events` (collected from aggregates) atomically; block until durable."""
        if not events:
            return []
        pending = _Pending(events)
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.recordings

    def close(self) -> None:
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
                    p.done.set()
                return
        for p in batch:
            try:
                p.recordings = self._save(*p.events)
            except BaseException as e:
                p.error = e
            p.done.set()
