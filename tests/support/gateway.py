"""A private gateway: nginx rendered from gateway/default.conf.template by infra/nginx.sh, on a free
port with its own data directory, in front of whatever upstreams a test or benchmark gives."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.smtp import free_port

NGINX = Path(__file__).parents[2] / "infra" / "nginx.sh"


@dataclass(frozen=True)
class PrivateGateway:
    url: str
    port: int
    access_log: Path


@contextmanager
def private_gateway(
    command_upstreams: Sequence[str], query_upstream: str | None = None
) -> Iterator[PrivateGateway]:
    """Upstreams as `host:port`; several command API processes are one upstream group. Without a
    query upstream, reads go to a port nobody listens on."""
    data = Path(tempfile.mkdtemp(prefix="gateway-"))
    data.chmod(0o755)  # nginx's workers run as www-data when started as root
    port = free_port()
    env = {
        **os.environ,
        "NGINX_DATA": str(data),
        "GATEWAY_PORT": str(port),
        "COMMAND_API_UPSTREAM": ",".join(command_upstreams),
        "QUERY_API_UPSTREAM": query_upstream or f"127.0.0.1:{free_port()}",
    }
    subprocess.run([str(NGINX), "start"], env=env, check=True, timeout=60, capture_output=True)
    try:
        yield PrivateGateway(f"http://127.0.0.1:{port}", port, data / "access.log")
    finally:
        subprocess.run([str(NGINX), "stop"], env=env, check=False, timeout=60, capture_output=True)
