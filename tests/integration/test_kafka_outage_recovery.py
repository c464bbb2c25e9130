"""A Kafka outage of 30 s on a private broker (3 partitions) under the real relay, projector and
mailer processes: once the broker is back, both consumers take every partition again within 5 s,
without waiting for a session timeout to expire (runtime/kafka.py says why they used to)."""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from event_store.application import TodoStore
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.digest import run_batch
from tests.support.infra import consume_all
from tests.support.private_infra import private_kafka
from tests.support.read_side import wait_until
from tests.support.services import running, service
from tests.support.smtp import running_smtp_server
from tests.support.system import store_for

pytestmark = pytest.mark.integration

KAFKA_PORT = int(os.environ.get("KAFKA_OUTAGE_PORT", "24092"))
OUTAGE_SECONDS = float(os.environ.get("KAFKA_OUTAGE_SECONDS", "30"))
RESUME_WITHIN_SECONDS = 5.0


def one_user_per_partition(store: TodoStore, kafka: KafkaSettings) -> dict[int, tuple[UUID, str]]:
    """Register users until each partition holds one (a user's events all go to one partition,
    chosen by the producer from the user id): partition → (user id, email)."""
    emails = {f"p{i}@example.com": store.register_user(f"p{i}@example.com", "h").aggregate.id
              for i in range(24)}  # fmt: skip
    messages = consume_all(kafka, until=lambda ms: len(ms) >= len(emails), timeout=60)
    by_id = {str(uid): email for email, uid in emails.items()}
    chosen: dict[int, tuple[UUID, str]] = {}
    for m in messages:
        email = by_id[m.key().decode()]
        chosen.setdefault(m.partition(), (emails[email], email))
    assert sorted(chosen) == [0, 1, 2], f"24 users did not cover the 3 partitions: {sorted(chosen)}"
    return chosen


def titles(db: DatabaseSettings) -> set[str]:
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        return {r[0] for r in conn.execute("select title from tasks")}


def test_after_a_30s_kafka_outage_the_projector_and_mailer_consume_every_partition_within_5s(
    read_db: DatabaseSettings, tmp_path: Path
) -> None:
    with (
        private_kafka(KAFKA_PORT) as broker,
        running_smtp_server() as smtp,
        store_for(read_db) as store,
    ):
        kafka = broker.settings
        mail = {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port)}
        relay = service("relay", read_db, kafka, tmp_path, RELAY_POLL_INTERVAL_SECONDS="0.2")
        projector = service("projector", read_db, kafka, tmp_path)  # production defaults
        mailer = service("mailer", read_db, kafka, tmp_path, **mail)
        with running(relay, projector, mailer):
            users = one_user_per_partition(store, kafka)
            for partition, (user_id, _) in users.items():
                store.create_task(user_id, f"before {partition}")
            wait_until(lambda: len(titles(read_db)) == 3, 60, "the projector to apply them")
            run_batch(read_db, store, date(2026, 11, 23))
            assert len(smtp.wait_for(3, timeout=60)) == 3, "the mailer mails each partition's"

            with broker.outage():
                time.sleep(OUTAGE_SECONDS)
            back = time.monotonic()  # kafka.sh start returns once the broker answers

            for partition, (user_id, _) in users.items():
                store.create_task(user_id, f"after {partition}")
            run_batch(read_db, store, date(2026, 11, 24))
            applied: dict[int, float] = {}
            mailed: dict[int, float] = {}

            def every_partition_resumed() -> bool:
                now = time.monotonic() - back
                seen = titles(read_db)
                for partition, (_, email) in users.items():
                    if f"after {partition}" in seen:
                        applied.setdefault(partition, now)
                    if len(smtp.to(email)) >= 2:
                        mailed.setdefault(partition, now)
                return len(applied) == len(mailed) == 3

            try:
                wait_until(every_partition_resumed, 90, "every partition to be consumed again")
            except AssertionError as e:  # say which consumer is stuck and what its client said
                raise AssertionError(
                    f"{e}: applied {applied}, mailed {mailed}\n"
                    + "\n".join(_log_tail(s.name, s.log()) for s in (projector, mailer))
                ) from e

    print(f"\nafter a {OUTAGE_SECONDS:.0f}s outage, seconds until consumed again per partition:")
    print(
        f"  projector {dict(sorted(applied.items()))}\n  mailer    {dict(sorted(mailed.items()))}"
    )
    assert max(applied.values()) <= RESUME_WITHIN_SECONDS, f"projector: {applied}"
    assert max(mailed.values()) <= RESUME_WITHIN_SECONDS, f"mailer: {mailed}"
    assert len(smtp.received) == 6, "one email per user and day, none twice"
    # They re-joined on their own: the source's backstop (a new consumer after a minute outside
    # the group, consuming/source.py) is for a member that never does, not for an outage.
    for s in (projector, mailer):
        assert "outside its group" not in s.log(), f"{s.name} needed the backstop"


def _log_tail(name: str, log: str, lines: int = 15) -> str:
    """The last lines of a service's log, without the refused reconnects of the outage."""
    kept = [line for line in log.splitlines() if "Connection refused" not in line]
    return f"--- {name}.log (tail)\n" + "\n".join(kept[-lines:])
