"""The whole system for the e2e tests, started as `make run` starts it: infra/run.sh in a process
group of its own, on free ports and its own database, topics, consumer groups, relay name and nginx
directory; ready once a first write has reached the query side through the gateway; stopped as
Ctrl-C stops it, and checked to leave no process or port behind (tests/e2e/conftest.py)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
import warnings
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx

from runtime.settings import KafkaSettings

ROOT = Path(__file__).parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 30.0
LOG_TAIL_LINES = 200


@dataclass(frozen=True)
class System:
    """Addresses of one running system (all on 127.0.0.1)."""

    ports: dict[str, int]
    log_path: Path
    nginx_data: Path
    database: str
    topic: str

    def upstream(self, service: str) -> str:
        """host:port of a service (a key of `ports`), as nginx's access log names its upstream."""
        return f"127.0.0.1:{self.ports[service]}"

    def url(self, service: str) -> str:
        return f"http://{self.upstream(service)}"

    @property
    def gateway_url(self) -> str:
        return self.url("gateway")

    @property
    def access_log(self) -> Path:
        return self.nginx_data / "access.log"


# ---- helpers ----------------------------------------------------------------------------------


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(text.splitlines()[-lines:])


def free_ports(count: int) -> list[int]:
    """Ports free right now (bound together, so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def group_members(pgid: int) -> list[str]:
    """Live (non-zombie) processes of a process group, as 'pid command' strings."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(f"{entry.name} {cmdline or stat[: stat.rfind(')') + 1]}")
    return members


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def ensure_nginx() -> None:
    if shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK):
        return
    subprocess.run([str(ROOT / "infra" / "nginx.sh"), "install"], check=True, timeout=900)


def _smtp_sink_env(ports: dict[str, int]) -> dict[str, str]:
    """The SMTP sink (infra/smtp-sink.sh) on ports of its own, and the mailer sending to it."""
    return {
        "SMTP_SINK_HOST": "127.0.0.1",
        "SMTP_SINK_PORT": str(ports["smtp"]),
        "SMTP_SINK_WEB_PORT": str(ports["smtp_web"]),
        "SMTP_SINK_MAIL_DIR": str(ARTIFACTS / "mail"),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(ports["smtp"]),
    }


class StartError(Exception):
    """The system did not become ready."""


class RunningSystem:
    """infra/run.sh in its own process group (its own session), output to a log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [str(ROOT / "infra" / "run.sh")],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pgid = self.process.pid  # new session: the leader's pid is the group id
        self.forced = False

    def fail(self, message: str) -> NoReturn:
        self._log.flush()
        raise StartError(message)

    def wait_until_ready(self, system: System) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        probes = {
            "gateway": f"{system.gateway_url}/gateway-health",
            "command API": f"{system.url('command_api')}/ready",
            "query API": f"{system.url('query_api')}/ready",
        }
        pending = dict(probes)
        with httpx.Client() as client:
            while pending:
                if self.process.poll() is not None:
                    self.fail(f"infra/run.sh exited early (code {self.process.returncode})")
                if time.monotonic() > deadline:
                    self.fail(
                        f"not ready within {START_TIMEOUT_SECONDS:.0f} s: "
                        + ", ".join(f"{name} ({url})" for name, url in pending.items())
                    )
                pending = {n: u for n, u in pending.items() if not _answers(client, u)}
                if pending:
                    time.sleep(0.5)
            self._wait_for_the_pipeline(client, system, deadline)

    def _wait_for_the_pipeline(self, client: httpx.Client, system: System, deadline: float) -> None:
        """A first write must travel command API -> store -> relay -> Kafka -> projector -> query
        API before the tests start, so that they never depend on how long consumers take to join
        their groups on fresh topics. Uses a user of its own, through the gateway."""
        api = f"{system.gateway_url}/api"
        email = f"warmup-{uuid.uuid4().hex[:10]}@example.com"
        credentials = {"email": email, "password": "warm-up password"}
        try:
            client.post(f"{api}/auth/register", json=credentials, timeout=30).raise_for_status()
            login = client.post(f"{api}/auth/login", json=credentials, timeout=30)
            login.raise_for_status()
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            created = client.post(
                f"{api}/tasks", json={"title": "warm-up"}, headers=headers, timeout=30
            )
            created.raise_for_status()
        except httpx.HTTPError as e:
            self.fail(f"the warm-up write through the gateway failed: {e!r}")
        headers["X-Min-Position"] = created.headers["X-Event-Position"]
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.fail(f"infra/run.sh exited early (code {self.process.returncode})")
            try:
                me = client.get(f"{api}/me", headers=headers, timeout=30)
                last = f"{me.status_code} X-Stale={me.headers.get('X-Stale')} {me.text[:200]}"
                if (
                    me.status_code == 200
                    and me.headers.get("X-Stale", "").lower() != "true"
                    and me.json().get("stats", {}).get("total") == 1
                ):
                    return
            except httpx.HTTPError as e:
                last = repr(e)
            time.sleep(0.5)
        self.fail(
            "the warm-up task never reached the query side (relay -> Kafka -> projector); "
            f"last GET /api/me: {last}"
        )

    def stop(self) -> None:
        """SIGINT to the whole group (what Ctrl-C does), then SIGKILL whatever is left."""
        with suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline and (
            self.process.poll() is None or group_members(self.pgid)
        ):
            time.sleep(0.2)
        left = group_members(self.pgid)
        if self.process.poll() is None or left:
            self.forced = True
            with suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
            warnings.warn(
                f"the system did not stop within {STOP_TIMEOUT_SECONDS:.0f} s of SIGINT; "
                f"killed: {left}",
                stacklevel=1,
            )
        self.process.wait(timeout=10)
        self._log.close()


def system_env(
    ports: dict[str, int], db: str, kafka: KafkaSettings, nginx_data: Path
) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "POSTGRES_DB": db,
        "KAFKA_TOPIC": kafka.KAFKA_TOPIC,
        "KAFKA_DLQ_TOPIC": kafka.KAFKA_DLQ_TOPIC,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.KAFKA_BOOTSTRAP_SERVERS,
        "COMMAND_API_HOST": "127.0.0.1",
        "COMMAND_API_PORT": str(ports["command_api"]),
        "QUERY_API_HOST": "127.0.0.1",
        "QUERY_API_PORT": str(ports["query_api"]),
        "GATEWAY_PORT": str(ports["gateway"]),
        "COMMAND_API_UPSTREAM": f"127.0.0.1:{ports['command_api']}",
        "QUERY_API_UPSTREAM": f"127.0.0.1:{ports['query_api']}",
        "NGINX_DATA": str(nginx_data),
        "RELAY_NAME": f"e2e-relay-{suffix}",
        "PROJECTOR_GROUP_ID": f"e2e-projector-{suffix}",
        "MAILER_GROUP_ID": f"e2e-mailer-{suffix}",
        "MAILER_APP_URL": f"http://127.0.0.1:{ports['gateway']}/",
        # Workers' health endpoints off: the default ports may belong to a developer's make run.
        **{f"{w}_HEALTH_PORT": "0" for w in ("RELAY", "PROJECTOR", "SCHEDULER", "MAILER")},
        **_smtp_sink_env(ports),
    }
