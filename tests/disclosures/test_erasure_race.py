"""A disclosure and an erasure of the same person at once, on PostgreSQL: the disclosure
holds the person's row shared until it commits, so the erasure waits for it and a
disclosure never lands after the erasure that should have stopped it (C21, C22)."""

from __future__ import annotations

import threading
import time

import pytest

from charter.clock import FixedClock
from charter.db import Database
from charter.disclosures.guards import DisclosureRequest
from charter.disclosures.ledger import record_disclosure, requester_of
from charter.policy.compiled import CompiledPolicy
from charter.staff.service import Actor
from charter.vault.erasure import erase_person
from charter.vault.keystore import SqlKeyStore
from charter.vault.people import new_person
from tests.conftest import BACKEND
from tests.vault.test_erasure import _people_waiting_for_a_lock

pytestmark = [
    pytest.mark.clause("C21"),
    pytest.mark.skipif(
        BACKEND != "postgres", reason="SQLite runs one writer at a time: nothing can overlap"
    ),
]

OFFICER = Actor(staff_id=3, key_id="k" * 12, role="privacy_officer", permissions=frozenset())


def test_an_erasure_waits_for_a_disclosure_of_the_person_under_way(
    committed_db: Database, keys: SqlKeyStore, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    with committed_db.writing() as session:
        person = new_person(session, clock, "user").id
    request = DisclosureRequest(
        "cloud_hosting", "service_support", ("contact.email",), requester_of(OFFICER)
    )
    erasure = threading.Thread(
        target=erase_person,
        args=(committed_db, keys, clock),
        kwargs={"actor": "test", "person_id": person},
    )
    with committed_db.writing() as session:
        answer = record_disclosure(
            session,
            clock,
            omni_compiled,
            actor=OFFICER,
            request=request,
            people=[person],
            idempotency_key="race-1",
        )
        assert answer.disclosed == 1
        # Decided, not committed: the erasure must wait for it, not finish around it.
        erasure.start()
        deadline = time.monotonic() + 60
        while erasure.is_alive() and not _people_waiting_for_a_lock(committed_db):
            assert time.monotonic() < deadline, "the erasure neither waited nor finished"
            time.sleep(0.01)  # polling for the erasure to reach its lock, not measuring
        assert erasure.is_alive(), "the erasure finished while the disclosure was under way"
    erasure.join(timeout=60)

    # The disclosure came first; a disclosure now finds the person erased.
    with committed_db.writing() as session:
        after = record_disclosure(
            session,
            clock,
            omni_compiled,
            actor=OFFICER,
            request=request,
            people=[person],
            idempotency_key="race-2",
        )
    assert (after.disclosed, after.codes) == (0, {"person_erased": 1})
