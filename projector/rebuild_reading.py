"""How the rebuild reads the store: pages of public events, through the event store's public API
(event_store.public_reader; nothing here touches the store's tables)."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.events import PublicEvent
from event_store.public_reader import PublicEventReader
from event_store.store_queries import Shard
from projector.rebuild_fold import ReadPage


def store_pages(reader: PublicEventReader, shard: Shard | None = None) -> ReadPage:
    """Pages are windows of positions (about `limit` events of this shard each), not LIMITs: with
    a shard predicate the planner cannot estimate how soon a LIMIT would stop and may scan the
    whole rest of the table for every page, whereas a bounded range is a short index scan."""
    count = shard.count if shard is not None else 1

    def read(start: int, limit: int, stop: int) -> tuple[Sequence[PublicEvent], int]:
        until = min(stop, start + limit * count)
        return reader.read(start, until, shard), until

    return read
