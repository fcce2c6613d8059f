"""Properties of the disclosure guards over any request and any person: what the policy does
not declare together never goes out, and the rules of C21, C22 and C24 hold for every
allowed decision."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from charter.access.decide import PersonState
from charter.disclosures.guards import (
    ADVERTISING_KINDS,
    DisclosureRequest,
    StaffInRole,
    guard_disclosure,
    recipient_leaves,
)
from charter.policy.compiled import GPC_TOPIC, compile_policy
from charter.policy.loader import load_policy
from tests.conftest import OMNI_YAML

POLICY = compile_policy(load_policy(OMNI_YAML))
DECLARED = POLICY.policy

staff = st.builds(
    StaffInRole,
    staff_id=st.integers(min_value=1, max_value=3),
    role=st.sampled_from([r.id for r in DECLARED.roles]),
)
requests = st.builds(
    DisclosureRequest,
    recipient=st.sampled_from([*POLICY.recipients, "data_broker"]),
    purpose=st.sampled_from([*POLICY.purpose_basis, "list_rental"]),
    categories=st.lists(
        st.sampled_from([*sorted(POLICY.categories), *sorted(POLICY.group_leaves), "genome"]),
        min_size=1,
        max_size=4,
    ).map(tuple),
    requester=staff,
    country=st.none() | st.sampled_from(["US", "IE", "GB", "DE"]),
    ground=st.none() | st.sampled_from([*(g.id for g in DECLARED.transfer_grounds), "goodwill"]),
    legal_process=st.none() | st.sampled_from(["", "  ", "court order 17"]),
    approver=st.none() | staff,
    for_recipients_own_purposes=st.booleans(),
)
people = st.builds(
    PersonState,
    erased=st.booleans(),
    objected=st.booleans(),
    choices=st.dictionaries(st.sampled_from(sorted(POLICY.choice_topics)), st.booleans()),
    kind=st.none() | st.sampled_from([s.id for s in DECLARED.subjects]),
)


@settings(max_examples=500, deadline=None)
@given(request=requests)
def test_nothing_goes_out_that_the_policy_does_not_declare_for_that_recipient_and_purpose(
    request: DisclosureRequest,
) -> None:
    guard = guard_disclosure(POLICY, request)

    if guard.decision.allowed:
        recipient = POLICY.recipients[request.recipient]
        assert request.purpose in recipient.purposes
        assert guard.categories
        assert guard.categories <= recipient_leaves(POLICY, recipient)
        assert guard.categories <= POLICY.purpose_categories[request.purpose]
    else:
        assert guard.categories == frozenset()


@settings(max_examples=500, deadline=None)
@given(request=requests)
def test_every_allowed_request_keeps_the_sharing_rules_and_the_transfer_grounds(
    request: DisclosureRequest,
) -> None:
    guard = guard_disclosure(POLICY, request)
    if not guard.decision.allowed:
        return
    recipient = POLICY.recipients[request.recipient]

    if request.for_recipients_own_purposes:
        assert recipient.kind == "affiliate"
        assert guard.decision.shine_the_light
    if recipient.kind == "law_enforcement":
        assert request.legal_process
        assert request.legal_process.strip()
        assert request.approver is not None
        assert request.approver.role == "privacy_officer"
        assert request.approver.staff_id != request.requester.staff_id
    if guard.cross_border:
        assert request.ground in {g.id for g in DECLARED.transfer_grounds}
    if request.ground == "business_transfer":
        assert recipient.kind == "acquirer"


@settings(max_examples=500, deadline=None)
@given(request=requests, person=people)
def test_no_person_is_disclosed_against_their_state_or_a_refused_request(
    request: DisclosureRequest, person: PersonState
) -> None:
    guard = guard_disclosure(POLICY, request)

    decision = guard.decide(person)

    if not guard.decision.allowed:
        assert decision == guard.decision
        return
    if not decision.allowed:
        return
    choices = person.choices
    recipient = POLICY.recipients[request.recipient]
    assert not person.erased
    assert not person.objected
    assert choices.get(f"purpose:{request.purpose}") is not False
    if recipient.kind in ADVERTISING_KINDS or request.purpose in POLICY.sale_or_sharing:
        assert not choices.get(GPC_TOPIC)
    if recipient.kind in ADVERTISING_KINDS:
        assert all(choices.get(f"purpose:{p}") is not False for p in POLICY.sale_or_sharing)
    if request.ground == "consent":
        assert choices.get(f"purpose:{request.purpose}") is True
    assert decision.shine_the_light == guard.decision.shine_the_light
