"""The state machine of a rights request through the library: whatever the order of calls,
an unverified erasure request is never worked on nor answered (the Fides CVE-2026-42303
pattern), every step is recorded, and the deadlines move with the injected clock."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charter.clock import FixedClock
from charter.db import Database
from charter.errors import CharterError
from charter.policy.compiled import CompiledPolicy
from charter.requests import service
from charter.requests.deadlines import add_business_days, deadlines
from charter.requests.service import Intake, submit_request
from charter.vault.identifiers import BlindIndex

pytestmark = pytest.mark.clause("C25")

INDEX = BlindIndex(b"i" * 32)
STEPS = ("start", "answer", "extend", "classify", "withdraw", "deny")


def unverified_erasure(db: Database, clock: FixedClock, policy: CompiledPolicy) -> str:
    with db.writing() as session:
        made = submit_request(
            session,
            clock,
            policy,
            INDEX,
            actor="test",
            intake=Intake(type="delete", channel="public", email="x@example.com"),
        )
        return made.request.id


def attempt(
    db: Database, clock: FixedClock, policy: CompiledPolicy, step: str, request_id: str
) -> None:
    calls = {
        "start": lambda s: service.start(s, clock, request_id, actor="staff:1"),
        "answer": lambda s: service.answer(s, clock, request_id, actor="staff:1", response="x"),
        "extend": lambda s: service.extend(
            s, clock, policy, request_id, actor="staff:1", reason="r"
        ),
        "classify": lambda s: service.classify(
            s, clock, policy, request_id, actor="staff:1", request_type="delete"
        ),
        "withdraw": lambda s: service.withdraw(s, clock, request_id, actor="staff:1"),
        "deny": lambda s: service.deny(s, clock, request_id, actor="staff:1", basis="unverified"),
    }
    try:
        with db.writing() as session:
            calls[step](session)
    except CharterError:
        pass  # a refused step changes nothing; the property below is what matters


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(st.sampled_from(STEPS), max_size=8))
def test_no_order_of_calls_answers_an_unverified_erasure(
    db: Database, clock: FixedClock, omni_compiled: CompiledPolicy, steps: list[str]
) -> None:
    request_id = unverified_erasure(db, clock, omni_compiled)
    for step in steps:
        attempt(db, clock, omni_compiled, step, request_id)
        with db.reading() as session:
            request = service.get_request(session, request_id)
            assert request.verified_at is None
            assert request.state in {"awaiting_verification", "denied", "withdrawn"}
            assert all(
                s.to_state not in {"in_progress", "answered"}
                for s in service.steps_of(session, request_id)
            )


def test_every_step_is_recorded_with_who_took_it(
    db: Database, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    request_id = unverified_erasure(db, clock, omni_compiled)
    attempt(db, clock, omni_compiled, "deny", request_id)
    with db.reading() as session:
        steps = [(s.from_state, s.to_state, s.actor) for s in service.steps_of(session, request_id)]
    assert steps == [
        (None, "received", "test"),
        ("received", "awaiting_verification", "test"),
        ("awaiting_verification", "denied", "staff:1"),
    ]


def test_shine_the_light_is_due_in_30_days_by_the_designated_address_and_150_otherwise(
    omni_compiled: CompiledPolicy,
) -> None:
    received = dt.datetime(2026, 12, 30, 9, 0, tzinfo=dt.UTC)
    by_mail = deadlines(omni_compiled, "shine_the_light", "email", received)
    by_web = deadlines(omni_compiled, "shine_the_light", "public", received)
    assert by_mail.due_at == dt.datetime(2027, 1, 29, 9, 0, tzinfo=dt.UTC)
    assert by_web.due_at == received + dt.timedelta(days=150)
    assert by_mail.extension_days is None


def test_business_days_skip_weekends_and_federal_holidays_across_the_new_year() -> None:
    # Thu 31 Dec 2026 -> Fri 1 Jan 2027 is New Year's Day, then a weekend.
    start = dt.datetime(2026, 12, 31, 12, 0, tzinfo=dt.UTC)
    assert add_business_days(start, 1) == dt.datetime(2027, 1, 4, 12, 0, tzinfo=dt.UTC)


def test_an_extension_past_the_deadline_is_refused(
    db: Database, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    request_id = unverified_erasure(db, clock, omni_compiled)
    clock.advance(dt.timedelta(days=46))
    with pytest.raises(CharterError) as refused, db.writing() as session:
        service.extend(session, clock, omni_compiled, request_id, actor="staff:1", reason="late")
    assert refused.value.code == "past_due"


def test_records_of_requests_closed_over_24_months_ago_are_swept_and_open_ones_kept(
    db: Database, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    closed = unverified_erasure(db, clock, omni_compiled)
    attempt(db, clock, omni_compiled, "deny", closed)
    still_open = unverified_erasure(db, clock, omni_compiled)
    clock.advance(dt.timedelta(days=365 * 2 - 5))
    with db.writing() as session:
        assert service.sweep_request_records(session, clock, actor="sweeper") == 0
    clock.advance(dt.timedelta(days=10))
    with db.writing() as session:
        assert service.sweep_request_records(session, clock, actor="sweeper") == 1
    with db.reading() as session:
        assert service.steps_of(session, closed) == []
        assert service.get_request(session, still_open).state == "awaiting_verification"
        with pytest.raises(CharterError):
            service.get_request(session, closed)
