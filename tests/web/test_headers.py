"""Every response says what it is and that no other site may frame it; pages run no code but
their own (a Content-Security-Policy). The routes are found in the app's route table, so a
route added later is checked too."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from charter.clock import FixedClock
from charter.db import Database
from charter.policy.compiled import CompiledPolicy
from charter.settings import Settings
from charter.vault.keystore import SqlKeyStore
from charter.web.app import create_app
from tests.conftest import bearer
from tests.web.test_guards import concrete_path, key_per_role, permits_of, roles_for

INLINE = re.compile(r"<(style|script)(?![^>]*\bsrc=)[^>]*>(.*?)</\1>", re.DOTALL)
LOADED = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(https?://[^\"]+)\"")


def csp(response: httpx.Response) -> dict[str, list[str]]:
    """The response's Content-Security-Policy, directive -> sources."""
    header = response.headers.get("content-security-policy")
    assert header, f"{response.request.url.path}: no Content-Security-Policy"
    policy = {}
    for directive in header.split(";"):
        name, *sources = directive.split()
        policy[name] = sources
    return policy


def allowed(policy: dict[str, list[str]], directive: str) -> list[str]:
    """What `directive` allows: its own sources, or default-src's if it is not given."""
    return policy.get(directive, policy["default-src"])


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def assert_never_framed_nor_sniffed(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("x-frame-options") == "DENY", where
    assert csp(response).get("frame-ancestors") == ["'none'"], where


def test_every_route_answers_with_the_headers_with_or_without_a_key(
    app: FastAPI, client: TestClient, make_key: Callable[[str], str], omni_compiled: CompiledPolicy
) -> None:
    key_of = key_per_role(make_key)
    tried = 0
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute):
            continue
        permissions = {p.permission for p in permits_of(route.dependant)}
        _, role = roles_for(permissions, omni_compiled.role_permissions)
        keys = [{}, bearer(key_of(role))] if permissions and role else [{}]
        for method in sorted(route.methods):
            for headers in keys:
                response = client.request(method, concrete_path(route), headers=headers)
                assert_never_framed_nor_sniffed(response)
                tried += 1
    assert tried > 20


def test_answers_made_outside_the_routes_carry_the_headers(client: TestClient) -> None:
    answers = [
        client.get("/no/such/page"),
        client.delete("/healthz"),
        client.post("/v1/staff", content=b"x" * (17 * 1024 * 1024)),
    ]
    assert [a.status_code for a in answers] == [404, 405, 413]
    for answer in answers:
        assert_never_framed_nor_sniffed(answer)
        assert csp(answer)["default-src"] == ["'none'"]


def test_an_api_answer_may_load_nothing(client: TestClient) -> None:
    response = client.get("/v1/datamap")

    assert response.status_code == 200
    assert csp(response) == {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}


def test_the_policy_page_runs_no_script_and_only_its_own_stylesheet(client: TestClient) -> None:
    response = client.get("/policy")

    assert response.status_code == 200
    assert_never_framed_nor_sniffed(response)
    policy = csp(response)
    assert policy["default-src"] == ["'self'"]
    assert "script-src" not in policy  # default-src 'self': no inline script, no other site
    assert "<script" not in response.text
    inline = INLINE.findall(response.text)
    assert [tag for tag, _ in inline] == ["style"]
    assert allowed(policy, "style-src") == ["'self'", *(sha256_source(b) for _, b in inline)]
    assert not any("unsafe" in source for sources in policy.values() for source in sources)


def test_the_api_docs_may_load_what_they_need_and_nothing_inline_but_their_start_script(
    client: TestClient,
) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert_never_framed_nor_sniffed(response)
    policy = csp(response)
    # Its script and stylesheet are Charter's own (tests/web/test_docs_pages.py: offline).
    assert LOADED.findall(response.text) == []
    for directive in ("script-src", "style-src"):
        assert "'self'" in allowed(policy, directive)
    scripts = [body for tag, body in INLINE.findall(response.text) if tag == "script"]
    assert scripts, "the docs page starts Swagger UI from an inline script"
    script_sources = allowed(policy, "script-src")
    assert all(sha256_source(body) in script_sources for body in scripts)
    assert not any("unsafe" in source for source in script_sources)
    assert "/openapi.json" in response.text
    assert client.get("/openapi.json").status_code == 200


def test_a_plain_500_carries_the_headers(app: FastAPI) -> None:
    def broken() -> None:
        raise RuntimeError("a fault of Charter's own")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/broken")

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert_never_framed_nor_sniffed(response)


def test_a_key_check_the_database_cannot_answer_is_a_503_to_retry(
    settings: Settings,
    omni_compiled: CompiledPolicy,
    keys: SqlKeyStore,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    # A database that was never migrated: the key check's query fails, as on a lost database.
    broken = Database.connect(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        app = create_app(settings, omni_compiled, broken, keys, clock=clock)
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.get("/v1/audit", headers=bearer("chk_AAAAAAAAAAAA_" + "s" * 43))
    finally:
        broken.dispose()

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "1"
    assert_never_framed_nor_sniffed(response)
