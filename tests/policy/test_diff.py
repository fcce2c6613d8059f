"""`diff_policies` and `charter policy diff`: what changed between two versions of a policy.

Every test starts from the text of `policies/omni.yaml`, makes targeted edits, loads both
versions with the real loader and compares them.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from charter.policy.diff import PolicyChange, diff_policies
from charter.policy.loader import parse_policy
from tests.serving import CHARTER

pytestmark = pytest.mark.clause("C26")

Row = tuple[str, str, bool, str]


def edited(text: str, *edits: tuple[str, str]) -> str:
    """`text` with each `(old, new)` replaced; `old` must occur exactly once."""
    for old, new in edits:
        assert text.count(old) == 1, f"edit anchor found {text.count(old)} times: {old!r}"
        text = text.replace(old, new)
    return text


def changes(old_text: str, new_text: str) -> list[PolicyChange]:
    return diff_policies(parse_policy(old_text, "old.yaml"), parse_policy(new_text, "new.yaml"))


def rows(old_text: str, new_text: str) -> list[Row]:
    """(kind, subject, material, message) of every change, in order."""
    return [(c.kind, c.subject, c.material, c.message) for c in changes(old_text, new_text)]


# Items to add, each before a unique anchor of omni.yaml: (anchor, block inserted before it).
NEW_PURPOSE = (
    "\n\nenrichment_sources:\n",
    "\n  - id: product_research\n"
    "    label: Researching new products\n"
    "    basis: consent\n"
    "    categories: [survey.answers, usage]\n"
    "    clauses: [C18]",
)
NEW_RECIPIENT = (
    "\n\nsharing_rules:\n",
    "\n  - id: research_partner\n"
    "    name: Example Research, Inc.\n"
    "    kind: processor\n"
    "    postal_address: 9 Example Road, Austin, TX 73301, USA\n"
    "    nature_of_business: Market research on OMNI's instructions\n"
    "    country: US\n"
    "    purposes: [surveys]\n"
    "    categories: [survey.answers]\n"
    "    clauses: [C22]",
)
NEW_COOKIE = (
    "\n\npurposes:\n",
    "\n  - name: omni_ab\n"
    "    category: performance\n"
    "    duration: session\n"
    "    purpose: service_improvement\n"
    "    subjects: [visitor]\n"
    "    description: Assigns the visitor to one variant of an experiment.\n"
    "    clauses: [C11]",
)
NEW_COLLECTION_POINT = (
    "\n\ncookies:\n",
    "\n  - id: webinar_registration\n"
    "    label: Webinar registration\n"
    "    subjects: [visitor, user]\n"
    "    method: form\n"
    "    source: given\n"
    "    fields:\n"
    "      - {name: email, label: E-mail address, category: contact.email}\n"
    "    clauses: [C13, C17]",
)
NEW_TRANSFER_GROUND = (
    "\n\nretention:\n",
    "\n  - {id: adequacy, label: To a country the law deems adequate, clauses: [C24]}",
)
NEW_RIGHT = (
    "\n\nroles:\n",
    "\n  - id: limit_sensitive\n"
    "    label: Limit the use of sensitive personal information\n"
    "    law: California Civil Code §1798.121 (CCPA/CPRA)\n"
    "    channel: Privacy center\n"
    "    deadline_days: 15\n"
    "    clauses: [C1]",
)
NEW_SAFEGUARD = (
    "\n\nadditional_terms:\n",
    "\n  - id: staff_training\n"
    "    label: Staff training\n"
    "    description: Everyone who may reach personal data is trained every year.\n"
    "    clauses: [C2]",
)
NEW_ROLE = (
    "\n\nchanges:\n",
    "\n  - id: auditor\n"
    "    label: External auditor\n"
    "    purposes: [fraud_and_legal]\n"
    "    permissions: [audit:read]\n"
    "    clauses: [C3]",
)
NEW_SUBJECT = (
    "\n\ncollection_points:\n",
    "\n  - id: partner_contact\n"
    "    label: Partner contact\n"
    "    description: Someone at a business partner OMNI works with.\n"
    "    clauses: [C19]",
)
NEW_FIELD = (
    "\n    clauses: [C5, C16, C17]",
    "\n      - {name: website, label: Web site, category: contact.company, mandatory: false}",
)


def with_block(text: str, anchor_and_block: tuple[str, str]) -> str:
    anchor, block = anchor_and_block
    return edited(text, (anchor, block + anchor))


def test_identical_policies_have_no_changes(omni_text: str) -> None:
    assert changes(omni_text, omni_text) == []


@dataclass(frozen=True)
class Addition:
    """An item added to omni.yaml, and what the diff must say about it either way."""

    block: tuple[str, str]
    kind: str
    subject: str
    name: str
    added_material: bool
    removed_material: bool


ADDITIONS = [
    Addition(
        NEW_PURPOSE,
        "purpose",
        "product_research",
        "Purpose 'Researching new products' (product_research)",
        added_material=True,
        removed_material=False,
    ),
    Addition(
        NEW_RECIPIENT,
        "recipient",
        "research_partner",
        "Recipient Example Research, Inc.",
        added_material=True,
        removed_material=False,
    ),
    Addition(
        NEW_COOKIE,
        "cookie",
        "omni_ab",
        "Cookie omni_ab",
        added_material=True,
        removed_material=False,
    ),
    Addition(
        NEW_COLLECTION_POINT,
        "collection_point",
        "webinar_registration",
        "Collection point 'Webinar registration' (webinar_registration)",
        added_material=True,
        removed_material=False,
    ),
    Addition(
        NEW_TRANSFER_GROUND,
        "transfer_ground",
        "adequacy",
        "Transfer ground 'To a country the law deems adequate' (adequacy)",
        added_material=True,
        removed_material=False,
    ),
    Addition(
        NEW_FIELD,
        "field",
        "sign_up.website",
        "Field 'website' of Sign-up",
        added_material=True,
        removed_material=False,
    ),
    # Adding a right gives people a choice; removing one takes it away.
    Addition(
        NEW_RIGHT,
        "right",
        "limit_sensitive",
        "Right 'Limit the use of sensitive personal information' (limit_sensitive)",
        added_material=False,
        removed_material=True,
    ),
    Addition(
        NEW_SAFEGUARD,
        "safeguard",
        "staff_training",
        "Safeguard 'Staff training' (staff_training)",
        added_material=False,
        removed_material=True,
    ),
    Addition(
        NEW_ROLE,
        "role",
        "auditor",
        "Role 'External auditor' (auditor)",
        added_material=False,
        removed_material=False,
    ),
    Addition(
        NEW_SUBJECT,
        "subject",
        "partner_contact",
        "Subject 'Partner contact' (partner_contact)",
        added_material=False,
        removed_material=False,
    ),
]


@pytest.mark.parametrize("addition", ADDITIONS, ids=lambda a: a.kind)
def test_an_item_added_and_removed(omni_text: str, addition: Addition) -> None:
    grown = with_block(omni_text, addition.block)
    kind, subject, name = addition.kind, addition.subject, addition.name

    assert rows(omni_text, grown) == [
        (f"{kind}.added", subject, addition.added_material, f"{name} added."),
    ]
    assert rows(grown, omni_text) == [
        (f"{kind}.removed", subject, addition.removed_material, f"{name} removed."),
    ]


def test_an_added_item_carries_its_declaration(omni_text: str) -> None:
    [added] = changes(omni_text, with_block(omni_text, NEW_PURPOSE))

    assert added.details == {
        "after": {
            "id": "product_research",
            "label": "Researching new products",
            "basis": "consent",
            "categories": ["survey.answers", "usage"],
            "sale_or_sharing": False,
            "subjects": None,
            "clauses": ["C18"],
        }
    }


# --- Purposes ---------------------------------------------------------------------------

PROMOTIONAL_BASIS = "basis: opt_out\n    sale_or_sharing: true"
PROMOTIONAL_CATEGORIES = (
    "categories: [identity.name, contact.email, cookie.id, usage, location.coarse, device.os, "
    "device.push_id]"
)


@pytest.mark.parametrize(
    ("basis", "words", "material"),
    [
        pytest.param("consent", "consent", False, id="towards-more-choice"),
        pytest.param("service", "needed for the Services (no opt-out)", True, id="less-choice"),
    ],
)
def test_a_purpose_basis_change_is_material_when_it_leaves_less_choice(
    omni_text: str, basis: str, words: str, material: bool
) -> None:
    new = edited(omni_text, (PROMOTIONAL_BASIS, PROMOTIONAL_BASIS.replace("opt_out", basis)))

    [change] = changes(omni_text, new)

    assert (change.kind, change.subject, change.material) == (
        "purpose.basis_changed",
        "promotional",
        material,
    )
    assert change.message == (
        f"Purpose 'Sending promotional information' (promotional) basis changed from opt-out "
        f"to {words}."
    )
    assert change.details == {"before": "opt_out", "after": basis}


def test_a_category_a_purpose_now_uses(omni_text: str) -> None:
    new = edited(
        omni_text, (PROMOTIONAL_CATEGORIES, PROMOTIONAL_CATEGORIES[:-1] + ", device.type]")
    )
    name = "Purpose 'Sending promotional information' (promotional)"

    assert rows(omni_text, new) == [
        (
            "purpose.category_added",
            "promotional",
            True,
            f"{name} now uses Device type (device.type).",
        ),
    ]
    assert rows(new, omni_text) == [
        (
            "purpose.category_removed",
            "promotional",
            False,
            f"{name} no longer uses Device type (device.type).",
        ),
    ]


def test_a_group_spelled_out_as_its_categories_is_no_change(omni_text: str) -> None:
    spelled_out = PROMOTIONAL_CATEGORIES.replace(
        " usage,", " usage.time, usage.clicks, usage.pages,"
    )

    assert changes(omni_text, edited(omni_text, (PROMOTIONAL_CATEGORIES, spelled_out))) == []


def test_other_purpose_fields_are_reported_too(omni_text: str) -> None:
    new = edited(omni_text, (PROMOTIONAL_BASIS, "basis: opt_out\n    sale_or_sharing: false"))

    [change] = changes(omni_text, new)

    assert (change.kind, change.subject, change.material) == (
        "purpose.changed",
        "promotional",
        False,
    )
    assert change.message == (
        "Purpose 'Sending promotional information' (promotional): sale or sharing changed "
        "from yes to no."
    )
    assert change.details == {"field": "sale_or_sharing", "before": True, "after": False}
    # Turning sale or sharing on widens what is done with the data.
    assert [c.material for c in changes(new, omni_text)] == [True]


# --- Recipients -------------------------------------------------------------------------

GOOGLE_CATEGORIES = "    categories: [cookie.id, usage, location.coarse]\n"
GOOGLE_PURPOSES = "    purposes: [promotional]\n    categories: [cookie.id, usage, location.coarse]"


def test_a_recipient_now_receives_a_category(omni_text: str) -> None:
    new = edited(
        omni_text,
        (PROMOTIONAL_CATEGORIES, PROMOTIONAL_CATEGORIES[:-1] + ", device.type]"),
        (GOOGLE_CATEGORIES, GOOGLE_CATEGORIES.replace("]", ", device.type]")),
    )

    assert rows(omni_text, new) == [
        (
            "purpose.category_added",
            "promotional",
            True,
            "Purpose 'Sending promotional information' (promotional) now uses Device type "
            "(device.type).",
        ),
        (
            "recipient.category_added",
            "google_ads",
            True,
            "Recipient Google LLC (Google Ads) now receives Device type (device.type).",
        ),
    ]


def test_a_recipient_no_longer_receives_a_category(omni_text: str) -> None:
    new = edited(omni_text, (GOOGLE_CATEGORIES, GOOGLE_CATEGORIES.replace(", location.coarse", "")))

    [change] = changes(omni_text, new)

    assert (change.kind, change.subject, change.material) == (
        "recipient.category_removed",
        "google_ads",
        False,
    )
    assert change.message == (
        "Recipient Google LLC (Google Ads) no longer receives Location from which the Services "
        "were reached (city or region) (location.coarse)."
    )
    assert change.details == {"category": "location.coarse"}


def test_a_recipient_receives_data_for_another_purpose(omni_text: str) -> None:
    new = edited(
        omni_text,
        (GOOGLE_PURPOSES, GOOGLE_PURPOSES.replace("[promotional]", "[promotional, surveys]")),
    )
    message = (
        "Recipient Google LLC (Google Ads) {} data for purpose 'Contacting you to complete "
        "surveys for marketing or quality assurance' (surveys)."
    )

    assert rows(omni_text, new) == [
        ("recipient.purpose_added", "google_ads", True, message.format("now receives")),
    ]
    assert rows(new, omni_text) == [
        ("recipient.purpose_removed", "google_ads", False, message.format("no longer receives")),
    ]


def test_any_other_changed_field_of_a_recipient_is_reported(omni_text: str) -> None:
    new = edited(
        omni_text,
        ("postal_address: 1600 Amphitheatre Parkway,", "postal_address: 1 Other Road,"),
        (
            "Online advertising\n    country: US",
            "Online advertising\n    country: IE",
        ),
    )

    assert [c.as_json() for c in changes(omni_text, new)] == [
        {
            "kind": "recipient.changed",
            "subject": "google_ads",
            "message": "Recipient Google LLC (Google Ads): postal address changed from "
            "'1600 Amphitheatre Parkway, Mountain View, CA 94043, USA' to "
            "'1 Other Road, Mountain View, CA 94043, USA'.",
            "material": False,
            "details": {
                "field": "postal_address",
                "before": "1600 Amphitheatre Parkway, Mountain View, CA 94043, USA",
                "after": "1 Other Road, Mountain View, CA 94043, USA",
            },
        },
        {
            "kind": "recipient.changed",
            "subject": "google_ads",
            "message": "Recipient Google LLC (Google Ads): country changed from 'US' to 'IE'.",
            "material": True,
            "details": {"field": "country", "before": "US", "after": "IE"},
        },
    ]


def test_an_enrichment_source_provides_a_new_category(omni_text: str) -> None:
    old_line = "    categories: [contact.company, location.coarse]\n"
    new = edited(omni_text, (old_line, old_line.replace("]", ", contact.phone]")))

    assert rows(omni_text, new) == [
        (
            "enrichment_source.category_added",
            "service_providers",
            True,
            "Source 'Our service providers' (service_providers) now provides Telephone number "
            "(contact.phone).",
        ),
    ]


def test_a_transfer_ground_relabelled(omni_text: str) -> None:
    new = edited(omni_text, ("label: With your consent,", "label: With your explicit consent,"))

    assert rows(omni_text, new) == [
        (
            "transfer_ground.changed",
            "consent",
            False,
            "Transfer ground 'With your explicit consent' (consent): label changed from "
            "'With your consent' to 'With your explicit consent'.",
        ),
    ]


def test_sharing_rules_that_protect_less_are_material(omni_text: str) -> None:
    rule = "advertisers_honour: [opt_out, global_privacy_control]"
    new = edited(omni_text, (rule, "advertisers_honour: [opt_out]"))

    assert rows(omni_text, new) == [
        (
            "sharing_rules.changed",
            "sharing_rules",
            True,
            "Sharing rules: advertisers honour changed from opt_out, global_privacy_control "
            "to opt_out.",
        ),
    ]
    assert [c.material for c in changes(new, omni_text)] == [False]


# --- Categories and retention -----------------------------------------------------------

NEW_CATEGORY = (
    "  - {id: device.os,",
    "  - {id: device.model, label: Device model, clauses: [C9]}\n  - {id: device.os,",
)


def test_a_new_category_reaches_every_purpose_that_uses_its_group(omni_text: str) -> None:
    new = edited(omni_text, NEW_CATEGORY)

    assert rows(omni_text, new) == [
        (
            "category.added",
            "device.model",
            True,
            "Category Device model (device.model) added (kept 13 months).",
        ),
        (
            "purpose.category_added",
            "fraud_and_legal",
            True,
            "Purpose 'Combating fraud and crime, and as required or permitted by law' "
            "(fraud_and_legal) now uses Device model (device.model).",
        ),
        (
            "purpose.category_added",
            "other_with_consent",
            True,
            "Purpose 'Any other purpose, with your consent' (other_with_consent) now uses "
            "Device model (device.model).",
        ),
    ]
    assert [(kind, subject, material) for kind, subject, material, _ in rows(new, omni_text)] == [
        ("category.removed", "device.model", False),
        ("purpose.category_removed", "fraud_and_legal", False),
        ("purpose.category_removed", "other_with_consent", False),
    ]


def test_a_category_relabelled(omni_text: str) -> None:
    new = edited(
        omni_text,
        ("{id: device.type, label: Device type,", "{id: device.type, label: Type of device,"),
    )

    assert rows(omni_text, new) == [
        (
            "category.relabelled",
            "device.type",
            False,
            "Category device.type relabelled from 'Device type' to 'Type of device'.",
        ),
    ]


SURVEY_RULE = "{category: survey, keep: period, months: 24,"


def test_retention_shortened(omni_text: str) -> None:
    new = edited(omni_text, (SURVEY_RULE, SURVEY_RULE.replace("24", "12")))

    [change] = changes(omni_text, new)

    assert (change.kind, change.subject, change.material) == (
        "retention.shortened",
        "survey.answers",
        False,
    )
    assert (
        change.message
        == "Retention of Survey answers (survey.answers) shortened from 24 to 12 months."
    )
    assert change.details == {
        "category": "survey.answers",
        "before": {"keep": "period", "months": 24},
        "after": {"keep": "period", "months": 12},
    }


def test_retention_lengthened_is_material(omni_text: str) -> None:
    new = edited(omni_text, (SURVEY_RULE, SURVEY_RULE.replace("24", "36")))

    assert rows(omni_text, new) == [
        (
            "retention.lengthened",
            "survey.answers",
            True,
            "Retention of Survey answers (survey.answers) lengthened from 24 to 36 months.",
        ),
    ]


def test_retention_between_a_period_and_the_customers_instructions(omni_text: str) -> None:
    new = edited(
        omni_text,
        (
            "{category: identity, keep: customer_instructs,",
            "{category: identity, keep: period, months: 24,",
        ),
    )

    assert rows(omni_text, new) == [
        (
            "retention.changed",
            "identity.name",
            True,
            "Retention of Name (identity.name) changed from as long as the customer instructs "
            "to 24 months.",
        ),
    ]
    assert rows(new, omni_text) == [
        (
            "retention.changed",
            "identity.name",
            True,
            "Retention of Name (identity.name) changed from 24 months to as long as the customer "
            "instructs.",
        ),
    ]


def test_a_group_rule_split_into_category_rules_reports_only_real_changes(omni_text: str) -> None:
    new = edited(
        omni_text,
        (
            "    - {category: usage, keep: period, months: 24, clauses: [C23]}\n",
            "    - {category: usage.time, keep: period, months: 24, clauses: [C23]}\n"
            "    - {category: usage.clicks, keep: period, months: 12, clauses: [C23]}\n"
            "    - {category: usage.pages, keep: period, months: 24, clauses: [C23]}\n",
        ),
    )

    assert rows(omni_text, new) == [
        (
            "retention.shortened",
            "usage.clicks",
            False,
            "Retention of Items clicked (usage.clicks) shortened from 24 to 12 months.",
        ),
    ]


def test_a_reason_to_keep_data_longer_added(omni_text: str) -> None:
    reason = "    - {id: enforcement, label: To enforce our agreements, clauses: [C23]}\n"
    new = edited(
        omni_text,
        (reason, reason + "    - {id: audit, label: For a financial audit, clauses: [C23]}\n"),
    )

    assert rows(omni_text, new) == [
        (
            "retention_extension.added",
            "audit",
            True,
            "Reason to keep data longer 'For a financial audit' (audit) added.",
        ),
    ]


# --- Collection points, fields and cookies ----------------------------------------------

SIGN_UP_COMPANY = "{name: company, label: Company, category: contact.company, mandatory: false}"
DEMO_COMPANY = "{name: company, label: Company, category: contact.company}"


def test_a_field_becomes_mandatory_or_optional(omni_text: str) -> None:
    new = edited(omni_text, (SIGN_UP_COMPANY, SIGN_UP_COMPANY.replace(", mandatory: false", "")))

    assert rows(omni_text, new) == [
        (
            "field.now_mandatory",
            "sign_up.company",
            True,
            "Field 'company' of Sign-up is now mandatory.",
        ),
    ]
    assert rows(new, omni_text) == [
        (
            "field.now_optional",
            "sign_up.company",
            False,
            "Field 'company' of Sign-up is now optional.",
        ),
    ]


def test_a_field_holds_another_category(omni_text: str) -> None:
    new = edited(
        omni_text, (DEMO_COMPANY, DEMO_COMPANY.replace("contact.company", "contact.postal_address"))
    )

    [change] = changes(omni_text, new)

    assert (change.kind, change.subject, change.material) == (
        "field.category_changed",
        "demo_trial_request.company",
        True,
    )
    assert change.message == (
        "Field 'company' of Demo or trial request now holds Postal address "
        "(contact.postal_address) instead of Company and job title (contact.company)."
    )
    assert change.details == {"before": "contact.company", "after": "contact.postal_address"}


def test_a_field_relabelled(omni_text: str) -> None:
    new = edited(
        omni_text, (DEMO_COMPANY, DEMO_COMPANY.replace("label: Company", "label: Organisation"))
    )

    assert rows(omni_text, new) == [
        (
            "field.changed",
            "demo_trial_request.company",
            False,
            "Field 'company' of Demo or trial request: label changed from 'Company' to "
            "'Organisation'.",
        ),
    ]


def test_a_collection_point_that_drops_a_choice_is_material(omni_text: str) -> None:
    new = edited(
        omni_text, ("publication_needs_permission: true", "publication_needs_permission: false")
    )

    assert rows(omni_text, new) == [
        (
            "collection_point.changed",
            "review",
            True,
            "Collection point 'Review' (review): publication needs permission changed from "
            "yes to no.",
        ),
    ]


def test_a_cookie_changed(omni_text: str) -> None:
    new = edited(
        omni_text,
        ("lifetime_days: 180", "lifetime_days: 90"),
        ("category: performance", "category: essential"),
    )

    assert rows(omni_text, new) == [
        (
            "cookie.changed",
            "omni_perf",
            True,
            "Cookie omni_perf: category changed from 'performance' to 'essential'.",
        ),
        (
            "cookie.changed",
            "omni_perf",
            False,
            "Cookie omni_perf: lifetime days changed from 180 to 90.",
        ),
    ]
    assert [c.material for c in changes(new, omni_text)] == [False, True]


# --- Rights, roles, organisation and text -----------------------------------------------


@pytest.mark.parametrize(("days", "material"), [(30, True), (10, False)])
def test_a_right_deadline_changed(omni_text: str, days: int, material: bool) -> None:
    new = edited(omni_text, ("deadline_days: 15", f"deadline_days: {days}"))

    [change] = changes(omni_text, new)

    assert (change.kind, change.subject, change.material) == (
        "right.deadline_changed",
        "opt_out_sale_sharing",
        material,
    )
    assert change.message == (
        "Right 'Opt out of sale or sharing, including by Global Privacy Control' "
        f"(opt_out_sale_sharing): deadline changed from 15 days to {days} days."
    )
    assert change.details == {"field": "deadline_days", "before": 15, "after": days}


def test_a_role_purposes_changed(omni_text: str) -> None:
    marketing = "purposes: [service_communications, surveys, promotional, service_improvement]"
    new = edited(omni_text, (marketing, marketing.replace("promotional", "fraud_and_legal")))

    assert rows(omni_text, new) == [
        (
            "role.purpose_added",
            "marketing",
            False,
            "Role 'Marketing' (marketing) may now use data for purpose 'Combating fraud and "
            "crime, and as required or permitted by law' (fraud_and_legal).",
        ),
        (
            "role.purpose_removed",
            "marketing",
            False,
            "Role 'Marketing' (marketing) may no longer use data for purpose 'Sending "
            "promotional information' (promotional).",
        ),
    ]


def test_organisation_version_and_date(omni_text: str) -> None:
    new = edited(
        omni_text,
        ('version: "1.0"', 'version: "1.1"'),
        ("last_modified: 2026-11-01", "last_modified: 2026-12-01"),
        ("contact_email: legal@teamomni.com", "contact_email: privacy@teamomni.com"),
    )

    assert [c.as_json() for c in changes(omni_text, new)] == [
        {
            "kind": "organisation.version_changed",
            "subject": "organisation",
            "message": "Policy version changed from 1.0 to 1.1.",
            "material": False,
            "details": {"before": "1.0", "after": "1.1"},
        },
        {
            "kind": "organisation.last_modified_changed",
            "subject": "organisation",
            "message": "Last-modified date changed from 2026-11-01 to 2026-12-01.",
            "material": False,
            "details": {"before": "2026-11-01", "after": "2026-12-01"},
        },
        {
            "kind": "organisation.changed",
            "subject": "organisation",
            "message": "Organisation: contact email changed from 'legal@teamomni.com' to "
            "'privacy@teamomni.com'.",
            "material": False,
            "details": {
                "field": "contact_email",
                "before": "legal@teamomni.com",
                "after": "privacy@teamomni.com",
            },
        },
    ]


def test_section_text_changed(omni_text: str) -> None:
    new = edited(
        omni_text,
        ("We may change this policy at any time;", "We may change this policy whenever we like;"),
        ("heading: Shared Information", "heading: Sharing of Information"),
    )

    found = changes(omni_text, new)

    assert [(c.kind, c.subject, c.material, c.message) for c in found] == [
        (
            "section.changed",
            "shared_information",
            False,
            "Section 'Sharing of Information' (shared_information): heading changed from "
            "'Shared Information' to 'Sharing of Information'.",
        ),
        (
            "section.changed",
            "privacy_policy_changes",
            False,
            "Section 'Privacy Policy Changes' (privacy_policy_changes): body changed.",
        ),
    ]
    body = found[1].details
    assert body["field"] == "body"
    assert body["before"][0].startswith("We may change this policy at any time;")
    assert body["after"][0].startswith("We may change this policy whenever we like;")


def test_sections_reordered(omni_text: str) -> None:
    start = omni_text.index("  - id: california_privacy_rights")
    end = omni_text.index("  - id: privacy_policy_changes")
    block = omni_text[start:end]
    moved = edited(omni_text, (block, ""))
    moved = edited(moved, ("\n\nsafeguards:\n", "\n\n" + block.rstrip("\n") + "\n\nsafeguards:\n"))

    [change] = changes(omni_text, moved)

    assert (change.kind, change.subject, change.material) == (
        "section.reordered",
        "sections",
        False,
    )
    assert change.details["after"][-2:] == ["privacy_policy_changes", "california_privacy_rights"]


def test_the_change_procedure_losing_the_date_is_material(omni_text: str) -> None:
    new = edited(omni_text, ("date_at_top: true", "date_at_top: false"))

    assert rows(omni_text, new) == [
        (
            "changes.changed",
            "changes",
            True,
            "How policy changes are announced: date at top changed from yes to no.",
        ),
    ]


def test_changes_come_in_the_order_of_the_policy(omni_text: str) -> None:
    new = edited(
        omni_text,
        ("date_at_top: true", "date_at_top: false"),
        (SURVEY_RULE, SURVEY_RULE.replace("24", "12")),
        (SIGN_UP_COMPANY, SIGN_UP_COMPANY.replace(", mandatory: false", "")),
        ('version: "1.0"', 'version: "1.1"'),
        NEW_CATEGORY,
    )
    new = with_block(with_block(new, NEW_RECIPIENT), NEW_PURPOSE)

    found = changes(omni_text, new)

    assert [c.kind for c in found] == [
        "organisation.version_changed",
        "category.added",
        "field.now_mandatory",
        "purpose.added",
        "purpose.category_added",
        "purpose.category_added",
        "recipient.added",
        "retention.shortened",
        "changes.changed",
    ]
    assert changes(omni_text, new) == found


# --- The command ------------------------------------------------------------------------


def run_diff(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHARTER, "policy", "diff", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def policy_files(tmp_path: Path, omni_text: str) -> tuple[Path, Path]:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(omni_text, encoding="utf-8")
    new.write_text(
        edited(
            with_block(omni_text, NEW_PURPOSE),
            (SURVEY_RULE, SURVEY_RULE.replace("24", "12")),
            (SIGN_UP_COMPANY, SIGN_UP_COMPANY.replace(", mandatory: false", "")),
        ),
        encoding="utf-8",
    )
    return old, new


@pytest.mark.slow
def test_the_command_prints_one_line_per_change(policy_files: tuple[Path, Path]) -> None:
    result = run_diff(*policy_files)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "- Field 'company' of Sign-up is now mandatory.",
        "- Purpose 'Researching new products' (product_research) added.",
        "- Retention of Survey answers (survey.answers) shortened from 24 to 12 months.",
    ]
    assert result.stderr == ""


@pytest.mark.slow
def test_the_command_says_when_nothing_changed(policy_files: tuple[Path, Path]) -> None:
    old, _new = policy_files

    result = run_diff(old, old)

    assert (result.returncode, result.stdout) == (0, "No changes.\n")


@pytest.mark.slow
def test_the_command_speaks_json(policy_files: tuple[Path, Path]) -> None:
    result = run_diff(*policy_files, "--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert [(c["kind"], c["subject"], c["material"]) for c in document["changes"]] == [
        ("field.now_mandatory", "sign_up.company", True),
        ("purpose.added", "product_research", True),
        ("retention.shortened", "survey.answers", False),
    ]
    shortened = document["changes"][2]
    assert shortened == {
        "kind": "retention.shortened",
        "subject": "survey.answers",
        "message": "Retention of Survey answers (survey.answers) shortened from 24 to 12 months.",
        "material": False,
        "details": {
            "category": "survey.answers",
            "before": {"keep": "period", "months": 24},
            "after": {"keep": "period", "months": 12},
        },
    }
    assert json.loads(run_diff(policy_files[0], policy_files[0], "--json").stdout) == {
        "changes": []
    }


@pytest.mark.slow
def test_the_command_points_at_a_bad_file(tmp_path: Path, policy_files: tuple[Path, Path]) -> None:
    old, new = policy_files
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        new.read_text(encoding="utf-8").replace("basis: consent", "basis: maybe", 1),
        encoding="utf-8",
    )

    result = run_diff(old, bad)

    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{bad}:")
    line, column, message = first.removeprefix(f"{bad}:").split(":", 2)
    assert bad.read_text(encoding="utf-8").splitlines()[int(line) - 1].strip() == "basis: maybe"
    assert int(column) > 0
    assert "basis" in message
