"""Sealing again the values sealed before their labels were bound (seal version 1, see
`vault.sealing`).

The migration that bound the labels cannot reach the key store, so it records a `reseal`
procedure when it finds values to do; the next start does them in batches, each batch in its
own transaction, and records the procedure done. A value that does not open with its old
binding (no key, or altered) is left as it is: it reads as unreadable, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.db import Database
from charter.jobs.procedures import finish_procedure, unfinished
from charter.vault.crypto import DecryptionFailed
from charter.vault.keystore import KeyStore
from charter.vault.models import LogEvent, Record
from charter.vault.sealing import (
    SEAL_VERSION,
    event_ad,
    legacy_event_ad,
    legacy_record_ad,
    record_ad,
)

BATCH = 2000


def reseal_old_values(db: Database, keys: KeyStore, clock: Clock) -> int:
    """Finish a recorded `reseal` procedure, if there is one; how many values were sealed
    again."""
    with db.reading() as session:
        pending = unfinished(session, "reseal")
    if not pending:
        return 0
    records = _reseal(db, keys, Record, lambda r: legacy_record_ad(r.id, r.person_id), record_ad)
    events = _reseal(
        db,
        keys,
        LogEvent,
        lambda e: legacy_event_ad(e.uid, e.person_id),
        lambda e: event_ad(e.uid, e.person_id, e.kind, e.collection_point),
    )
    counts = {"records": records, "events": events}
    with db.writing() as session:
        for procedure in pending:
            finish_procedure(session, clock, procedure.id, details=counts)
        record(
            session,
            clock,
            Event(
                "recovery",
                "vault:values:resealed",
                "vault:values",
                details=counts,
            ),
        )
    return records + events


def _reseal(
    db: Database,
    keys: KeyStore,
    model: type[Record] | type[LogEvent],
    old: Callable[[Any], bytes],
    new: Callable[[Any], bytes],
) -> int:
    done, after = 0, None
    while True:
        with db.writing() as session:
            rows = _batch(session, model, after)
            if not rows:
                return done
            sealers = keys.sealers({row.person_id for row in rows}, create=False)
            for row in rows:
                sealer = sealers.get(row.person_id)
                if sealer is None:
                    continue
                try:
                    plain = sealer.open(row.sealed, old(row))
                except DecryptionFailed:
                    continue
                row.sealed = sealer.seal(plain, new(row))
                row.seal_version = SEAL_VERSION
                done += 1
            after = rows[-1].id


def _batch(session: Session, model: type[Record] | type[LogEvent], after: int | None) -> list[Any]:
    query = select(model).where(model.seal_version == 1).order_by(model.id).limit(BATCH)
    if after is not None:
        query = query.where(model.id > after)
    return list(session.scalars(query))
