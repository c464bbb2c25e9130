"""The rebuild's progress: a tqdm bar on stderr and the rebuild gauges on /metrics."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

from projector.rebuild_workers import Advance
from runtime import metrics


@contextmanager
def progress(head: int, *, show: bool) -> Iterator[Advance]:
    """advance({worker: (position, events)}): the slowest worker's position is the progress."""
    bar = tqdm(
        total=head,
        unit="pos",
        unit_scale=True,
        desc="replaying store",
        file=sys.stderr,
        disable=not show,
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
