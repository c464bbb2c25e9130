"""docs/api.md, generated from the two APIs' OpenAPI specs — the contracts — so the prose reference
cannot drift from what the services declare (tests/unit/test_api_docs_are_current.py fails when
it does).

    .venv/bin/python tools/api_docs.py            # print the reference
    .venv/bin/python tools/api_docs.py --write    # rewrite docs/api.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
TARGET = ROOT / "docs" / "api.md"
_CONSTRAINTS = (
    ("minLength", "min length {}"),
    ("maxLength", "max length {}"),
    ("minimum", "≥ {}"),
    ("maximum", "≤ {}"),
    ("pattern", "pattern `{}`"),
    ("format", "format {}"),
    ("const", "always `{}`"),
)
_METHODS = ("get", "post", "put", "patch", "delete")


def specs() -> list[tuple[str, dict[str, Any]]]:
    """Both specs, exactly as the services serve them at /openapi.json (no database needed)."""
    sys.path.insert(0, str(ROOT))
    from command_api.bootstrap import bootstrap as command_app
    from query_api.bootstrap import create_app as query_app

    return [("Command API", command_app().openapi()), ("Query API", query_app().openapi())]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


_ENUM_SHOWN = 20


def _type_of(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_type_of(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_type_of(schema.get('items', {}))}"
    if "enum" in schema and len(schema["enum"]) > _ENUM_SHOWN:
        # E.g. the tz database's zone names: hundreds, and as many as the host's tzdata has.
        return f"{schema.get('type', 'any')}, one of the values the spec lists"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    return str(schema.get("type", "any"))


def _constraints(schema: dict[str, Any]) -> str:
    found = [fmt.format(schema[key]) for key, fmt in _CONSTRAINTS if key in schema]
    for option in schema.get("anyOf", []):
        found += [fmt.format(option[key]) for key, fmt in _CONSTRAINTS if key in option]
    return _cell(", ".join(found))


def _parameters(operation: dict[str, Any]) -> list[str]:
    params = operation.get("parameters", [])
    if not params:
        return []
    lines = [
        "| parameter | in | required | type | constraints | description |",
        "|---|---|---|---|---|---|",
    ]
    for p in params:
        schema = p.get("schema", {})
        description = p.get("description") or schema.get("description", "")
        lines.append(
            f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} "
            f"| {_type_of(schema)} | {_constraints(schema)} | {_cell(description)} |"
        )
    return [*lines, ""]


def _body(schema: dict[str, Any]) -> str:
    content = schema.get("content", {})
    if not content:
        return "—"
    media, spec = next(iter(content.items()))
    body = _type_of(spec.get("schema", {}))
    return body if media == "application/json" else f"{body} ({media})"


def _responses(operation: dict[str, Any]) -> list[str]:
    lines = ["| status | body | when | headers |", "|---|---|---|---|"]
    for status, response in sorted(operation.get("responses", {}).items()):
        headers = ", ".join(f"`{h}`" for h in response.get("headers", {}))
        lines.append(
            f"| {status} | {_body(response)} | {_cell(response.get('description', ''))} "
            f"| {headers} |"
        )
    return [*lines, ""]


def _operation(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    secured = "bearer token" if operation.get("security") else "none"
    lines = [f"### `{method.upper()} {path}` — {operation.get('summary', '')}", ""]
    if operation.get("description"):
        lines += [operation["description"].strip(), ""]
    lines += [f"Authentication: {secured}.", ""]
    lines += _parameters(operation)
    if "requestBody" in operation:
        lines += [f"Request body: {_body(operation['requestBody'])}.", ""]
    return lines + _responses(operation)


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"#### {name}", ""]
    if schema.get("description"):
        lines += [_cell(schema["description"]), ""]
    properties = schema.get("properties", {})
    if not properties:
        return lines
    required = set(schema.get("required", []))
    lines += ["| field | type | required | constraints | description |", "|---|---|---|---|---|"]
    for field, spec in properties.items():
        lines.append(
            f"| `{field}` | {_type_of(spec)} | {'yes' if field in required else 'no'} "
            f"| {_constraints(spec)} | {_cell(spec.get('description', ''))} |"
        )
    return [*lines, ""]


def render(apis: list[tuple[str, dict[str, Any]]]) -> str:
    lines = [
        "# API reference",
        "",
        "Generated from the OpenAPI specs the services serve at `/openapi.json` (the contracts)",
        "by `tools/api_docs.py --write`; a unit test fails when this file is stale. Through the",
        'gateway every path is under `/api` (see README, "Services and ports").',
        "",
    ]
    for title, spec in apis:
        lines += [f"## {title}", ""]
        for path, item in spec["paths"].items():
            for method in _METHODS:
                if method in item:
                    lines += _operation(method, path, item[method])
        lines += [f"### {title} schemas", ""]
        for name, schema in spec.get("components", {}).get("schemas", {}).items():
            lines += _schema(name, schema)
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {TARGET.relative_to(ROOT)}")
    text = render(specs())
    if parser.parse_args().write:
        TARGET.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
