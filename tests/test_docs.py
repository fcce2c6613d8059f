"""The docs and the code agree: every route, CLI command and setting that exists is documented,
and everything the docs name exists (Datasette's tests/test_docs.py is the model)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main
from fastapi import FastAPI

from charter.cli.main import build_app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _documented(page: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, (DOCS / page).read_text(encoding="utf-8"), re.MULTILINE))


def _commands(command: Any, prefix: str) -> set[str]:
    children = getattr(command, "commands", None)
    if not children:
        return {prefix}
    found: set[str] = set()
    for name, child in children.items():
        found |= _commands(child, f"{prefix} {name}")
    return found


def test_every_route_is_documented_and_every_documented_route_exists(app: FastAPI) -> None:
    actual = {
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    documented = _documented("api.md", r"`((?:GET|POST|PUT|DELETE|PATCH) /[^`]*)`")
    assert actual - documented == set(), "routes missing from docs/api.md"
    assert documented - actual == set(), "docs/api.md names routes that do not exist"


def test_every_command_is_documented_and_every_documented_command_exists() -> None:
    actual = _commands(typer.main.get_command(build_app()), "charter")
    documented = _documented("cli.md", r"`(charter [a-z -]+?)`")
    assert actual - documented == set(), "commands missing from docs/cli.md"
    assert documented - actual == set(), "docs/cli.md names commands that do not exist"


def test_every_setting_is_documented_and_every_documented_setting_is_read() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*.py"))
    actual = set(re.findall(r"\"(CHARTER_[A-Z_]+)\"", source))
    documented = _documented("settings.md", r"^\| `(CHARTER_[A-Z_]+)`")
    assert actual - documented == set(), "settings missing from docs/settings.md"
    assert documented - actual == set(), "docs/settings.md names settings nobody reads"
