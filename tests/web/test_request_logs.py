"""The request log (issue 9, item 5): one line per request with its method, route template,
status, time and request id; the id on every answer as X-Request-ID; and none of the personal
values the requests carried, through the app and through `charter serve` itself."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from charter.policy.compiled import CompiledPolicy
from charter.settings import Settings, SettingsError
from charter.web.requestlog import JsonLines, TextLines
from tests.conftest import bearer
from tests.serving import Server, charter, service_key
from tests.web.test_guards import concrete_path, key_per_role, permits_of, roles_for

CHOICES = "/v1/people/{person_id}/choices"
NAME = "Ines Seededottir"
EMAIL = "ines.seeded@example.com"
PERSON = "person-seeded-4711"
QUERY_VALUE = "query-seeded-0815"
ADDRESS = "203.0.113.7"  # TEST-NET-3, a documentation address
AGENT = "SeededAgent/9.1"
# A client's own request id of the safe shape ([A-Za-z0-9._-], short), and a name all the same.
CLIENT_ID = "ines.seeded"
# What every request sends, besides its key: none of it may reach the log.
SEEDED = {
    "X-Forwarded-For": ADDRESS,
    "User-Agent": AGENT,
    "X-Request-ID": CLIENT_ID,
    "Referer": f"https://www.example.com/account?email={EMAIL}",
}
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
JSON_KEYS = {"time", "level", "logger", "method", "route", "status", "duration_ms", "request_id"}
TEXT_LINE = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<method>\S+) (?P<route>\S+) "
    r"(?P<status>\d{3}) (?P<duration_ms>\d+\.\d\d)ms request=(?P<request_id>\S+)"
)


@dataclass(frozen=True)
class Answer:
    """A response, and the line the log should hold for it."""

    response: httpx.Response
    method: str
    route: str
    status: int


def drive(http: httpx.Client, key: dict[str, str]) -> tuple[list[Answer], list[str]]:
    """Requests that carry personal values in every place a request can (path, query string,
    body, headers, the client's address); what each should log, and the values that must not
    be logged."""
    keyed = {**SEEDED, **key}
    answers = []

    collected = http.post(
        "/v1/collect",
        headers=keyed,
        json={"collection_point": "sign_up", "fields": {"name": NAME, "email": EMAIL}},
    )
    assert collected.status_code == 201, collected.text
    answers.append(Answer(collected, "POST", "/v1/collect", 201))
    person = collected.json()["person_id"]
    choices = f"/v1/people/{person}/choices"

    saved = http.put(
        choices,
        params={"note": QUERY_VALUE},
        headers=keyed,
        json={"choices": {"purpose:promotional": False}},
    )
    read = http.get(choices, params={"note": QUERY_VALUE, "email": EMAIL}, headers=keyed)
    refused = http.get(f"/v1/people/{PERSON}/choices", params={"email": EMAIL}, headers=SEEDED)
    unknown = http.get(f"/no/such/{EMAIL}", params={"q": QUERY_VALUE}, headers=keyed)
    answers += [
        Answer(saved, "PUT", CHOICES, 200),
        Answer(read, "GET", CHOICES, 200),
        Answer(refused, "GET", CHOICES, 401),
        Answer(unknown, "GET", "<unmatched>", 404),
    ]
    for answer in answers:
        assert answer.response.status_code == answer.status, answer.response.text
    key_value = key["Authorization"].removeprefix("Bearer ")
    key_id = key_value.split("_")[1]
    secret_values = [NAME, "Seededottir", EMAIL, PERSON, person, QUERY_VALUE, ADDRESS, AGENT]
    return answers, [*secret_values, CLIENT_ID, key_value, key_id, "example.com"]


def assert_logged(entries: list[dict[str, Any]], answers: list[Answer]) -> None:
    """Each answer carries a request id of Charter's own, and the log has one entry for it that
    names its method, route template and status."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_id.setdefault(entry["request_id"], []).append(entry)
    for answer in answers:
        request_id = answer.response.headers.get("x-request-id", "")
        where = f"{answer.method} {answer.route} ({answer.status})"
        assert REQUEST_ID.fullmatch(request_id), f"{where}: X-Request-ID {request_id!r}"
        assert [(e["method"], e["route"], int(e["status"])) for e in by_id.get(request_id, [])] == [
            (answer.method, answer.route, answer.status)
        ], where


def assert_none_of(values: list[str], log: str) -> None:
    found = [value for value in values if value.lower() in log.lower()]
    assert found == [], f"personal values in the request log: {found}\n{log}"


# --- Through the app ------------------------------------------------------------------------


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged() -> Iterator[list[logging.LogRecord]]:
    """The records of the request log while the test runs."""
    logger = logging.getLogger("charter.requests")
    kept, level = Kept(), logger.level
    logger.addHandler(kept)
    logger.setLevel(logging.INFO)
    yield kept.records
    logger.removeHandler(kept)
    logger.setLevel(level)


def as_json(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    """The records as `CHARTER_LOG_FORMAT=json` writes them, parsed back line by line."""
    lines = "\n".join(JsonLines().format(record) for record in records).splitlines()
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert set(entry) == JSON_KEYS, entry
        assert entry["logger"] == "charter.requests"
        assert isinstance(entry["status"], int)
        assert isinstance(entry["duration_ms"], int | float)
        assert entry["duration_ms"] >= 0
    return entries


def as_text(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    """The records as `CHARTER_LOG_FORMAT=text` writes them, read back."""
    lines = [TextLines().format(record) for record in records]
    entries = []
    for line in lines:
        found = TEXT_LINE.fullmatch(line)
        assert found, line
        entries.append(found.groupdict())
    return entries


def test_a_request_is_logged_by_route_template_status_and_id_and_nothing_personal(
    client: TestClient, make_key: Callable[[str], str], logged: list[logging.LogRecord]
) -> None:
    answers, personal = drive(client, bearer(make_key("service_client")))

    assert len(logged) == len(answers)
    for read_back in (as_json(logged), as_text(logged)):
        assert_logged(read_back, answers)
    for formatter in (JsonLines(), TextLines()):
        assert_none_of(personal, "\n".join(formatter.format(record) for record in logged))


@pytest.mark.parametrize(
    ("path", "headers", "body", "status"),
    [
        ("/v1/events", {}, b"[]", 401),
        ("/v1/events", {"Authorization": "Bearer not-a-charter-key"}, b"[]", 401),
        # Larger than the route takes, refused from its Content-Length before any key check.
        ("/v1/staff", {}, b"x" * 100_000, 413),
    ],
)
def test_a_refusal_of_the_gate_is_logged_and_carries_its_request_id(
    client: TestClient,
    logged: list[logging.LogRecord],
    *,
    path: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
) -> None:
    response = client.post(path, headers={**SEEDED, **headers}, content=body)

    assert response.status_code == status
    assert_logged(as_json(logged), [Answer(response, "POST", path, status)])


def test_a_plain_500_is_logged_and_carries_its_request_id(
    app: FastAPI, logged: list[logging.LogRecord]
) -> None:
    def broken(person_id: str) -> None:
        raise RuntimeError(f"a fault of Charter's own, for {person_id}")

    app.add_api_route("/broken/{person_id}", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(f"/broken/{PERSON}", headers=SEEDED)

    assert response.status_code == 500
    assert_logged(as_json(logged), [Answer(response, "GET", "/broken/{person_id}", 500)])
    assert_none_of([PERSON, CLIENT_ID], "\n".join(map(TextLines().format, logged)))


def test_every_route_is_logged_by_its_template_with_or_without_a_key(
    app: FastAPI,
    client: TestClient,
    make_key: Callable[[str], str],
    omni_compiled: CompiledPolicy,
    logged: list[logging.LogRecord],
) -> None:
    key_of = key_per_role(make_key)
    answers = [Answer(client.get("/openapi.json"), "GET", "/openapi.json", 200)]
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute):
            continue
        permissions = {p.permission for p in permits_of(route.dependant)}
        _, role = roles_for(permissions, omni_compiled.role_permissions)
        keys = [{}, bearer(key_of(role))] if permissions and role else [{}]
        for method in sorted(route.methods):
            for headers in keys:
                response = client.request(method, concrete_path(route), headers=headers)
                answers.append(Answer(response, method, route.path, response.status_code))

    assert len(answers) > 20
    assert_logged(as_json(logged), answers)


def test_a_method_http_does_not_define_is_not_logged_as_sent(
    client: TestClient, logged: list[logging.LogRecord]
) -> None:
    response = client.request("INES-SEEDED", "/healthz")

    assert_logged(as_json(logged), [Answer(response, "<other>", "/healthz", 405)])


def test_the_log_format_is_text_unless_json_is_asked_for() -> None:
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"CHARTER_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(SettingsError, match="CHARTER_LOG_FORMAT"):
        Settings.from_env({"CHARTER_LOG_FORMAT": "xml"})


# --- Through `charter serve` ----------------------------------------------------------------

# What `charter serve` prints on stdout as it starts; every other line of its output is the log.
ANNOUNCED = re.compile(r"Charter \S+ on |  policy page: |  API docs: ")


def log_lines(running: Server) -> list[str]:
    """What the stopped server wrote but its announcement: its log, line by line."""
    lines = running.log.read_text().splitlines()
    return [line for line in lines if line and not ANNOUNCED.match(line)]


@pytest.mark.slow
@pytest.mark.parametrize(("log_format", "workers"), [("text", "1"), ("json", "2")])
def test_charter_serve_logs_each_request_on_stderr_and_nothing_personal(
    environment: dict[str, str], server: Callable[[], Server], log_format: str, workers: str
) -> None:
    # Behind a proxy (the test's own loopback connection), X-Forwarded-For is believed: the
    # seeded address becomes the client's, as Charter sees it.
    environment.update(
        CHARTER_LOG_FORMAT=log_format, CHARTER_WORKERS=workers, CHARTER_BEHIND_PROXY="1"
    )
    charter(environment, "init")
    running = server()
    with httpx.Client(base_url=running.base) as http:
        answers, personal = drive(http, service_key(environment))
    # Stopped, the server has written every line of its log (each is flushed as it is
    # written; a line is written once its answer has gone, a moment after the client has it).
    running.stop()

    lines = log_lines(running)
    # Neither the path as asked (uvicorn's access log) nor the loopback client is there.
    assert_none_of([*personal, "/no/such", "127.0.0.1"], "\n".join(lines))
    if log_format == "json":
        entries = [json.loads(line) for line in lines]
        assert all(set(e) == JSON_KEYS for e in entries), lines
    else:
        matched = [TEXT_LINE.fullmatch(line) for line in lines]
        assert all(matched), lines
        entries = [found.groupdict() for found in matched if found]
    assert_logged(entries, answers)
    assert {(e["method"], e["route"]) for e in entries} >= {("GET", "/healthz")}
