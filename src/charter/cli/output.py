"""How commands speak: readable text for people on stdout, errors on stderr, JSON on request."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn


def emit_json(value: Any) -> None:
    """Write one JSON document to stdout."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error to stderr and exit; never a traceback."""
    sys.stderr.write(f"charter: {message}\n")
    raise SystemExit(code)
