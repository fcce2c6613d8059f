"""Refusals that a client can cause: each has a stable code and says why in words."""

from __future__ import annotations

from typing import Any


class CharterError(Exception):
    """Base of every refusal. `code` is stable; `message` is for people; `status` for HTTP."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class NotFound(CharterError):
    status = 404
    code = "not_found"


class Conflict(CharterError):
    status = 409
    code = "conflict"


class Unprocessable(CharterError):
    status = 422
    code = "unprocessable"


class Unauthenticated(CharterError):
    status = 401
    code = "unauthenticated"


class Forbidden(CharterError):
    status = 403
    code = "forbidden"
