"""The app factory: wiring only. Routes live in `web/routes/`, rules in the features."""

from __future__ import annotations

from fastapi import FastAPI

from charter.clock import Clock, SystemClock
from charter.db import Database
from charter.policy.compiled import CompiledPolicy
from charter.settings import Settings
from charter.vault.keystore import KeyStore
from charter.web.background import lifespan
from charter.web.contract import document_refusals
from charter.web.errors import install_error_handlers
from charter.web.gate import Gate
from charter.web.headers import SecurityHeaders
from charter.web.requestlog import RequestLog
from charter.web.routes import (
    audit,
    choices,
    collection,
    disclosures,
    docs,
    events,
    health,
    lookup,
    people,
    policy,
    public,
    requests,
    selections,
    staff,
)
from charter.web.runtime import Runtime


def create_app(
    settings: Settings,
    compiled: CompiledPolicy,
    db: Database,
    keys: KeyStore,
    *,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the ASGI app for one loaded policy, its database and its key store."""
    app = FastAPI(
        title="Charter",
        summary="OMNI's privacy policy, kept at run time.",
        version=compiled.version,
        # /docs is served by routes/docs.py, with a Content-Security-Policy of its own; no
        # OAuth2 redirect page: Charter's keys are bearer keys, typed into the page.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    runtime = Runtime(
        settings=settings, policy=compiled, db=db, keys=keys, clock=clock or SystemClock()
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    routers = (
        health,
        policy,
        docs,
        public,
        staff,
        audit,
        collection,
        events,
        people,
        lookup,
        choices,
        selections,
        disclosures,
        requests,
    )
    for module in routers:
        document_refusals(module.router)
        app.include_router(module.router)
    app.add_middleware(Gate, router=app.router, runtime=runtime)
    # Outside the Gate: its refusals carry the headers too.
    app.add_middleware(SecurityHeaders)
    # Added last, so outermost: every answer is logged and carries its X-Request-ID, the
    # Gate's refusals included.
    app.add_middleware(RequestLog)
    return app
