"""The pre-commit hooks run exactly what `make lint` runs: a commit that passes them passes CI."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]


def _lint_commands() -> list[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "the Makefile has a lint target"
    commands = [line.strip().replace("$(VENV)", ".venv") for line in recipe.group(1).splitlines()]
    return [c for c in commands if not c.startswith("infra/")]  # installers, not checks


def test_every_lint_check_of_the_makefile_is_a_pre_commit_hook_and_nothing_else() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    entries = [hook["entry"] for repo in config["repos"] for hook in repo["hooks"]]
    assert sorted(entries) == sorted(_lint_commands())


def test_the_hooks_check_the_whole_tree_like_make_lint() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    for hook in (h for repo in config["repos"] for h in repo["hooks"]):
        assert hook["language"] == "system", "the project's own tool versions"
        assert hook["pass_filenames"] is False, "a file list would skip mypy's cross-module checks"
