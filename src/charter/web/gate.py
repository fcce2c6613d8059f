"""The Gate: every request passes it before the app reads a byte of the body.

For the route a request is for, the Gate knows from the route's `Permit`s what its caller
must be allowed to do and how large a body it takes. From the headers alone it refuses a
declared body over that size, a client past its limit of refused keys (429), a missing or
bad key (401) and a role without the permission (403, audited); only then does it read the
body, within the route's size and a time limit, and hand the request on with its `Actor`.
So an anonymous caller costs a header parse, however large a body it announces or however
slowly it sends it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from charter.loop_reads import Busy
from charter.staff.service import (
    KEY_LOOKUP_PG,
    Actor,
    AuthenticationFailed,
    admit,
    authenticate,
    key_row,
    record_permission_denied,
    split_key,
)
from charter.web.auth import SMALL_BODY_BYTES, permits_of
from charter.web.errors import database_unavailable, error_response
from charter.web.limits import declared_length, media_type_refusal, nul_refusal, read_body
from charter.web.requestlog import ROUTE_TEMPLATE_KEY
from charter.web.runtime import Runtime


@dataclass(frozen=True)
class Guard:
    """What a route asks of its callers: permissions (none for a public route) and a body
    size."""

    permissions: tuple[str, ...]
    body_bytes: int
    # The route reads a JSON body (a body of another type is refused, 415).
    takes_json: bool = False

    @classmethod
    def of(cls, route: RouteContext) -> Guard:
        if not isinstance(route.original_route, APIRoute):
            return _OPEN
        takes_json = route.original_route.body_field is not None
        permits = permits_of(route.dependant)
        if not permits:
            return cls((), SMALL_BODY_BYTES, takes_json)
        return cls(
            tuple(dict.fromkeys(p.permission for p in permits)),
            max(p.body_bytes for p in permits),
            takes_json,
        )


_OPEN = Guard((), SMALL_BODY_BYTES)
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


def _unauthenticated(failure: AuthenticationFailed) -> Response:
    # RFC 9110 s. 15.5.2: a 401 names the scheme that would be accepted.
    response = error_response(401, failure.code, failure.message)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _presented_key(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            key = key.strip()
            return key if scheme.lower() == "bearer" and key else None
    return None


class Gate:
    """ASGI middleware in front of the app's router (see the module's docstring)."""

    def __init__(self, app: ASGIApp, *, router: Router, runtime: Runtime) -> None:
        self.app = app
        self._router = router
        self._runtime = runtime
        # Routes are only known once the app is built, and a test may add one later: the
        # table of routes (as served, included routers flattened) and their guards is made
        # again whenever the router's routes change.
        self._built_for: tuple[int, ...] = ()
        # Bytes of bodies being read or served now, by what each may hold (one event loop: a
        # plain counter).
        self._buffered = 0
        self._table: list[tuple[RouteContext, Guard]] = []

    def _guard(self, scope: Scope) -> tuple[str | None, Guard]:
        routes = self._router.routes
        if tuple(map(id, routes)) != self._built_for:
            self._table = [(route, Guard.of(route)) for route in iter_route_contexts(routes)]
            self._built_for = tuple(map(id, routes))
        partial = None
        for route, guard in self._table:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return route.path, guard
            if match is Match.PARTIAL and partial is None:
                partial = route.path  # the path is a route's, the method is not (405)
        return partial, _OPEN

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route, guard = self._guard(scope)
        # For the request log, which names a request by its route even when it is refused here.
        scope[ROUTE_TEMPLATE_KEY] = route
        limit = min(guard.body_bytes, self._runtime.settings.max_body_bytes)
        declared, refusal = declared_length(scope, limit)
        if refusal is None and guard.permissions:
            refusal = await self._admit(scope, route or "", guard)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if scope.get("method") in _BODILESS:
            await self._read_and_serve(scope, receive, send, limit, takes_json=False)
            return
        # Each body read is held in memory until its request is done. A request reserves what
        # it may hold (its declared length, else its route's limit); past the budget a sender
        # is told to come back rather than let memory grow without bound. Many small bodies
        # fit at once, few large ones; one always does, however large its route allows.
        reserved = limit if declared is None else declared
        if self._buffered and self._buffered + reserved > self._runtime.settings.max_buffered_bytes:
            response = error_response(503, "overloaded", "too many requests at once; retry")
            response.headers["Retry-After"] = "1"
            await response(scope, receive, send)
            return
        self._buffered += reserved
        try:
            await self._read_and_serve(scope, receive, send, limit, takes_json=guard.takes_json)
        finally:
            self._buffered -= reserved

    async def _read_and_serve(
        self, scope: Scope, receive: Receive, send: Send, limit: int, *, takes_json: bool
    ) -> None:
        replaying, body, refusal = await read_body(
            receive, limit=limit, timeout_s=self._runtime.settings.body_timeout_s
        )
        refusal = refusal or nul_refusal(scope, body)
        if refusal is None and takes_json:
            refusal = media_type_refusal(scope, body)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, replaying or receive, send)

    async def _admit(self, scope: Scope, route: str, guard: Guard) -> Response | None:
        """None if the caller may pass (its `Actor` put in the scope's state), else the
        refusal to send."""
        runtime = self._runtime
        client = runtime.client_ref(scope)
        retry_after = runtime.attempts.retry_after(client, runtime.clock.now())
        if retry_after is not None:
            response = error_response(
                429,
                "too_many_attempts",
                f"too many refused keys from this client; try again in {retry_after} s",
            )
            response.headers["Retry-After"] = str(retry_after)
            return response
        try:
            actor = await self._authenticate(_presented_key(scope))
        except (OperationalError, PoolTimeout) as exc:
            return database_unavailable(exc)
        except AuthenticationFailed as failure:
            runtime.attempts.note(client, runtime.clock.now(), failure.code, failure.key_id)
            return _unauthenticated(failure)
        missing = [p for p in guard.permissions if p not in actor.permissions]
        if missing:
            method = scope.get("method", "")
            await run_in_threadpool(self._record_denied, actor, f"{method} {route}", missing[0])
            return error_response(
                403, "permission_denied", f"the role '{actor.role}' may not {missing[0]}"
            )
        scope.setdefault("state", {})["actor"] = actor
        return None

    async def _authenticate(self, presented: str | None) -> Actor:
        if presented is None:
            raise AuthenticationFailed(
                "an API key is required: Authorization: Bearer <key>", code="missing_key"
            )
        runtime = self._runtime
        db = runtime.db
        # The key's row is read on the event loop: handing the read to the thread pool and
        # back costs every request two switches between threads, more than the read. On
        # SQLite it is one indexed read of a local file; on PostgreSQL it goes by psycopg's
        # asyncio connections, which do not hold up the loop while the answer travels. When
        # those are all busy, or fail, the read goes to the thread pool as before.
        if db.reads_quickly:
            return self._check(db.quick_reading, presented)
        if runtime.loop_reads is not None:
            key_id, secret = split_key(presented)
            found = await runtime.loop_reads.one(KEY_LOOKUP_PG, {"key_id": key_id})
            if not isinstance(found, Busy):
                return admit(key_row(found), key_id, secret, runtime.clock, runtime.policy)
        return await run_in_threadpool(self._check, db.glancing, presented)

    def _check(self, reading: Callable[[], AbstractContextManager[Session]], key: str) -> Actor:
        runtime = self._runtime
        with reading() as session:
            return authenticate(session, runtime.clock, runtime.policy, key)

    def _record_denied(self, actor: Actor, route: str, permission: str) -> None:
        runtime = self._runtime
        with runtime.db.writing() as session:
            record_permission_denied(
                session, runtime.clock, actor=actor, route=route, permission=permission
            )
