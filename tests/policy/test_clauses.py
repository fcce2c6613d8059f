"""Every promise of the published text (C1-C26) is kept by something `omni.yaml` declares,
and everything it declares refers only to what it declares."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from charter.policy.compiled import CompiledPolicy
from charter.policy.loader import parse_policy
from charter.policy.schema import Policy

CLAUSES = [f"C{number}" for number in range(1, 27)]


def implementers(policy: Policy) -> dict[str, set[str]]:
    """Clause id -> the top-level parts of `policy` whose items name it.

    Sections only carry the published text; they are left out, because a clause is
    implemented by a rule, a form, a purpose..., not by the paragraph that states it.
    """
    found: dict[str, set[str]] = defaultdict(set)

    def walk(value: Any, part: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "clauses":
                    for clause in inner:
                        found[clause].add(part)
                else:
                    walk(inner, part)
        elif isinstance(value, list):
            for inner in value:
                walk(inner, part)

    for part, value in policy.model_dump().items():
        if part != "sections":
            walk(value, part)
    return found


def test_every_clause_is_implemented_by_an_item(omni_policy: Policy) -> None:
    found = implementers(omni_policy)

    assert [clause for clause in CLAUSES if clause not in found] == []
    assert set(found) <= set(CLAUSES)


def test_every_clause_is_stated_by_a_section(omni_policy: Policy) -> None:
    stated = {clause for section in omni_policy.sections for clause in section.clauses}

    assert sorted(stated, key=lambda c: int(c[1:])) == CLAUSES


@pytest.mark.parametrize(
    ("clause", "part"),
    [
        ("C2", "roles"),
        ("C9", "categories"),
        ("C11", "cookies"),
        ("C18", "purposes"),
        ("C19", "enrichment_sources"),
        ("C21", "sharing_rules"),
        ("C22", "recipients"),
        ("C23", "retention"),
        ("C24", "transfer_grounds"),
        ("C25", "rights"),
        ("C26", "changes"),
    ],
)
def test_a_clause_is_kept_where_its_promise_is_enforced(
    omni_policy: Policy, clause: str, part: str
) -> None:
    assert part in implementers(omni_policy)[clause]


def test_a_clause_named_nowhere_is_found_missing(omni_text: str) -> None:
    # Re-label every C25 (California rights) as C1: the walk must notice C25 has gone.
    text = omni_text.replace("C25]", "C1]").replace("C25,", "C1,")
    assert "C25" not in text.split("clauses:", 1)[1]
    policy = parse_policy(text, "omni.yaml")

    found = implementers(policy)

    assert [clause for clause in CLAUSES if clause not in found] == ["C25"]


# --- references resolve -----------------------------------------------------------------


def test_every_category_reference_stands_for_declared_categories(
    omni_policy: Policy, omni_compiled: CompiledPolicy
) -> None:
    references = [
        *((f"purpose {p.id}", ref) for p in omni_policy.purposes for ref in p.categories),
        *((f"recipient {r.id}", ref) for r in omni_policy.recipients for ref in r.categories),
        *(
            (f"enrichment {e.id}", ref)
            for e in omni_policy.enrichment_sources
            for ref in e.categories
        ),
        *((f"retention {rule.category}", rule.category) for rule in omni_policy.retention.rules),
    ]

    unresolved = [(who, ref) for who, ref in references if not omni_compiled.expand(ref)]

    assert len(references) > 50
    assert unresolved == []


def test_every_form_field_names_one_declared_category(
    omni_policy: Policy, omni_compiled: CompiledPolicy
) -> None:
    fields = [(p.id, f.name, f.category) for p in omni_policy.collection_points for f in p.fields]

    assert [f for f in fields if f[2] not in omni_compiled.categories] == []


def test_every_purpose_reference_is_declared(
    omni_policy: Policy, omni_compiled: CompiledPolicy
) -> None:
    declared = set(omni_compiled.purpose_basis)
    references = [
        *((f"recipient {r.id}", p) for r in omni_policy.recipients for p in r.purposes),
        *((f"role {r.id}", p) for r in omni_policy.roles for p in r.purposes),
        *((f"cookie {c.name}", c.purpose) for c in omni_policy.cookies),
    ]

    assert [(who, p) for who, p in references if p not in declared] == []


def test_every_subject_and_role_reference_is_declared(omni_policy: Policy) -> None:
    subjects = {s.id for s in omni_policy.subjects}
    roles = {r.id for r in omni_policy.roles}
    subject_refs = [
        *((p.id, s) for p in omni_policy.collection_points for s in p.subjects),
        *((c.name, s) for c in omni_policy.cookies for s in c.subjects),
    ]
    role_refs = [
        (p.id, r) for p in omni_policy.collection_points for r in p.readable_by_roles or []
    ]

    assert [ref for ref in subject_refs if ref[1] not in subjects] == []
    assert role_refs, "job applications are readable by recruiters only"
    assert [ref for ref in role_refs if ref[1] not in roles] == []


def test_every_recipient_receives_only_what_its_purposes_use(
    omni_policy: Policy, omni_compiled: CompiledPolicy
) -> None:
    for recipient in omni_policy.recipients:
        allowed = set().union(*(omni_compiled.purpose_categories[p] for p in recipient.purposes))
        received = {leaf for ref in recipient.categories for leaf in omni_compiled.expand(ref)}
        assert received <= allowed, recipient.id


def test_the_data_map_covers_every_category_with_declared_ids(
    omni_compiled: CompiledPolicy,
) -> None:
    recipients = set(omni_compiled.recipients)
    purposes = set(omni_compiled.purpose_basis)

    assert {entry.category for entry in omni_compiled.datamap} == set(omni_compiled.categories)
    for entry in omni_compiled.datamap:
        assert entry.purposes, f"{entry.category} is collected but used for nothing"
        assert set(entry.purposes) <= purposes
        assert set(entry.recipients) <= recipients
        assert entry.category in omni_compiled.retention


def test_every_category_has_exactly_one_retention_rule(
    omni_policy: Policy, omni_compiled: CompiledPolicy
) -> None:
    covered = [
        leaf for rule in omni_policy.retention.rules for leaf in omni_compiled.expand(rule.category)
    ]

    assert sorted(covered) == sorted(omni_compiled.categories)


# --- the purposes of the published text (C18) --------------------------------------------


def test_the_eleven_published_purposes_and_other_with_consent(omni_policy: Policy) -> None:
    published = [p for p in omni_policy.purposes if p.id != "other_with_consent"]
    other = [p for p in omni_policy.purposes if p.id == "other_with_consent"]

    assert len(published) == 11
    assert all(p.basis != "consent" for p in published)
    assert len(other) == 1
    assert other[0].basis == "consent"
    assert all("C18" in p.clauses for p in omni_policy.purposes)
