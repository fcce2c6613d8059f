"""Every route is guarded: walk the app's route table and knock on every door.

A route that is not in `PUBLIC_PATHS` must depend on a `Permit`, and must answer 401 without a
key or with a bad one, 403 to a policy role that lacks the permission, and neither to a role
that holds it. Nothing here names a route except through `PUBLIC_PATHS`, so a route added later
is checked as soon as it exists.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, RouteContext, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.convertors import (
    Convertor,
    FloatConvertor,
    IntegerConvertor,
    PathConvertor,
    StringConvertor,
    UUIDConvertor,
)

from charter.policy.compiled import CompiledPolicy
from charter.settings import Settings
from charter.web.auth import PUBLIC_PATHS, Permit
from tests.conftest import bearer

# A key of the right shape whose key id was never issued, and one of the wrong shape.
UNKNOWN_KEY = "chk_AAAAAAAAAAAA_" + "s" * 43
GARBAGE_KEY = "not-a-charter-key"

_SAMPLES: dict[type[Convertor[object]], object] = {
    StringConvertor: "dummy",
    PathConvertor: "dummy",
    IntegerConvertor: 1,
    FloatConvertor: 1.5,
    UUIDConvertor: uuid.UUID(int=1),
}


def permits_of(dependant: Dependant) -> list[Permit]:
    """Every `Permit` the dependant relies on, however deep in its sub-dependencies."""
    found = []
    for sub in dependant.dependencies:
        if isinstance(sub.call, Permit):
            found.append(sub.call)
        found.extend(permits_of(sub))
    return found


def concrete_path(route: RouteContext) -> str:
    """The route's path with each parameter filled by a dummy value its convertor accepts."""
    values = {}
    for name, convertor in route.param_convertors.items():
        sample = _SAMPLES.get(type(convertor))
        if sample is None:
            raise LookupError(f"{route.path}: add a sample for {type(convertor).__name__}")
        values[name] = convertor.to_string(sample)
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route.path_format or "")


def roles_for(
    permissions: Iterable[str], role_permissions: Mapping[str, frozenset[str]]
) -> tuple[str | None, str | None]:
    """A policy role lacking one of `permissions`, and one holding them all (None if none)."""
    needed = set(permissions)
    denied = next((r for r, held in sorted(role_permissions.items()) if not needed <= held), None)
    allowed = next((r for r, held in sorted(role_permissions.items()) if needed <= held), None)
    return denied, allowed


def _refusal(response: httpx.Response, status: int, code: str) -> str | None:
    """None if `response` is the expected refusal, else what was wrong with it."""
    if response.status_code != status:
        return f"answered {response.status_code}, not {status}"
    error = response.json().get("error", {})
    if error.get("code") != code:
        return f"answered code {error.get('code')!r}, not {code!r}"
    if status == 401 and response.headers.get("www-authenticate") != "Bearer":
        return "401 without WWW-Authenticate: Bearer"
    return None


@dataclass(frozen=True)
class Door:
    """One method of one guarded route, as the test calls it."""

    method: str
    path: str
    permissions: frozenset[str]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The walk knocks on every door with three refused keys, in one minute of a clock that
    stands still: more refusals than one client is allowed by default (60 a minute)."""
    return Settings.from_env(
        {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_AUTH_FAILURES_PER_MINUTE": "10000"}
    )


def guarded_doors(app: FastAPI) -> tuple[list[Door], list[str]]:
    """The guarded (method, path) pairs of the app, and the routes that lack a guard.

    `iter_route_contexts` flattens included routers into the routes as they are served, with
    the dependencies an `include_router(..., dependencies=...)` adds to them.
    """
    doors, unguarded = [], []
    for route in iter_route_contexts(app.routes):
        path = route.path or repr(route.original_route)
        if path in PUBLIC_PATHS:
            continue
        if not isinstance(route.original_route, APIRoute | APIWebSocketRoute):
            kind = type(route.original_route).__name__
            unguarded.append(f"{path}: a {kind} cannot depend on a Permit")
            continue
        permits = permits_of(route.dependant)
        if not permits:
            unguarded.append(f"{path}: no Permit among its dependencies")
            continue
        if isinstance(route.original_route, APIWebSocketRoute):
            continue  # guarded; the HTTP knocks below do not apply to a WebSocket
        permissions = frozenset(p.permission for p in permits)
        doors.extend(
            Door(m, concrete_path(route), permissions) for m in sorted(route.methods or ())
        )
    return doors, unguarded


def guard_problems(
    app: FastAPI, client: TestClient, key_of: Callable[[str], str], policy: CompiledPolicy
) -> list[str]:
    """Everything wrong with the app's guards, one line each; empty when all is well."""
    doors, problems = guarded_doors(app)
    for door in doors:
        where = f"{door.method} {door.path}"

        def knock(headers: dict[str, str], door: Door = door) -> httpx.Response:
            return client.request(door.method, door.path, headers=headers)

        for headers, code in (
            ({}, "missing_key"),
            (bearer(GARBAGE_KEY), "malformed_key"),
            (bearer(UNKNOWN_KEY), "invalid_key"),
        ):
            wrong = _refusal(knock(headers), 401, code)
            if wrong:
                problems.append(f"{where} with {code}: {wrong}")
        denied, allowed = roles_for(door.permissions, policy.role_permissions)
        # When every role of the policy holds the permission, no policy role can be refused.
        if denied is not None:
            wrong = _refusal(knock(bearer(key_of(denied))), 403, "permission_denied")
            if wrong:
                problems.append(f"{where} as {denied}: {wrong}")
        if allowed is None:
            problems.append(f"{where}: no role of the policy holds {sorted(door.permissions)}")
            continue
        status = knock(bearer(key_of(allowed))).status_code
        if status in {401, 403} or status >= 500:
            problems.append(f"{where} as {allowed}: answered {status}")
    return problems


def key_per_role(make_key: Callable[[str], str]) -> Callable[[str], str]:
    keys: dict[str, str] = {}

    def key_of(role: str) -> str:
        if role not in keys:
            keys[role] = make_key(role)
        return keys[role]

    return key_of


@pytest.mark.clause("C2")
def test_every_route_but_the_public_ones_is_guarded(
    app: FastAPI,
    client: TestClient,
    make_key: Callable[[str], str],
    omni_compiled: CompiledPolicy,
) -> None:
    doors, _ = guarded_doors(app)

    problems = guard_problems(app, client, key_per_role(make_key), omni_compiled)

    assert problems == []
    assert len(doors) >= 6, "the walk found fewer guarded routes than the staff API alone has"


def test_public_paths_answer_without_a_key(app: FastAPI, client: TestClient) -> None:
    served = {route.path: route for route in iter_route_contexts(app.routes)}

    # A stale entry would leave a future route at that path unguarded without notice.
    assert sorted(PUBLIC_PATHS - set(served)) == []
    for path in sorted(PUBLIC_PATHS):
        methods = served[path].methods or {"GET"}
        method = "GET" if "GET" in methods else sorted(methods)[0]
        # A path with a parameter is asked for one thing it serves, as a page of Charter's
        # own origin asks.
        response = client.request(
            method,
            path.replace("{name}", "swagger-ui.css"),
            headers={"Origin": str(client.base_url).rstrip("/")},
        )
        dependant = getattr(served[path], "dependant", None)
        needs_query = dependant is not None and any(
            q.field_info.is_required() for q in dependant.query_params
        )
        if method == "GET" and not needs_query:
            assert response.status_code == 200, f"{method} {path} answered {response.status_code}"
        else:  # it wants a body or a query, and says so rather than asking for a key
            assert response.status_code == 422, f"{method} {path} answered {response.status_code}"


def test_unguarded_routes_are_reported_and_router_guards_count(
    app: FastAPI, make_key: Callable[[str], str], omni_compiled: CompiledPolicy
) -> None:
    """The walk catches a forgotten guard, and sees a guard set on a whole router."""

    @app.get("/v1/forgotten/{thing_id}")
    def forgotten(thing_id: int) -> dict[str, int]:
        return {"thing_id": thing_id}

    guarded = APIRouter(prefix="/v1/guarded")

    @guarded.get("/{seq}")
    def by_router(seq: int) -> dict[str, int]:
        return {"seq": seq}

    app.include_router(guarded, dependencies=[Depends(Permit("audit:read"))])
    app.mount("/v1/raw", Starlette())

    with TestClient(app) as client:
        problems = guard_problems(app, client, key_per_role(make_key), omni_compiled)
        doors, _ = guarded_doors(app)

    assert problems == [
        "/v1/forgotten/{thing_id}: no Permit among its dependencies",
        "/v1/raw: a Mount cannot depend on a Permit",
    ]
    assert Door("GET", "/v1/guarded/dummy", frozenset({"audit:read"})) in doors
