"""Settings of the projector process (environment variables of the same name, or `.env`)."""

from __future__ import annotations

from pydantic import Field

from runtime.settings import AppSettings


class ProjectorSettings(AppSettings):
    # Kafka consumer group; every projector process of one deployment uses the same one.
    PROJECTOR_GROUP_ID: str = "projector"
    # At most this many messages are applied in one database transaction.
    PROJECTOR_BATCH_SIZE: int = Field(default=500, ge=1, le=100_000)
    # How long one poll waits for the first message of a batch (also bounds shutdown latency).
    PROJECTOR_POLL_TIMEOUT_SECONDS: float = Field(default=0.5, gt=0, le=30)
    # A projector process that stops heartbeating (crash, SIGKILL) keeps its partitions this long
    # before the group hands them to the others (Kafka's default is 45 s; the broker's minimum 6 s).
    PROJECTOR_SESSION_TIMEOUT_SECONDS: float = Field(default=10.0, ge=6, le=300)
    # Rebuild: notifications read from the store per page.
    PROJECTOR_REBUILD_PAGE_SIZE: int = Field(default=10_000, ge=1, le=1_000_000)
    # Rebuild: rows kept in memory per worker before they are flushed to the new tables.
    PROJECTOR_REBUILD_CACHE_ROWS: int = Field(default=500_000, ge=1)
    # Rebuild: worker processes replaying the bulk of the store (0 = one per CPU core).
    PROJECTOR_REBUILD_WORKERS: int = Field(default=0, ge=0, le=64)
