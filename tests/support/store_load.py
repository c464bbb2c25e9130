"""Load on the store for the tests that kill or restart parts of the system: commands straight
into the store (no API in between), from a background thread, until stopped."""

from __future__ import annotations

import threading
from typing import Self

from event_store.application import TodoStore


class StoreLoad:
    """Calls `step(n)` for n = 1, 2, ... every `interval` s until stopped; a subclass says what
    one step writes and counts it in `commands`."""

    def __init__(self, store: TodoStore, interval: float) -> None:
        self.store = store
        self.interval = interval
        self.commands = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def step(self, n: int) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(self.interval):
            n += 1
            self.step(n)

    def start(self) -> Self:
        self._thread.start()
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
