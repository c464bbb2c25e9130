"""The relay under the shared poison policy: it never skips a stored event; transient failures are
retried forever, anything else a bounded number of times before it halts, not ready."""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from event_store.relay import Relay
from runtime.settings import ConsumerSettings, DatabaseSettings, RelaySettings
from tests.support.read_side import wait_until


class ScriptedRelay(Relay):
    """The real Relay.run (the policy) around a leader turn that fails as scripted."""

    def __init__(self, failures: list[BaseException]) -> None:
        policy = ConsumerSettings(
            CONSUMER_BUG_RETRIES=2,
            CONSUMER_RETRY_INITIAL_SECONDS=0.001,
            CONSUMER_RETRY_MAX_SECONDS=0.01,
        )
        unused: Any = None  # the scripted turn touches neither the store nor Kafka
        super().__init__(unused, unused, DatabaseSettings(), RelaySettings(), policy=policy)
        self.failures = failures
        self.turns = 0

    def _run_as_leader(self) -> None:
        self.turns += 1
        if self.failures:
            raise self.failures.pop(0)
        self.stop()


def run(relay: Relay) -> threading.Thread:
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    return thread


def test_transient_failures_are_retried_past_the_bug_budget_and_never_halt() -> None:
    relay = ScriptedRelay([psycopg.OperationalError("down")] * 10)
    run(relay).join(timeout=10)
    assert relay.turns == 11
    assert relay.heartbeat.halted is None


def test_an_event_that_cannot_be_translated_halts_the_relay_after_bounded_retries() -> None:
    relay = ScriptedRelay([KeyError("no translator for Task.Archived")] * 10)
    thread = run(relay)
    wait_until(lambda: relay.heartbeat.halted is not None, 10, "the relay to halt")
    readiness = relay.heartbeat.readiness()
    assert not readiness.ready and readiness.reason is not None
    assert "KeyError" in readiness.reason and "failed 3 time(s)" in readiness.reason
    assert relay.turns == 3 and thread.is_alive(), "halted: publishes nothing more, stays up"
    relay.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()
