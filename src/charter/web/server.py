"""The app as a serving process builds it: `charter serve` itself, or each of its workers
(CHARTER_WORKERS > 1), with the settings of the process that serve it best."""

from __future__ import annotations

import gc
import sys

from fastapi import FastAPI

from charter.boot import Booted, boot
from charter.clock import Clock, SystemClock
from charter.settings import Settings
from charter.web.app import create_app

# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
# A request that holds the database's write lock gives up the GIL while SQLite works, and
# then waits for it again behind the event loop and the other request threads; at 5 ms a
# turn, every writer queued on the lock waits that much longer. With the load of
# `make bench BENCH=choices` (ten clients, two workers), run in 5-second rounds: about 650
# requests/s at 5 ms, 800 to 900 at 1 ms.
SWITCH_INTERVAL_S = 0.001


def serving_app(settings: Settings, booted: Booted, clock: Clock) -> FastAPI:
    """The app, and the process set up to serve it."""
    app = create_app(settings, booted.policy, booted.db, booted.keys, clock=clock)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # What start-up loaded (modules, the compiled policy, the app) lives as long as the
    # process: frozen, the collector no longer walks it on every full collection. A batch
    # of 1,000 events allocates enough to set off one every 30 batches or so, and each
    # walked the ~130,000 objects loaded at start (about 2.6 ms a batch, amortised).
    gc.freeze()
    return app


def app_from_environment() -> FastAPI:
    """Boot from the CHARTER_* settings and build the app: uvicorn's factory for workers."""
    settings = Settings.from_env()
    clock = SystemClock()
    return serving_app(settings, boot(settings, clock), clock)
