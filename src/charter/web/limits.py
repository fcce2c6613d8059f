"""Reading a request body within its limits: a size per route and a time to send it in.

The body is read in full (up to the limit) before the app sees the request. Reading it as the
app asks for it would be too late: FastAPI turns any error raised while it reads a body into a
400, and a route that never reads its body would run with an oversize one. Charter takes no
uploads, so holding at most the route's limit per request is the price of a clear 413.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import orjson
from starlette.responses import Response
from starlette.types import Message, Receive, Scope

from charter.web.errors import error_response


def declared_length(scope: Scope, limit: int) -> tuple[int | None, Response | None]:
    """The body length the headers announce (None if they announce none), or a 400 or 413
    for a `Content-Length` that is not a number or is over `limit`; read from the headers
    alone, so it costs nothing whoever sends it."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            if not value.isdigit():
                return None, error_response(400, "bad_request", "Content-Length is not a number")
            if int(value) > limit:
                return None, too_large(limit)
            return int(value), None
    return None, None


def too_large(limit: int) -> Response:
    return error_response(413, "too_large", f"the request body is larger than {limit} bytes")


async def read_body(
    receive: Receive, *, limit: int, timeout_s: float
) -> tuple[Receive | None, bytes, Response | None]:
    """Read the whole body; a `receive` that replays it, the body, or the refusal to send
    instead: 413 past `limit` bytes, 408 if it is not all in within `timeout_s` (a slow
    sender must not hold a connection and its memory for as long as it likes)."""
    chunks: list[bytes] = []
    received = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    # The client went away before sending its body; let the app see that.
                    return replay([message], receive), b"", None
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    return None, b"", too_large(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        return (
            None,
            b"",
            error_response(
                408, "body_timeout", f"the request body did not arrive within {timeout_s:g} s"
            ),
        )
    body = b"".join(chunks)
    message = {"type": "http.request", "body": body, "more_body": False}
    return replay([message], receive), body, None


def media_type_refusal(scope: Scope, body: bytes) -> Response | None:
    """A 415 for a body sent as anything but JSON, to a route that takes JSON: without the
    header, the body would be read as a string and refused as an invalid one, which says
    nothing of the real mistake. An empty body needs no type."""
    if not body:
        return None
    content_type = next((v for k, v in scope.get("headers", ()) if k == b"content-type"), b"")
    media = content_type.split(b";", 1)[0].strip().lower()
    if media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    ):
        return None
    return error_response(
        415,
        "unsupported_media_type",
        "the body must be sent as JSON, with Content-Type: application/json",
        {"expected": "application/json"},
    )


def nul_refusal(scope: Scope, body: bytes) -> Response | None:
    """A 422 for a NUL character anywhere in the request: no database column holds one
    (PostgreSQL refuses it outright), so it is refused at the door, with a clear reason."""
    path, query = scope.get("raw_path") or b"", scope.get("query_string") or b""
    found = b"%00" in path.lower() or "\x00" in scope.get("path", "")
    found = found or b"%00" in query.lower() or b"\x00" in query or b"\x00" in body
    if not found and b"\\u0000" in body.lower():
        try:
            found = _holds_nul(orjson.loads(body))
        except orjson.JSONDecodeError:
            return None  # not JSON: the app's own refusal (malformed_json) says so
    if found:
        return error_response(
            422, "nul_character", "the request holds a NUL character (U+0000), which no field takes"
        )
    return None


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def replay(pending: Iterable[Message], receive: Receive) -> Receive:
    """A `receive` that hands out the messages already read, then reads on (disconnects)."""
    queue = list(pending)

    async def replaying() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replaying
