"""Request dependencies: what a route may ask for."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from charter.policy.compiled import CompiledPolicy
from charter.web.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    if not isinstance(runtime, Runtime):  # pragma: no cover - set by create_app
        raise TypeError("app.state.runtime is not a Runtime")
    return runtime


def get_policy(runtime: Annotated[Runtime, Depends(get_runtime)]) -> CompiledPolicy:
    return runtime.policy


PolicyDep = Annotated[CompiledPolicy, Depends(get_policy)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
