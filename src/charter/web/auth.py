"""The door: every non-public route asks for a `Permit`, which authenticates the bearer key
and checks that the caller's role has the route's permission."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from charter.errors import Forbidden
from charter.policy.schema import Permission
from charter.staff.service import (
    Actor,
    AuthenticationFailed,
    authenticate,
    presented_key_id,
    record_failed_authentication,
)
from charter.web.deps import RuntimeDep

# Routes anyone may call. Everything else must depend on a Permit (tests/web/test_guards.py).
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/policy",
        "/v1/policy",
        "/v1/datamap",
        "/docs",
        "/docs/oauth2-redirect",
        "/openapi.json",
    }
)

_bearer = HTTPBearer(auto_error=False, description="An API key from `charter keys create`.")


class Permit:
    """Dependency: the calling `Actor`, if their key is good and their role may `permission`."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def __call__(
        self,
        runtime: RuntimeDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Actor:
        if credentials is None or credentials.scheme.lower() != "bearer":
            failure = AuthenticationFailed(
                "an API key is required: Authorization: Bearer <key>", code="missing_key"
            )
            self._audit(runtime, failure, None)
            raise failure
        try:
            with runtime.db.reading() as session:
                actor = authenticate(
                    session, runtime.clock, runtime.policy, credentials.credentials
                )
        except AuthenticationFailed as failure:
            self._audit(runtime, failure, presented_key_id(credentials.credentials))
            raise
        if self.permission not in actor.permissions:
            raise Forbidden(
                f"the role '{actor.role}' may not {self.permission}", code="permission_denied"
            )
        return actor

    @staticmethod
    def _audit(runtime: RuntimeDep, failure: AuthenticationFailed, key_id: str | None) -> None:
        with runtime.db.writing() as session:
            record_failed_authentication(session, runtime.clock, code=failure.code, key_id=key_id)
