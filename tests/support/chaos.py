"""The fault-injection run, shaped like Kafka's own transactions system test: a steady load of
commands over HTTP from several users while the relay, projector, mailer and command API are each
SIGKILLed and restarted, the (private) Kafka broker is stopped for a while and digests are mailed;
then everything observable is checked against a model of the acknowledged commands.

Shared by tests/integration/test_fault_injection.py (CI size) and `make chaos`
(`python -m tests.support.chaos`, CHAOS_COMMANDS=20000 and the other CHAOS_* of
tests/support/chaos_config.py). Every other environment variable reaches the services unchanged,
e.g. to raise auth throttling limits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
from tqdm import tqdm

from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.chaos_checks import (
    ChaosReport,
    judge_kafka,
    judge_mail,
    judge_store,
    wait_for_tables,
)
from tests.support.chaos_config import ChaosConfig
from tests.support.chaos_workload import Client, Gate, Tally
from tests.support.infra import process_env
from tests.support.private_cluster import PrivateKafkaCluster, private_kafka_cluster
from tests.support.private_infra import PrivateKafka, private_kafka
from tests.support.read_side import store_events
from tests.support.services import Service, running, service, wait_for_http
from tests.support.smtp import SmtpServer, running_smtp_server
from tests.support.system import store_for

ROOT = Path(__file__).parents[2]
FIRST_DIGEST_DATE = date(2026, 11, 1)
KILLED = ("relay", "projector", "mailer", "command_api")
HEALTH_PORTS = {"relay": 24011, "projector": 24012, "mailer": 24014}
Broker = PrivateKafka | PrivateKafkaCluster


class ChaosRun:
    def __init__(
        self,
        config: ChaosConfig,
        db: DatabaseSettings,
        work_dir: Path,
        *,
        show_progress: bool = False,
    ) -> None:
        self.config = config
        self.show_progress = show_progress
        self.db = db
        self.work_dir = work_dir
        self.tally = Tally()
        self.gate = Gate(config.commands)
        self.digest_runs: list[tuple[str, int, float]] = []  # (date, exit code, seconds)
        self._digest_threads: list[threading.Thread] = []
        self.recoveries: dict[str, list[float]] = {name: [] for name in KILLED}
        self._clients: list[threading.Thread] = []
        self.client_failures: list[str] = []

    # --- the system ----------------------------------------------------------------------------

    def services(self, kafka: KafkaSettings, smtp: SmtpServer) -> dict[str, Service]:
        env = {
            "BCRYPT_ROUNDS": "4",
            "RELAY_POLL_INTERVAL_SECONDS": "0.2",
            "SMTP_HOST": smtp.host,
            "SMTP_PORT": str(smtp.port),
            "MAILER_RETRY_INITIAL_SECONDS": "0.05",
            "MAILER_RETRY_MAX_SECONDS": "1",
            "COMMAND_API_PORT": str(self.config.api_port),
            **{f"{n.upper()}_HEALTH_PORT": str(p) for n, p in HEALTH_PORTS.items()},
        }
        return {n: service(n, self.db, kafka, self.work_dir, **env) for n in KILLED}

    def wait_ready(self, name: str) -> None:
        port = self.config.api_port if name == "command_api" else HEALTH_PORTS[name]
        wait_for_http(f"http://127.0.0.1:{port}/ready", timeout=120)

    # --- the faults ----------------------------------------------------------------------------

    def schedule(
        self, services: dict[str, Service], broker: Broker
    ) -> list[tuple[str, Callable[[], None]]]:
        def kill(name: str) -> Callable[[], None]:
            def action() -> None:
                began = time.monotonic()
                services[name].restart()
                self.wait_ready(name)
                self.recoveries[name].append(round(time.monotonic() - began, 1))

            return action

        def outage() -> None:
            with broker.outage():
                time.sleep(self.config.outage_seconds)

        def digest(day: date) -> Callable[[], None]:
            return lambda: self.run_digest_async(day, broker.settings)

        events: list[tuple[str, Callable[[], None]]] = []
        for round_ in range(self.config.kills):
            events += [(f"kill {n}", kill(n)) for n in KILLED]
            if round_ == self.config.kills // 2:
                events.append(("kafka outage", outage))
        for i in range(self.config.digest_dates):
            day = FIRST_DIGEST_DATE + timedelta(days=i)
            events.insert(min(len(events), 2 + i * 5), (f"digest {day}", digest(day)))
        return events

    def run_digest_async(self, day: date, kafka: KafkaSettings) -> None:
        def run() -> None:
            began = time.monotonic()
            result = subprocess.run(
                [sys.executable, "-m", "scheduler", "run", "--date", day.isoformat()],
                cwd=ROOT,
                env=process_env(self.db, kafka, ENVIRONMENT="test"),
                capture_output=True,
                timeout=600,
            )
            self.digest_runs.append((str(day), result.returncode, time.monotonic() - began))

        thread = threading.Thread(target=run, name=f"digest-{day}")
        thread.start()
        self._digest_threads.append(thread)

    def drive(self, events: list[tuple[str, Callable[[], None]]]) -> None:
        """Each fault once the load has reached its share of the commands; the load may run at
        most one share ahead, so every fault lands while commands are in flight."""
        share = self.config.commands / (len(events) + 1)
        self.gate.allow(int(share))
        bar = tqdm(total=self.config.commands, unit="cmd", disable=not self.show_progress)
        for i, (label, action) in enumerate(events, start=1):
            while self.gate.taken < int(share * i) and not self.load_done():
                time.sleep(0.05)
                bar.update(self.gate.taken - bar.n)
            bar.set_postfix_str(label)
            self.gate.allow(int(share * (i + 1)))
            action()
        self.gate.allow(self.config.commands)
        while not self.load_done():
            time.sleep(0.2)
            bar.update(self.gate.taken - bar.n)
        bar.close()

    def load_done(self) -> bool:
        return not any(t.is_alive() for t in self._clients)

    # --- the run -------------------------------------------------------------------------------

    def run(self) -> ChaosReport:
        began = time.monotonic()
        with (
            self.private_broker() as broker,
            running_smtp_server() as smtp,
            store_for(self.db) as store,
        ):
            services = self.services(broker.settings, smtp)
            with running(*services.values()):
                for name in services:
                    self.wait_ready(name)
                load_began = time.monotonic()
                self._clients = [
                    threading.Thread(
                        target=self.run_client, args=(i,), name=f"user-{i}", daemon=True
                    )
                    for i in range(self.config.users)
                ]
                for t in self._clients:
                    t.start()
                    time.sleep(0.1)  # registrations at a modest rate (auth throttling)
                self.drive(self.schedule(services, broker))
                for t in self._clients:
                    t.join()
                load_seconds = time.monotonic() - load_began
                self.run_digest_async(FIRST_DIGEST_DATE, broker.settings)  # again: idempotent
                for t in self._digest_threads:
                    t.join()
                report = self.judge(store, broker, smtp)
                died = [f"{n} exited by itself" for n, s in services.items() if not s.alive]
            report.problems += died
        report.figures.update(
            {
                "load seconds": round(load_seconds, 1),
                "wall seconds": round(time.monotonic() - began, 1),
                "commands per second": round(self.tally.issued / load_seconds, 1),
            }
        )
        return report

    def private_broker(self) -> AbstractContextManager[Broker]:
        if self.config.kafka_brokers == 1:
            return private_kafka(self.config.kafka_port)
        return private_kafka_cluster(self.config.cluster_port)

    def run_client(self, i: int) -> None:
        url = f"http://127.0.0.1:{self.config.api_port}"
        try:
            Client(url, f"chaos{i}@example.com", self.tally, self.gate, seed=i).run()
        except Exception as e:  # reported, not swallowed: the run fails with it
            self.client_failures.append(f"client {i}: {type(e).__name__}: {e}"[:500])

    def judge(self, store: Any, broker: Broker, smtp: SmtpServer) -> ChaosReport:
        timeout = 120 + self.config.commands / 50
        events = store_events(store)
        on_store = judge_store(self.tally, events)
        on_kafka = judge_kafka(broker.settings, {e.position for e in events}, timeout)
        table_diff = wait_for_tables(self.db, on_store.expected, timeout)
        user_diff = self.users_table_diff()
        digests = sum(1 for e in events if e.type == "email.daily_digest.requested")
        smtp.wait_for(digests, timeout=timeout)
        on_mail = judge_mail(events, smtp.settle(quiet=2.0))
        t = self.tally
        report = ChaosReport()
        report.figures = {
            "kafka brokers": self.config.kafka_brokers,
            "commands": t.issued,
            "acknowledged": t.acknowledged,
            "refused (409/404)": t.statuses[409] + t.statuses[404],
            "unknown outcome": f"{t.unknown} ({on_store.unknown_happened} happened, "
            f"{len(t.uncertain)} tasks left to the store)",
            "5xx answers": len(t.server_errors),
            "connections refused": t.refused_connections,
            "lost": len(on_store.acked_missing)
            + len(on_kafka.missing)
            + len(table_diff)
            + len(on_store.model_mismatch),
            "duplicates": len(on_store.phantoms) + len(on_mail.emailed_twice),
            "order violations": len(on_kafka.order_violations),
            "kafka messages / redelivered": f"{on_kafka.messages} / {on_kafka.redeliveries}",
            "kills": {n: len(r) for n, r in self.recoveries.items()},
            "seconds back to ready": self.recoveries,
            "outage seconds": [round(s, 1) for s in broker.outages],
            "digests recorded / mailed": f"{on_mail.digests} / {on_mail.mailed}",
            "identical resends": on_mail.resent_identical,
            "digest runs": [(d, rc, round(s, 1)) for d, rc, s in self.digest_runs],
        }
        p = report.problems
        p += [f"acknowledged but not in the store: {x}" for x in on_store.acked_missing[:5]]
        p += [f"store disagrees with the model: {x}" for x in on_store.model_mismatch[:5]]
        p += [f"task nobody created: {x}" for x in on_store.phantoms[:5]]
        p += [f"5xx: {x}" for x in t.server_errors[:5]]
        p += [f"never on Kafka: positions {sorted(on_kafka.missing)[:10]}"] * bool(on_kafka.missing)
        p += on_kafka.order_violations[:5]
        p += [f"user's events on several partitions: {u}" for u in on_kafka.split_users[:5]]
        p += [f"read table differs: {x}" for x in table_diff[:5]]
        p += user_diff
        p += [f"digest never mailed: {d}" for d in on_mail.unmailed[:5]]
        p += on_mail.emailed_twice[:5]
        if on_mail.resent_identical > self.config.kills:
            p.append(f"{on_mail.resent_identical} resends for {self.config.kills} mailer kills")
        p += [f"digest run {d} exited {rc}" for d, rc, _ in self.digest_runs if rc != 0]
        p += self.client_failures
        return report

    def users_table_diff(self) -> list[str]:
        with psycopg.connect(self.db.conninfo, autocommit=True) as conn:
            rows: dict[str, Any] = dict(conn.execute("select email, id from users").fetchall())
        return [] if rows == self.tally.users else [f"users table {rows} != {self.tally.users}"]


def main() -> int:
    os.environ.setdefault("ENVIRONMENT", "test")
    os.environ.setdefault("BCRYPT_ROUNDS", "4")
    from tests.support.infra import fresh_database
    from tests.support.read_side import migrate

    config = ChaosConfig.from_env(commands=20000, users=20)
    work_dir = ROOT / "test-artifacts" / "chaos" / time.strftime("%Y%m%dT%H%M%S")
    work_dir.mkdir(parents=True, exist_ok=True)
    print(f"chaos: {config} (service logs in {work_dir})", flush=True)
    with fresh_database() as db:
        migrate(db)
        report = ChaosRun(config, db, work_dir, show_progress=True).run()
    print(report.text())
    (work_dir / "report.json").write_text(json.dumps(vars(report), indent=2, default=str))
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
