"""docs/api.md's worked examples are true (issue 9): each `curl` there is run, in order,
against a fresh Charter, and must get the status and the answer the page shows. Every route
of /openapi.json has one, and a body sent is the route's own OpenAPI example.

In an answer on the page, a string in angle brackets (`"<person id>"`) stands for any value,
a key `"…"` for keys left out, and a last list item `"…"` for items left out. `$KEY` is a
privacy officer's key, `$SERVICE_KEY` an OMNI service's; `$PERSON`, `$KEY_ID`, `$SELECTION`,
`$DISCLOSURE` and `$REQUEST` are the ids the examples before them returned.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
BASE = "http://127.0.0.1:8000"
EXAMPLE = re.compile(
    r"^#### `(?P<route>[A-Z]+ [^`]+)`\n.*?```sh\n(?P<curl>.*?)```\n+answer `(?P<status>\d{3})`"
    r"(?::\n+```json\n(?P<answer>.*?)```)?",
    re.MULTILINE | re.DOTALL,
)
# What an example's answer gives the examples after it.
CAPTURED = {
    "person_id": "PERSON",
    "key_id": "KEY_ID",
    "selection_id": "SELECTION",
    "disclosure_id": "DISCLOSURE",
    "request_id": "REQUEST",
}


@dataclass(frozen=True)
class Example:
    route: str
    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    status: int
    answer: Any


def examples() -> list[Example]:
    found = []
    for match in EXAMPLE.finditer((ROOT / "docs" / "api.md").read_text(encoding="utf-8")):
        words = shlex.split(match["curl"].replace("\\\n", " "))
        method, url, headers, body = "GET", "", {}, None
        pairs = iter(words[1:])
        for word in pairs:
            if word == "-X":
                method = next(pairs)
            elif word == "-H":
                name, _, value = next(pairs).partition(":")
                headers[name.strip()] = value.strip()
            elif word == "-d":
                body = next(pairs)
            elif word == "-o":
                next(pairs)
            elif word == "-b":
                headers["Cookie"] = next(pairs)
            elif not word.startswith("-"):
                url = word
        answer = json.loads(match["answer"]) if match["answer"] else None
        found.append(
            Example(match["route"], method, url, headers, body, int(match["status"]), answer)
        )
    return found


def matches(documented: Any, actual: Any) -> bool:
    """Whether `actual` is what the page shows (see the module's docstring)."""
    if isinstance(documented, str) and documented.startswith("<") and documented.endswith(">"):
        return True
    if isinstance(documented, dict):
        return isinstance(actual, dict) and _dict_matches(documented, actual)
    if isinstance(documented, list):
        return isinstance(actual, list) and _list_matches(documented, actual)
    return bool(documented == actual)


def _dict_matches(documented: dict[str, Any], actual: dict[str, Any]) -> bool:
    shown = {key: value for key, value in documented.items() if key != "…"}
    if "…" not in documented and set(shown) != set(actual):
        return False
    return all(key in actual and matches(value, actual[key]) for key, value in shown.items())


def _list_matches(documented: list[Any], actual: list[Any]) -> bool:
    if documented and documented[-1] == "…":
        shown = documented[:-1]
        return len(actual) >= len(shown) and all(map(matches, shown, actual))
    return len(documented) == len(actual) and all(map(matches, documented, actual))


def _substituted(text: str, values: dict[str, str]) -> str:
    for name, value in sorted(values.items(), key=lambda item: -len(item[0])):
        text = text.replace(f"${name}", value)
    return text


def openapi_examples(app: FastAPI) -> dict[str, Any]:
    """Route -> the example of its request body, where it has one."""
    document = app.openapi()
    found = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema", {})
            if "$ref" in schema:
                schema = document["components"]["schemas"][schema["$ref"].split("/")[-1]]
            elif "anyOf" in schema:  # an optional body
                ref = next(s["$ref"] for s in schema["anyOf"] if "$ref" in s)
                schema = document["components"]["schemas"][ref.split("/")[-1]]
            if schema.get("examples"):
                found[f"{method.upper()} {path}"] = schema["examples"][0]
    return found


def test_every_route_has_a_worked_example(app: FastAPI) -> None:
    routes = {
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert routes - {example.route for example in examples()} == set()


def test_every_body_sent_is_its_routes_openapi_example(app: FastAPI) -> None:
    documented = openapi_examples(app)
    for example in examples():
        if example.body is not None:
            assert example.route in documented, f"{example.route} has no OpenAPI example"
            assert matches(documented[example.route], json.loads(example.body)), example.route


def test_the_worked_examples_get_the_answers_the_page_shows(
    app: FastAPI, make_key: Callable[..., str]
) -> None:
    # Served at the address the page shows, so that a page of Charter's own origin may call
    # its public routes there.
    with TestClient(app, base_url=BASE) as client:
        _run_the_examples(client, make_key)


def _run_the_examples(client: TestClient, make_key: Callable[..., str]) -> None:
    values = {"KEY": make_key("privacy_officer"), "SERVICE_KEY": make_key("service_client")}
    shown = examples()
    assert len(shown) >= 20
    for example in shown:
        url = _substituted(example.url, values)
        assert url.startswith(BASE), url
        parts = urlsplit(url)
        response = client.request(
            example.method,
            parts.path + (f"?{parts.query}" if parts.query else ""),
            headers={name: _substituted(value, values) for name, value in example.headers.items()},
            content=None if example.body is None else _substituted(example.body, values).encode(),
        )
        assert response.status_code == example.status, f"{example.route}: {response.text}"
        if example.answer is None:
            continue
        answer = response.json()
        assert matches(example.answer, answer), (
            f"{example.route} answered:\n{json.dumps(answer, indent=2)}"
        )
        if isinstance(answer, dict):
            for field, name in CAPTURED.items():
                if isinstance(answer.get(field), str | int) and name not in values:
                    values[name] = str(answer[field])
