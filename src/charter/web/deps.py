"""Request dependencies: what a route may ask for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

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


PolicyDep = Annotated[CompiledPolicy, Depends(get_policy)]
ReadSession = Annotated[Session, Depends(read_session, scope="function")]
# There is no write-session dependency on purpose. A route opens its unit of work itself,
# `with runtime.db.writing() as session:`, so that the write lock is taken and released
# within the one worker thread that runs the route. A dependency would hold it across the
# thread pool's hand-offs, and enough waiting writers would take every thread the lock
# holder needs to finish (a deadlock). The unit commits before the route returns, so an
# acknowledged write is a committed one.
