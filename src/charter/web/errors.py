"""Every error leaves the service as JSON `{"error": {"code", "message"}}` with a 4xx status,
or a plain 500 that says nothing about the inside."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from charter.errors import CharterError, Unauthenticated

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


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status)


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "body") or "body"


async def _charter_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, CharterError):  # pragma: no cover - only registered for it
        raise TypeError(type(exc).__name__)
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


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error: %s", type(exc).__name__)
    return error_response(500, "internal_error", "Charter could not complete the request")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CharterError, _charter_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
