"""What changed between two versions of a policy, in words a person understands.

`diff_policies` compares two loaded policies part by part and returns `PolicyChange`s: a
stable dotted `kind` (`purpose.added`, `retention.shortened`, ...) and `subject` for programs,
a plain-English `message` for people, and `material`, which says whether the change widens
what is collected, used, shared or kept, or takes a choice away from the people concerned.
The change notices of C26 are built from this list.

Category references are compared as the leaf categories they stand for, on each side, so a
group rule replaced by per-category rules only reports what really changed. Any field of a
declared item that has no dedicated comparison is still reported, as `<item>.changed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from charter.policy.compiled import retention_by_leaf
from charter.policy.references import expand_categories
from charter.policy.schema import (
    AdditionalTerms,
    CollectionPoint,
    Cookie,
    EnrichmentSource,
    FormField,
    Policy,
    Purpose,
    Recipient,
    RetentionRule,
    Right,
    Role,
    Section,
)


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """One change between two versions of a policy."""

    kind: str
    subject: str
    message: str
    material: bool
    details: dict[str, Any] = field(default_factory=dict, hash=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "material": self.material,
            "details": self.details,
        }


def diff_policies(old: Policy, new: Policy) -> list[PolicyChange]:
    """Every change from `old` to `new`, in the order of the policy's parts.

    Within a list of items: removals (in the old order), then additions, then changes to
    items present in both (in the new order).
    """
    changes: list[PolicyChange] = []
    # Indexing by every field of the schema means a part added to `Policy` without a
    # comparison here fails loudly instead of being skipped.
    for part in Policy.model_fields:
        changes.extend(_PARTS[part](old, new))
    return changes


# --- Shared machinery -------------------------------------------------------------------

T = TypeVar("T", bound=BaseModel)
# Whether a changed value (JSON form, before and after) is a material change.
Widens = Callable[[Any, Any], bool]
Compare = Callable[[T, T], Iterable[PolicyChange]]

_LONGEST_VALUE_IN_MESSAGE = 80


def _dump(item: BaseModel) -> dict[str, Any]:
    return item.model_dump(mode="json")


def _paired(
    old: Sequence[T], new: Sequence[T], key: Callable[[T], str]
) -> tuple[list[T], list[T], list[tuple[T, T]]]:
    """Items only in `old` (old order), only in `new` (new order), and in both (new order)."""
    old_by_key = {key(item): item for item in old}
    new_keys = {key(item) for item in new}
    removed = [item for item in old if key(item) not in new_keys]
    added = [item for item in new if key(item) not in old_by_key]
    kept = [(old_by_key[key(item)], item) for item in new if key(item) in old_by_key]
    return removed, added, kept


def _keyed(
    prefix: str,
    old: Sequence[T],
    new: Sequence[T],
    *,
    name: Callable[[T], str],
    key: Callable[[T], str] = attrgetter("id"),
    added_material: bool = False,
    removed_material: bool = False,
    special: Compare[T] | None = None,
    skip: Iterable[str] = (),
    widens: Mapping[str, Widens] | None = None,
) -> Iterator[PolicyChange]:
    """Changes to a list of items identified by `key`: `<prefix>.removed`, `.added`, then for
    each item both versions declare, whatever `special` finds and `<prefix>.changed` for any
    other field outside `skip`."""
    removed, added, kept = _paired(old, new, key)
    for item in removed:
        yield PolicyChange(
            f"{prefix}.removed",
            key(item),
            f"{name(item)} removed.",
            removed_material,
            {"before": _dump(item)},
        )
    for item in added:
        yield PolicyChange(
            f"{prefix}.added",
            key(item),
            f"{name(item)} added.",
            added_material,
            {"after": _dump(item)},
        )
    for before, after in kept:
        if special is not None:
            yield from special(before, after)
        yield from _field_changes(
            f"{prefix}.changed", key(after), name(after), before, after, skip=skip, widens=widens
        )


def _field_changes(
    kind: str,
    subject: str,
    name: str,
    old: BaseModel,
    new: BaseModel,
    *,
    skip: Iterable[str] = (),
    widens: Mapping[str, Widens] | None = None,
) -> Iterator[PolicyChange]:
    """The fallback: one change per differing field of `new`'s model, outside `skip`."""
    before, after = _dump(old), _dump(new)
    skipped = set(skip)
    for field_name in type(new).model_fields:
        if field_name in skipped or before[field_name] == after[field_name]:
            continue
        was, now = before[field_name], after[field_name]
        material = (widens or {}).get(field_name, _never)(was, now)
        words = field_name.replace("_", " ")
        yield PolicyChange(
            kind,
            subject,
            f"{name}: {words} changed{_from_to(was, now)}.",
            material,
            {"field": field_name, "before": was, "after": now},
        )


def _words(value: Any, *, quote: bool = True) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_words(item, quote=False) for item in value) or "none"
    if isinstance(value, str) and quote:
        return f"'{value}'"
    return str(value)


def _from_to(before: Any, after: Any) -> str:
    """` from X to Y`, or nothing when the values are too long or nested to read inline."""
    if any(isinstance(v, dict) for v in (before, after)) or any(
        isinstance(v, list) and any(isinstance(i, dict) for i in v) for v in (before, after)
    ):
        return ""
    was, now = _words(before), _words(after)
    if max(len(was), len(now)) > _LONGEST_VALUE_IN_MESSAGE:
        return ""
    return f" from {was} to {now}"


def _never(_before: Any, _after: Any) -> bool:
    return False


def _any_change(_before: Any, _after: Any) -> bool:
    return True


def _turned_on(before: Any, after: Any) -> bool:
    return bool(after) and not before


def _turned_off(before: Any, after: Any) -> bool:
    return bool(before) and not after


def _gains_members(before: Any, after: Any) -> bool:
    return bool(set(after or ()) - set(before or ()))


def _loses_members(before: Any, after: Any) -> bool:
    return bool(set(before or ()) - set(after or ()))


def _limit_lifted_or_widened(before: Any, after: Any) -> bool:
    """A `subjects:` limit (None: every subject) that now covers more people."""
    return before is not None and (after is None or _gains_members(before, after))


def _grows(before: Any, after: Any) -> bool:
    return int(after or 0) > int(before or 0)


def _labelled(noun: str, label: str, item_id: str) -> str:
    return f"{noun} '{label}' ({item_id})"


class _Declared(Protocol):
    """An item declared with an `id` and a `label`."""

    @property
    def id(self) -> str: ...
    @property
    def label(self) -> str: ...


def _named(noun: str) -> Callable[[_Declared], str]:
    """Names an item by its label and id: `<noun> 'Label' (id)`."""
    return lambda item: _labelled(noun, item.label, item.id)


def _leaves(policy: Policy) -> list[str]:
    return [c.id for c in policy.categories]


def _expanded(references: Iterable[str], leaves: Sequence[str]) -> list[str]:
    """The leaf categories `references` stand for, in the order of the taxonomy."""
    covered = {leaf for ref in references for leaf in expand_categories(ref, leaves)}
    return [leaf for leaf in leaves if leaf in covered]


@dataclass(frozen=True)
class _Taxonomy:
    """The categories of both versions, to compare references and to name categories."""

    old_leaves: list[str]
    new_leaves: list[str]
    labels: dict[str, str]

    @classmethod
    def of(cls, old: Policy, new: Policy) -> _Taxonomy:
        labels = {c.id: c.label for c in old.categories} | {c.id: c.label for c in new.categories}
        return cls(_leaves(old), _leaves(new), labels)

    def name(self, category: str) -> str:
        return f"{self.labels[category]} ({category})"

    def category_changes(
        self,
        prefix: str,
        subject: str,
        old_refs: Iterable[str],
        new_refs: Iterable[str],
        *,
        gained: str,
        lost: str,
    ) -> Iterator[PolicyChange]:
        """`<prefix>.category_added` / `.category_removed` for each leaf category the
        references gain or lose; `gained`/`lost` are sentences with `{category}` in them."""
        yield from _membership_changes(
            f"{prefix}.category",
            subject,
            _expanded(old_refs, self.old_leaves),
            _expanded(new_refs, self.new_leaves),
            detail="category",
            gained=lambda category: gained.format(category=self.name(category)),
            lost=lambda category: lost.format(category=self.name(category)),
            gain_is_material=True,
        )


def _membership_changes(
    kind: str,
    subject: str,
    before: Sequence[str],
    after: Sequence[str],
    *,
    detail: str,
    gained: Callable[[str], str],
    lost: Callable[[str], str],
    gain_is_material: bool,
) -> Iterator[PolicyChange]:
    """`<kind>_added` / `<kind>_removed` for each member that joins or leaves a list, named
    in the details as `detail`."""
    for member in after:
        if member not in before:
            yield PolicyChange(
                f"{kind}_added", subject, gained(member), gain_is_material, {detail: member}
            )
    for member in before:
        if member not in after:
            yield PolicyChange(f"{kind}_removed", subject, lost(member), False, {detail: member})


def _purpose_ref(purposes: Mapping[str, Purpose], purpose_id: str) -> str:
    """`purpose 'Label' (id)`, with the label from whichever version declares it."""
    return _labelled("purpose", purposes[purpose_id].label, purpose_id)


def _all_purposes(old: Policy, new: Policy) -> dict[str, Purpose]:
    return {p.id: p for p in old.purposes} | {p.id: p for p in new.purposes}


# --- Organisation and published text ----------------------------------------------------


def _organisation(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    was, now = old.organisation, new.organisation
    if was.version != now.version:
        yield PolicyChange(
            "organisation.version_changed",
            "organisation",
            f"Policy version changed from {was.version} to {now.version}.",
            False,
            {"before": was.version, "after": now.version},
        )
    if was.last_modified != now.last_modified:
        before, after = was.last_modified.isoformat(), now.last_modified.isoformat()
        yield PolicyChange(
            "organisation.last_modified_changed",
            "organisation",
            f"Last-modified date changed from {before} to {after}.",
            False,
            {"before": before, "after": after},
        )
    yield from _field_changes(
        "organisation.changed",
        "organisation",
        "Organisation",
        was,
        now,
        skip={"version", "last_modified"},
    )


def _section_name(section: Section) -> str:
    if section.heading is None:
        return f"Opening section ({section.id})"
    return _labelled("Section", section.heading, section.id)


def _sections(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    yield from _keyed("section", old.sections, new.sections, name=_section_name)
    new_ids = {s.id for s in new.sections}
    old_ids = {s.id for s in old.sections}
    before = [s.id for s in old.sections if s.id in new_ids]
    after = [s.id for s in new.sections if s.id in old_ids]
    if before != after:
        yield PolicyChange(
            "section.reordered",
            "sections",
            f"Sections reordered: {', '.join(after)}.",
            False,
            {"before": before, "after": after},
        )


def _safeguards(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    # Dropping a safeguard weakens a promise of protection (C2, C3): people should hear of it.
    yield from _keyed(
        "safeguard",
        old.safeguards,
        new.safeguards,
        name=_named("Safeguard"),
        removed_material=True,
    )


def _terms_name(terms: AdditionalTerms) -> str:
    return _labelled("Additional terms", terms.title, terms.id)


def _additional_terms(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    # New terms become part of the agreement (C4), so adding them is material.
    yield from _keyed(
        "additional_terms",
        old.additional_terms,
        new.additional_terms,
        name=_terms_name,
        added_material=True,
    )


# --- Data collected ---------------------------------------------------------------------


def _categories(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    taxonomy = _Taxonomy.of(old, new)
    removed, added, kept = _paired(old.categories, new.categories, lambda c: c.id)
    for category in removed:
        yield PolicyChange(
            "category.removed",
            category.id,
            f"Category {taxonomy.name(category.id)} removed.",
            False,
            {"before": _dump(category)},
        )
    new_retention = retention_by_leaf(new)
    for category in added:
        # A new category's retention is part of what is added: say it here, once.
        rule = new_retention[category.id]
        yield PolicyChange(
            "category.added",
            category.id,
            f"Category {taxonomy.name(category.id)} added "
            f"(kept {_retention_words(rule.keep, rule.months)}).",
            True,
            {"after": _dump(category), "retention": {"keep": rule.keep, "months": rule.months}},
        )
    for was, now in kept:
        if was.label != now.label:
            yield PolicyChange(
                "category.relabelled",
                now.id,
                f"Category {now.id} relabelled from '{was.label}' to '{now.label}'.",
                False,
                {"before": was.label, "after": now.label},
            )
        yield from _field_changes(
            "category.changed",
            now.id,
            f"Category {taxonomy.name(now.id)}",
            was,
            now,
            skip={"label"},
        )


def _subjects(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    yield from _keyed("subject", old.subjects, new.subjects, name=_named("Subject"))


def _opens_access(before: Any, after: Any) -> bool:
    """`readable_by_roles`: None lets every role with a purpose read; a list restricts."""
    if before is None:
        return False
    return after is None or _gains_members(before, after)


_POINT_WIDENS: dict[str, Widens] = {
    "subjects": _gains_members,
    "links_visitor_history": _turned_on,
    "publication_needs_permission": _turned_off,
    "device_opt_out": _turned_off,
    "readable_by_roles": _opens_access,
}


def _field_changes_of_point(
    taxonomy: _Taxonomy, was: CollectionPoint, now: CollectionPoint
) -> Iterator[PolicyChange]:
    def name(form_field: FormField) -> str:
        return f"Field '{form_field.name}' of {now.label}"

    def subject(form_field: FormField) -> str:
        return f"{now.id}.{form_field.name}"

    def compare(before: FormField, after: FormField) -> Iterator[PolicyChange]:
        if before.mandatory != after.mandatory:
            state = "mandatory" if after.mandatory else "optional"
            yield PolicyChange(
                f"field.now_{state}",
                subject(after),
                f"{name(after)} is now {state}.",
                after.mandatory,
                {"before": before.mandatory, "after": after.mandatory},
            )
        if before.category != after.category:
            yield PolicyChange(
                "field.category_changed",
                subject(after),
                f"{name(after)} now holds {taxonomy.name(after.category)} instead of "
                f"{taxonomy.name(before.category)}.",
                True,
                {"before": before.category, "after": after.category},
            )

    # A field's name is unique within its point only: the subject names both.
    yield from _keyed(
        "field",
        was.fields,
        now.fields,
        name=name,
        key=subject,
        added_material=True,
        special=compare,
        skip={"mandatory", "category"},
    )


def _collection_points(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    taxonomy = _Taxonomy.of(old, new)
    yield from _keyed(
        "collection_point",
        old.collection_points,
        new.collection_points,
        name=_named("Collection point"),
        added_material=True,
        special=partial(_field_changes_of_point, taxonomy),
        skip={"fields"},
        widens=_POINT_WIDENS,
    )


def _cookie_name(cookie: Cookie) -> str:
    return f"Cookie {cookie.name}"


_COOKIE_WIDENS: dict[str, Widens] = {
    # An essential cookie is set without asking: moving a cookie there removes a choice.
    "category": lambda _before, after: after == "essential",
    "duration": lambda _before, after: after == "persistent",
    "lifetime_days": _grows,
    "purpose": _any_change,
    "subjects": _gains_members,
}


def _cookies(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    yield from _keyed(
        "cookie",
        old.cookies,
        new.cookies,
        name=_cookie_name,
        key=attrgetter("name"),
        added_material=True,
        widens=_COOKIE_WIDENS,
    )


# --- Use --------------------------------------------------------------------------------

# From most choice to least: a move down this list is material.
_BASIS_CHOICE = {"consent": 2, "opt_out": 1, "service": 0}
_BASIS_WORDS = {
    "consent": "consent",
    "opt_out": "opt-out",
    "service": "needed for the Services (no opt-out)",
}


def _purposes(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    taxonomy = _Taxonomy.of(old, new)
    purpose_name = _named("Purpose")

    def compare(was: Purpose, now: Purpose) -> Iterator[PolicyChange]:
        name = purpose_name(now)
        if was.basis != now.basis:
            yield PolicyChange(
                "purpose.basis_changed",
                now.id,
                f"{name} basis changed from {_BASIS_WORDS[was.basis]} to "
                f"{_BASIS_WORDS[now.basis]}.",
                _BASIS_CHOICE[now.basis] < _BASIS_CHOICE[was.basis],
                {"before": was.basis, "after": now.basis},
            )
        yield from taxonomy.category_changes(
            "purpose",
            now.id,
            was.categories,
            now.categories,
            gained=f"{name} now uses {{category}}.",
            lost=f"{name} no longer uses {{category}}.",
        )

    yield from _keyed(
        "purpose",
        old.purposes,
        new.purposes,
        name=purpose_name,
        added_material=True,
        special=compare,
        skip={"basis", "categories"},
        widens={"sale_or_sharing": _turned_on, "subjects": _limit_lifted_or_widened},
    )


def _enrichment_sources(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    taxonomy = _Taxonomy.of(old, new)
    source_name = _named("Source")

    def compare(was: EnrichmentSource, now: EnrichmentSource) -> Iterator[PolicyChange]:
        name = source_name(now)
        yield from taxonomy.category_changes(
            "enrichment_source",
            now.id,
            was.categories,
            now.categories,
            gained=f"{name} now provides {{category}}.",
            lost=f"{name} no longer provides {{category}}.",
        )

    yield from _keyed(
        "enrichment_source",
        old.enrichment_sources,
        new.enrichment_sources,
        name=source_name,
        added_material=True,
        special=compare,
        skip={"categories"},
    )


# --- Sharing and transfer ---------------------------------------------------------------


def _recipient_name(recipient: Recipient) -> str:
    return f"Recipient {recipient.name}"


def _recipients(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    taxonomy = _Taxonomy.of(old, new)
    purposes = _all_purposes(old, new)

    def compare(was: Recipient, now: Recipient) -> Iterator[PolicyChange]:
        name = _recipient_name(now)
        yield from taxonomy.category_changes(
            "recipient",
            now.id,
            was.categories,
            now.categories,
            gained=f"{name} now receives {{category}}.",
            lost=f"{name} no longer receives {{category}}.",
        )
        yield from _membership_changes(
            "recipient.purpose",
            now.id,
            was.purposes,
            now.purposes,
            detail="purpose",
            gained=lambda p: f"{name} now receives data for {_purpose_ref(purposes, p)}.",
            lost=lambda p: f"{name} no longer receives data for {_purpose_ref(purposes, p)}.",
            gain_is_material=True,
        )

    yield from _keyed(
        "recipient",
        old.recipients,
        new.recipients,
        name=_recipient_name,
        added_material=True,
        special=compare,
        skip={"categories", "purposes"},
        widens={"kind": _any_change, "country": _any_change, "direct_marketing": _turned_on},
    )


def _sharing_rules(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    yield from _field_changes(
        "sharing_rules.changed",
        "sharing_rules",
        "Sharing rules",
        old.sharing_rules,
        new.sharing_rules,
        widens={
            "never_for_third_party_commercial_purpose": _turned_off,
            "law_enforcement_requires": _loses_members,
            "advertisers_honour": _loses_members,
        },
    )


def _transfer_grounds(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    yield from _keyed(
        "transfer_ground",
        old.transfer_grounds,
        new.transfer_grounds,
        name=_named("Transfer ground"),
        added_material=True,
    )


# --- Retention --------------------------------------------------------------------------


def _retention_words(keep: str, months: int | None) -> str:
    return (
        "as long as the customer instructs" if keep == "customer_instructs" else f"{months} months"
    )


def _retention_change(
    name: str, category: str, was: RetentionRule, now: RetentionRule
) -> PolicyChange:
    details = {
        "category": category,
        "before": {"keep": was.keep, "months": was.months},
        "after": {"keep": now.keep, "months": now.months},
    }
    if was.months is not None and now.months is not None:
        lengthened = now.months > was.months
        verb = "lengthened" if lengthened else "shortened"
        return PolicyChange(
            f"retention.{verb}",
            category,
            f"Retention of {name} {verb} from {was.months} to {now.months} months.",
            lengthened,
            details,
        )
    # Between a fixed period and the customer's instructions: neither is simply shorter,
    # and either way the people concerned lose the limit they were promised.
    return PolicyChange(
        "retention.changed",
        category,
        f"Retention of {name} changed from {_retention_words(was.keep, was.months)} to "
        f"{_retention_words(now.keep, now.months)}.",
        True,
        details,
    )


def _retention(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    taxonomy = _Taxonomy.of(old, new)
    before, after = retention_by_leaf(old), retention_by_leaf(new)
    for category in taxonomy.new_leaves:
        was, now = before.get(category), after[category]
        if was is not None and (was.keep, was.months) != (now.keep, now.months):
            yield _retention_change(taxonomy.name(category), category, was, now)
    # Rules are identified by the reference they cover; keep and months are compared per leaf
    # above, so only their other fields are left.
    _removed, _added, kept = _paired(old.retention.rules, new.retention.rules, lambda r: r.category)
    for was_rule, now_rule in kept:
        yield from _field_changes(
            "retention.rule_changed",
            now_rule.category,
            f"Retention rule for {now_rule.category}",
            was_rule,
            now_rule,
            skip={"category", "keep", "months"},
        )
    yield from _keyed(
        "retention_extension",
        old.retention.kept_longer_for,
        new.retention.kept_longer_for,
        name=_named("Reason to keep data longer"),
        added_material=True,
    )
    yield from _field_changes(
        "retention.declaration_changed",
        "retention",
        "Retention",
        old.retention,
        new.retention,
        skip={"rules", "kept_longer_for"},
    )


# --- Rights, staff and the change procedure ---------------------------------------------

_DEADLINES = {
    # field: (words, unit, whether None means "no limit", so that losing it is material)
    "deadline_days": ("deadline", "days", False),
    "confirm_business_days": ("confirmation deadline", "business days", True),
    "extension_days": ("extension", "days", False),
}


def _waits_longer(before: int | None, after: int | None, *, none_is_unbounded: bool) -> bool:
    if none_is_unbounded:
        return before is not None and (after is None or after > before)
    return (after or 0) > (before or 0)


def _rights(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    right_name = _named("Right")

    def compare(was: Right, now: Right) -> Iterator[PolicyChange]:
        name = right_name(now)
        for field_name, (words, unit, unbounded) in _DEADLINES.items():
            before, after = getattr(was, field_name), getattr(now, field_name)
            if before == after:
                continue
            yield PolicyChange(
                "right.deadline_changed",
                now.id,
                f"{name}: {words} changed from {_days(before, unit)} to {_days(after, unit)}.",
                _waits_longer(before, after, none_is_unbounded=unbounded),
                {"field": field_name, "before": before, "after": after},
            )

    # Removing a right takes a choice away; adding one gives one.
    yield from _keyed(
        "right",
        old.rights,
        new.rights,
        name=right_name,
        removed_material=True,
        special=compare,
        skip=_DEADLINES,
    )


def _days(value: int | None, unit: str) -> str:
    return "none" if value is None else f"{value} {unit}"


def _roles(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    purposes = _all_purposes(old, new)
    role_name = _named("Role")

    # Roles say which staff may act for which purpose; they do not widen what is used about a
    # person, so their changes are not material to users.
    def compare(was: Role, now: Role) -> Iterator[PolicyChange]:
        name = role_name(now)
        yield from _membership_changes(
            "role.purpose",
            now.id,
            was.purposes,
            now.purposes,
            detail="purpose",
            gained=lambda p: f"{name} may now use data for {_purpose_ref(purposes, p)}.",
            lost=lambda p: f"{name} may no longer use data for {_purpose_ref(purposes, p)}.",
            gain_is_material=False,
        )

    yield from _keyed(
        "role", old.roles, new.roles, name=role_name, special=compare, skip={"purposes"}
    )


def _policy_changes(old: Policy, new: Policy) -> Iterator[PolicyChange]:
    yield from _field_changes(
        "changes.changed",
        "changes",
        "How policy changes are announced",
        old.changes,
        new.changes,
        widens={"date_at_top": _turned_off, "notice": _any_change, "objection": _any_change},
    )


_PARTS: dict[str, Callable[[Policy, Policy], Iterable[PolicyChange]]] = {
    "organisation": _organisation,
    "sections": _sections,
    "safeguards": _safeguards,
    "additional_terms": _additional_terms,
    "categories": _categories,
    "subjects": _subjects,
    "collection_points": _collection_points,
    "cookies": _cookies,
    "purposes": _purposes,
    "enrichment_sources": _enrichment_sources,
    "recipients": _recipients,
    "sharing_rules": _sharing_rules,
    "transfer_grounds": _transfer_grounds,
    "retention": _retention,
    "rights": _rights,
    "roles": _roles,
    "changes": _policy_changes,
}
