"""decide(): may this role use these categories of this person for this purpose?

The compiled policy answers with a few dictionary look-ups; the person's state (erased,
objected, current choices) is passed in. Nothing here touches the database, so it is cheap
enough to sit in front of every read (`make bench BENCH=decide`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from charter.policy.compiled import GPC_TOPIC, CompiledPolicy


@dataclass(frozen=True, slots=True)
class PersonState:
    """What decide() needs to know about the person."""

    erased: bool = False
    objected: bool = False
    choices: Mapping[str, bool] = field(default_factory=dict)
    # What kind of person this is (`Person.kind`: visitor, user, job_applicant, ...).
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """`allowed`, or a refusal with a stable `code` and a `reason` in words."""

    allowed: bool
    code: str
    reason: str

    def as_json(self) -> dict[str, object]:
        return {"allowed": self.allowed, "code": self.code, "reason": self.reason}


ALLOWED = Decision(True, "allowed", "the policy and the person's choices allow this use")


def decide(  # noqa: PLR0911 - one return per refusal reason, in the order they are checked
    policy: CompiledPolicy, role: str, purpose: str, categories: Iterable[str], person: PersonState
) -> Decision:
    """The decision for one use; refusals say why (C2, C18, C21, C22, C26)."""
    if person.erased:
        return Decision(False, "person_erased", "the person was erased")
    if person.objected:
        return Decision(
            False,
            "person_objected",
            "the person objected to the policy; their data is no longer processed",
        )
    basis = policy.purpose_basis.get(purpose)
    if basis is None:
        return Decision(False, "unknown_purpose", f"'{purpose}' is not a purpose of the policy")
    role_purposes = policy.role_purposes.get(role)
    if role_purposes is None or purpose not in role_purposes:
        return Decision(
            False, "role_may_not_use_purpose", f"the role '{role}' may not act for '{purpose}'"
        )
    refusal = _subject_refusal(policy, role, purpose, person) or _category_refusal(
        policy, purpose, categories
    )
    if refusal is not None:
        return refusal
    if basis == "service":
        return ALLOWED
    choices = person.choices
    if purpose in policy.sale_or_sharing and choices.get(GPC_TOPIC):
        return Decision(
            False,
            "gpc_opt_out",
            "the person opted out of sale and sharing (Global Privacy Control)",
        )
    choice = choices.get("purpose:" + purpose)
    if basis == "opt_out":
        if choice is False:
            return Decision(False, "opted_out", f"the person opted out of '{purpose}'")
        return ALLOWED
    if choice is not True:
        return Decision(
            False, "consent_required", f"'{purpose}' needs the person's consent, not given"
        )
    return ALLOWED


def _subject_refusal(
    policy: CompiledPolicy, role: str, purpose: str, person: PersonState
) -> Decision | None:
    """A refusal if the role or the purpose is limited to data subjects the person is not."""
    for limits, who in (
        (policy.role_subjects.get(role), f"the role '{role}'"),
        (policy.purpose_subjects.get(purpose), f"the purpose '{purpose}'"),
    ):
        if limits is not None and not policy.covers(limits, person.kind):
            return Decision(
                False,
                "subject_not_covered",
                f"{who} covers {', '.join(sorted(limits))} only, not this person "
                f"({person.kind or 'unknown kind'})",
            )
    return None


def _category_refusal(
    policy: CompiledPolicy, purpose: str, categories: Iterable[str]
) -> Decision | None:
    """A refusal if a category named is unknown, or one the purpose may not use. A group of
    categories stands for its leaves that the purpose may use."""
    allowed = policy.purpose_categories[purpose]
    for category in categories:
        if category in allowed:
            continue
        group = policy.group_leaves.get(category)
        if group is not None and not group.isdisjoint(allowed):
            continue
        if group is None and category not in policy.categories:
            return Decision(
                False, "unknown_category", f"'{category}' is not a category of the policy"
            )
        return Decision(
            False,
            "purpose_may_not_use_category",
            f"the purpose '{purpose}' may not use '{category}'",
        )
    return None
