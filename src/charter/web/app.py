"""The app factory: wiring only. Routes live in `web/routes/`, rules in the features."""

from __future__ import annotations

from fastapi import FastAPI

from charter.clock import Clock, SystemClock
from charter.policy.compiled import CompiledPolicy
from charter.settings import Settings
from charter.web.errors import install_error_handlers
from charter.web.limits import BodySizeLimit
from charter.web.routes import health, policy
from charter.web.runtime import Runtime


def create_app(
    settings: Settings,
    compiled: CompiledPolicy,
    *,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the ASGI app for one loaded policy."""
    app = FastAPI(
        title="Charter",
        summary="OMNI's privacy policy, kept at run time.",
        version=compiled.version,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.runtime = Runtime(settings=settings, policy=compiled, clock=clock or SystemClock())
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(policy.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
