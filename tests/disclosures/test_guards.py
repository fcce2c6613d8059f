"""The guards of a disclosure, one by one through the library: each refusal with its code,
an allowed disclosure to each kind of recipient in omni.yaml, and each person decided by
their own state (C21, C22, C24)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from charter.access.decide import PersonState
from charter.disclosures.guards import (
    DisclosureDecision,
    DisclosureRequest,
    StaffInRole,
    decide_disclosure,
    guard_disclosure,
)
from charter.errors import Unprocessable
from charter.policy.compiled import GPC_TOPIC, CompiledPolicy, compile_policy
from charter.policy.schema import Policy

ANALYST = StaffInRole(staff_id=1, role="security_fraud")
OFFICER = StaffInRole(staff_id=2, role="privacy_officer")
NOBODY_IN_PARTICULAR = PersonState(kind="user")


def ask(
    recipient: str, purpose: str, *categories: str, requester: StaffInRole = ANALYST, **rest: Any
) -> DisclosureRequest:
    """A request of `requester` (an analyst by default); `rest` names the other fields."""
    return DisclosureRequest(recipient, purpose, categories, requester, **rest)


def code_of(policy: CompiledPolicy, request: DisclosureRequest) -> str:
    return guard_disclosure(policy, request).decision.code


# One allowed disclosure to each kind of recipient omni.yaml declares.
ALLOWED_BY_KIND = {
    "selected_service": ask("selected_services", "service_support", "identity.name"),
    "advertiser": ask("google_ads", "promotional", "cookie.id", "usage"),
    "ad_auditor": ask("ad_audit", "promotional", "usage.pages"),
    "processor": ask("payments_processor", "billing", "billing.payment"),
    "affiliate": ask("omni_europe", "service_support", "contact.email", ground="affiliates"),
    "law_enforcement": ask(
        "law_enforcement",
        "fraud_and_legal",
        "network.ip",
        legal_process="subpoena 2026-0417",
        approver=OFFICER,
    ),
    "acquirer": ask(
        "acquirer", "contract_obligations", "identity.name", ground="business_transfer"
    ),
}


# --- allowed ------------------------------------------------------------------------------------


def test_every_kind_of_recipient_the_policy_declares_has_an_allowed_disclosure(
    omni_compiled: CompiledPolicy,
) -> None:
    kinds = {r.kind for r in omni_compiled.recipients.values()}

    decisions = {
        kind: decide_disclosure(omni_compiled, request, NOBODY_IN_PARTICULAR)
        for kind, request in ALLOWED_BY_KIND.items()
    }

    assert set(ALLOWED_BY_KIND) == kinds
    assert {kind: d.code for kind, d in decisions.items()} == dict.fromkeys(kinds, "allowed")
    assert not any(d.shine_the_light for d in decisions.values())


def test_a_group_of_categories_stands_for_its_leaves_declared_for_recipient_and_purpose(
    omni_compiled: CompiledPolicy,
) -> None:
    guard = guard_disclosure(omni_compiled, ALLOWED_BY_KIND["law_enforcement"])
    grouped = guard_disclosure(
        omni_compiled, replace(ALLOWED_BY_KIND["law_enforcement"], categories=("identity", "usage"))
    )

    assert guard.categories == {"network.ip"}
    # law_enforcement receives every identity category, fraud_and_legal uses only the name.
    assert grouped.decision.allowed
    assert grouped.categories == {
        "identity.name",
        *(c for c in omni_compiled.categories if c.startswith("usage.")),
    }


def test_a_domestic_recipient_needs_no_ground_and_a_foreign_one_is_a_transfer(
    omni_compiled: CompiledPolicy,
) -> None:
    domestic = guard_disclosure(omni_compiled, ALLOWED_BY_KIND["processor"])
    foreign = guard_disclosure(
        omni_compiled,
        ask(
            "email_delivery",
            "service_communications",
            "contact.email",
            ground="disclosed_at_collection",
        ),
    )

    assert (domestic.country, domestic.cross_border, domestic.decision.allowed) == (
        "US",
        False,
        True,
    )
    assert (foreign.country, foreign.cross_border, foreign.decision.allowed) == ("IE", True, True)


# --- the recipient, the purpose and the categories are declared together ------------------------


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (ask("data_broker", "promotional", "contact.email"), "recipient_not_declared"),
        (ask("google_ads", "billing", "identity.name"), "purpose_not_for_recipient"),
        (ask("google_ads", "list_rental", "contact.email"), "purpose_not_for_recipient"),
        # promotional uses the e-mail address; google_ads is not declared to receive it.
        (ask("google_ads", "promotional", "contact.email"), "category_not_for_recipient"),
        # omni_europe receives the company, but not for promotional.
        (
            ask("omni_europe", "promotional", "contact.company", ground="affiliates"),
            "category_not_for_recipient",
        ),
        (ask("google_ads", "promotional", "cookie.id", "genome"), "category_not_for_recipient"),
        # No billing category is declared for the advertiser: a whole group yields nothing.
        (ask("google_ads", "promotional", "billing"), "category_not_for_recipient"),
    ],
)
def test_a_recipient_purpose_or_category_not_declared_together_is_refused(
    omni_compiled: CompiledPolicy, request_: DisclosureRequest, code: str
) -> None:
    guard = guard_disclosure(omni_compiled, request_)

    assert (guard.decision.allowed, guard.decision.code) == (False, code)
    assert guard.categories == frozenset()
    assert guard.decide(NOBODY_IN_PARTICULAR) == guard.decision


def test_a_request_that_is_malformed_rather_than_refused_raises(
    omni_compiled: CompiledPolicy,
) -> None:
    with pytest.raises(Unprocessable) as no_category:
        guard_disclosure(omni_compiled, ask("google_ads", "promotional"))
    with pytest.raises(Unprocessable) as bad_country:
        guard_disclosure(omni_compiled, replace(ALLOWED_BY_KIND["advertiser"], country="usa"))

    assert (no_category.value.code, bad_country.value.code) == ("no_categories", "invalid_country")


# --- never to a third party for its own commercial purposes (C21) --------------------------------


@pytest.mark.parametrize("kind", sorted(set(ALLOWED_BY_KIND) - {"affiliate"}))
def test_a_disclosure_for_a_third_partys_own_commercial_purposes_is_always_refused(
    omni_compiled: CompiledPolicy, kind: str
) -> None:
    request = replace(ALLOWED_BY_KIND[kind], for_recipients_own_purposes=True)

    decision = guard_disclosure(omni_compiled, request).decision

    assert (decision.allowed, decision.code) == (False, "never_sold")
    assert "never shares, sells, rents or trades" in decision.reason


def test_a_third_party_the_policy_marks_for_direct_marketing_still_receives_nothing(
    omni_policy: Policy,
) -> None:
    marked = [
        r.model_copy(update={"direct_marketing": True}) if r.id == "google_ads" else r
        for r in omni_policy.recipients
    ]
    policy = compile_policy(omni_policy.model_copy(update={"recipients": marked}))

    assert code_of(policy, ALLOWED_BY_KIND["advertiser"]) == "never_sold"


def test_an_affiliate_receives_for_its_own_purposes_only_its_direct_marketing(
    omni_compiled: CompiledPolicy,
) -> None:
    support = ask(
        "omni_europe",
        "service_support",
        "contact.email",
        ground="affiliates",
        for_recipients_own_purposes=True,
    )
    marketing = replace(support, purpose="promotional")

    assert code_of(omni_compiled, support) == "never_sold"
    assert guard_disclosure(omni_compiled, marketing).decision == DisclosureDecision(
        True,
        "allowed",
        "the policy allows this disclosure; each person is decided by their own state",
        shine_the_light=True,
    )


def test_an_affiliates_direct_marketing_honours_the_opt_out_and_is_for_shine_the_light(
    omni_compiled: CompiledPolicy,
) -> None:
    guard = guard_disclosure(
        omni_compiled, ask("omni_europe", "promotional", "contact.email", ground="affiliates")
    )

    allowed = guard.decide(NOBODY_IN_PARTICULAR)
    opted_out = guard.decide(PersonState(choices={"purpose:promotional": False}))
    gpc = guard.decide(PersonState(choices={GPC_TOPIC: True}))

    assert (allowed.code, allowed.shine_the_light) == ("allowed", True)
    assert (opted_out.allowed, opted_out.code) == (False, "person_opted_out")
    assert (gpc.allowed, gpc.code) == (False, "gpc_signal")


def test_with_the_rule_lifted_the_policy_no_longer_refuses_a_recipients_own_purposes(
    omni_policy: Policy,
) -> None:
    rules = omni_policy.sharing_rules.model_copy(
        update={"never_for_third_party_commercial_purpose": False}
    )
    policy = compile_policy(omni_policy.model_copy(update={"sharing_rules": rules}))
    request = replace(ALLOWED_BY_KIND["advertiser"], for_recipients_own_purposes=True)

    assert code_of(policy, request) == "allowed"


# --- advertisers and ad auditors, person by person (C22) ---------------------------------------


@pytest.mark.parametrize("kind", ["advertiser", "ad_auditor"])
@pytest.mark.parametrize(
    ("choices", "code"),
    [
        ({}, "allowed"),
        ({"purpose:surveys": False}, "allowed"),
        ({"purpose:promotional": True}, "allowed"),
        ({"purpose:promotional": False}, "opted_out_of_sale_or_sharing"),
        ({GPC_TOPIC: True}, "gpc_signal"),
        ({GPC_TOPIC: True, "purpose:promotional": True}, "gpc_signal"),
    ],
)
def test_advertisers_receive_nobody_who_opted_out_of_sale_or_sharing_or_sent_gpc(
    omni_compiled: CompiledPolicy, kind: str, choices: dict[str, bool], code: str
) -> None:
    guard = guard_disclosure(omni_compiled, ALLOWED_BY_KIND[kind])

    assert guard.decide(PersonState(choices=choices)).code == code


def test_a_bulk_disclosure_decides_the_request_once_and_each_person_by_their_state(
    omni_compiled: CompiledPolicy,
) -> None:
    guard = guard_disclosure(omni_compiled, ALLOWED_BY_KIND["advertiser"])
    people = [
        PersonState(),
        PersonState(choices={GPC_TOPIC: True}),
        PersonState(erased=True),
        PersonState(choices={"purpose:promotional": False}),
        PersonState(objected=True),
        PersonState(choices={"purpose:promotional": True}),
    ]

    assert [guard.decide(person).code for person in people] == [
        "allowed",
        "gpc_signal",
        "person_erased",
        "opted_out_of_sale_or_sharing",
        "person_objected",
        "allowed",
    ]


def test_a_processor_for_a_purpose_of_sale_or_sharing_honours_the_opt_out_and_gpc(
    omni_compiled: CompiledPolicy,
) -> None:
    promotional = guard_disclosure(
        omni_compiled,
        ask("email_delivery", "promotional", "contact.email", ground="necessary_or_protective"),
    )
    surveys = guard_disclosure(omni_compiled, replace(promotional.request, purpose="surveys"))

    assert promotional.decide(PersonState(choices={"purpose:promotional": False})).code == (
        "person_opted_out"
    )
    assert promotional.decide(PersonState(choices={GPC_TOPIC: True})).code == "gpc_signal"
    assert (
        surveys.decide(PersonState(choices={"purpose:surveys": False})).code == "person_opted_out"
    )
    # Surveys are not sale or sharing: GPC does not reach them.
    assert surveys.decide(PersonState(choices={GPC_TOPIC: True})).code == "allowed"


# --- law enforcement and government (C22) -------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"legal_process": None}, "legal_process_required"),
        ({"legal_process": "   "}, "legal_process_required"),
        ({"approver": None}, "approval_required"),
        ({"approver": StaffInRole(3, "security_fraud")}, "approval_required"),
        ({"requester": OFFICER}, "approver_is_requester"),
        ({}, "allowed"),
    ],
)
def test_law_enforcement_needs_a_legal_process_and_a_privacy_officer_other_than_the_requester(
    omni_compiled: CompiledPolicy, change: dict[str, object], code: str
) -> None:
    request = replace(ALLOWED_BY_KIND["law_enforcement"], **change)

    assert code_of(omni_compiled, request) == code


def test_a_refusal_names_no_legal_reference_and_no_person(omni_compiled: CompiledPolicy) -> None:
    request = replace(ALLOWED_BY_KIND["law_enforcement"], approver=None)

    decision = guard_disclosure(omni_compiled, request).decision

    assert "subpoena 2026-0417" not in decision.reason
    assert "approval of a staff member in the role 'privacy_officer'" in decision.reason


# --- transfers across borders (C24) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (
            ask("email_delivery", "service_communications", "contact.email"),
            "transfer_ground_required",
        ),
        (ask("omni_europe", "service_support", "contact.email"), "transfer_ground_required"),
        # Declared in the US, sent to Germany this time.
        (replace(ALLOWED_BY_KIND["processor"], country="DE"), "transfer_ground_required"),
        (replace(ALLOWED_BY_KIND["processor"], ground="goodwill"), "unknown_transfer_ground"),
        (
            ask("email_delivery", "service_communications", "contact.email", ground="goodwill"),
            "unknown_transfer_ground",
        ),
        (
            ask("cloud_hosting", "service_support", "identity.name", ground="business_transfer"),
            "business_transfer_to_non_acquirer",
        ),
        (
            ask("omni_europe", "service_support", "contact.email", ground="business_transfer"),
            "business_transfer_to_non_acquirer",
        ),
    ],
)
def test_a_transfer_needs_one_of_the_policys_grounds(
    omni_compiled: CompiledPolicy, request_: DisclosureRequest, code: str
) -> None:
    assert code_of(omni_compiled, request_) == code


def test_every_ground_of_the_policy_carries_a_transfer(omni_compiled: CompiledPolicy) -> None:
    grounds = [g.id for g in omni_compiled.policy.transfer_grounds]
    to_affiliate = ask("omni_europe", "service_support", "contact.email")
    to_acquirer = replace(ALLOWED_BY_KIND["acquirer"], country="GB")

    codes = {
        ground: code_of(
            omni_compiled,
            replace(to_acquirer if ground == "business_transfer" else to_affiliate, ground=ground),
        )
        for ground in grounds
    }

    assert len(grounds) == 10
    assert codes == dict.fromkeys(grounds, "allowed")


@pytest.mark.parametrize(
    ("choices", "code"),
    [
        ({}, "consent_not_recorded"),
        ({"purpose:surveys": True}, "allowed"),
        ({"purpose:surveys": False}, "person_opted_out"),
        ({"purpose:promotional": True}, "consent_not_recorded"),
    ],
)
def test_consent_as_ground_needs_the_persons_recorded_consent(
    omni_compiled: CompiledPolicy, choices: dict[str, bool], code: str
) -> None:
    guard = guard_disclosure(
        omni_compiled, ask("email_delivery", "surveys", "contact.email", ground="consent")
    )

    assert guard.decision.allowed
    assert guard.decide(PersonState(choices=choices)).code == code


# --- erased and objecting people ----------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(ALLOWED_BY_KIND))
@pytest.mark.parametrize(
    ("person", "code"),
    [
        (PersonState(erased=True, kind="user"), "person_erased"),
        (PersonState(objected=True, kind="user"), "person_objected"),
        (PersonState(erased=True, objected=True), "person_erased"),
    ],
)
def test_an_erased_or_objecting_person_is_never_disclosed(
    omni_compiled: CompiledPolicy, kind: str, person: PersonState, code: str
) -> None:
    decision = decide_disclosure(omni_compiled, ALLOWED_BY_KIND[kind], person)

    assert (decision.allowed, decision.code) == (False, code)


def test_a_purpose_limited_to_some_data_subjects_discloses_no_one_else(
    omni_policy: Policy,
) -> None:
    purposes = [
        p.model_copy(update={"subjects": ["user"]}) if p.id == "promotional" else p
        for p in omni_policy.purposes
    ]
    policy = compile_policy(omni_policy.model_copy(update={"purposes": purposes}))
    guard = guard_disclosure(policy, ALLOWED_BY_KIND["advertiser"])

    assert guard.decide(PersonState(kind="user")).code == "allowed"
    assert guard.decide(PersonState(kind="job_applicant")).code == "subject_not_covered"
