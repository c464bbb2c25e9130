"""A consumer loop run in a background thread, the way the integration tests run the real mailer and
projector next to the test's own code."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from consuming.loop import ConsumerLoop


@contextmanager
def loop_in_thread(
    loop: ConsumerLoop, name: str, *, insist_stopped: bool = True
) -> Iterator[ConsumerLoop]:
    """Run `loop` until the block ends, then stop it and wait (up to 30 s) for its thread; with
    `insist_stopped`, a thread still alive after that fails the test."""
    thread = threading.Thread(target=loop.run, name=name, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.stop()
        thread.join(timeout=30)
        if insist_stopped:
            assert not thread.is_alive(), f"{name} did not stop"
