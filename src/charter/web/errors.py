"""Every error leaves the service as JSON `{"error": {"code", "message"}}` with a 4xx status,
or a plain 500 that says nothing about the inside."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from charter.audit.chain import record_refusal
from charter.errors import CharterError, RecordedRefusal, Unauthenticated
from charter.web.headers import add_security_headers
from charter.web.requestlog import REQUEST_ID_HEADER, request_id_of

log = logging.getLogger("charter.web")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
}


# A refusal says what was wrong, and part of that came from the request: a field name, a
# topic, a name in the path. No run of characters longer than this goes back whole: a client
# that put a long value (personal data, a token) where a name belongs does not get it echoed
# into its response logs, and the answer stays small.
ECHO_LIMIT = 64
_LONG_RUN = re.compile(rf"\S{{{ECHO_LIMIT + 1},}}")
# Messages quote what they echo ('name'): a quoted span is cut as one, spaces and all.
_LONG_QUOTED = re.compile(rf"'[^']{{{ECHO_LIMIT + 1},}}'")


def cut(text: str) -> str:
    """`text`, an echoed value, whole if it is at most ECHO_LIMIT characters, else its start."""
    return text if len(text) <= ECHO_LIMIT else text[: ECHO_LIMIT - 1] + "\u2026"


def shortened(text: str) -> str:
    """`text` with every quoted span and every run of non-blank characters longer than
    ECHO_LIMIT cut to its start."""
    text = _LONG_QUOTED.sub(lambda found: f"'{cut(found.group()[1:-1])}'", text)
    return _LONG_RUN.sub(lambda found: cut(found.group()), text)


def _shortened_all(value: Any) -> Any:
    if isinstance(value, str):
        return shortened(value)
    if isinstance(value, list | tuple):
        # Lists in details are the names concerned (fields, topics): each is cut whole.
        return [cut(item) if isinstance(item, str) else _shortened_all(item) for item in value]
    if isinstance(value, dict):
        return {cut(str(key)): _shortened_all(item) for key, item in value.items()}
    return value


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": shortened(message)}
    if details is not None:
        body["details"] = _shortened_all(details)
    return JSONResponse({"error": body}, status_code=status)


def _where(loc: tuple[Any, ...]) -> str:
    # Each part on its own, so that a long field name is cut and the path around it kept.
    return ".".join(cut(str(part)) for part in loc if part != "body") or "body"


async def _charter_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, CharterError):  # pragma: no cover - only registered for it
        raise TypeError(type(exc).__name__)
    if isinstance(exc, RecordedRefusal):
        # Its unit of work rolled back; what it found is recorded in one of its own.
        runtime = request.app.state.runtime
        actor = getattr(request.state, "actor", None)
        await run_in_threadpool(
            record_refusal,
            runtime.db,
            runtime.clock,
            exc,
            actor=actor.ref if actor is not None else "public",
        )
    # RFC 9110 s. 15.5.2: a 401 names the scheme that would be accepted.
    response = error_response(exc.status, exc.code, exc.message, exc.details)
    response.headers.update(exc.headers)
    if isinstance(exc, Unauthenticated):
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover - only registered for it
        raise TypeError(type(exc).__name__)
    details = []
    for item in exc.errors():
        loc = tuple(item.get("loc", ()))
        if item.get("type") == "json_invalid":
            return error_response(400, "malformed_json", "the request body is not valid JSON")
        # Echoing the input back could put personal data in a response log; say where only.
        details.append({"field": _where(loc), "problem": item.get("msg", "invalid")})
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details[:5])
    return error_response(422, "invalid_request", f"the request is not valid: {summary}", details)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, HTTPException):  # pragma: no cover - only registered for it
        raise TypeError(type(exc).__name__)
    code = _HTTP_CODES.get(exc.status_code, "error")
    response = error_response(exc.status_code, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    return database_unavailable(exc)


def database_unavailable(exc: Exception) -> JSONResponse:
    """The answer when the database did not answer, or the pool had no connection to give in
    time: a state of the service, not a mistake of the request. The caller may retry."""
    log.warning("the database is unavailable: %s", type(exc).__name__)
    response = error_response(
        503, "database_unavailable", "the database is not answering; retry in a moment"
    )
    response.headers["Retry-After"] = "1"
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error: %s", type(exc).__name__)
    response = error_response(500, "internal_error", "Charter could not complete the request")
    # Starlette sends this answer from outside every middleware, SecurityHeaders and
    # RequestLog included.
    add_security_headers(response.headers)
    request_id = request_id_of(request.scope)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


class NoTracebacks(logging.Filter):
    """Keeps a traceback's frames and message out of the log: the message of a database
    error holds its SQL and a request's values; the log keeps the kind of error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None:
            record.msg = f"{record.getMessage().strip()} ({record.exc_info[0].__name__})"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def keep_tracebacks_out_of_logs() -> None:
    """Put `NoTracebacks` on the loggers that report errors while serving."""
    for name in ("uvicorn.error", "uvicorn.asgi", "charter.web"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoTracebacks) for f in logger.filters):
            logger.addFilter(NoTracebacks())


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CharterError, _charter_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
