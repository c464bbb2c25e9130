"""docker-compose.yml as Docker Compose itself reads it: loaded by compose-go (the library inside
`docker compose`), through tools/composecheck, since no Docker engine runs on our machines.
tests/unit/test_docker_compose.py checks what the loader cannot know (commands, settings)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
COMPOSECHECK = ROOT / ".data" / "go" / "bin" / "composecheck"


@pytest.fixture(scope="module")
def composecheck() -> Path:
    # Built from the Go module proxy once (a no-op when up to date), as `make test` does.
    subprocess.run([str(ROOT / "infra" / "go-tools.sh"), "install"], check=True, timeout=600)
    return COMPOSECHECK


def load(composecheck: Path, file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(composecheck), *args, str(file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=file.parent,
        env={"PATH": "/usr/bin:/bin"},  # as a fresh shell: only the files give values
    )


def test_docker_compose_itself_loads_our_compose_file_with_every_service(
    composecheck: Path,
) -> None:
    result = load(composecheck, ROOT / "docker-compose.yml")

    assert result.returncode == 0, result.stderr
    project: dict[str, Any] = json.loads(result.stdout)
    written = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert set(project["services"]) == set(written["services"])
    for name, service in project["services"].items():
        if "build" in written["services"][name]:
            assert service["image"] == "todo-platform:latest", name
        for dependency in service.get("depends_on", {}):
            assert dependency in project["services"], (name, dependency)
    command_api = project["services"]["command-api"]
    assert command_api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert command_api["env_file"] == [{"path": str(ROOT / ".env"), "required": False}], (
        "an optional .env, accepted as such"
    )


def test_values_from_an_env_file_reach_the_services_as_docker_compose_would_put_them(
    composecheck: Path, tmp_path: Path
) -> None:
    example = (ROOT / ".env.example").read_text()
    env_file = tmp_path / "settings.env"
    env_file.write_text(example.replace("POSTGRES_DB=todo", "POSTGRES_DB=from_the_env_file"))

    result = load(composecheck, ROOT / "docker-compose.yml", "-env-file", str(env_file))

    assert result.returncode == 0, result.stderr
    postgres = json.loads(result.stdout)["services"]["postgres"]
    assert postgres["environment"]["POSTGRES_DB"] == "from_the_env_file"


def test_the_loader_refuses_a_compose_file_docker_compose_would_refuse(
    composecheck: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        "services:\n"
        "  api:\n"
        "    image: busybox\n"
        "    depends_on:\n"
        "      database: { condition: service_healthy }\n"
    )

    result = load(composecheck, broken)

    assert result.returncode == 1
    assert "database" in result.stderr
