"""No string a client sends gets a 500 (issue 16 item 3): every route is walked, by a caller
it admits, and each string of its documented example body, each name in it, each query and
path parameter is replaced by values longer than any column holds, or carrying a NUL. Every
answer is a refusal with a code, or a success, never a server error."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from itertools import product
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from charter.policy.compiled import CompiledPolicy
from tests.conftest import bearer
from tests.vault.calls import PAGE_ORIGIN, sign_up
from tests.web.test_guards import concrete_path, key_per_role, permits_of, roles_for

pytestmark = pytest.mark.clause("C3")

# Past every column's length (the longest is a few hundred characters), and a NUL.
HOSTILE = ("a" * 65, "a" * 257, "a" * 2_000, "name\x00")
Path = tuple[str | int, ...]


def _resolved(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].split("/")[-1]]
    return schema


def _strings(value: Any, path: Path = ()) -> Iterator[tuple[str, Path]]:
    """Where `value` holds a string ("value") or a mapping key ("name")."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
            yield "name", (*path, key)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _strings(item, (*path, position))
    elif isinstance(value, str):
        yield "value", path


def _declared_strings(
    schema: dict[str, Any], components: dict[str, Any], path: Path = ()
) -> Iterator[Path]:
    """Where a body may hold a string, by its schema: every string property, however deep,
    whether or not the example shows it."""
    schema = _resolved(schema, components)
    for option in schema.get("anyOf", []):
        yield from _declared_strings(option, components, path)
    if schema.get("type") == "string":
        yield path
    for name, inner in schema.get("properties", {}).items():
        yield from _declared_strings(inner, components, (*path, name))


def _set(body: Any, path: Path, new: str) -> Any:
    changed = copy.deepcopy(body)
    holder = changed
    for step in path[:-1]:
        if not isinstance(holder.get(step), dict):
            holder[step] = {}
        holder = holder[step]
    holder[path[-1]] = new
    return changed


def _replaced(body: Any, kind: str, path: Path, new: str) -> Any:
    changed = copy.deepcopy(body)
    holder = changed
    for step in path[:-1]:
        holder = holder[step]
    if kind == "value":
        holder[path[-1]] = new
    else:
        holder[new] = holder.pop(path[-1])
    return changed


def _hostile_requests(
    app: FastAPI, key_of: Callable[[str], str], policy: CompiledPolicy, person: str
) -> Iterator[tuple[str, str, dict[str, str], dict[str, Any]]]:
    """(method, path, headers, content) of every hostile request of the walk."""
    schema = app.openapi()
    components = schema["components"]["schemas"]
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute):
            continue
        permissions = {permit.permission for permit in permits_of(route.dependant)}
        _, allowed = roles_for(permissions, policy.role_permissions)
        headers = {"Origin": PAGE_ORIGIN, "Cookie": "omni_vid=vid-hostile"}
        if permissions and allowed:
            headers |= bearer(key_of(allowed))
        path = concrete_path(route).replace("dummy", person)
        for method in sorted(route.methods or ()):
            operation = schema["paths"].get(route.path_format, {}).get(method.lower(), {})
            for parameter, value in product(operation.get("parameters", []), HOSTILE):
                if parameter["in"] == "query":
                    yield method, path, headers, {"params": {parameter["name"]: value}}
                elif parameter["in"] == "path":
                    named = concrete_path(route).replace("dummy", value.replace("\x00", "%00"))
                    yield method, named, headers, {}
            content = (operation.get("requestBody") or {}).get("content", {})
            if "application/json" not in content:
                continue
            body_schema = _resolved(content["application/json"]["schema"], components)
            for example in body_schema.get("examples") or ():
                for (kind, where), value in product(_strings(example), HOSTILE):
                    yield method, path, headers, {"json": _replaced(example, kind, where, value)}
                declared = dict.fromkeys(_declared_strings(body_schema, components))
                for where, value in product(declared, HOSTILE):
                    if where and isinstance(example, dict):
                        yield method, path, headers, {"json": _set(example, where, value)}


# Names that a request uses up (a visitor signs up once, a key is taken once): each request of
# the walk gets its own, so that it reaches as far as its hostile value can take it.
FRESH = frozenset({"visitor_id", "idempotency_key"})


def _fresh(value: Any, number: int) -> Any:
    if isinstance(value, dict):
        return {
            key: f"{item[:40]}-{number}"
            if key in FRESH and isinstance(item, str) and "\x00" not in item and len(item) < 64
            else _fresh(item, number)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_fresh(item, number) for item in value]
    return value


def test_no_string_a_client_sends_makes_a_server_error(
    app: FastAPI, make_key: Callable[[str], str], omni_compiled: CompiledPolicy
) -> None:
    failures = []
    tried = 0
    with TestClient(app, raise_server_exceptions=False) as client:
        service = bearer(make_key("service_client"))
        person = sign_up(client, service, "vid-hostile", "h@example.com")
        walk = _hostile_requests(app, key_per_role(make_key), omni_compiled, person)
        for method, path, headers, content in walk:
            tried += 1
            sent = {"json": _fresh(content["json"], tried)} if "json" in content else content
            response = client.request(method, path, headers=headers, **sent)
            if response.status_code >= 500:
                failures.append((method, path[:80], str(content)[:120], response.status_code))

    assert tried > 400, "the walk reached the routes"
    assert failures == []
