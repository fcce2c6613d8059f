"""The door: every non-public route asks for a `Permit`, which authenticates the bearer key
and checks that the caller's role has the route's permission."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

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
        "/openapi.json",
    }
)

_bearer = HTTPBearer(auto_error=False, description="An API key from `charter keys create`.")


class Permit:
    """Dependency: the calling `Actor`, if their key is good and their role may `permission`."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(
        self,
        runtime: RuntimeDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Actor:
        if credentials is None or credentials.scheme.lower() != "bearer":
            failure = AuthenticationFailed(
                "an API key is required: Authorization: Bearer <key>", code="missing_key"
            )
            await run_in_threadpool(self._audit, runtime, failure, None)
            raise failure
        presented = credentials.credentials
        try:
            # On SQLite the key's row is read right here: one indexed read of a local file
            # takes less than handing the work to the thread pool and back, which costs every
            # request two switches between threads. PostgreSQL's round trip over the network
            # must not hold up the event loop, so there it goes to the pool.
            db = runtime.db
            if db.reads_quickly:
                actor = self._authenticate(db.quick_reading, runtime, presented)
            else:
                actor = await run_in_threadpool(self._authenticate, db.reading, runtime, presented)
        except AuthenticationFailed as failure:
            # A refusal is written to the audit log: a write, which waits for the write
            # lock, so never on the event loop.
            await run_in_threadpool(self._audit, runtime, failure, presented_key_id(presented))
            raise
        if self.permission not in actor.permissions:
            raise Forbidden(
                f"the role '{actor.role}' may not {self.permission}", code="permission_denied"
            )
        return actor

    @staticmethod
    def _authenticate(
        reading: Callable[[], AbstractContextManager[Session]], runtime: RuntimeDep, presented: str
    ) -> Actor:
        with reading() as session:
            return authenticate(session, runtime.clock, runtime.policy, presented)

    @staticmethod
    def _audit(runtime: RuntimeDep, failure: AuthenticationFailed, key_id: str | None) -> None:
        with runtime.db.writing() as session:
            record_failed_authentication(session, runtime.clock, code=failure.code, key_id=key_id)
