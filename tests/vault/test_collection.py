"""Collection through `POST /v1/collect` and `collect()` (C5-C8, C13, C16, C17, C19)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from charter.clock import FixedClock
from charter.db import Database
from charter.errors import Unprocessable
from charter.policy.compiled import CompiledPolicy, compile_policy
from charter.policy.schema import Policy
from charter.tables import metadata
from charter.vault.collection import Submission, collect
from charter.vault.identifiers import BlindIndex
from charter.vault.keystore import SqlKeyStore
from charter.vault.models import Person, Record, VisitorId
from tests.conftest import bearer
from tests.vault.calls import use

Headers = dict[str, str]


def post(
    client: TestClient, headers: Headers, point: str, fields: dict[str, str], **extra: Any
) -> Response:
    return client.post(
        "/v1/collect", headers=headers, json={"collection_point": point, "fields": fields, **extra}
    )


def created(response: Response) -> str:
    assert response.status_code == 201, response.text
    person_id: str = response.json()["person_id"]
    return person_id


def records_of(db: Database, person_id: str) -> list[Record]:
    with db.reading() as session:
        return list(
            session.scalars(
                select(Record).where(Record.person_id == person_id).order_by(Record.field)
            )
        )


def record_count(db: Database) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(Record)) or 0


# --- Mandatory, optional and undeclared fields (C17) -----------------------------------------


@pytest.mark.clause("C17")
@pytest.mark.parametrize(
    ("point", "fields", "missing"),
    [
        ("sign_up", {"company": "Example Corp"}, ["name", "email"]),
        ("sign_up", {"name": "   ", "email": "ada@example.com"}, ["name"]),
        (
            "order",
            {"name": "Ada Example"},
            ["email", "billing_address", "items", "payment_reference"],
        ),
        ("job_application", {"phone": "+1 555 0100"}, ["name", "email", "resume"]),
    ],
)
def test_a_missing_mandatory_field_is_refused_and_every_one_is_named(
    client: TestClient,
    service: Headers,
    db: Database,
    *,
    point: str,
    fields: dict[str, str],
    missing: list[str],
) -> None:
    before = record_count(db)
    response = post(client, service, point, fields, person={"visitor_id": "vid-missing"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "missing_fields"
    assert error["details"]["fields"] == missing
    for name in missing:
        assert name in error["message"]
    assert record_count(db) == before


@pytest.mark.clause("C17")
def test_an_optional_field_may_be_absent(
    client: TestClient, service: Headers, db: Database
) -> None:
    person = created(
        post(client, service, "sign_up", {"name": "Ada Example", "email": "ada@example.com"})
    )
    assert [r.field for r in records_of(db, person)] == ["email", "name"]


@pytest.mark.clause("C5")
def test_an_undeclared_field_is_refused_and_named(
    client: TestClient, service: Headers, db: Database
) -> None:
    before = record_count(db)
    response = post(
        client,
        service,
        "sign_up",
        {
            "name": "Ada Example",
            "email": "ada@example.com",
            "birthday": "1815-12-10",
            "shoe_size": "38",
        },
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "undeclared_fields"
    assert error["details"]["fields"] == ["birthday", "shoe_size"]
    assert record_count(db) == before


@pytest.mark.clause("C5")
def test_an_unknown_collection_point_is_not_found(client: TestClient, service: Headers) -> None:
    response = post(client, service, "newsletter_quiz", {"email": "ada@example.com"})
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "unknown_collection_point"


@pytest.mark.clause("C2")
def test_collecting_needs_the_collect_permission(
    client: TestClient, make_key: Callable[[str], str]
) -> None:
    response = post(
        client,
        bearer(make_key("marketing")),
        "sign_up",
        {"name": "Ada Example", "email": "ada@example.com"},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


# --- What each stored value carries ---------------------------------------------------------


@pytest.mark.clause("C5", "C9", "C16")
def test_each_value_carries_its_category_point_source_and_policy_version(
    client: TestClient,
    service: Headers,
    db: Database,
    *,
    keys: SqlKeyStore,
    clock: FixedClock,
    omni_policy: Policy,
    omni_compiled: CompiledPolicy,
) -> None:
    person = created(
        post(
            client,
            service,
            "sign_up",
            {"name": "Ada Example", "email": "ada@example.com", "phone": "+1 555 0100"},
        )
    )
    rows = records_of(db, person)
    assert [
        (r.field, r.category, r.collection_point, r.source, r.source_name, r.policy_version)
        for r in rows
    ] == [
        ("email", "contact.email", "sign_up", "given", None, omni_compiled.version),
        ("name", "identity.name", "sign_up", "given", None, omni_compiled.version),
        ("phone", "contact.phone", "sign_up", "given", None, omni_compiled.version),
    ]
    assert {r.collected_at for r in rows} == {clock.now()}
    assert len({r.submission_id for r in rows}) == 1

    # Automatic data is marked so; a later policy version is the one recorded.
    organisation = omni_policy.organisation.model_copy(update={"version": "2.0"})
    revised = compile_policy(omni_policy.model_copy(update={"organisation": organisation}))
    with db.writing() as session:
        receipt = collect(
            session,
            keys,
            clock,
            revised,
            actor="test",
            submission=Submission(
                collection_point="cookie_identifiers",
                fields={"cookie_id": "ck-1f2e3d"},
                person_id=person,
                source="automatic",
            ),
        )
    [cookie] = [r for r in records_of(db, person) if r.id not in {row.id for row in rows}]
    assert receipt.stored_fields == ("cookie_id",)
    assert (cookie.category, cookie.collection_point, cookie.source, cookie.policy_version) == (
        "cookie.id",
        "cookie_identifiers",
        "automatic",
        "2.0",
    )


def test_the_source_must_match_how_the_point_collects(client: TestClient, service: Headers) -> None:
    response = post(
        client,
        service,
        "cookie_identifiers",
        {"cookie_id": "ck-1"},
        person={"visitor_id": "vid-src"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "wrong_source"
    stored = post(
        client,
        service,
        "cookie_identifiers",
        {"cookie_id": "ck-1"},
        person={"visitor_id": "vid-src"},
        source="automatic",
    )
    assert stored.status_code == 201, stored.text


@pytest.mark.clause("C2")
def test_values_are_stored_sealed(client: TestClient, service: Headers, db: Database) -> None:
    person = created(
        post(
            client, service, "sign_up", {"name": "Ada Lovelace-Example", "email": "ada@example.com"}
        )
    )
    for row in records_of(db, person):
        assert b"Lovelace" not in row.sealed
        assert b"ada@example.com" not in row.sealed


# --- Enrichment from other sources (C19) ----------------------------------------------------


@pytest.mark.clause("C19")
def test_enrichment_names_a_declared_source_that_covers_its_fields(
    client: TestClient, service: Headers, db: Database
) -> None:
    person = created(
        post(client, service, "sign_up", {"name": "Ada Example", "email": "ada@example.com"})
    )
    enrich = {"person": {"person_id": person}, "source": "other_source"}

    nameless = post(client, service, "sign_up", {"company": "Example Corp"}, **enrich)
    assert nameless.status_code == 422
    assert nameless.json()["error"]["code"] == "unknown_source"

    undeclared = post(
        client, service, "sign_up", {"company": "Example Corp"}, **enrich, source_name="data_broker"
    )
    assert undeclared.status_code == 422
    assert undeclared.json()["error"]["code"] == "unknown_source"

    outside = post(
        client,
        service,
        "sign_up",
        {"company": "Example Corp", "phone": "+1 555 0100"},
        **enrich,
        source_name="service_providers",
    )
    assert outside.status_code == 422
    assert outside.json()["error"]["code"] == "category_not_from_source"
    assert outside.json()["error"]["details"]["fields"] == ["phone"]

    names = post(
        client,
        service,
        "sign_up",
        {"name": "Someone Else"},
        **enrich,
        source_name="business_partners",
    )
    assert names.json()["error"]["code"] == "category_not_from_source"

    # Enrichment adds to a person Charter holds; it needs no mandatory field of the form.
    stored = post(
        client,
        service,
        "sign_up",
        {"company": "Example Corp", "phone": "+1 555 0100"},
        **enrich,
        source_name="business_partners",
    )
    assert created(stored) == person
    enriched = [r for r in records_of(db, person) if r.source == "other_source"]
    assert sorted((r.field, r.category, r.source_name) for r in enriched) == [
        ("company", "contact.company", "business_partners"),
        ("phone", "contact.phone", "business_partners"),
    ]

    read = use(client, service, person, "service_support", ["contact.company"])
    assert read.status_code == 200, read.text
    assert [(v["value"], v["source"], v["source_name"]) for v in read.json()["values"]] == [
        ("Example Corp", "other_source", "business_partners")
    ]


@pytest.mark.clause("C19")
def test_enrichment_never_creates_a_person(client: TestClient, service: Headers) -> None:
    response = post(
        client,
        service,
        "sign_up",
        {"company": "Example Corp"},
        source="other_source",
        source_name="business_partners",
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "person_required"


@pytest.mark.clause("C19")
def test_a_source_name_is_only_for_other_sources(client: TestClient, service: Headers) -> None:
    response = post(
        client,
        service,
        "sign_up",
        {"name": "Ada Example", "email": "ada@example.com"},
        source_name="business_partners",
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unexpected_source_name"


# --- Correspondence (C6, C7) ----------------------------------------------------------------


@pytest.mark.clause("C6", "C7")
def test_correspondence_from_a_users_address_is_kept_apart_until_the_sender_is_known(
    client: TestClient, service: Headers, db: Database, keys: SqlKeyStore
) -> None:
    """The review filed a message claiming alice@example.com under Alice's account and
    answered her person id: anyone could put words into her data."""
    user = created(
        post(client, service, "sign_up", {"name": "Ada Example", "email": "ada@example.com"})
    )
    forged = post(
        client,
        service,
        "correspondence",
        {"email": "  ADA@Example.COM ", "message": "Please delete my account"},
    )
    writer = created(forged)

    assert writer != user
    assert user not in forged.text
    assert [r.field for r in records_of(db, writer)] == ["email", "message"]
    assert [r for r in records_of(db, user) if r.collection_point == "correspondence"] == []
    read = use(client, service, user, "service_support", ["correspondence.message"])
    assert read.json()["values"] == []

    # A service that knows the sender is the signed-in user says so, and the letter is hers.
    signed_in = post(
        client,
        service,
        "correspondence",
        {"email": "ada@example.com", "message": "Where is my invoice?"},
        person={"person_id": user},
    )
    assert created(signed_in) == user
    read = use(client, service, user, "service_support", ["correspondence.message"])
    assert [v["value"] for v in read.json()["values"]] == ["Where is my invoice?"]

    # Found through the blind index, never a plaintext column.
    index = BlindIndex(keys.index_key())
    with db.reading() as session:
        assert session.get(Person, user).email_index == index.email("ada@example.com")
    columns = {c.name for table in metadata.tables.values() for c in table.columns}
    assert not {name for name in columns if "mail" in name} - {"email_index"}


@pytest.mark.clause("C6", "C7")
def test_correspondence_from_an_unknown_address_makes_a_correspondent(
    client: TestClient, service: Headers, db: Database
) -> None:
    first = created(
        post(client, service, "correspondence", {"email": "grace@example.com", "message": "Hello"})
    )
    again = created(
        post(
            client,
            service,
            "correspondence",
            {"email": "Grace@example.com", "name": "Grace", "message": "Hello again"},
        )
    )
    assert again == first
    with db.reading() as session:
        assert session.get(Person, first).kind == "correspondent"
    assert len(records_of(db, first)) == 5


@pytest.mark.clause("C7")
def test_a_correspondent_who_signs_up_does_not_take_mail_sent_from_the_address(
    client: TestClient, service: Headers
) -> None:
    writer = created(
        post(
            client,
            service,
            "correspondence",
            {"email": "grace@example.com", "message": "Do you offer trials?"},
        )
    )
    user = created(
        post(client, service, "sign_up", {"name": "Grace Example", "email": "grace@example.com"})
    )
    assert user != writer
    read = use(client, service, user, "service_support", ["correspondence.message"])
    assert read.json()["values"] == []  # joined only once the sender is verified
    later = created(
        post(
            client, service, "correspondence", {"email": "grace@example.com", "message": "Thanks!"}
        )
    )
    assert later == writer


# --- Surveys and reviews (C8) ---------------------------------------------------------------


@pytest.mark.clause("C8")
def test_survey_answers_are_stored(client: TestClient, service: Headers, db: Database) -> None:
    person = created(
        post(
            client,
            service,
            "survey",
            {"answers": '{"q1": "yes", "q2": 4}'},
            person={"visitor_id": "vid-survey"},
        )
    )
    [row] = records_of(db, person)
    assert (row.field, row.category, row.collection_point) == (
        "answers",
        "survey.answers",
        "survey",
    )
    read = use(client, service, person, "service_improvement", ["survey.answers"])
    assert [v["value"] for v in read.json()["values"]] == ['{"q1": "yes", "q2": 4}']


@pytest.mark.clause("C8")
def test_a_review_is_published_only_with_permission_in_the_same_submission(
    client: TestClient, service: Headers, db: Database
) -> None:
    user = created(
        post(client, service, "sign_up", {"name": "Ada Example", "email": "ada@example.com"})
    )
    quiet = post(client, service, "review", {"review": "Good tool."}, person={"person_id": user})
    assert quiet.status_code == 201, quiet.text
    assert quiet.json()["published"] is False
    shown = post(
        client,
        service,
        "review",
        {"review": "Great tool.", "display_name": "Ada E."},
        person={"person_id": user},
        publish=True,
    )
    assert shown.json()["published"] is True
    published = {
        (r.submission_id, r.field): r.published
        for r in records_of(db, user)
        if r.collection_point == "review"
    }
    assert published == {
        (quiet.json()["submission_id"], "review"): False,
        (shown.json()["submission_id"], "review"): True,
        (shown.json()["submission_id"], "display_name"): True,
    }

    offered = post(
        client, service, "survey", {"answers": "yes"}, person={"person_id": user}, publish=True
    )
    assert offered.status_code == 422
    assert offered.json()["error"]["code"] == "publication_not_offered"


# --- Job applications: kept apart, recruiters only (C6) -------------------------------------


@pytest.mark.clause("C2", "C6")
def test_a_job_application_is_a_separate_person_read_by_recruiters_only(
    client: TestClient, service: Headers, db: Database, make_key: Callable[[str], str]
) -> None:
    visitor = created(
        post(client, service, "survey", {"answers": "yes"}, person={"visitor_id": "vid-applicant"})
    )
    applicant = created(
        post(
            client,
            service,
            "job_application",
            {"name": "Ada Example", "email": "ada@example.com", "resume": "Analyst, 1843-1852"},
            person={"visitor_id": "vid-applicant"},
        )
    )
    assert applicant != visitor
    with db.reading() as session:
        person = session.get(Person, applicant)
        assert (person.kind, person.merged_into) == ("job_applicant", None)
        owners = set(session.scalars(select(VisitorId.person_id)))
    assert applicant not in owners

    support = use(
        client,
        bearer(make_key("support_agent")),
        applicant,
        "service_support",
        ["identity.name", "contact.email"],
    )
    assert support.status_code == 200, support.text
    assert support.json()["values"] == []
    assert support.json()["withheld"] == 2

    as_service = use(
        client,
        service,
        applicant,
        "described_obligations",
        ["employment.application", "identity.name"],
    )
    assert as_service.json()["values"] == []
    assert as_service.json()["withheld"] == 2

    recruiter = use(
        client,
        bearer(make_key("recruiter")),
        applicant,
        "described_obligations",
        ["employment.application", "identity.name"],
    )
    assert recruiter.status_code == 200, recruiter.text
    assert sorted(v["value"] for v in recruiter.json()["values"]) == [
        "Ada Example",
        "Analyst, 1843-1852",
    ]
    assert recruiter.json()["withheld"] == 0


@pytest.mark.clause("C6")
def test_a_recruiter_reads_applicants_and_no_customer(
    client: TestClient, service: Headers, make_key: Callable[[str], str]
) -> None:
    """The review's reproduction: a recruiter read a customer's name through
    `described_obligations`, a purpose both share."""
    customer = created(
        post(client, service, "sign_up", {"name": "Cora Customer", "email": "cora@example.com"})
    )
    applicant = created(
        post(
            client,
            service,
            "job_application",
            {"name": "Abe Applicant", "email": "abe@example.com", "resume": "Typesetter"},
        )
    )
    recruiter = bearer(make_key("recruiter"))

    refused = use(client, recruiter, customer, "described_obligations", ["identity.name"])
    allowed = use(client, recruiter, applicant, "described_obligations", ["identity.name"])
    asked = client.post(
        "/v1/decisions",
        headers=recruiter,
        json={
            "person_id": customer,
            "purpose": "described_obligations",
            "categories": ["identity.name"],
        },
    )

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "subject_not_covered"
    assert "Cora" not in refused.text
    assert asked.json()["code"] == "subject_not_covered"
    assert [v["value"] for v in allowed.json()["values"]] == ["Abe Applicant"]


@pytest.mark.clause("C6")
def test_an_application_never_lands_on_a_customer_nor_an_order_on_an_applicant(
    client: TestClient, service: Headers, db: Database
) -> None:
    customer = created(
        post(client, service, "sign_up", {"name": "Cora Customer", "email": "cora@example.com"})
    )
    applicant = created(
        post(
            client,
            service,
            "job_application",
            {"name": "Abe Applicant", "email": "abe@example.com", "resume": "Typesetter"},
        )
    )
    before = record_count(db)

    on_customer = post(
        client,
        service,
        "job_application",
        {"name": "Cora Customer", "email": "cora@example.com", "resume": "Manager"},
        person={"person_id": customer},
    )
    on_applicant = post(
        client,
        service,
        "order",
        {
            "name": "Abe Applicant",
            "email": "abe@example.com",
            "billing_address": "1 Example Road",
            "items": "a licence",
            "payment_reference": "pay-0001",
        },
        person={"person_id": applicant},
    )
    events = client.post(
        "/v1/events",
        headers=service,
        json={
            "idempotency_key": "applicant-events",
            "events": [
                {"type": "page_view", "time": "2026-11-25T09:00:00Z", "person_id": applicant}
            ],
        },
    )
    again = post(
        client,
        service,
        "job_application",
        {"name": "Abe Applicant", "email": "abe@example.com", "resume": "Typesetter, editor"},
        person={"person_id": applicant},
    )

    for response in (on_customer, on_applicant, events):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "subject_not_covered"
    assert record_count(db) == before + 3  # only the second application, to its applicant
    assert created(again) == applicant


@pytest.mark.clause("C13", "C17")
def test_library_collect_refuses_like_the_api(
    db: Database, keys: SqlKeyStore, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    with db.writing() as session, pytest.raises(Unprocessable) as refused:
        collect(
            session,
            keys,
            clock,
            omni_compiled,
            actor="test",
            submission=Submission(
                collection_point="demo_trial_request",
                fields={"phone": "+1 555 0100"},
                visitor_id="vid-lib",
            ),
        )
    assert refused.value.code == "missing_fields"
    assert refused.value.details == {"fields": ["name", "email", "company"]}


# --- E-mail addresses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "invisible",
    ["\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u034f", "\u180e", "\ufe0f", "\U000e0041"],
)
def test_an_address_with_invisible_characters_reaches_the_same_person(
    client: TestClient, service: Headers, db: Database, keys: SqlKeyStore, invisible: str
) -> None:
    first = created(
        post(client, service, "correspondence", {"email": "alice@example.com", "message": "Hi"})
    )
    letter = post(
        client,
        service,
        "correspondence",
        {"email": f"alice{invisible}@example.com", "message": "Is this my account?"},
    )
    assert created(letter) == first
    user = created(
        post(client, service, "sign_up", {"name": "Alice Example", "email": "alice@example.com"})
    )
    twice = created(
        post(
            client,
            service,
            "sign_up",
            {"name": "Alice Example", "email": f"{invisible}alice@exam{invisible}ple.com"},
        )
    )
    index = BlindIndex(keys.index_key())
    assert index.email(f"alice{invisible}@example.com") == index.email("alice@example.com")
    with db.reading() as session:
        # The second sign-up is taken for the same address: it does not get it.
        assert session.get(Person, user).email_index == index.email("alice@example.com")
        assert session.get(Person, twice).email_index is None


NOT_ADDRESSES = ["not-an-address", "alice@", "@example.com", "alice@@example.com"]
ADDRESS_POINTS = ["sign_up", "correspondence", "subscription_contact"]


@pytest.mark.parametrize(
    ("point", "value"), [(p, v) for p in ADDRESS_POINTS for v in NOT_ADDRESSES]
)
def test_an_email_field_that_holds_no_address_is_refused_naming_the_field(
    client: TestClient, service: Headers, db: Database, point: str, value: str
) -> None:
    fields = {"name": "Alice Example", "email": value}
    if point == "correspondence":
        fields["message"] = "Hello"
    response = post(client, service, point, fields)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_email"
    assert error["details"] == {"fields": ["email"]}
    assert "email" in error["message"]
    assert value not in response.text
    assert record_count(db) == 0
