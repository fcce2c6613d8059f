"""Exit 0 if the test PostgreSQL answers, 1 if not: `python -m tests.postgres_ready`."""

from __future__ import annotations

import os
import sys

import psycopg


def main() -> int:
    url = os.environ.get(
        "CHARTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    try:
        psycopg.connect(
            url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3
        ).close()
    except psycopg.Error:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
