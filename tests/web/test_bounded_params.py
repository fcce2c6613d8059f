"""A number or a time in a request is bounded by what the database holds: an id past its
column's integer type, a time whose UTC form Charter does not store, or a use cursor that names
either, is refused with a 422 and its code, never a 500 (security issue 16, items 10 and 11).

The integer and time parameters are found in the app's OpenAPI schema, so that parameters
added later are tried too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from httpx import Response

from charter.policy.compiled import CompiledPolicy
from tests.conftest import bearer
from tests.vault.calls import sign_up
from tests.web.test_guards import key_per_role, permits_of, roles_for

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def refusal(response: Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A server error is answered as the 500 a caller gets, so that each one is listed."""
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def service(make_key: Callable[[str], str]) -> dict[str, str]:
    return bearer(make_key("service_client"))


@pytest.fixture
def person(client: TestClient, service: dict[str, str]) -> str:
    return sign_up(client, service, "vid-bounds", "bounds@example.com")


@dataclass(frozen=True)
class Parameter:
    """One parameter of one route, with what it takes to reach the route's work."""

    method: str
    route: str  # as the schema names it: /v1/disclosures/{disclosure_id}/exclusions
    name: str
    where: str  # "query" or "path"
    schema: dict[str, Any]
    headers: dict[str, str]
    numbered: frozenset[str]  # the route's path parameters that are integers

    def call(self, client: TestClient, value: object, person: str) -> Response:
        """The route with this parameter set to `value`; every other path parameter names
        `person` (or 1, if it is a number), so that the request gets past its lookups."""
        fillers = {self.name: str(value)} if self.where == "path" else {}

        def fill(found: re.Match[str]) -> str:
            name = found.group(1)
            return fillers.get(name, "1" if name in self.numbered else person)

        path = re.sub(r"\{(\w+)\}", fill, self.route)
        query = {self.name: str(value)} if self.where == "query" else None
        return client.request(self.method, path, params=query, headers=self.headers)


def _shapes(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The schema, or each schema of its `anyOf` (an optional parameter is `X | None`)."""
    yield from schema.get("anyOf", [schema])


def _is_integer(schema: dict[str, Any]) -> bool:
    return any(shape.get("type") == "integer" for shape in _shapes(schema))


def parameters(
    app: FastAPI, make_key: Callable[[str], str], policy: CompiledPolicy
) -> list[Parameter]:
    """Every query and path parameter of every route, with a key that gets past its guard."""
    key_of = key_per_role(make_key)
    operations = app.openapi()["paths"]
    found: list[Parameter] = []
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute):
            continue
        permissions = {p.permission for p in permits_of(route.dependant)}
        _, allowed = roles_for(permissions, policy.role_permissions)
        headers = bearer(key_of(allowed)) if permissions and allowed else {}
        for method in sorted(route.methods or ()):
            path = route.path_format or ""
            operation = operations.get(path, {}).get(method.lower(), {})
            given = [p for p in operation.get("parameters", []) if p["in"] in {"query", "path"}]
            numbered = frozenset(
                p["name"] for p in given if p["in"] == "path" and _is_integer(p["schema"])
            )
            found.extend(
                Parameter(method, path, p["name"], p["in"], p["schema"], headers, numbered)
                for p in given
            )
    return found


# --- The use's cursor -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "categories"),
    [
        ("events~9223372036854775808", ["usage.clicks"]),  # past log_events.id, a BigInteger
        ("events~-1", ["usage.clicks"]),
        ("records~9223372036854775808~2026-01-01T00:00:00Z", ["survey.answers"]),
        ("records~1~0001-01-01T00:00:00+01:00", ["survey.answers"]),  # before year 1 in UTC
        ("records~1~9999-12-31T23:59:59-01:00", ["survey.answers"]),  # after year 9999 in UTC
        ("records~1~0999-12-31T23:59:59Z", ["survey.answers"]),  # a year of three digits
        ("records~1~2026-01-01T00:00:00", ["survey.answers"]),  # no offset: no UTC time
    ],
)
def test_a_use_cursor_beyond_what_the_columns_hold_is_invalid_cursor(
    client: TestClient, service: dict[str, str], person: str, after: str, categories: list[str]
) -> None:
    response = client.post(
        f"/v1/people/{person}/use",
        headers=service,
        json={"purpose": "service_improvement", "categories": categories, "after": after},
    )

    assert refusal(response) == (422, "invalid_cursor")
    assert "next" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("after", "categories"),
    [
        (f"events~{INT64_MAX}", ["usage.clicks"]),
        (f"records~{INT64_MAX}~9999-12-31T23:59:59Z", ["survey.answers"]),
        ("records~1~1000-01-01T00:00:00+00:00", ["survey.answers"]),
    ],
)
def test_a_use_cursor_at_the_edge_of_the_columns_is_answered(
    client: TestClient, service: dict[str, str], person: str, after: str, categories: list[str]
) -> None:
    response = client.post(
        f"/v1/people/{person}/use",
        headers=service,
        json={"purpose": "service_improvement", "categories": categories, "after": after},
    )

    assert response.status_code == 200, response.text
    assert response.json()["next"] is None


# --- Ids in the query and the path ------------------------------------------------------------


def test_a_choice_history_cursor_past_its_32_bit_column_is_refused(
    client: TestClient, service: dict[str, str], person: str
) -> None:
    path = f"/v1/people/{person}/choices"

    past = client.get(path, params={"history_after": INT32_MAX + 1}, headers=service)
    last = client.get(path, params={"history_after": INT32_MAX}, headers=service)

    assert refusal(past) == (422, "invalid_request")
    assert [d["field"] for d in past.json()["error"]["details"]] == ["query.history_after"]
    assert last.status_code == 200, last.text
    assert last.json()["history"] == []


def test_every_integer_parameter_is_bounded_and_answered_at_its_bounds(
    app: FastAPI,
    client: TestClient,
    make_key: Callable[[str], str],
    omni_compiled: CompiledPolicy,
    person: str,
) -> None:
    numbers = [p for p in parameters(app, make_key, omni_compiled) if _is_integer(p.schema)]
    problems = []
    for parameter in numbers:
        where = f"{parameter.method} {parameter.route} {parameter.name}"
        (shape,) = [s for s in _shapes(parameter.schema) if s.get("type") == "integer"]
        if "minimum" not in shape or "maximum" not in shape:
            problems.append(f"{where}: no minimum or maximum")
            continue
        for inside in (shape["minimum"], shape["maximum"]):
            status = parameter.call(client, inside, person).status_code
            if status >= 500 or status == 422:
                problems.append(f"{where}={inside}: answered {status}")
        for outside in (shape["minimum"] - 1, shape["maximum"] + 1):
            response = parameter.call(client, outside, person)
            if response.status_code != 422 or refusal(response)[1] != "invalid_request":
                problems.append(f"{where}={outside}: answered {response.status_code}")

    assert problems == []
    named = {(p.route, p.name) for p in numbers}
    assert {
        ("/v1/people/{person_id}/choices", "history_after"),
        ("/v1/disclosures", "after"),
        ("/v1/disclosures/{disclosure_id}/exclusions", "disclosure_id"),
        ("/v1/audit", "after"),
    } <= named, "the walk missed integer parameters it should have found"


# --- Times in the query -----------------------------------------------------------------------

OUTSIDE = [
    "9999-12-31T23:59:59-01:00",  # after year 9999 once in UTC
    "0001-01-01T00:00:00+01:00",  # before year 1 once in UTC
    "0999-12-31T23:59:59Z",  # a year of three digits: its stored text would not sort
]
INSIDE = ["1000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-11-25T09:30:00+01:00"]


def test_every_time_in_a_query_is_refused_outside_the_stored_range(
    app: FastAPI,
    client: TestClient,
    make_key: Callable[[str], str],
    omni_compiled: CompiledPolicy,
    person: str,
) -> None:
    times = [
        p
        for p in parameters(app, make_key, omni_compiled)
        if p.where == "query"
        and any(shape.get("format") == "date-time" for shape in _shapes(p.schema))
    ]
    problems = []
    for parameter in times:
        where = f"{parameter.method} {parameter.route} {parameter.name}"
        for outside in OUTSIDE:
            response = parameter.call(client, outside, person)
            if response.status_code != 422:
                problems.append(f"{where}={outside}: answered {response.status_code}")
                continue
            error = response.json()["error"]
            if error["code"] != "invalid_request" or [d["field"] for d in error["details"]] != [
                f"query.{parameter.name}"
            ]:
                problems.append(f"{where}={outside}: refused with {error}")
            elif "1000" not in error["message"] or "9999" not in error["message"]:
                problems.append(f"{where}={outside}: the message does not say the range")
        for inside in INSIDE:
            status = parameter.call(client, inside, person).status_code
            if status != 200:
                problems.append(f"{where}={inside}: answered {status}")

    assert problems == []
    assert {(p.route, p.name) for p in times} >= {
        ("/v1/disclosures", "since"),
        ("/v1/disclosures", "until"),
        ("/v1/disclosures/export", "since"),
        ("/v1/disclosures/export", "until"),
        ("/v1/requests", "due_before"),
    }, "the walk missed time parameters it should have found"
