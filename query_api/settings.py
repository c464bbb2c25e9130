"""The query API's own settings: its address, the read-your-writes bound, an optional read
replica and the live-update streams (shared settings are runtime.settings)."""

from __future__ import annotations

from pydantic import Field

from runtime.settings import AppSettings, DatabaseSettings


class QueryApiSettings(AppSettings):
    QUERY_API_HOST: str = "127.0.0.1"
    QUERY_API_PORT: int = 8002
    READ_YOUR_WRITES_TIMEOUT_SECONDS: float = Field(default=2.0, ge=0, le=30)
    # Read from this PostgreSQL streaming replica (a hot standby of POSTGRES_HOST:POSTGRES_PORT,
    # same user, password and database) instead of the primary; empty: read from the primary.
    # Read-your-writes still holds: positions are confirmed on the replica (query_api.freshness).
    # One replica per process: behind a balancer spreading connections over several replicas,
    # a position seen on one is not yet on the others.
    QUERY_REPLICA_HOST: str = ""
    QUERY_REPLICA_PORT: int = Field(default=5432, ge=1, le=65535)
    # GET /stream: a comment this often on an idle stream (keeps proxies from closing it), and at
    # most this many open streams per user (tabs and devices; more answer 429).
    QUERY_STREAM_HEARTBEAT_SECONDS: float = Field(default=15.0, gt=0, le=300)
    QUERY_STREAMS_PER_USER: int = Field(default=20, ge=1, le=1000)

    @property
    def reads_from_replica(self) -> bool:
        return bool(self.QUERY_REPLICA_HOST)

    def read_database(self, primary: DatabaseSettings) -> DatabaseSettings:
        """Where the queries go: the replica when one is set, else the primary itself."""
        if not self.reads_from_replica:
            return primary
        host, port = self.QUERY_REPLICA_HOST, self.QUERY_REPLICA_PORT
        return primary.model_copy(update={"POSTGRES_HOST": host, "POSTGRES_PORT": port})
