"""Refusals that a client can cause: each has a stable code and says why in words."""

from __future__ import annotations

from typing import Any


def quoted(names: Any) -> str:
    """Names a caller gave, each quoted, so that a refusal echoing them can cut each one."""
    return ", ".join(f"'{name}'" for name in names)


class CharterError(Exception):
    """Base of every refusal. `code` is stable; `message` is for people; `status` for HTTP."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers or {}


class RecordedRefusal(CharterError):
    """A refusal that the audit log keeps although the unit of work it stopped rolls back
    (tampering found while writing): one entry of `action` per target, with `details`. The
    face that answers it records them in a unit of their own (`audit.chain.record_refusal`)."""

    action = "refusal"

    def __init__(
        self,
        message: str,
        *,
        targets: tuple[str, ...] = (),
        details: dict[str, Any] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.targets = targets
        self.recorded_details = details or {}


class NotFound(CharterError):
    status = 404
    code = "not_found"


class Conflict(CharterError):
    status = 409
    code = "conflict"


class Unprocessable(CharterError):
    status = 422
    code = "unprocessable"


class UnsupportedMediaType(CharterError):
    status = 415
    code = "unsupported_media_type"


class Unauthenticated(CharterError):
    status = 401
    code = "unauthenticated"


class Forbidden(CharterError):
    status = 403
    code = "forbidden"


class Gone(CharterError):
    status = 410
    code = "gone"


class TooManyRequests(CharterError):
    """Past a rate limit; `Retry-After` says when to come back."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(retry_after)})
