"""The app as each worker process of `charter serve` builds it (CHARTER_WORKERS > 1)."""

from __future__ import annotations

from fastapi import FastAPI

from charter.boot import boot
from charter.clock import SystemClock
from charter.settings import Settings
from charter.web.app import create_app


def app_from_environment() -> FastAPI:
    """Boot from the CHARTER_* settings and build the app: uvicorn's factory for workers."""
    settings = Settings.from_env()
    clock = SystemClock()
    booted = boot(settings, clock)
    return create_app(settings, booted.policy, booted.db, booted.keys, clock=clock)
