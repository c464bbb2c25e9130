"""docs/api.md is generated from the OpenAPI specs; a change to an API must regenerate it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("api_docs", ROOT / "tools" / "api_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_api_reference_matches_what_the_services_declare() -> None:
    generator = _generator()
    current = generator.render(generator.specs())
    assert generator.TARGET.read_text(encoding="utf-8") == current, (
        "docs/api.md is stale: run `.venv/bin/python tools/api_docs.py --write`"
    )


def test_the_api_reference_lists_every_operation_of_both_specs() -> None:
    generator = _generator()
    text = generator.TARGET.read_text(encoding="utf-8")
    for _, spec in generator.specs():
        for path, item in spec["paths"].items():
            for method in item:
                assert f"### `{method.upper()} {path}`" in text
