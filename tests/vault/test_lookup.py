"""Finding a person by e-mail through `POST /v1/people/lookup`: staff who answer rights
requests turn an address into the people it belongs to, through the blind index; the look-up
is audited, and neither its URL nor its audit entry holds the address."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select, text

from charter.audit.models import AuditEntry
from charter.clock import FixedClock
from charter.db import Database
from charter.policy.compiled import CompiledPolicy
from charter.staff.models import StaffMember
from charter.staff.service import Actor
from charter.vault.identifiers import BlindIndex
from charter.vault.keystore import SqlKeyStore
from charter.vault.lookup import find_people_by_email
from tests.conftest import bearer
from tests.vault.calls import sign_up

Headers = dict[str, str]
ADA = "ada.lovelace@example.com"
GRACE = "grace.hopper@example.com"
OFFICER = "officer-lookup"


@pytest.fixture
def officer(make_key: Callable[..., str]) -> Headers:
    return bearer(make_key("privacy_officer", name=OFFICER))


def look_up(client: TestClient, headers: Headers, email: Any) -> Response:
    return client.post("/v1/people/lookup", headers=headers, json={"email": email})


def found(response: Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    people: list[dict[str, str]] = response.json()["people"]
    return people


def lookups(db: Database) -> list[AuditEntry]:
    with db.reading() as session:
        return list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "vault:people:looked_up")
                .order_by(AuditEntry.seq)
            )
        )


def test_the_officer_finds_the_person_by_their_address_and_no_one_else(
    client: TestClient, service: Headers, officer: Headers
) -> None:
    ada = sign_up(client, service, "vid-lookup-ada", ADA)
    sign_up(client, service, "vid-lookup-grace", GRACE)

    assert found(look_up(client, officer, ADA)) == [{"person_id": ada, "kind": "user"}]


@pytest.mark.parametrize(
    "written",
    [
        "Ada.Lovelace@Example.COM",
        "  ada.lovelace@example.com\t",
        "ada.lovelace\u200b@example.com",
        "\uff41da.lovelace@example.com",  # a fullwidth "a": NFKC makes it "a"
    ],
)
def test_the_address_is_matched_as_the_vault_stored_it(
    client: TestClient, service: Headers, officer: Headers, written: str
) -> None:
    ada = sign_up(client, service, "vid-lookup-ada", ADA)

    assert found(look_up(client, officer, written)) == [{"person_id": ada, "kind": "user"}]


def test_an_unknown_address_is_an_empty_answer_not_a_404(
    client: TestClient, service: Headers, officer: Headers
) -> None:
    sign_up(client, service, "vid-lookup-ada", ADA)

    assert found(look_up(client, officer, "nobody@example.com")) == []


@pytest.mark.clause("C7")
def test_a_user_and_the_correspondent_who_wrote_from_the_address_are_both_found_user_first(
    client: TestClient, service: Headers, officer: Headers
) -> None:
    wrote = client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "correspondence",
            "fields": {"email": ADA, "message": "Please delete my data."},
        },
    )
    assert wrote.status_code == 201, wrote.text
    correspondent = wrote.json()["person_id"]
    user = sign_up(client, service, "vid-lookup-ada", ADA)

    assert found(look_up(client, officer, ADA)) == [
        {"person_id": user, "kind": "user"},
        {"person_id": correspondent, "kind": "correspondent"},
    ]


def test_an_erased_person_is_not_found(
    client: TestClient, service: Headers, officer: Headers
) -> None:
    ada = sign_up(client, service, "vid-lookup-ada", ADA)
    assert found(look_up(client, officer, ADA)) == [{"person_id": ada, "kind": "user"}]

    erased = client.delete(f"/v1/people/{ada}", headers=officer)
    assert erased.status_code == 200, erased.text

    assert found(look_up(client, officer, ADA)) == []


@pytest.mark.clause("C2")
@pytest.mark.parametrize("role", ["service_client", "support_agent", "marketing", "recruiter"])
def test_a_role_without_people_lookup_is_refused(
    client: TestClient, service: Headers, make_key: Callable[[str], str], role: str
) -> None:
    sign_up(client, service, "vid-lookup-ada", ADA)

    refused = look_up(client, bearer(make_key(role)), ADA)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert "people" not in refused.json()


def test_no_key_is_refused(client: TestClient) -> None:
    refused = look_up(client, {}, ADA)

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "missing_key"


@pytest.mark.parametrize(
    "email",
    ["", "   ", "ada.lovelace", "ada.lovelace@", "@example.com", "ada@example.invalid", "a b@c.d"],
)
def test_an_invalid_address_is_refused_naming_the_field_not_the_value(
    client: TestClient, officer: Headers, db: Database, email: str
) -> None:
    refused = look_up(client, officer, email)

    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "invalid_email"
    assert error["details"] == {"fields": ["email"]}
    if email.strip():
        assert email.strip() not in refused.text
    assert lookups(db) == []


@pytest.mark.parametrize("body", [{}, {"email": 5}, {"email": ADA, "name": "Ada"}, [ADA]])
def test_a_body_that_is_not_one_address_is_refused(
    client: TestClient, officer: Headers, body: object
) -> None:
    refused = client.post("/v1/people/lookup", headers=officer, json=body)

    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_request"
    assert "ada.lovelace" not in refused.text


def test_the_address_is_never_taken_in_a_url(
    client: TestClient, service: Headers, officer: Headers, db: Database
) -> None:
    sign_up(client, service, "vid-lookup-ada", ADA)

    for path in ("/v1/people/lookup", "/v1/people/lookup/", f"/v1/people/{ADA}"):
        answer = client.get(path, headers=officer, params={"email": ADA})

        assert answer.status_code in {404, 405}, (path, answer.status_code)
        assert ADA not in answer.text
    assert lookups(db) == []


@pytest.mark.clause("C3")
def test_a_lookup_is_audited_with_its_actor_and_without_the_address(
    client: TestClient, service: Headers, officer: Headers, db: Database, keys: SqlKeyStore
) -> None:
    ada = sign_up(client, service, "vid-lookup-ada", ADA)
    written = "  Ada.Lovelace@Example.com "

    assert found(look_up(client, officer, written)) == [{"person_id": ada, "kind": "user"}]
    assert found(look_up(client, officer, "nobody@example.com")) == []

    with db.reading() as session:
        staff_id = session.scalars(select(StaffMember.id).where(StaffMember.name == OFFICER)).one()
        rows = session.execute(text("SELECT * FROM audit_entries ORDER BY seq")).all()
    first, second = lookups(db)
    assert first.actor.startswith(f"staff:{staff_id}/key:")
    assert second.actor == first.actor
    assert (first.outcome, second.outcome) == ("ok", "ok")
    assert first.details == f'{{"by":"email","matches":1,"people":["{ada}"]}}'
    assert second.details == '{"by":"email","matches":0,"people":[]}'
    # Neither the address in any form, nor its blind index, anywhere in the log.
    index = BlindIndex(keys.index_key())
    dump = "\n".join(str(value) for row in rows for value in row).lower()
    for secret in (ADA, "lovelace", "nobody@example.com", "nobody", index.email(ADA)):
        assert secret.lower() not in dump
    assert index.email("nobody@example.com") not in dump


@pytest.mark.clause("C6")
def test_a_role_limited_to_some_data_subjects_finds_only_those(
    client: TestClient,
    service: Headers,
    *,
    db: Database,
    keys: SqlKeyStore,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
) -> None:
    """Should a role limited to job applicants (the recruiter, C6) be granted the look-up, a
    customer's address still finds no one for it."""
    ada = sign_up(client, service, "vid-lookup-ada", ADA)
    index = BlindIndex(keys.index_key())

    def as_role(role: str) -> list[str]:
        actor = Actor(staff_id=1, key_id="A" * 12, role=role, permissions=frozenset())
        with db.writing() as session:
            people = find_people_by_email(
                session, clock, omni_compiled, index, actor=actor, email=ADA
            )
        return [person.person_id for person in people]

    assert as_role("privacy_officer") == [ada]
    assert as_role("recruiter") == []
    assert [entry.details for entry in lookups(db)][-1] == '{"by":"email","matches":0,"people":[]}'


def test_a_job_applicant_is_found_by_their_address_and_kept_apart_from_the_user(
    client: TestClient, service: Headers, officer: Headers
) -> None:
    """An applicant's rights reach them by e-mail too; the application never joins the
    account of the same address (C6)."""
    user = sign_up(client, service, "vid-lookup-user", ADA)
    applied = client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "job_application",
            "fields": {"name": "Ada Example", "email": ADA, "resume": "Analytical engines"},
        },
    )
    assert applied.status_code == 201, applied.text
    applicant = applied.json()["person_id"]

    assert applicant != user
    assert found(look_up(client, officer, ADA)) == [
        {"person_id": user, "kind": "user"},
        {"person_id": applicant, "kind": "job_applicant"},
    ]
