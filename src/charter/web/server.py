"""The app as each worker process of `charter serve` builds it (CHARTER_WORKERS > 1)."""

from __future__ import annotations

import sys

from fastapi import FastAPI

from charter.boot import boot
from charter.clock import SystemClock
from charter.settings import Settings
from charter.web.app import create_app

# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
# A request that holds the database's write lock gives up the GIL while SQLite works, and
# then waits for it again behind the event loop and the other request threads; at 5 ms a
# turn, every writer queued on the lock waits that much longer. At 1 ms saving choices
# with ten clients went from about 650 to about 850 requests/s (`make bench BENCH=choices`).
SWITCH_INTERVAL_S = 0.001


def tune_process() -> None:
    """Settings of the serving process itself, applied by `charter serve` and each worker."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def app_from_environment() -> FastAPI:
    """Boot from the CHARTER_* settings and build the app: uvicorn's factory for workers."""
    tune_process()
    settings = Settings.from_env()
    clock = SystemClock()
    booted = boot(settings, clock)
    return create_app(settings, booted.policy, booted.db, booted.keys, clock=clock)
