"""The policy compiled to in-memory tables, so that a decision is a few dictionary look-ups."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from charter.policy.references import expand_categories
from charter.policy.schema import Basis, CollectionPoint, Policy, Recipient, RetentionRule


@dataclass(frozen=True, slots=True)
class DataMapEntry:
    """One category of personal data: who uses it, who receives it, how long it is kept."""

    category: str
    label: str
    purposes: tuple[str, ...]
    recipients: tuple[str, ...]
    keep: str
    months: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "label": self.label,
            "purposes": list(self.purposes),
            "recipients": list(self.recipients),
            "retention": {"keep": self.keep, "months": self.months},
        }


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """Look-up tables derived from one `Policy`; build it with `compile_policy`."""

    policy: Policy
    version: str
    categories: frozenset[str]
    purpose_basis: Mapping[str, Basis]
    purpose_categories: Mapping[str, frozenset[str]]
    sale_or_sharing: frozenset[str]
    role_purposes: Mapping[str, frozenset[str]]
    role_permissions: Mapping[str, frozenset[str]]
    collection_points: Mapping[str, CollectionPoint]
    recipients: Mapping[str, Recipient]
    retention: Mapping[str, RetentionRule]
    datamap: tuple[DataMapEntry, ...]
    # Field name -> category, over every automatic collection point: what a log event holds.
    log_fields: Mapping[str, str]
    # Every topic a person can choose on (opt-out and consent purposes, non-essential cookie
    # categories, Global Privacy Control) -> what it means.
    choice_topics: Mapping[str, str]
    # The roles and the purposes limited to some data subjects (`subjects:`), and to which.
    role_subjects: Mapping[str, frozenset[str]]
    purpose_subjects: Mapping[str, frozenset[str]]
    # Each group of categories -> its leaves ("contact" -> contact.email, contact.phone, ...).
    group_leaves: Mapping[str, frozenset[str]]

    def covers(self, subjects: frozenset[str], kind: str | None) -> bool:
        """Whether a person of `kind` (a `Person.kind`) is one of `subjects`."""
        return kind is not None and not subjects.isdisjoint(SUBJECTS_OF_KIND.get(kind, {kind}))

    def leaves_for(self, purpose: str, categories: Iterable[str]) -> frozenset[str]:
        """The leaf categories a use asks for: each leaf named, and for each group named its
        leaves that `purpose` may use."""
        allowed = self.purpose_categories.get(purpose, frozenset())
        found: set[str] = set()
        for category in categories:
            group = self.group_leaves.get(category)
            found |= group & allowed if group is not None else {category}
        return frozenset(found)

    def expand(self, reference: str) -> list[str]:
        """The leaf categories `reference` (a category or a group) stands for."""
        return expand_categories(reference, sorted(self.categories))


def _frozen(mapping: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(mapping)


# The topic under which a `Sec-GPC: 1` signal is kept among a person's choices.
GPC_TOPIC = "gpc"
# The data subjects a kind of person stands as, where it is more than its own name: a user is
# one of the people of a customer, whose data a customer's rules cover.
SUBJECTS_OF_KIND: Mapping[str, frozenset[str]] = MappingProxyType(
    {"user": frozenset({"user", "customer"})}
)


def _groups(leaves: list[str]) -> dict[str, frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for leaf in leaves:
        parts = leaf.split(".")
        for depth in range(1, len(parts)):
            groups.setdefault(".".join(parts[:depth]), set()).add(leaf)
    return {group: frozenset(members) for group, members in groups.items()}


def _choice_topics(policy: Policy) -> dict[str, str]:
    found = {f"purpose:{p.id}": p.label for p in policy.purposes if p.basis != "service"}
    for category in sorted({c.category for c in policy.cookies if c.category != "essential"}):
        found[f"cookie:{category}"] = f"{category.capitalize()} cookies"
    found[GPC_TOPIC] = "Global Privacy Control: opt out of sale and sharing"
    return found


def retention_by_leaf(policy: Policy) -> dict[str, RetentionRule]:
    """The retention rule of every leaf category."""
    leaves = [c.id for c in policy.categories]
    return {
        leaf: rule
        for rule in policy.retention.rules
        for leaf in expand_categories(rule.category, leaves)
    }


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Compile a loaded (and therefore checked) policy into look-up tables."""
    leaves = [c.id for c in policy.categories]
    purpose_categories = {
        p.id: frozenset(leaf for ref in p.categories for leaf in expand_categories(ref, leaves))
        for p in policy.purposes
    }
    retention = retention_by_leaf(policy)
    recipient_categories = {
        r.id: {leaf for ref in r.categories for leaf in expand_categories(ref, leaves)}
        for r in policy.recipients
    }
    datamap = tuple(
        DataMapEntry(
            category=c.id,
            label=c.label,
            purposes=tuple(p.id for p in policy.purposes if c.id in purpose_categories[p.id]),
            recipients=tuple(r.id for r in policy.recipients if c.id in recipient_categories[r.id]),
            keep=retention[c.id].keep,
            months=retention[c.id].months,
        )
        for c in policy.categories
    )
    return CompiledPolicy(
        policy=policy,
        version=policy.organisation.version,
        categories=frozenset(leaves),
        purpose_basis=_frozen({p.id: p.basis for p in policy.purposes}),
        purpose_categories=_frozen(purpose_categories),
        sale_or_sharing=frozenset(p.id for p in policy.purposes if p.sale_or_sharing),
        role_purposes=_frozen({r.id: frozenset(r.purposes) for r in policy.roles}),
        role_permissions=_frozen({r.id: frozenset(r.permissions) for r in policy.roles}),
        collection_points=_frozen({c.id: c for c in policy.collection_points}),
        recipients=_frozen({r.id: r for r in policy.recipients}),
        retention=_frozen(retention),
        datamap=datamap,
        log_fields=_frozen(
            {
                f.name: f.category
                for point in policy.collection_points
                if point.method == "automatic"
                for f in point.fields
            }
        ),
        choice_topics=_frozen(_choice_topics(policy)),
        role_subjects=_frozen(
            {r.id: frozenset(r.subjects) for r in policy.roles if r.subjects is not None}
        ),
        purpose_subjects=_frozen(
            {p.id: frozenset(p.subjects) for p in policy.purposes if p.subjects is not None}
        ),
        group_leaves=_frozen(_groups(leaves)),
    )
