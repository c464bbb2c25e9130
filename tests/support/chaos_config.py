"""What a fault-injection run (tests/support/chaos.py) is asked to do: how many commands from how
many users, how many kills, how long a broker outage, how many digest dates, one broker or three,
and on which ports; `make chaos` sets them through CHAOS_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChaosConfig:
    commands: int = 2000  # task commands (registrations and logins come on top)
    users: int = 8
    kills: int = 3  # SIGKILL + restart, per killed service
    outage_seconds: float = 15.0  # the broker is stopped this long, once
    digest_dates: int = 3  # `scheduler run --date D` during the load, one date each
    kafka_port: int = 24094  # private broker (+1: its controller)
    # 3: a private 3-node cluster instead, whose "outage" SIGKILLs one node (the others go on)
    kafka_brokers: int = 1
    cluster_port: int = 25292  # its nodes: 25292-25297
    api_port: int = 24081

    @classmethod
    def from_env(cls, **defaults: Any) -> ChaosConfig:
        base = cls(**defaults)
        return cls(
            commands=int(os.environ.get("CHAOS_COMMANDS", base.commands)),
            users=int(os.environ.get("CHAOS_USERS", base.users)),
            kills=int(os.environ.get("CHAOS_KILLS", base.kills)),
            outage_seconds=float(os.environ.get("CHAOS_OUTAGE_SECONDS", base.outage_seconds)),
            digest_dates=int(os.environ.get("CHAOS_DIGEST_DATES", base.digest_dates)),
            kafka_port=base.kafka_port,
            kafka_brokers=int(os.environ.get("CHAOS_KAFKA_BROKERS", base.kafka_brokers)),
            cluster_port=base.cluster_port,
            api_port=base.api_port,
        )
