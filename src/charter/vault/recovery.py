"""What a start finishes: erasures interrupted after their intent, and data keys made for
transactions that never committed.

Run at every start of Charter (`boot`), by `charter people resume-erasures`, and every few
minutes by a serving process. Several processes may run it at once: each step is safe to
repeat and takes its turn on the rows it changes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.db import Database, select_in
from charter.vault.erasure import ErasureReceipt, resume_erasures
from charter.vault.keystore import KeyStore

# A key not yet settled this long after it was made belongs to a transaction that is over:
# none of Charter's transactions lasts minutes.
KEY_GRACE = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class Recovery:
    erasures: tuple[ErasureReceipt, ...]
    keys_kept: int
    orphaned_keys_destroyed: int


def settle_keys(
    db: Database, keys: KeyStore, clock: Clock, *, created_before: dt.datetime
) -> tuple[int, int]:
    """Settle the keys made before `created_before`: kept if their person exists in the data,
    destroyed if not (its transaction rolled back). Returns (kept, destroyed)."""
    candidates = keys.unsettled(created_before)
    if not candidates:
        return 0, 0
    with db.reading() as session:
        existing = {
            row[0]
            for row in select_in(
                session.connection(), "SELECT id FROM people WHERE id IN ({marks})", candidates
            )
        }
    orphaned = [person_id for person_id in candidates if person_id not in existing]
    destroyed = keys.settle([p for p in candidates if p in existing], orphaned)
    if destroyed:
        with db.writing() as session:
            record(
                session,
                clock,
                Event(
                    "recovery",
                    "vault:keys:orphans_destroyed",
                    "vault:keys",
                    details={"keys": destroyed},
                ),
            )
    return len(candidates) - len(orphaned), destroyed


def recover(
    db: Database,
    keys: KeyStore,
    clock: Clock,
    *,
    key_grace: dt.timedelta = KEY_GRACE,
) -> Recovery:
    """Finish interrupted erasures, then settle keys older than `key_grace`."""
    erasures = resume_erasures(db, keys, clock)
    kept, destroyed = settle_keys(db, keys, clock, created_before=clock.now() - key_grace)
    return Recovery(tuple(erasures), kept, destroyed)
