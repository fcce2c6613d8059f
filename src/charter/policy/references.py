"""Checks that every id a policy mentions is declared, once, and that the rules agree.

These are the checks pydantic cannot make alone: they look across sections. Each problem
carries the path of the value it is about, so that the loader can point at its line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from charter.policy.schema import Policy, Purpose

PathKey = tuple[str | int, ...]
_Item = TypeVar("_Item")


@dataclass(frozen=True)
class Reference:
    """A problem found by the reference checks, at `path` in the document.

    `also` is the path of the other value the problem is about (the first declaration of a
    duplicate id, the rule that already covers a category), if there is one.
    """

    path: PathKey
    message: str
    also: PathKey | None = None


def dotted(path: Iterable[str | int]) -> str:
    """`("sections", 2, "heading")` -> `sections[2].heading`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def expand_categories(reference: str, leaves: Sequence[str]) -> list[str]:
    """The leaf categories a reference stands for: itself, or every leaf of its group."""
    if reference in leaves:
        return [reference]
    prefix = reference + "."
    return [leaf for leaf in leaves if leaf.startswith(prefix)]


def _unknown(value: str, what: str) -> str:
    return f"'{value}' is not a declared {what}"


def _duplicates(
    items: Sequence[_Item], path: PathKey, key: str, what: str, id_of: Callable[[_Item], str]
) -> Iterator[Reference]:
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        item_id = id_of(item)
        if item_id in first:
            also = (*path, first[item_id], key)
            yield Reference(
                (*path, index, key),
                f"duplicate {what} '{item_id}', first declared at {dotted(also)}",
                also,
            )
        else:
            first[item_id] = index


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


def _id_of(item: _HasId) -> str:
    return item.id


def _duplicate_ids(policy: Policy) -> Iterator[Reference]:
    with_ids: list[tuple[Sequence[_HasId], PathKey, str]] = [
        (policy.sections, ("sections",), "section"),
        (policy.safeguards, ("safeguards",), "safeguard"),
        (policy.additional_terms, ("additional_terms",), "terms"),
        (policy.categories, ("categories",), "category"),
        (policy.subjects, ("subjects",), "subject"),
        (policy.collection_points, ("collection_points",), "collection point"),
        (policy.purposes, ("purposes",), "purpose"),
        (policy.enrichment_sources, ("enrichment_sources",), "source"),
        (policy.recipients, ("recipients",), "recipient"),
        (policy.transfer_grounds, ("transfer_grounds",), "transfer ground"),
        (policy.rights, ("rights",), "right"),
        (policy.roles, ("roles",), "role"),
        (policy.retention.kept_longer_for, ("retention", "kept_longer_for"), "reason"),
    ]
    for items, path, what in with_ids:
        yield from _duplicates(items, path, "id", what, _id_of)
    yield from _duplicates(policy.cookies, ("cookies",), "name", "cookie", lambda c: c.name)


@dataclass(frozen=True)
class _Declared:
    """What a policy declares, to check its references against. A duplicate id (reported on
    its own) counts as its first declaration, so that it causes no further problems."""

    leaves: list[str]
    subjects: frozenset[str]
    purposes: dict[str, Purpose]
    roles: frozenset[str]

    @classmethod
    def of(cls, policy: Policy) -> _Declared:
        purposes: dict[str, Purpose] = {}
        for purpose in policy.purposes:
            purposes.setdefault(purpose.id, purpose)
        return cls(
            leaves=[c.id for c in policy.categories],
            subjects=frozenset(s.id for s in policy.subjects),
            purposes=purposes,
            roles=frozenset(r.id for r in policy.roles),
        )

    def categories(self, refs: Sequence[str], path: PathKey) -> Iterator[Reference]:
        for index, ref in enumerate(refs):
            if not expand_categories(ref, self.leaves):
                yield Reference((*path, index), _unknown(ref, "category or group of categories"))

    @staticmethod
    def ids(
        refs: Sequence[str], known: Iterable[str], path: PathKey, what: str
    ) -> Iterator[Reference]:
        known_set = set(known)
        for index, ref in enumerate(refs):
            if ref not in known_set:
                yield Reference((*path, index), _unknown(ref, what))


def _category_groups(policy: Policy) -> Iterator[Reference]:
    leaves = [c.id for c in policy.categories]
    for index, category in enumerate(policy.categories):
        if any(other.startswith(category.id + ".") for other in leaves):
            yield Reference(
                ("categories", index, "id"),
                f"'{category.id}' is both a category and a group of categories",
            )


def _collection_points(policy: Policy, declared: _Declared) -> Iterator[Reference]:
    leaf_set = set(declared.leaves)
    for index, point in enumerate(policy.collection_points):
        base: PathKey = ("collection_points", index)
        yield from declared.ids(point.subjects, declared.subjects, (*base, "subjects"), "subject")
        if point.readable_by_roles is not None:
            roles_path = (*base, "readable_by_roles")
            yield from declared.ids(point.readable_by_roles, declared.roles, roles_path, "role")
        fields_path = (*base, "fields")
        yield from _duplicates(point.fields, fields_path, "name", "field", lambda f: f.name)
        for field_index, field in enumerate(point.fields):
            if field.category not in leaf_set:
                # A field holds one value, so it names one category, never a group.
                path = (*fields_path, field_index, "category")
                yield Reference(path, _unknown(field.category, "category"))


def _cookies(policy: Policy, declared: _Declared) -> Iterator[Reference]:
    for index, cookie in enumerate(policy.cookies):
        base: PathKey = ("cookies", index)
        yield from declared.ids(cookie.subjects, declared.subjects, (*base, "subjects"), "subject")
        if cookie.purpose not in declared.purposes:
            yield Reference((*base, "purpose"), _unknown(cookie.purpose, "purpose"))


def _recipients(policy: Policy, declared: _Declared) -> Iterator[Reference]:
    purposes = declared.purposes
    for index, recipient in enumerate(policy.recipients):
        base: PathKey = ("recipients", index)
        yield from declared.ids(recipient.purposes, purposes, (*base, "purposes"), "purpose")
        yield from declared.categories(recipient.categories, (*base, "categories"))
        if not all(p in purposes for p in recipient.purposes):
            continue  # what its purposes allow is unknown: the undeclared purpose is the problem
        allowed = {
            leaf
            for purpose_id in recipient.purposes
            for ref in purposes[purpose_id].categories
            for leaf in expand_categories(ref, declared.leaves)
        }
        for cat_index, ref in enumerate(recipient.categories):
            outside = [
                leaf for leaf in expand_categories(ref, declared.leaves) if leaf not in allowed
            ]
            if outside:
                yield Reference(
                    (*base, "categories", cat_index),
                    f"receives {', '.join(outside)}, which none of its purposes "
                    f"({', '.join(recipient.purposes)}) may use",
                )


def _retention(policy: Policy, declared: _Declared) -> Iterator[Reference]:
    covered: dict[str, int] = {}
    for index, rule in enumerate(policy.retention.rules):
        path: PathKey = ("retention", "rules", index, "category")
        matched = expand_categories(rule.category, declared.leaves)
        if not matched:
            yield Reference(path, _unknown(rule.category, "category or group of categories"))
        for leaf in matched:
            if leaf in covered:
                also = ("retention", "rules", covered[leaf], "category")
                message = f"category '{leaf}' already has a retention rule, at {dotted(also)}"
                yield Reference(path, message, also)
            else:
                covered[leaf] = index
    for index, category in enumerate(policy.categories):
        if category.id not in covered:
            yield Reference(
                ("categories", index, "id"), f"category '{category.id}' has no retention rule"
            )


def check_references(policy: Policy) -> list[Reference]:
    """Every cross-reference problem of `policy`, in document order of its sections."""
    declared = _Declared.of(policy)
    problems = [*_duplicate_ids(policy), *_category_groups(policy)]
    problems += _collection_points(policy, declared)
    problems += _cookies(policy, declared)
    for index, purpose in enumerate(policy.purposes):
        problems += declared.categories(purpose.categories, ("purposes", index, "categories"))
        if purpose.subjects is not None:
            subjects_path: PathKey = ("purposes", index, "subjects")
            problems += declared.ids(purpose.subjects, declared.subjects, subjects_path, "subject")
    for index, source in enumerate(policy.enrichment_sources):
        path: PathKey = ("enrichment_sources", index, "categories")
        problems += declared.categories(source.categories, path)
    problems += _recipients(policy, declared)
    for index, role in enumerate(policy.roles):
        path = ("roles", index, "purposes")
        problems += declared.ids(role.purposes, declared.purposes, path, "purpose")
        if role.subjects is not None:
            path = ("roles", index, "subjects")
            problems += declared.ids(role.subjects, declared.subjects, path, "subject")
    problems += _retention(policy, declared)
    return problems
