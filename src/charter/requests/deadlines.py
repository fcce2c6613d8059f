"""When a rights request must be confirmed and answered, from the policy's `rights:`.

Shine the Light (Cal. Civ. Code §1798.83): 30 days from receipt at the designated address,
150 days when it came another way. CCPA/CPRA: confirm within the policy's business days,
answer within its calendar days, one extension. Opt-out of sale or sharing: within its
days, counted as business days. Business days skip weekends and US federal holidays.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

import holidays

from charter.policy.compiled import CompiledPolicy
from charter.policy.schema import Right

# Request type -> the right of the policy it exercises.
RIGHT_OF_TYPE = {
    "shine_the_light": "shine_the_light",
    "know_categories": "know",
    "know_specific": "know",
    "delete": "delete",
    "correct": "correct",
    "opt_out_sale_sharing": "opt_out_sale_sharing",
    # A message to the legal address whose request staff must read to classify: held to
    # the shortest deadline any request it could be has (Shine the Light's) until then.
    "unclear": "shine_the_light",
}
TYPES = tuple(RIGHT_OF_TYPE)
# How a request is named to the person it is from.
_WORDS = {
    "shine_the_light": "Shine the Light",
    "know_categories": "right to know (categories)",
    "know_specific": "right to know (specific pieces of information)",
    "delete": "deletion",
    "correct": "correction",
    "opt_out_sale_sharing": "opt-out of sale or sharing",
    "unclear": "privacy",
}


def in_words(request_type: str) -> str:
    """The request's type as the mail to the person names it ("deletion request")."""
    return _WORDS.get(request_type, request_type.replace("_", " "))


# What a request can be once classified.
CLASSIFIED_TYPES = tuple(t for t in TYPES if t != "unclear")
# Shine the Light asked other than at the designated address (§1798.83(d)).
STL_OTHER_CHANNEL_DAYS = 150
# The channel the policy designates for Shine the Light: e-mail to the legal address.
STL_DESIGNATED_CHANNEL = "email"
# Rights whose days are business days.
_BUSINESS_DAY_RIGHTS = frozenset({"opt_out_sale_sharing"})


@dataclass(frozen=True)
class Deadlines:
    due_at: dt.datetime
    confirm_by: dt.datetime | None
    # Days one extension adds, or None if the right has none.
    extension_days: int | None


def right_for(policy: CompiledPolicy, request_type: str) -> Right:
    wanted = RIGHT_OF_TYPE[request_type]
    for right in policy.policy.rights:
        if right.id == wanted:
            return right
    raise LookupError(f"the policy declares no right '{wanted}'")


def deadlines(
    policy: CompiledPolicy, request_type: str, channel: str, received_at: dt.datetime
) -> Deadlines:
    """The deadlines of a request of `request_type` received at `received_at` by `channel`."""
    right = right_for(policy, request_type)
    if request_type == "shine_the_light" and channel != STL_DESIGNATED_CHANNEL:
        due = received_at + dt.timedelta(days=max(right.deadline_days, STL_OTHER_CHANNEL_DAYS))
    elif right.id in _BUSINESS_DAY_RIGHTS:
        due = add_business_days(received_at, right.deadline_days)
    else:
        due = received_at + dt.timedelta(days=right.deadline_days)
    confirm = (
        add_business_days(received_at, right.confirm_business_days)
        if right.confirm_business_days is not None
        else None
    )
    return Deadlines(due, confirm, right.extension_days)


@functools.cache
def _federal_holidays(year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays("US", years=year))


def is_business_day(day: dt.date) -> bool:
    return day.weekday() < 5 and day not in _federal_holidays(day.year)


def add_business_days(start: dt.datetime, days: int) -> dt.datetime:
    """`start` moved `days` business days later, at the same time of day."""
    moment = start
    left = days
    while left > 0:
        moment += dt.timedelta(days=1)
        if is_business_day(moment.date()):
            left -= 1
    return moment
