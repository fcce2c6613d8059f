"""Bad input gets a clear 4xx in JSON, never a 500: malformed JSON, wrong types, bodies over
the limit (declared or streamed), unknown routes and wrong methods.

The routes that take a body are found in the app's route table, so routes added later are
tried too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from httpx import Response

from charter.policy.compiled import CompiledPolicy
from charter.settings import Settings
from tests.conftest import bearer
from tests.web.test_guards import concrete_path, key_per_role, permits_of, roles_for

LIMIT = 2048
JSON = {"content-type": "application/json"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The shared `app` and `client` fixtures, with a small body limit."""
    return Settings.from_env(
        {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_MAX_BODY_BYTES": str(LIMIT)}
    )


@dataclass(frozen=True)
class BodyRoute:
    method: str
    path: str
    headers: dict[str, str]  # a key of a role that may call the route, if it is guarded


@pytest.fixture
def body_routes(
    app: FastAPI, make_key: Callable[[str], str], omni_compiled: CompiledPolicy
) -> list[BodyRoute]:
    """Every (method, path) whose route reads a body, with a key that gets past its guard."""
    key_of = key_per_role(make_key)
    found = []
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or route.body_field is None:
            continue
        permissions = {p.permission for p in permits_of(route.dependant)}
        _, allowed = roles_for(permissions, omni_compiled.role_permissions)
        headers = bearer(key_of(allowed)) if permissions and allowed else {}
        found.extend(
            BodyRoute(method, concrete_path(route), headers) for method in sorted(route.methods)
        )
    assert found, "no route takes a body: nothing to try"
    return found


@pytest.fixture
def officer(make_key: Callable[[str], str]) -> dict[str, str]:
    return bearer(make_key("privacy_officer"))


def chunks(body: bytes, size: int = 500) -> Iterator[bytes]:
    """The body as a stream, so that the request carries no Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_malformed_json_is_400_on_every_route_that_takes_a_body(
    client: TestClient, body_routes: list[BodyRoute]
) -> None:
    for route in body_routes:
        response = client.request(
            route.method, route.path, content=b'{"name": ', headers={**JSON, **route.headers}
        )

        assert response.status_code == 400, route
        assert response.json()["error"]["code"] == "malformed_json", route


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 5, "role": "billing"}, "name"),
        ({"name": "sam", "role": ["billing"]}, "role"),
        ({"name": "sam"}, "role"),
        ({"name": "", "role": "billing"}, "name"),
        ([{"name": "sam", "role": "billing"}], "body"),
    ],
)
def test_wrong_types_are_422_naming_the_field(
    client: TestClient, officer: dict[str, str], body: object, field: str
) -> None:
    response = client.post("/v1/staff", json=body, headers=officer)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [d["field"] for d in error["details"]] == [field]
    assert error["message"].startswith(f"the request is not valid: {field}: ")


def test_a_refused_value_is_not_echoed(client: TestClient, officer: dict[str, str]) -> None:
    response = client.post(
        "/v1/staff", json={"name": "sam", "role": {"note": "jane.doe@example.com"}}, headers=officer
    )

    assert response.status_code == 422
    assert "jane.doe" not in response.text


def test_a_wrong_type_in_a_key_request_names_its_field(
    client: TestClient, officer: dict[str, str]
) -> None:
    client.post("/v1/staff", json={"name": "sam", "role": "billing"}, headers=officer)

    response = client.post("/v1/staff/sam/keys", json={"expires_in_days": "soon"}, headers=officer)

    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == ["expires_in_days"]


def test_a_body_over_the_limit_is_413_declared_or_streamed(
    client: TestClient, body_routes: list[BodyRoute]
) -> None:
    oversize = b'{"name": "' + b"x" * LIMIT + b'"}'
    for route in body_routes:
        declared = client.request(
            route.method, route.path, content=oversize, headers={**JSON, **route.headers}
        )
        streamed = client.request(
            route.method, route.path, content=chunks(oversize), headers={**JSON, **route.headers}
        )

        assert declared.request.headers["content-length"] == str(len(oversize))
        assert "content-length" not in streamed.request.headers
        assert streamed.request.headers["transfer-encoding"] == "chunked"
        for response in (declared, streamed):
            assert response.status_code == 413, (route, response.text)
            assert response.json()["error"]["code"] == "too_large"


def test_without_a_key_an_oversize_body_is_refused_before_it_is_read(
    client: TestClient, body_routes: list[BodyRoute]
) -> None:
    oversize = b'{"name": "' + b"x" * LIMIT + b'"}'
    for route in body_routes:
        if not route.headers:
            continue  # a public route: nobody's key to check
        declared = client.request(route.method, route.path, content=oversize, headers=JSON)
        streamed = client.request(route.method, route.path, content=chunks(oversize), headers=JSON)

        # The declared length is refused from the headers alone; a streamed body is never
        # read for a caller without a key.
        assert (declared.status_code, declared.json()["error"]["code"]) == (413, "too_large")
        assert (streamed.status_code, streamed.json()["error"]["code"]) == (401, "missing_key")


def test_a_body_at_the_limit_is_accepted_declared_or_streamed(
    client: TestClient, officer: dict[str, str]
) -> None:
    def at_limit(name: str) -> bytes:
        body = f'{{"name": "{name}", "role": "billing"}}'.encode()
        return body + b" " * (LIMIT - len(body))

    declared = client.post("/v1/staff", content=at_limit("ann"), headers={**JSON, **officer})
    streamed = client.post(
        "/v1/staff", content=chunks(at_limit("bob")), headers={**JSON, **officer}
    )

    assert len(at_limit("ann")) == LIMIT
    assert (declared.status_code, streamed.status_code) == (201, 201)
    assert streamed.json()["name"] == "bob"


def test_a_content_length_that_is_not_a_number_is_400(
    client: TestClient, officer: dict[str, str]
) -> None:
    request = client.build_request("POST", "/v1/staff", content=b"{}", headers=officer)
    request.headers["content-length"] = "lots"

    response = client.send(request)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("path", ["/no/such/page", "/v1/nothing-here", "/v1/staff/a/b/c/d"])
def test_an_unknown_route_is_a_json_404(
    client: TestClient, officer: dict[str, str], path: str
) -> None:
    for headers in ({}, officer):
        response = client.get(path, headers=headers)

        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("PUT", "/v1/staff", {"GET", "POST"}), ("DELETE", "/healthz", {"GET"})],
)
def test_a_wrong_method_is_a_json_405(
    client: TestClient, officer: dict[str, str], method: str, path: str, allowed: set[str]
) -> None:
    for headers in ({}, officer):
        response = client.request(method, path, headers=headers)

        assert response.status_code == 405
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["code"] == "method_not_allowed"
        # Starlette names the methods of the first route that matched the path only.
        assert set(response.headers["allow"].replace(" ", "").split(",")) <= allowed


BAD_BODIES = [
    b"",
    b"null",
    b"[]",
    b'"just a string"',
    b"{}",
    b"\xff\xfe\x00garbage",
    b"[" * 1500,
    b'{"name": null, "role": null, "expires_in_days": null}',
    b'{"expires_in_days": 1e400}',
    b'{"expires_in_days": NaN}',
    b'{"expires_in_days": 99999999999999999999999999999999}',
    b'{"name": "\\ud800", "role": "billing"}',
    b'{"name": "a\\u0000b", "role": "billing"}',
    b'{"__proto__": {}, "name": "x", "role": "billing", "extra": [1, {"deep": true}]}',
]
CONTENT_TYPES = [
    {"content-type": "application/json"},
    {"content-type": "text/plain"},
    {"content-type": "application/x-www-form-urlencoded"},
    {"content-type": "multipart/form-data"},
    {},
]


def test_odd_bodies_never_cause_a_500(app: FastAPI, body_routes: list[BodyRoute]) -> None:
    failures = []
    with TestClient(app, raise_server_exceptions=False) as client:
        for route in body_routes:
            for body in BAD_BODIES:
                for content_type in CONTENT_TYPES:
                    response = client.request(
                        route.method,
                        route.path,
                        content=body,
                        headers={**content_type, **route.headers},
                    )
                    refused = response.status_code >= 400
                    if response.status_code >= 500 or (refused and "error" not in response.json()):
                        failures.append((route.method, route.path, body[:40], content_type))

    assert failures == []


# --- Nothing long is echoed ----------------------------------------------------------------
# A refusal says where the request went wrong, and part of that comes from the request: a field
# name, a topic, a name in the path. Nothing longer than 64 characters of it comes back whole.

ECHO_LIMIT = 64


# An echoed value is cut whether it is one run of characters or words with spaces between.
FILLERS = pytest.mark.parametrize("filler", ["q" * 500, "secret words " * 40], ids=["run", "words"])


def long_name(tag: str, filler: str = "q" * 500) -> str:
    return f"{tag}-{filler}"


def assert_not_echoed(response: Response, text: str) -> None:
    assert text not in response.text
    assert text[: ECHO_LIMIT + 1] not in response.text
    for detail in response.json()["error"].get("details") or []:
        if isinstance(detail, dict) and "field" in detail:
            assert all(len(part) <= ECHO_LIMIT for part in detail["field"].split("."))


@FILLERS
def test_a_long_unknown_field_name_is_never_echoed_whole(
    client: TestClient, body_routes: list[BodyRoute], filler: str
) -> None:
    for route in body_routes:
        name = long_name("unknown", filler)
        response = client.request(
            route.method, route.path, json={name: 1}, headers={**JSON, **route.headers}
        )

        assert 400 <= response.status_code < 500, (route, response.text)
        assert_not_echoed(response, name)


@FILLERS
def test_a_long_name_inside_a_mapping_is_never_echoed_whole(
    client: TestClient, make_key: Callable[[str], str], filler: str
) -> None:
    name = long_name("field", filler)
    response = client.post(
        "/v1/collect",
        json={"collection_point": "sign_up", "fields": {name: "value"}},
        headers=bearer(make_key("service_client")),
    )

    assert response.status_code == 422, response.text
    assert_not_echoed(response, name)
    assert response.json()["error"]["details"][0]["field"].startswith("fields.field-" + filler[:8])


@pytest.mark.parametrize("filler", ["z" * 72, "zz " * 24], ids=["run", "words"])
def test_a_long_unknown_choice_is_never_echoed_whole(
    client: TestClient, make_key: Callable[[str], str], filler: str
) -> None:
    service = bearer(make_key("service_client"))
    person = client.post(
        "/v1/collect",
        json={"collection_point": "sign_up", "fields": {"name": "Ada", "email": "ada@example.com"}},
        headers=service,
    ).json()["person_id"]
    topic = "purpose:" + filler  # 80 characters: as long as a topic may be

    response = client.put(
        f"/v1/people/{person}/choices", json={"choices": {topic: True}}, headers=service
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "unknown_choice"
    assert_not_echoed(response, topic)


def test_a_long_name_in_the_path_is_never_echoed_whole(
    client: TestClient, officer: dict[str, str]
) -> None:
    name = long_name("staff")

    response = client.get(f"/v1/staff/{name}/keys", headers=officer)

    assert response.status_code in {404, 422}, response.text
    assert_not_echoed(response, name)
