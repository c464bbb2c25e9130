"""`make run`'s shell reads .env with the services' own parser: every process sees the same."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).parents[2]
TRICKY_ENV = """\
# comments and blank lines are skipped

export SMTP_HOST=in-v3.mailjet.com
QUOTED="two words # not a comment"
SINGLE='single quotes keep $NOT_EXPANDED'
TRAILING=value   # a comment after a value
EMPTY=
INTERPOLATED=${SMTP_HOST}:587
FROM_ENV=from-the-file
"""


class Seen(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    SMTP_HOST: str
    QUOTED: str
    SINGLE: str
    TRAILING: str
    EMPTY: str
    INTERPOLATED: str
    FROM_ENV: str


def shell_sees(env_file: Path, names: list[str]) -> dict[str, str]:
    script = f'eval "$({sys.executable} infra/dotenv_exports.py {env_file})"; ' + "; ".join(
        f'printf "%s\\0" "${{{n}-<unset>}}"' for n in names
    )
    out = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "FROM_ENV": "from-the-environment"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(zip(names, out.split("\0")[:-1], strict=True))


def test_the_shell_gets_exactly_what_the_settings_read_from_the_same_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(TRICKY_ENV, encoding="utf-8")
    names = [n for n in Seen.model_fields if n != "FROM_ENV"]

    expected = Seen(_env_file=env_file).model_dump()

    assert shell_sees(env_file, names) == {n: expected[n] for n in names}


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(TRICKY_ENV, encoding="utf-8")

    assert shell_sees(env_file, ["FROM_ENV"]) == {"FROM_ENV": "from-the-environment"}


def test_a_missing_file_exports_nothing(tmp_path: Path) -> None:
    assert shell_sees(tmp_path / "absent.env", ["SMTP_HOST"]) == {"SMTP_HOST": "<unset>"}
