"""The door: every non-public route asks for a `Permit`, which names the permission its
caller's role must hold. The key is checked by the `Gate` (web/gate.py) from the headers,
before a byte of the body is read; the `Permit` hands the route the `Actor` it admitted."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from charter.errors import Unauthenticated
from charter.policy.schema import Permission
from charter.staff.service import Actor

# Routes anyone may call. Everything else must depend on a Permit (tests/web/test_guards.py).
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/policy",
        "/v1/policy",
        "/v1/datamap",
        "/docs",
        "/docs/assets/{name}",
        "/redoc",
        "/openapi.json",
        "/v1/public/consent-receipts",
        "/v1/public/requests",
        "/v1/public/requests/verify",
    }
)

# What a request body may weigh unless its route says otherwise: every body but a batch of
# events is a few fields.
SMALL_BODY_BYTES = 64 * 1024
# A submission to a form: a résumé or a letter among its fields.
FORM_BODY_BYTES = 2 * 1024 * 1024
# A batch of events: as much as CHARTER_MAX_BODY_BYTES allows.
BULK_BODY_BYTES = 2**31

# Declares the Bearer scheme of every guarded route in the OpenAPI document ("Authorize" in
# /docs); the Gate has already read the header itself.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key from `charter keys create`.")


class Permit:
    """Dependency: the calling `Actor`, whose key the Gate found good and whose role may
    `permission`. `body_bytes` is the largest body the route takes (capped by
    CHARTER_MAX_BODY_BYTES)."""

    def __init__(self, permission: Permission, *, body_bytes: int = SMALL_BODY_BYTES) -> None:
        self.permission = permission
        self.body_bytes = body_bytes

    async def __call__(
        self,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> Actor:
        actor = request.scope.get("state", {}).get("actor")
        if not isinstance(actor, Actor) or self.permission not in actor.permissions:
            # Only an app served without its Gate gets here; refuse rather than serve.
            raise Unauthenticated("an API key is required", code="missing_key")
        return actor


def permits_of(dependant: Dependant) -> list[Permit]:
    """Every `Permit` a route relies on, however deep in its sub-dependencies (a router's
    own dependencies included)."""
    found = []
    for sub in dependant.dependencies:
        if isinstance(sub.call, Permit):
            found.append(sub.call)
        found.extend(permits_of(sub))
    return found
