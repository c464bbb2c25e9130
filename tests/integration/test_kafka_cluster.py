"""One broker of a 3-node Kafka cluster (replication factor 3, min.insync.replicas=2, producers
acks=all + idempotent) is SIGKILLed while the real command API, relay, projector and mailer
processes carry a load of commands over HTTP and a digest batch is mailed. The two survivors must
carry on: commands are accepted, the read tables advance and digests are mailed while the node is
dead; afterwards every acknowledged command is in the store, on Kafka and in the read tables
exactly, no digest is emailed twice, and the restarted node is back in every ISR."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import psycopg
import pytest

from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.chaos_checks import judge_kafka, judge_mail, judge_store, wait_for_tables
from tests.support.chaos_workload import Client, Gate, Tally
from tests.support.infra import process_env
from tests.support.private_cluster import BROKERS, private_kafka_cluster
from tests.support.read_side import migrate, store_events, wait_until
from tests.support.services import running, service, wait_for_http
from tests.support.smtp import running_smtp_server
from tests.support.system import store_for

pytestmark = pytest.mark.integration

# This test's own ports (25000-25999 is kept for the Kafka cluster work): nodes on 25192-25197.
CLUSTER_PORT = 25192
API_PORT = 25181
HEALTH_PORTS = {"relay": 25111, "projector": 25112, "mailer": 25114}
COMMANDS = 1500
USERS = 6
# Longer than the brokers' replica.lag.time.max.ms (10 s): the dead node leaves the ISR.
DOWN_AT_LEAST_SECONDS = 15.0
DIGEST_DATE = date(2026, 11, 2)
DIGEST_EVENT = "email.daily_digest.requested"


def read_task_rows(db: DatabaseSettings) -> int:
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        row = conn.execute("select count(*) from tasks").fetchone()
    return int(row[0]) if row else 0


def run_digest(db: DatabaseSettings, kafka: KafkaSettings, day: date, log_dir: Path) -> None:
    """The operator's batch (`python -m scheduler run --date`), as a process of its own. On a
    failure the scheduler's log and the pipeline's logs say why (a bare timeout would not)."""
    log_path = log_dir / "scheduler.log"
    with log_path.open("wb") as log:
        try:
            result = subprocess.run(
                [sys.executable, "-m", "scheduler", "run", "--date", day.isoformat()],
                env=process_env(db, kafka, ENVIRONMENT="test"),
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=300,
            )
            failed = f"exit code {result.returncode}" if result.returncode else ""
        except subprocess.TimeoutExpired:
            failed = "no summary within 300 s"
    if failed:
        tails = {
            name: "\n".join(
                (log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-25:]
            )
            for name in ("scheduler", "relay", "projector")
            if (log_dir / f"{name}.log").exists()
        }
        pytest.fail(
            f"digest batch failed ({failed}):\n"
            + "\n".join(f"--- {name}.log (tail)\n{tail}" for name, tail in tails.items())
        )


@pytest.mark.timeout(600)  # about 2-3 minutes on the shared 2-core machine
def test_a_sigkilled_broker_of_three_loses_nothing_duplicates_nothing_and_rejoins_the_isr(
    db_settings: DatabaseSettings, tmp_path: Path
) -> None:
    migrate(db_settings)
    tally, gate = Tally(), Gate(COMMANDS)
    gate.allow(COMMANDS // 3)
    failures: list[str] = []

    def run_client(i: int) -> None:
        url = f"http://127.0.0.1:{API_PORT}"
        try:
            Client(url, f"cluster{i}@example.com", tally, gate, seed=i).run()
        except Exception as e:  # reported, not swallowed: the test fails with it
            failures.append(f"client {i}: {type(e).__name__}: {e}"[:500])

    with (
        private_kafka_cluster(CLUSTER_PORT) as cluster,
        running_smtp_server() as smtp,
        store_for(db_settings) as store,
    ):
        kafka = cluster.settings
        env = {
            "RELAY_POLL_INTERVAL_SECONDS": "0.2",
            "SMTP_HOST": smtp.host,
            "SMTP_PORT": str(smtp.port),
            "COMMAND_API_PORT": str(API_PORT),
            **{f"{n.upper()}_HEALTH_PORT": str(p) for n, p in HEALTH_PORTS.items()},
        }
        names = ("relay", "projector", "mailer", "command_api")
        processes = [service(n, db_settings, kafka, tmp_path, **env) for n in names]
        ready_urls = [f"http://127.0.0.1:{p}/ready" for p in (API_PORT, *HEALTH_PORTS.values())]
        with running(*processes):
            for url in ready_urls:
                wait_for_http(url, timeout=120)
            clients = [threading.Thread(target=run_client, args=(i,)) for i in range(USERS)]
            for t in clients:
                t.start()
            wait_until(lambda: gate.taken >= COMMANDS // 3, 180, "the first third of the load")

            with cluster.outage():  # SIGKILL the leader of partition 0; started again on exit
                killed_at = time.monotonic()
                acked_at_kill, rows_at_kill = tally.acknowledged, read_task_rows(db_settings)
                gate.allow(2 * COMMANDS // 3)
                run_digest(db_settings, kafka, DIGEST_DATE, tmp_path)
                digests = sum(e.type == DIGEST_EVENT for e in store_events(store))
                mailed_while_down = len(smtp.wait_for(digests, timeout=120))
                wait_until(
                    lambda: any(2 in sizes for sizes in cluster.in_sync_replicas().values()),
                    60,
                    "the dead node to leave the ISR",
                )
                isr_while_down = cluster.in_sync_replicas()
                wait_until(lambda: gate.taken >= 2 * COMMANDS // 3, 180, "the second third")
                time.sleep(max(0.0, DOWN_AT_LEAST_SECONDS - (time.monotonic() - killed_at)))
                acked_while_down = tally.acknowledged - acked_at_kill
                rows_while_down = read_task_rows(db_settings) - rows_at_kill
            isr_after = cluster.in_sync_replicas()

            gate.allow(COMMANDS)
            for t in clients:
                t.join(timeout=300)
            for url in ready_urls:
                wait_for_http(url, timeout=60)  # relay, projector, mailer ready again
            died = [s.name for s in processes if not s.alive]

            events = store_events(store)
            on_store = judge_store(tally, events)
            on_kafka = judge_kafka(kafka, {e.position for e in events}, timeout=120)
            table_diff = wait_for_tables(db_settings, on_store.expected, timeout=120)
            on_mail = judge_mail(events, smtp.settle(quiet=2.0))

    print(
        f"\nnode {cluster.killed} down {cluster.outages[0]:.1f}s: {acked_while_down} commands "
        f"acknowledged, {rows_while_down} tasks projected, {mailed_while_down} digests mailed "
        f"meanwhile; ISR while down {isr_while_down}, after {isr_after}; "
        f"{tally.acknowledged} acknowledged, {on_kafka.messages} Kafka messages "
        f"({on_kafka.redeliveries} re-sent)"
    )
    assert failures == [] and died == []
    assert tally.server_errors == []
    assert tally.issued == COMMANDS and tally.acknowledged >= 0.95 * COMMANDS
    # The two survivors carried the system while the third was dead.
    assert acked_while_down > 0 and rows_while_down > 0
    assert mailed_while_down == digests > 0
    assert min(n for sizes in isr_while_down.values() for n in sizes) == BROKERS - 1
    # Nothing lost, nothing twice, in order.
    assert on_store.acked_missing == on_store.model_mismatch == on_store.phantoms == []
    assert on_kafka.missing == set() and on_kafka.order_violations == []
    assert on_kafka.split_users == []
    assert table_diff == []
    assert on_mail.unmailed == on_mail.emailed_twice == [] and on_mail.resent_identical == 0
    assert on_mail.digests == digests
    # The restarted node rejoined every partition's ISR.
    assert all(n == BROKERS for sizes in isr_after.values() for n in sizes), isr_after
