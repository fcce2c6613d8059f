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


def write_session(runtime: RuntimeDep) -> Iterator[Session]:
    # scope="function" below: the unit of work commits before the response is sent, so an
    # acknowledged write is a committed one.
    with runtime.db.writing() as session:
        yield session


PolicyDep = Annotated[CompiledPolicy, Depends(get_policy)]
ReadSession = Annotated[Session, Depends(read_session, scope="function")]
WriteSession = Annotated[Session, Depends(write_session, scope="function")]
