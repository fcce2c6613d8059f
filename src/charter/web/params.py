"""Request fields that end up in a column, bounded by that column: a value the database could
not hold is refused with 422 at the door, never a 500 (tests/web/test_bounded_params.py).

An id in the query or the path is bounded by its column with `le=column_max(Model, "id")`;
a time in the query is a `QueryTime`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, AwareDatetime, Field
from pydantic_core import PydanticCustomError

from charter.db import EARLIEST_TIME, LATEST_TIME, column_length, storable_time, utc_text
from charter.staff.models import ApiKey, StaffMember
from charter.vault.models import Person, Record

PERSON_ID_LENGTH = column_length(Person, "id")

PersonId = Annotated[str, Field(min_length=1, max_length=PERSON_ID_LENGTH)]
CustomerId = Annotated[str, Field(min_length=1, max_length=column_length(Person, "customer_id"))]
PointId = Annotated[str, Field(min_length=1, max_length=column_length(Record, "collection_point"))]
FieldName = Annotated[str, Field(max_length=column_length(Record, "field"))]
SourceName = Annotated[str, Field(max_length=column_length(Record, "source_name"))]
StaffName = Annotated[str, Field(min_length=1, max_length=column_length(StaffMember, "name"))]
RoleName = Annotated[str, Field(min_length=1, max_length=column_length(StaffMember, "role"))]

PersonInPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=PERSON_ID_LENGTH,
        description="A person's id, as Charter returned it (a visitor's or the user's).",
    ),
]
StaffInPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=column_length(StaffMember, "name"),
        description="A staff member's handle.",
    ),
]
KeyIdInPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=column_length(ApiKey, "key_id"),
        description="A key's id: the part after `chk_`.",
    ),
]


def _storable(moment: dt.datetime) -> dt.datetime:
    if not storable_time(moment):
        raise PydanticCustomError(
            "time_out_of_range",
            "a time from {earliest} to {latest}, in UTC",
            {"earliest": utc_text(EARLIEST_TIME), "latest": utc_text(LATEST_TIME)},
        )
    return moment


# A time with its offset that Charter can compare with the times it stores: one whose UTC
# conversion overflows or falls outside the stored years is a 422 naming the parameter.
QueryTime = Annotated[AwareDatetime, AfterValidator(_storable)]
