"""Request dependencies: what a route may ask for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from charter.errors import Forbidden, TooManyRequests
from charter.policy.compiled import CompiledPolicy
from charter.web.runtime import Runtime


# `async` where nothing blocks: FastAPI runs a sync dependency in the thread pool, and each
# hop there costs more than these functions do.
async def get_runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    if not isinstance(runtime, Runtime):  # pragma: no cover - set by create_app
        raise TypeError("app.state.runtime is not a Runtime")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_policy(runtime: RuntimeDep) -> CompiledPolicy:
    return runtime.policy


def read_session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.db.reading() as session:
        yield session


def gpc_signal(header: str | None) -> bool:
    """Whether a forwarded `Sec-GPC` header carries the person's Global Privacy Control
    signal (the specification: the value "1")."""
    return (header or "").strip() == "1"


PolicyDep = Annotated[CompiledPolicy, Depends(get_policy)]
ReadSession = Annotated[Session, Depends(read_session, scope="function")]
# There is no write-session dependency on purpose. A route opens its unit of work itself,
# `with runtime.db.writing() as session:`, so that the write lock is taken and released
# within the one worker thread that runs the route. A dependency would hold it across the
# thread pool's hand-offs, and enough waiting writers would take every thread the lock
# holder needs to finish (a deadlock). The unit commits before the route returns, so an
# acknowledged write is a committed one.


async def public_caller(
    request: Request,
    runtime: RuntimeDep,
    origin: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> str:
    """Dependency of the routes anyone may call: a page may call them only from an origin
    in CHARTER_ALLOWED_ORIGINS (or Charter's own), and each client only so often. Returns
    how the client is named (a keyed digest of its address)."""
    if origin is not None:
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin.rstrip("/") not in runtime.settings.allowed_origins | {own}:
            raise Forbidden(
                "this origin may not call Charter's public routes (CHARTER_ALLOWED_ORIGINS)",
                code="origin_not_allowed",
            )
    client = runtime.client_ref(request.scope)
    wait = runtime.public_limit.take(client, runtime.clock.now())
    if wait is not None:
        raise TooManyRequests(
            f"too many requests from this client; try again in {wait} s",
            retry_after=wait,
            code="too_many_requests",
        )
    return client


PublicCaller = Annotated[str, Depends(public_caller)]


async def persons_browser(
    request: Request,
    client: PublicCaller,
    origin: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> str:
    """Dependency of the public routes that widen what may be used (a consent receipt): the
    call comes from a page of an allowed origin in the person's browser, which always sends
    its `Origin` on such a call, and carries no service key (a caller with a key is a
    service speaking for itself, and a service may only narrow a person's choices)."""
    if origin is None:
        raise Forbidden(
            "only the person's browser asks for this, from a page of an allowed origin "
            "(no Origin header was sent)",
            code="origin_required",
        )
    if "authorization" in request.headers:
        raise Forbidden(
            "a caller with a key is a service, not the person: a consent is the person's own",
            code="not_the_person",
        )
    return client


PersonsBrowser = Annotated[str, Depends(persons_browser)]
