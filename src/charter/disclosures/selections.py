"""Selections: the people of a disclosure too large for one request, stored ahead of it.

A discloser creates a selection, fills it a page (or an NDJSON stream) at a time, up to
`MAX_SELECTED` distinct person ids, and then names it in one disclosure, which decides
every person in it and uses it up. A selection holds opaque ids only, never a personal
value, and only its creator may fill it or use it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from charter.clock import Clock
from charter.db import bulk_insert, table_of
from charter.disclosures.models import SelectedPerson, Selection
from charter.errors import Conflict, NotFound, Unprocessable
from charter.staff.service import Actor

# The most people one selection (and so one disclosure) names.
MAX_SELECTED = 1_000_000
_SELECTED = table_of(SelectedPerson)
_COLUMNS = ("selection_id", "person_id", "position")


def create_selection(session: Session, clock: Clock, *, actor: Actor) -> Selection:
    """A new, empty selection of `actor`'s."""
    selection = Selection(
        id=secrets.token_hex(16), created_at=clock.now(), created_by=actor.staff_id, size=0
    )
    session.add(selection)
    session.flush()
    return selection


def open_selection(
    session: Session, actor: Actor, selection_id: str, *, for_update: bool = False
) -> Selection:
    """`actor`'s selection `selection_id`; another's is as unknown as one that never was."""
    selection = session.get(Selection, selection_id, with_for_update=for_update)
    if selection is None or selection.created_by != actor.staff_id:
        raise NotFound("no selection with that id", code="selection_not_found")
    return selection


def add_to_selection(
    session: Session, *, actor: Actor, selection_id: str, people: Sequence[str]
) -> Selection:
    """Add `people` to the selection (an id already in it is not added twice); the
    selection, with its new size. A used selection, or one that would grow past
    `MAX_SELECTED`, is refused with nothing added."""
    selection = open_selection(session, actor, selection_id, for_update=True)
    if selection.used_by is not None:
        raise Conflict(
            f"the selection was used by disclosure {selection.used_by}; create another",
            code="selection_used",
        )
    fresh = list(dict.fromkeys(people))
    if selection.size + len(fresh) > MAX_SELECTED:
        raise Unprocessable(
            f"a selection holds at most {MAX_SELECTED:,} people; "
            f"it has {selection.size:,} and {len(fresh):,} more were sent",
            code="selection_too_large",
        )
    # An id already there is skipped by the database, and leaves a gap in the positions,
    # which only keep the order.
    last = session.scalar(
        select(func.max(_SELECTED.c.position)).where(_SELECTED.c.selection_id == selection_id)
    )
    start = -1 if last is None else int(last)
    rows = [(selection_id, person_id, start + 1 + n) for n, person_id in enumerate(fresh)]
    bulk_insert(
        session.connection(), "disclosure_selected_people", _COLUMNS, rows, skip_conflicts=True
    )
    selection.size = _counted(session, selection_id)
    session.flush()
    return selection


def selected_people(session: Session, selection_id: str, *, page: int) -> Iterator[list[str]]:
    """The selection's person ids in the order they were added, `page` at a time."""
    connection = session.connection()
    after = -1
    while True:
        rows = connection.execute(
            select(_SELECTED.c.position, _SELECTED.c.person_id)
            .where(_SELECTED.c.selection_id == selection_id, _SELECTED.c.position > after)
            .order_by(_SELECTED.c.position)
            .limit(page)
        ).all()
        if not rows:
            return
        after = rows[-1][0]
        yield [row[1] for row in rows]
        if len(rows) < page:
            return


def use_up(session: Session, selection: Selection, disclosure_id: int) -> None:
    """Mark the selection used by `disclosure_id` and drop its ids: the ledger now holds
    who was disclosed, and the disclosure's exclusions who was not."""
    selection.used_by = disclosure_id
    session.execute(_SELECTED.delete().where(_SELECTED.c.selection_id == selection.id))
    session.flush()


def _counted(session: Session, selection_id: str) -> int:
    count = session.scalar(
        select(func.count()).select_from(_SELECTED).where(_SELECTED.c.selection_id == selection_id)
    )
    return int(count or 0)
