"""A separate Charter process for the concurrency tests: `python writer.py MODE URL [N] [NAME]`.

It opens the database, prints `ready`, and waits for a line on stdin before it starts, so
the test can release every process at once. Modes:
- `append`: append N audit entries, one per transaction, each naming this writer;
- `migrate`: bring the schema up to date (several processes starting on one new database).
"""

from __future__ import annotations

import sys

from charter import migrations
from charter.audit.chain import Event, record
from charter.clock import SystemClock
from charter.db import Database


def main(argv: list[str]) -> int:
    mode, url = argv[0], argv[1]
    db = Database.connect(url)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    try:
        if mode == "append":
            count, name = int(argv[2]), argv[3]
            clock = SystemClock()
            for number in range(count):
                with db.writing() as session:
                    record(
                        session,
                        clock,
                        Event(f"writer:{name}", "test:entry:appended", f"n:{number}"),
                    )
        elif mode == "migrate":
            migrations.upgrade(db.engine)
        else:
            raise ValueError(f"unknown mode {mode!r}")
    finally:
        db.dispose()
    sys.stdout.write("done\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
