"""A person's choices (C11, C18, C20, C22): per opt-out or consent purpose, per non-essential
cookie category, and the Global Privacy Control signal; the whole history is kept."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, delete, select
from sqlalchemy.orm import Session

from charter.audit.chain import Event, record, record_many
from charter.clock import Clock
from charter.consent.models import ChoiceChange, CurrentChoice
from charter.consent.receipts import ReceiptClaims, ReceiptRefused, take_receipt
from charter.db import conflict_insert, table_of, utc_text
from charter.errors import Forbidden, Unprocessable, quoted
from charter.policy.compiled import GPC_TOPIC, CompiledPolicy

# How a choice reached Charter; Charter sets it from the channel, never from what a caller
# says. `api`: staff or a service, on their own word; `receipt`: a service forwarding the
# person's own consent receipt; `banner` and `preference_center`: the person themself, in
# Charter's public pages; `gpc`: the browser's Global Privacy Control signal; `request`: a
# rights request of the person.
Method = Literal["api", "receipt", "banner", "preference_center", "gpc", "request"]
# Where the person chooses themself, and so may widen what is allowed.
PERSONS_OWN: frozenset[str] = frozenset({"banner", "preference_center"})


def topics(policy: CompiledPolicy) -> dict[str, str]:
    """Every topic a person can choose on, with what it means. Global Privacy Control is not
    among them: it is a signal the browser sends, never a choice set by a caller."""
    return {topic: label for topic, label in policy.choice_topics.items() if topic != GPC_TOPIC}


@dataclass(frozen=True)
class Choices:
    """The choices in force: topic -> granted. Absent topics follow the purpose's basis."""

    current: Mapping[str, bool] = field(default_factory=dict)


# Core statements on the tables: saving and reading choices sits in the path of every
# decision and every banner click.
_HISTORY = table_of(ChoiceChange)
_CURRENT = table_of(CurrentChoice)
_IN_FORCE = select(_CURRENT.c.topic, _CURRENT.c.granted).where(
    _CURRENT.c.person_id == bindparam("person_id")
)


def current_choices(session: Session, person_id: str) -> Choices:
    rows = session.connection().execute(_IN_FORCE, {"person_id": person_id})
    return Choices(dict(rows.all()))


@functools.cache
def _save_current(dialect: str) -> Any:
    """Insert a topic's choice in force, or replace the one there."""
    upsert = conflict_insert(dialect)(_CURRENT)
    return upsert.on_conflict_do_update(
        index_elements=[_CURRENT.c.person_id, _CURRENT.c.topic],
        set_={
            name: upsert.excluded[name] for name in ("granted", "method", "policy_version", "at")
        },
    )


@dataclass(frozen=True)
class ChoiceView:
    id: int
    topic: str
    granted: bool
    method: str
    policy_version: str
    at: str

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "topic": self.topic,
            "granted": self.granted,
            "method": self.method,
            "policy_version": self.policy_version,
            "at": self.at,
        }


def choice_history(
    session: Session, person_id: str, *, after: int = 0, limit: int | None = None
) -> list[ChoiceView]:
    """The person's choices as they were made, oldest first: those after the entry `after`,
    at most `limit` of them."""
    query = (
        select(ChoiceChange)
        .where(ChoiceChange.person_id == person_id, ChoiceChange.id > after)
        .order_by(ChoiceChange.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return [
        ChoiceView(r.id, r.topic, r.granted, r.method, r.policy_version, r.at.isoformat())
        for r in session.scalars(query)
    ]


def set_choices(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: str,
    person_id: str,
    choices: Mapping[str, bool],
    method: Method,
    gpc: bool = False,
    receipts: Sequence[ReceiptClaims] = (),
) -> Choices:
    """Record the person's choices; they govern the very next decision. `person_id` is the
    owner, checked to be active, and `receipts` were opened and found to be theirs
    (`vault.choices.save_choices` does both).

    Anyone may narrow what may be done with the person's data (opt out, withdraw, refuse a
    cookie category). Widening it (`true` for any topic) takes the person: their own channel
    (`PERSONS_OWN`), or a receipt of theirs for exactly that topic. `gpc` is a `Sec-GPC: 1`
    signal seen with the request: it opts the person out of sale and sharing for good, as
    far as any caller here can tell; a second signal records nothing new.
    """
    if GPC_TOPIC in choices:
        raise Unprocessable(
            "Global Privacy Control is a signal of the person's browser (Sec-GPC: 1), not a "
            "choice a caller sets",
            code="gpc_is_a_signal",
        )
    offered = topics(policy)
    unknown = sorted(set(choices) - set(offered))
    if unknown:
        raise Unprocessable(
            f"not a choice the policy offers: {quoted(unknown)}",
            code="unknown_choice",
            details={"topics": unknown, "offered": sorted(offered)},
        )
    if gpc:
        record_gpc(session, clock, policy, actor=actor, person_ids=[person_id])
    if not choices:
        if gpc:
            return current_choices(session, person_id)
        raise Unprocessable("no choices given", code="no_choices")
    by_receipt = _receipts_for(session, clock, choices, method, receipts)
    wanted: dict[str, tuple[bool, str, str]] = {
        topic: (
            granted,
            "receipt" if topic in by_receipt else method,
            by_receipt[topic].policy_version if topic in by_receipt else policy.version,
        )
        for topic, granted in choices.items()
    }
    in_force = _store(session, person_id, clock.now(), wanted)
    record(
        session,
        clock,
        Event(
            actor,
            "consent:choices:set",
            f"person:{person_id}",
            details={
                "method": method,
                "choices": {t: wanted[t][0] for t in sorted(wanted)},
                "methods": {t: wanted[t][1] for t in sorted(wanted)},
            },
        ),
    )
    return in_force


def _store(
    session: Session, person_id: str, at: dt.datetime, wanted: Mapping[str, tuple[bool, str, str]]
) -> Choices:
    """Add the choices (topic -> granted, method, policy version) to the person's history and
    make them the ones in force; the person's choices in force then."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return _store_in_one_statement(connection, person_id, utc_text(at), wanted)
    changes = [
        {
            "person_id": person_id,
            "topic": topic,
            "granted": granted,
            "method": how,
            "policy_version": version,
            "at": at,
        }
        for topic, (granted, how, version) in wanted.items()
    ]
    connection.execute(_HISTORY.insert(), changes)
    connection.execute(_save_current(connection.dialect.name), changes)
    return current_choices(session, person_id)


def _store_in_one_statement(
    connection: Connection, person_id: str, at: str, wanted: Mapping[str, tuple[bool, str, str]]
) -> Choices:
    """`_store` on PostgreSQL as one statement, one round trip: the history rows, the upsert
    and the read of the choices in force. The read sees the table as it was before the
    statement, so the topics just saved come from the upsert's RETURNING, the others from
    the table."""
    rows = ", ".join(["(%s, %s, %s::boolean, %s, %s, %s)"] * len(wanted))
    values: list[Any] = []
    for topic, (granted, how, version) in wanted.items():
        values += [person_id, topic, granted, how, version, at]
    found = connection.exec_driver_sql(_STORE_PG.format(rows=rows), (*values, person_id)).all()
    return Choices({str(topic): bool(granted) for topic, granted in found})


# `rows` is a run of our own placeholders, never input. Columns as in ChoiceChange and
# CurrentChoice; `at` is stored as text (charter.db.UTCDateTime).
_STORE_PG = """
    WITH changes (person_id, topic, granted, method, policy_version, at) AS (VALUES {rows}),
    kept AS (
        INSERT INTO choice_history (person_id, topic, granted, method, policy_version, at)
        SELECT person_id, topic, granted, method, policy_version, at FROM changes
    ),
    saved AS (
        INSERT INTO choices (person_id, topic, granted, method, policy_version, at)
        SELECT person_id, topic, granted, method, policy_version, at FROM changes
        ON CONFLICT (person_id, topic) DO UPDATE SET granted = EXCLUDED.granted,
            method = EXCLUDED.method, policy_version = EXCLUDED.policy_version, at = EXCLUDED.at
        RETURNING topic, granted
    )
    SELECT topic, granted FROM saved
    UNION ALL
    SELECT topic, granted FROM choices
    WHERE person_id = %s AND topic NOT IN (SELECT topic FROM saved)
"""


_GPC_IN_FORCE = select(_CURRENT.c.person_id).where(
    _CURRENT.c.topic == GPC_TOPIC,
    _CURRENT.c.granted.is_(True),
    _CURRENT.c.person_id.in_(bindparam("person_ids", expanding=True)),
)


def record_gpc(
    session: Session, clock: Clock, policy: CompiledPolicy, *, actor: str, person_ids: Sequence[str]
) -> list[str]:
    """Record the Global Privacy Control signal of each of these people (owners, checked to
    be active) who has not sent it before: an opt-out of sale and sharing that no caller
    can lift. Returns those newly recorded; a signal seen again records nothing new."""
    wanted = list(dict.fromkeys(person_ids))
    if not wanted:
        return []
    connection = session.connection()
    known = {row[0] for row in connection.execute(_GPC_IN_FORCE, {"person_ids": wanted})}
    new = [person_id for person_id in wanted if person_id not in known]
    now = clock.now()
    for person_id in new:
        _store(session, person_id, now, {GPC_TOPIC: (True, "gpc", policy.version)})
    record_many(
        session,
        clock,
        [Event(actor, "consent:gpc:recorded", f"person:{person_id}") for person_id in new],
    )
    return new


def _receipts_for(
    session: Session,
    clock: Clock,
    choices: Mapping[str, bool],
    method: Method,
    receipts: Sequence[ReceiptClaims],
) -> dict[str, ReceiptClaims]:
    """The receipt that carries each widening choice, each taken (used up) here; refused if a
    widening choice has none, or a receipt is for a topic not being widened."""
    widening = sorted(topic for topic, granted in choices.items() if granted)
    by_topic = {claims.topic: claims for claims in receipts}
    stray = sorted(set(by_topic) - set(widening))
    if stray or len(by_topic) < len(receipts):
        raise ReceiptRefused(
            "a consent receipt is for a topic this request does not opt in to",
            code="receipt_not_for_topic",
            details={"topics": stray},
        )
    if method not in PERSONS_OWN:
        missing = [topic for topic in widening if topic not in by_topic]
        if missing:
            raise Forbidden(
                "only the person can widen what may be done with their data: forward their "
                f"consent receipt for {', '.join(missing)}, or let them choose in Charter's "
                "own pages",
                code="consent_needs_the_person",
                details={"topics": missing},
            )
    for claims in by_topic.values():
        take_receipt(session, clock, claims)
    return by_topic


def carry_choices(session: Session, from_ids: list[str], to_id: str) -> int:
    """Give `to_id` the choices and history of the people merged into it (a visitor who
    signs up): for each topic the latest choice holds, unless `to_id` chose since.
    Returns how many topics were carried."""
    if not from_ids:
        return 0
    for change in session.scalars(
        select(ChoiceChange).where(ChoiceChange.person_id.in_(from_ids)).order_by(ChoiceChange.id)
    ):
        session.add(
            ChoiceChange(
                person_id=to_id,
                topic=change.topic,
                granted=change.granted,
                method=change.method,
                policy_version=change.policy_version,
                at=change.at,
            )
        )
    own = {
        row.topic: row
        for row in session.scalars(select(CurrentChoice).where(CurrentChoice.person_id == to_id))
    }
    carried: set[str] = set()
    for row in session.scalars(
        select(CurrentChoice)
        .where(CurrentChoice.person_id.in_(from_ids))
        .order_by(CurrentChoice.at)
    ):
        mine = own.get(row.topic)
        if mine is not None and mine.at > row.at:
            continue
        if mine is None:
            mine = own[row.topic] = CurrentChoice(person_id=to_id, topic=row.topic)
            session.add(mine)
        mine.granted, mine.method, mine.policy_version, mine.at = (
            row.granted,
            row.method,
            row.policy_version,
            row.at,
        )
        carried.add(row.topic)
    session.flush()
    return len(carried)


def forget_choices(session: Session, person_ids: list[str]) -> None:
    """Remove the choices of erased people (the audit log keeps that choices were made)."""
    session.execute(delete(CurrentChoice).where(CurrentChoice.person_id.in_(person_ids)))
    session.execute(delete(ChoiceChange).where(ChoiceChange.person_id.in_(person_ids)))
