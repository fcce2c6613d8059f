"""`charter serve`: serve the API and pages on CHARTER_HOST:CHARTER_PORT."""

from __future__ import annotations

import typer

from charter.boot import StartupError, boot, prepare_home
from charter.cli import context
from charter.cli.output import fail

app = typer.Typer()


@app.callback(invoke_without_command=True)
def serve() -> None:
    """Serve Charter until interrupted (Ctrl-C)."""
    import uvicorn  # noqa: PLC0415 - the web stack is loaded only by the command that serves

    from charter.web.server import serving_app  # noqa: PLC0415 - same reason

    settings = context.settings()
    try:
        prepare_home(settings)
        booted = boot(settings, context.clock)
    except StartupError as exc:
        fail(str(exc))
        return
    base = f"http://{settings.host}:{settings.port}"
    typer.echo(
        f"Charter {booted.policy.version} on {base}"
        + (f" ({settings.workers} processes)" if settings.workers > 1 else "")
        + f"\n  policy page: {base}/policy\n  API docs:    {base}/docs"
    )
    if settings.workers > 1:
        from charter.web.workers import Supervisor, WorkerFailed  # noqa: PLC0415 - same reason

        # Each worker process boots on its own (server.app_from_environment); this one only
        # checked above that they can.
        booted.close()
        try:
            Supervisor(settings.host, settings.port, settings.workers).run()
        except WorkerFailed as exc:
            fail(str(exc))
        return
    try:
        uvicorn.run(
            serving_app(settings, booted, context.clock),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
        )
    finally:
        booted.close()
