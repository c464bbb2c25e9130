"""A consumer process (projector, mailer): its loop and the health endpoint that reports on that
loop's heartbeat (/health, /ready = the loop turns and has not halted, /metrics), run until stop()
(a signal, a test). What each process's bootstrap returns."""

from __future__ import annotations

from dataclasses import dataclass

from consuming.loop import ConsumerLoop
from runtime.health import serve_health


@dataclass(frozen=True)
class ConsumerProcess:
    loop: ConsumerLoop
    name: str
    health_host: str
    health_port: int  # 0: no endpoint (several workers side by side in a test)

    def run(self) -> None:
        server = serve_health(
            self.health_host, self.health_port, self.loop.heartbeat.readiness, self.name
        )
        try:
            self.loop.run()  # closes the loop's adapters on its way out
        finally:
            if server is not None:
                server.shutdown()

    def stop(self) -> None:
        self.loop.stop()
