"""Request fields that end up in a column, bounded by that column: a value the database could
not hold is refused with 422 at the door, never a 500 (tests/web/test_limits_follow_columns.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import Field

from charter.db import column_length
from charter.staff.models import ApiKey, StaffMember
from charter.vault.models import Person, Record

PERSON_ID_LENGTH = column_length(Person, "id")
# The largest id a BigInteger column holds: a cursor beyond it is refused, not a 500.
MAX_ID = 2**63 - 1

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
