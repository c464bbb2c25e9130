"""Every process refuses unsafe settings under ENVIRONMENT=prod the same way: one line per problem
on stderr naming the setting and the rule, never the value, no traceback, a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.settings import EXIT_REFUSED_SETTINGS

ROOT = Path(__file__).parents[2]
STRONG_JWT_SECRET = "a-real-production-secret-of-48-characters-0123456"
WEAK_JWT_SECRET = "weak-but-private-Xq7"
DEV_DB_PASSWORD = "postgres"
PROD_SMTP = {
    "SMTP_USERNAME": "api-key",
    "SMTP_PASSWORD": "smtp-secret-Zr81",
    "SMTP_STARTTLS": "true",
    "SMTP_SENDER": "TODO <no-reply@example.com>",
}

ENTRY_POINTS = {
    "command API": ["command_api"],
    "query API": ["query_api"],
    "relay": ["event_store", "relay"],
    "projector": ["projector", "consume"],
    "scheduler": ["scheduler"],
    "mailer": ["mailer"],
}


def run_in_prod(args: list[str], **settings: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD", "JWT_SECRET")},
        "ENVIRONMENT": "prod",
        "BCRYPT_ROUNDS": "12",
        "JWT_SECRET": STRONG_JWT_SECRET,
        "POSTGRES_PASSWORD": "a-real-db-password-Kp3",
        # Nothing may get as far as listening: ports nobody uses, in case it did.
        "COMMAND_API_PORT": "22090",
        "QUERY_API_PORT": "22091",
        **{f"{w}_HEALTH_PORT": "0" for w in ("RELAY", "PROJECTOR", "SCHEDULER", "MAILER")},
        **PROD_SMTP,
        **settings,
    }
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def refusals(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("refused setting ")]


def assert_refused_cleanly(
    result: subprocess.CompletedProcess[str], setting: str, secret: str
) -> None:
    assert result.returncode == EXIT_REFUSED_SETTINGS, result.stderr
    assert [line.split(":")[0] for line in refusals(result.stderr)] == [
        f"refused setting {setting}"
    ], result.stderr
    assert secret not in result.stderr
    assert secret not in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("entry", ["command API", "query API"])
def test_the_apis_refuse_a_weak_jwt_secret_naming_it_without_showing_it(entry: str) -> None:
    result = run_in_prod(ENTRY_POINTS[entry], JWT_SECRET=WEAK_JWT_SECRET)
    assert_refused_cleanly(result, "JWT_SECRET", WEAK_JWT_SECRET)
    assert "32+ characters" in result.stderr


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_process_refuses_the_dev_database_password_naming_it_without_showing_it(
    entry: str,
) -> None:
    result = run_in_prod(ENTRY_POINTS[entry], POSTGRES_PASSWORD=DEV_DB_PASSWORD)
    assert_refused_cleanly(result, "POSTGRES_PASSWORD", DEV_DB_PASSWORD)
    assert "real secret" in result.stderr


def test_several_problems_are_reported_one_line_each() -> None:
    result = run_in_prod(
        ENTRY_POINTS["command API"], JWT_SECRET=WEAK_JWT_SECRET, BCRYPT_ROUNDS="not-a-number"
    )
    assert result.returncode == EXIT_REFUSED_SETTINGS
    lines = refusals(result.stderr)
    assert [line.split(":")[0] for line in lines] == [
        "refused setting JWT_SECRET",
        "refused setting BCRYPT_ROUNDS",
    ]
    assert WEAK_JWT_SECRET not in result.stderr
    assert "not-a-number" not in result.stderr
    assert "Traceback" not in result.stderr


def test_the_mailer_refuses_missing_smtp_credentials_without_showing_the_password() -> None:
    result = run_in_prod(ENTRY_POINTS["mailer"], SMTP_USERNAME="")
    assert result.returncode == EXIT_REFUSED_SETTINGS
    assert "SMTP_USERNAME and SMTP_PASSWORD must be set" in result.stderr
    assert PROD_SMTP["SMTP_PASSWORD"] not in result.stderr
    assert "Traceback" not in result.stderr
