"""The app as a serving process builds it: `charter serve` itself, or each of its workers
(CHARTER_WORKERS > 1), with the settings of the process that serve it best, and how that
process speaks to its clients: HTTPS with the configured certificate, or plain HTTP on a
loopback address or behind a TLS proxy."""

from __future__ import annotations

import copy
import gc
import ipaddress
import socket
import ssl
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG

from charter.boot import Booted, StartupError, boot
from charter.clock import Clock, SystemClock
from charter.settings import Settings
from charter.web.app import create_app
from charter.web.errors import keep_tracebacks_out_of_logs
from charter.web.requestlog import JsonLines, TextLines
from charter.web.workers import BACKLOG

# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
# A request that holds the database's write lock gives up the GIL while SQLite works, and
# then waits for it again behind the event loop and the other request threads; at 5 ms a
# turn, every writer queued on the lock waits that much longer. With the load of
# `make bench BENCH=choices` (ten clients, two workers), run in 5-second rounds: about 650
# requests/s at 5 ms, 800 to 900 at 1 ms.
SWITCH_INTERVAL_S = 0.001


def check_transport(settings: Settings) -> None:
    """Refuse what would serve personal data in clear text or fail only once serving: plain
    HTTP on an address other hosts reach without a TLS proxy in front, or a certificate and key
    that TLS cannot use. Raises `StartupError`, before anything is bound or written."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                settings.tls_cert, settings.tls_key
            )
        except (OSError, ssl.SSLError) as exc:
            raise StartupError(
                f"cannot serve TLS with CHARTER_TLS_CERT={settings.tls_cert} and "
                f"CHARTER_TLS_KEY={settings.tls_key}: {exc.strerror or exc}"
            ) from None
        return
    if settings.behind_proxy or _is_loopback(settings.host):
        return
    raise StartupError(
        f"refusing to serve {settings.host}:{settings.port} in clear text: set CHARTER_TLS_CERT "
        "and CHARTER_TLS_KEY, or CHARTER_BEHIND_PROXY=1 if a TLS proxy fronts Charter"
    )


def _is_loopback(host: str) -> bool:
    """Whether `host` reaches this machine only (a host name: every address it resolves to)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False  # no address at all: the bind will say so
    return all(ipaddress.ip_address(str(info[4][0])).is_loopback for info in found)


def base_url(settings: Settings) -> str:
    scheme = "https" if settings.tls_cert is not None else "http"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"{scheme}://{host}:{settings.port}"


def logging_config(log_format: str) -> dict[str, Any]:
    """uvicorn's logging (`logging.config.dictConfig`), with the request log beside it on
    stderr; with `json`, uvicorn's lines and Charter's warnings are JSON objects too, so that
    every line of stderr parses."""
    # A copy: uvicorn writes into the configuration it is given.
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    lines = JsonLines if log_format == "json" else TextLines
    config["formatters"]["charter"] = {"()": lines}
    config["handlers"]["charter"] = {
        "class": "logging.StreamHandler",
        "formatter": "charter",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["charter.requests"] = {
        "handlers": ["charter"],
        "level": "INFO",
        "propagate": False,
    }
    if log_format == "json":
        config["handlers"]["default"]["formatter"] = "charter"
        # At the level Charter's warnings had before (the root logger's), now on the handler.
        config["loggers"]["charter"] = {
            "handlers": ["charter"],
            "level": "WARNING",
            "propagate": False,
        }
    return config


def server_config(settings: Settings, app: FastAPI | str, **options: Any) -> Any:
    """The uvicorn configuration every serving process uses (a `uvicorn.Config`)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        backlog=BACKLOG,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        # Without a proxy in front, X-Forwarded-* come from clients: never believed (uvicorn
        # would believe them from any process on this machine).
        proxy_headers=settings.behind_proxy,
        forwarded_allow_ips=list(settings.trusted_proxies),
        server_header=False,
        log_config=logging_config(settings.log_format),
        log_level="warning",
        # uvicorn's access log prints the path as asked (identifiers in it) and the client's
        # address: web/requestlog.py logs each request instead.
        access_log=False,
        **options,
    )


def serving_app(settings: Settings, booted: Booted, clock: Clock) -> FastAPI:
    """The app, and the process set up to serve it."""
    app = create_app(settings, booted.policy, booted.db, booted.keys, clock=clock)
    keep_tracebacks_out_of_logs()
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
