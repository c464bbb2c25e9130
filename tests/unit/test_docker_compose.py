"""Docker cannot run here, so the compose file is checked statically: every command it runs exists
in the project, every variable it passes is a real setting, every dependency is a real service."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.settings import AppSettings

ROOT = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OUR_IMAGE = {name: svc for name, svc in SERVICES.items() if "build" in svc}
PACKAGES = [
    "contracts",
    "runtime",
    "http_api",
    "consuming",
    "event_store",
    "command_api",
    "query_api",
    "projector",
    "scheduler",
    "mailer",
]


def all_setting_names() -> set[str]:
    for package in PACKAGES:  # import every module so every settings class is defined
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
    names: set[str] = set()
    todo: list[type[AppSettings]] = [AppSettings]
    while todo:
        cls = todo.pop()
        names |= set(cls.model_fields)
        todo.extend(cls.__subclasses__())
    return names


SETTINGS = all_setting_names()


@pytest.mark.parametrize("name", sorted(OUR_IMAGE))
def test_every_service_runs_a_command_that_exists_in_the_project(name: str) -> None:
    command = OUR_IMAGE[name]["command"]
    if command[0] == "alembic":
        assert (ROOT / "alembic.ini").is_file() and (ROOT / "migrations" / "env.py").is_file()
        return
    assert command[:2] == ["python", "-m"], command
    package, *args = command[2:]
    assert (ROOT / package / "__main__.py").is_file(), f"{package} has no __main__"
    if args:  # the sub-command must be one the CLI knows
        result = subprocess.run(
            [sys.executable, "-m", package, *args, "--help"],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr.decode()


@pytest.mark.parametrize("name", sorted(OUR_IMAGE))
def test_every_variable_passed_to_a_service_is_a_real_setting(name: str) -> None:
    unknown = set(OUR_IMAGE[name].get("environment", {})) - SETTINGS
    assert not unknown, f"{name} passes variables no settings class reads: {unknown}"


def test_every_variable_in_env_example_is_a_real_setting() -> None:
    keys = {
        m.group(1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if (m := re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line))
    }
    assert keys, ".env.example lists no settings"
    assert keys <= SETTINGS, f"unknown settings in .env.example: {keys - SETTINGS}"


def test_dependencies_name_real_services_and_long_running_services_have_healthchecks() -> None:
    one_shot = {n for n, s in SERVICES.items() if s.get("restart") == "no"}
    for name, service in SERVICES.items():
        assert set(service.get("depends_on", {})) <= set(SERVICES), name
    long_running = set(SERVICES) - one_shot
    for name in long_running:
        assert "healthcheck" in SERVICES[name], f"{name} has no healthcheck"
    assert {"migrate", "kafka-init"} <= one_shot


def test_the_image_copies_only_paths_that_exist() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY"):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_the_gateway_mounts_the_files_the_local_run_uses() -> None:
    for volume in SERVICES["gateway"]["volumes"]:
        assert (ROOT / volume.split(":")[0]).exists(), volume
