"""Checks that every id a policy mentions is declared, once, and that the rules agree.

These are the checks pydantic cannot make alone: they look across sections. Each problem
carries the path of the value it is about, so that the loader can point at its line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from charter.policy.schema import Policy

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Reference:
    """A problem found by the reference checks, at `path` in the document."""

    path: PathKey
    message: str


def expand_categories(reference: str, leaves: Sequence[str]) -> list[str]:
    """The leaf categories a reference stands for: itself, or every leaf of its group."""
    if reference in leaves:
        return [reference]
    prefix = reference + "."
    return [leaf for leaf in leaves if leaf.startswith(prefix)]


def _duplicates(ids: Iterable[str], path: PathKey, key: str, what: str) -> Iterator[Reference]:
    seen: dict[str, int] = {}
    for index, item_id in enumerate(ids):
        if item_id in seen:
            yield Reference((*path, index, key), f"duplicate {what} '{item_id}' (also item {seen[item_id]})")
        else:
            seen[item_id] = index


def _unknown(value: str, what: str) -> str:
    return f"'{value}' is not a declared {what}"


def check_references(policy: Policy) -> list[Reference]:
    """Every cross-reference problem of `policy`, in document order of its sections."""
    problems: list[Reference] = []
    add = problems.extend

    add(_duplicates((s.id for s in policy.sections), ("sections",), "id", "section"))
    add(_duplicates((s.id for s in policy.safeguards), ("safeguards",), "id", "safeguard"))
    add(_duplicates((t.id for t in policy.additional_terms), ("additional_terms",), "id", "terms"))
    add(_duplicates((c.id for c in policy.categories), ("categories",), "id", "category"))
    add(_duplicates((s.id for s in policy.subjects), ("subjects",), "id", "subject"))
    add(_duplicates((c.id for c in policy.collection_points), ("collection_points",), "id", "collection point"))
    add(_duplicates((c.name for c in policy.cookies), ("cookies",), "name", "cookie"))
    add(_duplicates((p.id for p in policy.purposes), ("purposes",), "id", "purpose"))
    add(_duplicates((e.id for e in policy.enrichment_sources), ("enrichment_sources",), "id", "source"))
    add(_duplicates((r.id for r in policy.recipients), ("recipients",), "id", "recipient"))
    add(_duplicates((g.id for g in policy.transfer_grounds), ("transfer_grounds",), "id", "transfer ground"))
    add(_duplicates((r.id for r in policy.rights), ("rights",), "id", "right"))
    add(_duplicates((r.id for r in policy.roles), ("roles",), "id", "role"))
    add(_duplicates((k.id for k in policy.retention.kept_longer_for), ("retention", "kept_longer_for"), "id", "reason"))

    leaves = [c.id for c in policy.categories]
    leaf_set = set(leaves)
    for index, category in enumerate(policy.categories):
        if any(other.startswith(category.id + ".") for other in leaves):
            problems.append(Reference(("categories", index, "id"),
                                      f"'{category.id}' is both a category and a group of categories"))

    subjects = {s.id for s in policy.subjects}
    purposes = {p.id: p for p in policy.purposes}
    roles = {r.id for r in policy.roles}

    def category_refs(refs: Sequence[str], path: PathKey) -> None:
        for index, ref in enumerate(refs):
            if not expand_categories(ref, leaves):
                problems.append(Reference((*path, index), _unknown(ref, "category or group of categories")))

    def id_refs(refs: Sequence[str], known: Iterable[str], path: PathKey, what: str) -> None:
        known_set = set(known)
        for index, ref in enumerate(refs):
            if ref not in known_set:
                problems.append(Reference((*path, index), _unknown(ref, what)))

    for index, point in enumerate(policy.collection_points):
        base: PathKey = ("collection_points", index)
        id_refs(point.subjects, subjects, (*base, "subjects"), "subject")
        if point.readable_by_roles is not None:
            id_refs(point.readable_by_roles, roles, (*base, "readable_by_roles"), "role")
        add(_duplicates((f.name for f in point.fields), (*base, "fields"), "name", "field"))
        for field_index, field in enumerate(point.fields):
            if field.category not in leaf_set:
                # A field holds one value, so it names one category, never a group.
                path = (*base, "fields", field_index, "category")
                problems.append(Reference(path, _unknown(field.category, "category")))

    for index, cookie in enumerate(policy.cookies):
        id_refs(cookie.subjects, subjects, ("cookies", index, "subjects"), "subject")
        if cookie.purpose not in purposes:
            problems.append(Reference(("cookies", index, "purpose"), _unknown(cookie.purpose, "purpose")))

    for index, purpose in enumerate(policy.purposes):
        category_refs(purpose.categories, ("purposes", index, "categories"))

    for index, source in enumerate(policy.enrichment_sources):
        category_refs(source.categories, ("enrichment_sources", index, "categories"))

    for index, recipient in enumerate(policy.recipients):
        base = ("recipients", index)
        id_refs(recipient.purposes, purposes, (*base, "purposes"), "purpose")
        category_refs(recipient.categories, (*base, "categories"))
        allowed = {
            leaf
            for purpose_id in recipient.purposes if purpose_id in purposes
            for ref in purposes[purpose_id].categories
            for leaf in expand_categories(ref, leaves)
        }
        for cat_index, ref in enumerate(recipient.categories):
            outside = [leaf for leaf in expand_categories(ref, leaves) if leaf not in allowed]
            if outside and all(p in purposes for p in recipient.purposes):
                problems.append(Reference(
                    (*base, "categories", cat_index),
                    f"receives {', '.join(outside)}, which none of its purposes "
                    f"({', '.join(recipient.purposes)}) may use",
                ))

    for index, role in enumerate(policy.roles):
        id_refs(role.purposes, purposes, ("roles", index, "purposes"), "purpose")

    covered: dict[str, int] = {}
    for index, rule in enumerate(policy.retention.rules):
        path: PathKey = ("retention", "rules", index, "category")
        matched = expand_categories(rule.category, leaves)
        if not matched:
            problems.append(Reference(path, _unknown(rule.category, "category or group of categories")))
        for leaf in matched:
            if leaf in covered:
                problems.append(Reference(path, f"category '{leaf}' already has a retention rule (rule {covered[leaf]})"))
            else:
                covered[leaf] = index
    for index, category in enumerate(policy.categories):
        if category.id not in covered:
            problems.append(Reference(("categories", index, "id"),
                                      f"category '{category.id}' has no retention rule"))
    return problems
