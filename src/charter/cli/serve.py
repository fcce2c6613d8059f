"""`charter serve`: serve the API and pages on CHARTER_HOST:CHARTER_PORT.

The order makes a failure cheap and honest: check the transport (TLS, a loopback address, or
a TLS proxy in front), bind the port, boot (which records `policy:version:loaded`), and only
then announce. A port that is taken, or a certificate that does not load, leaves nothing
behind: no audit entry, no "Charter on ..." line. It serves an existing data folder only
(`charter init` makes one).
"""

from __future__ import annotations

import contextlib

import typer

from charter.boot import StartupError, boot
from charter.cli import context
from charter.cli.output import fail


def command() -> None:
    """Serve Charter until interrupted (Ctrl-C)."""
    import uvicorn  # noqa: PLC0415 - only the command that serves loads the web stack

    from charter.web import server, workers  # noqa: PLC0415 - as above

    settings = context.settings()
    try:
        server.check_transport(settings)
        if settings.workers > 1:
            sockets = workers.listening_sockets(settings.host, settings.port, settings.workers)
        else:
            # One process: a socket of its own, that no other server can share the port with.
            sockets = [workers.listening_socket(settings.host, settings.port, shared=False)]
    except (StartupError, workers.WorkerFailed) as exc:
        fail(str(exc))
    with contextlib.ExitStack() as cleanup:
        for sock in sockets:
            cleanup.callback(sock.close)
        try:
            booted = boot(settings, context.clock)
        except StartupError as exc:
            fail(str(exc))
        cleanup.callback(booted.close)
        base = server.base_url(settings)
        typer.echo(
            f"Charter {booted.policy.version} on {base}"
            + (f" ({settings.workers} processes)" if settings.workers > 1 else "")
            + f"\n  policy page: {base}/policy\n  API docs:    {base}/docs"
        )
        if settings.workers > 1:
            # Each worker process boots on its own (server.app_from_environment); this one
            # only checked above that they can.
            booted.close()
            try:
                workers.Supervisor(sockets).run()
            except workers.WorkerFailed as exc:
                fail(str(exc))
            return
        app = server.serving_app(settings, booted, context.clock)
        uvicorn.Server(server.server_config(settings, app)).run(sockets=sockets)
