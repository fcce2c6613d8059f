"""A person's choices (C11, C18, C20, C22): per opt-out or consent purpose, per non-essential
cookie category, and the Global Privacy Control signal; the whole history is kept."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.consent.models import ChoiceChange, CurrentChoice
from charter.db import conflict_insert, table_of
from charter.errors import Unprocessable
from charter.policy.compiled import GPC_TOPIC, CompiledPolicy

Method = Literal["banner", "preference_page", "api", "gpc"]


def topics(policy: CompiledPolicy) -> dict[str, str]:
    """Every topic a person can choose on, with what it means."""
    return dict(policy.choice_topics)


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
    topic: str
    granted: bool
    method: str
    policy_version: str
    at: str

    def as_json(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "granted": self.granted,
            "method": self.method,
            "policy_version": self.policy_version,
            "at": self.at,
        }


def choice_history(session: Session, person_id: str) -> list[ChoiceView]:
    rows = session.scalars(
        select(ChoiceChange).where(ChoiceChange.person_id == person_id).order_by(ChoiceChange.id)
    )
    return [
        ChoiceView(r.topic, r.granted, r.method, r.policy_version, r.at.isoformat()) for r in rows
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
) -> Choices:
    """Record the person's choices; they govern the very next decision. `person_id` is the
    owner, checked to be active (`vault.choices.save_choices` does both).

    `gpc` is a `Sec-GPC: 1` signal seen with the request: it opts the person out of sale and
    sharing and needs nothing more from them.
    """
    known = policy.choice_topics
    unknown = sorted(set(choices) - set(known))
    if unknown:
        raise Unprocessable(
            f"not a choice the policy offers: {', '.join(unknown)}",
            code="unknown_choice",
            details={"topics": unknown, "offered": sorted(known)},
        )
    wanted = dict(choices)
    if gpc:
        wanted[GPC_TOPIC] = True
    if not wanted:
        raise Unprocessable("no choices given", code="no_choices")
    now = clock.now()
    changes = [
        {
            "person_id": person_id,
            "topic": topic,
            "granted": granted,
            "method": "gpc" if topic == GPC_TOPIC and gpc else method,
            "policy_version": policy.version,
            "at": now,
        }
        for topic, granted in wanted.items()
    ]
    connection = session.connection()
    connection.execute(_HISTORY.insert(), changes)
    connection.execute(_save_current(connection.dialect.name), changes)
    record(
        session,
        clock,
        Event(
            actor,
            "consent:choices:set",
            f"person:{person_id}",
            details={"method": method, "choices": {t: wanted[t] for t in sorted(wanted)}},
        ),
    )
    return current_choices(session, person_id)


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
