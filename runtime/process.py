"""Process plumbing shared by every long-running worker."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType


def stop_on_signals(stop: Callable[[], None]) -> None:
    """Ctrl-C (SIGINT) and orchestrators (SIGTERM) ask the worker to finish its current step and
    exit cleanly: `stop` only sets a flag the worker's loop checks."""

    def handler(_sig: int, _frame: FrameType | None) -> None:
        stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
