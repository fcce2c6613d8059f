"""How commands speak: readable text for people on stdout, errors on stderr, JSON on request."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any, NoReturn

import typer

from charter.db import storable_time


def given_time(text: str) -> dt.datetime:
    """A time given on the command line, in ISO 8601; one without an offset is taken as UTC,
    as every time Charter shows. One that is not a time, or outside what Charter stores, is a
    usage error (`typer.BadParameter`)."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"'{text}' is not an ISO 8601 time, e.g. 2026-11-25 or 2026-11-25T09:30:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    if not storable_time(moment):
        raise typer.BadParameter(f"'{text}' is outside the years Charter stores (1000 to 9999)")
    return moment.astimezone(dt.UTC)


def json_time(moment: dt.datetime | None) -> str | None:
    """A time as the API's JSON writes it: UTC, with a `Z` (`2026-11-25T12:00:00Z`, the
    microseconds only when there are some), so that a script reads the CLI and the API
    alike."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def table_time(moment: dt.datetime | None, *, missing: str = "") -> str:
    """A time for a table that people read: UTC, to the second; `missing` for None."""
    if moment is None:
        return missing
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return json_time(value)
    return str(value)


def emit_json(value: Any) -> None:
    """Write one JSON document to stdout; datetimes in it are written as `json_time` does."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=_json_value) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error to stderr and exit; never a traceback."""
    sys.stderr.write(f"charter: {message}\n")
    raise SystemExit(code)
