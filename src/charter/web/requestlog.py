"""The request log: one line per request that says what was asked and how it went, and
nothing about who asked or about whom.

A line holds the method, the route's template (`/v1/people/{person_id}/choices`: the path as
asked holds identifiers), the status, the time taken and a request id. No query string,
body, header value, address or user agent: a log is read, kept and shipped further than the
data it would leak may go. Every response carries the request id as `X-Request-ID`, so that
an answer a person reports, or a proxy logs, can be matched to its line.

Charter makes every request id itself and ignores one a client sends: no format check tells a
random token from an identifier (`cust-10442`) or a name (`ines.seeded`), and taking the
client's would put a header value in the log. A client or a proxy matches its own records to
Charter's by the `X-Request-ID` of the answer.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, NamedTuple

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("charter.requests")

REQUEST_ID_HEADER = "X-Request-ID"
# Where a request's id waits in its ASGI scope, for the answer that is sent from outside every
# middleware (the plain 500, web/errors.py).
REQUEST_ID_KEY = "charter.request_id"
# Where the Gate leaves the template of the route a request matched (None for none): a request
# it refuses never reaches the router that would name its route.
ROUTE_TEMPLATE_KEY = "charter.route_template"
# The route of a request that matched none: the path itself is never logged.
UNMATCHED = "<unmatched>"
# A request line's method is any token the client chose: only those HTTP defines are logged.
OTHER_METHOD = "<other>"
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
_HEADER_NAME = REQUEST_ID_HEADER.lower().encode()


def new_request_id() -> str:
    """A fresh request id: 32 hex digits."""
    # 128 random bits are unique across workers, hosts and restarts without coordinating, and
    # tell a client nothing (a counter would say how busy Charter is).
    return os.urandom(16).hex()


def request_id_of(scope: Scope) -> str | None:
    """The id `RequestLog` gave the request of `scope` (None outside it)."""
    found = scope.get(REQUEST_ID_KEY)
    return found if isinstance(found, str) else None


class Served(NamedTuple):
    """One request as the log holds it: the message of its record, formatted only if a handler
    takes it."""

    method: str
    route: str
    status: int
    duration_ms: float
    request_id: str

    def __str__(self) -> str:
        return (
            f"{self.method} {self.route} {self.status} {self.duration_ms:.2f}ms "
            f"request={self.request_id}"
        )


def _utc(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class TextLines(logging.Formatter):
    """A readable line: `2026-11-25T12:00:00.123Z GET /v1/people/{person_id}/choices 200
    1.52ms request=…`."""

    def format(self, record: logging.LogRecord) -> str:
        # The record's message only: a traceback would carry the values of a request.
        return f"{_utc(record)} {record.getMessage()}"


class JsonLines(logging.Formatter):
    """One JSON object a line: `time`, `level`, `logger`, and for a request `method`, `route`,
    `status`, `duration_ms` and `request_id`; for any other record its `message`."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": _utc(record),
            "level": record.levelname,
            "logger": record.name,
        }
        served = record.msg
        if isinstance(served, Served):
            fields.update(served._asdict())
            fields["duration_ms"] = round(served.duration_ms, 3)
        else:
            fields["message"] = record.getMessage()
            # The kind of error only: its traceback would carry the values of a request.
            if record.exc_info and record.exc_info[0] is not None:
                fields["error"] = record.exc_info[0].__name__
        return json.dumps(fields)


class RequestLog:
    """ASGI middleware, the outermost: gives every HTTP response its `X-Request-ID` and logs
    the request to `charter.requests` once it is answered (see the module's docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter_ns()
        request_id = new_request_id()
        scope[REQUEST_ID_KEY] = request_id
        header = (_HEADER_NAME, request_id.encode())
        # What the client gets when the app raises before it answers: Starlette's plain 500.
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: the message's may be a response object's own, which must not grow.
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if log.isEnabledFor(logging.INFO):
                method = scope["method"]
                log.info(
                    Served(
                        method if method in _METHODS else OTHER_METHOD,
                        _template(scope),
                        status,
                        (time.perf_counter_ns() - started) / 1_000_000,
                        request_id,
                    )
                )


def _template(scope: Scope) -> str:
    # The router's route (it sees routes the Gate's table may not, /openapi.json included),
    # else the one the Gate matched, else none.
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    gated = scope.get(ROUTE_TEMPLATE_KEY)
    return gated if isinstance(gated, str) and gated else UNMATCHED
