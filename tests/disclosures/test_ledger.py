"""The ledger of disclosures, through HTTP and the library: a refused disclosure records no
ledger row and one audit entry of the refusal; a bulk disclosure records exactly the people
allowed and reports the others with their reason; a retry records nothing again; the ledger
holds no personal value; the reads filter and page (C21, C22, C24)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from charter.audit.reading import page_entries
from charter.clock import FixedClock
from charter.consent.choices import record_gpc, set_choices
from charter.db import Database
from charter.disclosures.guards import DisclosureRequest
from charter.disclosures.ledger import (
    DisclosureRefused,
    disclosures,
    record_disclosure,
    requester_of,
)
from charter.errors import Conflict
from charter.policy.compiled import CompiledPolicy
from charter.staff.service import Actor
from charter.vault.erasure import erase_person
from charter.vault.keystore import KeyStore
from charter.vault.people import new_person
from tests.conftest import bearer
from tests.vault.calls import sign_up
from tests.vault.test_people_events import visitor_person

pytestmark = pytest.mark.clause("C21", "C22", "C24")

ANALYST = Actor(staff_id=7, key_id="k" * 12, role="privacy_officer", permissions=frozenset())


def body(**fields: Any) -> dict[str, Any]:
    """A disclosure to a processor on OMNI's instructions, with `fields` changed."""
    return {
        "recipient": "cloud_hosting",
        "purpose": "service_support",
        "categories": ["contact.email"],
        "people": [],
        "idempotency_key": "disclosure-1",
        **fields,
    }


def ledger_rows(db: Database) -> tuple[int, int]:
    with db.reading() as session:
        connection = session.connection()
        made = connection.exec_driver_sql("SELECT COUNT(*) FROM disclosures").scalar()
        people = connection.exec_driver_sql("SELECT COUNT(*) FROM disclosed_people").scalar()
    return int(made or 0), int(people or 0)


def audited(db: Database, action: str) -> list[dict[str, Any]]:
    with db.reading() as session:
        return [entry.as_json() for entry in page_entries(session, action=action, limit=1000)]


def made_people(db: Database, clock: FixedClock, count: int) -> list[str]:
    with db.writing() as session:
        people = [new_person(session, clock, "user") for _ in range(count)]
        return [person.id for person in people]


@pytest.fixture
def officer(make_key: Callable[..., str]) -> dict[str, str]:
    return bearer(make_key("privacy_officer", name="olivia"))


@pytest.fixture
def person(client: TestClient, make_key: Callable[..., str]) -> str:
    return sign_up(client, bearer(make_key("service_client")), "v-ledger-1", "ines@example.com")


# --- refusals -----------------------------------------------------------------------------------

REFUSED = {
    "recipient_not_declared": {"recipient": "data_broker"},
    "purpose_not_for_recipient": {"purpose": "billing"},
    "category_not_for_recipient": {"categories": ["billing.payment"]},
    "never_sold": {"for_recipients_own_purposes": True},
    "legal_process_required": {
        "recipient": "law_enforcement",
        "purpose": "fraud_and_legal",
        "categories": ["network.ip"],
    },
    "approval_required": {
        "recipient": "law_enforcement",
        "purpose": "fraud_and_legal",
        "categories": ["network.ip"],
        "legal_process": "subpoena 2026-0417",
        "approver": "sam-agent",
    },
    "approver_is_requester": {
        "recipient": "law_enforcement",
        "purpose": "fraud_and_legal",
        "categories": ["network.ip"],
        "legal_process": "subpoena 2026-0417",
        "approver": "olivia",
    },
    "transfer_ground_required": {"recipient": "omni_europe"},
    "unknown_transfer_ground": {"ground": "because"},
    "business_transfer_to_non_acquirer": {"ground": "business_transfer"},
}


@pytest.mark.parametrize("code", sorted(REFUSED))
def test_a_refused_disclosure_records_no_ledger_row_and_audits_the_refusal(
    code: str,
    *,
    client: TestClient,
    db: Database,
    officer: dict[str, str],
    person: str,
    make_key: Callable[..., str],
) -> None:
    make_key("support_agent", name="sam-agent")
    response = client.post(
        "/v1/disclosures", headers=officer, json=body(people=[person], **REFUSED[code])
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert ledger_rows(db) == (0, 0)
    [entry] = audited(db, "disclosures:disclosure:refused")
    assert entry["outcome"] == "refused"
    assert entry["details"]["code"] == code
    assert entry["details"]["requested"] == 1
    # Only the policy's own names: a recipient it does not know is not copied.
    assert "data_broker" not in str(entry)
    assert audited(db, "disclosures:disclosure:recorded") == []


def test_a_refusal_through_the_library_is_answered_and_audited_in_the_callers_transaction(
    db: Database, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    [someone] = made_people(db, clock, 1)
    request = DisclosureRequest(
        "google_ads", "promotional", ("cookie.id",), requester_of(ANALYST),
        for_recipients_own_purposes=True,
    )  # fmt: skip
    with db.writing() as session:
        answer = record_disclosure(
            session,
            clock,
            omni_compiled,
            actor=ANALYST,
            request=request,
            people=[someone],
            idempotency_key="sold-1",
        )
    assert answer.refusal is not None
    assert (answer.id, answer.refusal.code) == (None, "never_sold")
    with pytest.raises(DisclosureRefused) as refused:
        answer.raise_if_refused()
    assert refused.value.code == "never_sold"
    assert ledger_rows(db) == (0, 0)
    [entry] = audited(db, "disclosures:disclosure:refused")
    assert entry["details"]["recipient"] == "google_ads"
    assert entry["actor"] == ANALYST.ref


# --- a bulk disclosure --------------------------------------------------------------------------


def test_a_bulk_disclosure_records_exactly_the_people_allowed(
    db: Database,
    keys: KeyStore,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
) -> None:
    everyone = made_people(db, clock, 300)
    gpc, opted_out, erased = everyone[:30], everyone[30:70], everyone[70:90]
    with db.writing() as session:
        record_gpc(session, clock, omni_compiled, actor="test", person_ids=gpc)
        for person_id in opted_out:
            set_choices(
                session,
                clock,
                omni_compiled,
                actor="test",
                person_id=person_id,
                choices={"purpose:promotional": False},
                method="api",
            )
    for person_id in erased:
        erase_person(db, keys, clock, actor="test", person_id=person_id)
    request = DisclosureRequest(
        "google_ads", "promotional", ("cookie.id", "usage"), requester_of(ANALYST)
    )
    unknown = "no-such-person"
    with db.writing() as session:
        answer = record_disclosure(
            session,
            clock,
            omni_compiled,
            actor=ANALYST,
            request=request,
            people=[*everyone, unknown],
            idempotency_key="ads-1",
        )
    allowed = set(everyone[90:])
    assert (answer.requested, answer.disclosed, answer.excluded) == (301, 210, 91)
    excluded = dict(answer.exclusions)
    assert {excluded[p] for p in gpc} == {"gpc_signal"}
    assert {excluded[p] for p in opted_out} == {"opted_out_of_sale_or_sharing"}
    assert {excluded[p] for p in erased} == {"person_erased"}
    assert excluded[unknown] == "person_not_found"
    assert answer.codes == {
        "gpc_signal": 30,
        "opted_out_of_sale_or_sharing": 40,
        "person_erased": 20,
        "person_not_found": 1,
    }
    with db.reading() as session:
        rows = session.connection().exec_driver_sql(
            "SELECT disclosure_id, person_id, shine_the_light FROM disclosed_people"
        )
        recorded = {(d, p, bool(s)) for d, p, s in rows}
    assert recorded == {(answer.id, p, False) for p in allowed}
    [entry] = audited(db, "disclosures:disclosure:recorded")
    assert entry["target"] == f"disclosure:{answer.id}"
    assert entry["details"]["disclosed"] == 210
    assert entry["details"]["codes"] == answer.codes
    assert entry["details"]["categories"] == ["cookie.id", "usage"]
    # The audit entry counts the people; it names none of them.
    assert not any(p in str(entry) for p in everyone)


def test_a_disclosure_for_an_affiliates_marketing_is_marked_for_shine_the_light(
    db: Database, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    people = made_people(db, clock, 3)
    request = DisclosureRequest(
        "omni_europe", "promotional", ("contact.email",), requester_of(ANALYST), ground="affiliates"
    )
    with db.writing() as session:
        answer = record_disclosure(
            session,
            clock,
            omni_compiled,
            actor=ANALYST,
            request=request,
            people=people,
            idempotency_key="europe-1",
        )
    assert answer.disclosed == 3
    with db.reading() as session:
        flags = session.connection().exec_driver_sql("SELECT shine_the_light FROM disclosed_people")
        assert {bool(flag) for (flag,) in flags} == {True}


def test_an_unknown_person_id_is_reported_by_id_over_http(
    client: TestClient, db: Database, officer: dict[str, str], person: str
) -> None:
    response = client.post(
        "/v1/disclosures", headers=officer, json=body(people=[person, "nobody-at-all"])
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["requested"], answer["disclosed"], answer["excluded"]) == (2, 1, 1)
    assert answer["exclusions"] == [{"person_id": "nobody-at-all", "code": "person_not_found"}]
    assert ledger_rows(db) == (1, 1)


def test_a_retry_with_the_same_key_gets_the_first_answer_and_records_nothing(
    client: TestClient, db: Database, officer: dict[str, str], person: str
) -> None:
    sent = body(people=[person, "nobody-at-all"])
    first = client.post("/v1/disclosures", headers=officer, json=sent)
    again = client.post("/v1/disclosures", headers=officer, json=sent)
    assert first.status_code == again.status_code == 201
    assert again.json() == {**first.json(), "replayed": True}
    assert ledger_rows(db) == (1, 1)
    assert len(audited(db, "disclosures:disclosure:recorded")) == 1
    other = client.post("/v1/disclosures", headers=officer, json=body(people=["someone-else"]))
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert ledger_rows(db) == (1, 1)


def test_a_key_reused_for_another_request_is_refused_by_the_library(
    db: Database, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    people = made_people(db, clock, 2)
    request = DisclosureRequest(
        "cloud_hosting", "service_support", ("contact.email",), requester_of(ANALYST)
    )
    with db.writing() as session:
        record_disclosure(
            session,
            clock,
            omni_compiled,
            actor=ANALYST,
            request=request,
            people=people[:1],
            idempotency_key="k-1",
        )
    with pytest.raises(Conflict), db.writing() as session:
        record_disclosure(
            session,
            clock,
            omni_compiled,
            actor=ANALYST,
            request=request,
            people=people,
            idempotency_key="k-1",
        )
    assert ledger_rows(db) == (1, 1)


def test_a_law_enforcement_disclosure_records_its_legal_process_and_approver(
    client: TestClient,
    db: Database,
    person: str,
    make_key: Callable[..., str],
) -> None:
    analyst = bearer(make_key("privacy_officer", name="ana"))
    make_key("privacy_officer", name="olivia")
    response = client.post(
        "/v1/disclosures",
        headers=analyst,
        json=body(
            recipient="law_enforcement",
            purpose="fraud_and_legal",
            categories=["network.ip"],
            legal_process="subpoena 2026-0417",
            approver="olivia",
            people=[person],
        ),
    )
    assert response.status_code == 201, response.text
    [entry] = client.get("/v1/disclosures", headers=analyst).json()["disclosures"]
    assert entry["legal_process"] == "subpoena 2026-0417"
    assert entry["approver_id"] is not None
    assert entry["recipient"] == "law_enforcement"
    unknown = client.post(
        "/v1/disclosures",
        headers=analyst,
        json=body(people=[person], approver="nobody", idempotency_key="disclosure-2"),
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "approver_not_found"


def test_the_ledger_holds_no_personal_value(
    client: TestClient, db: Database, officer: dict[str, str], person: str
) -> None:
    response = client.post(
        "/v1/disclosures",
        headers=officer,
        json=body(categories=["identity", "contact"], people=[person]),
    )
    assert response.status_code == 201, response.text
    assert response.json()["disclosed"] == 1
    with db.reading() as session:
        connection = session.connection()
        stored = [
            str(value)
            for table in ("disclosures", "disclosed_people")
            for row in connection.exec_driver_sql(f"SELECT * FROM {table}")  # noqa: S608 - ours
            for value in row
        ]
    assert person in stored
    assert not [value for value in stored if "example.com" in value or "Sam Example" in value]


# --- reading the ledger -------------------------------------------------------------------------


def test_the_ledger_reads_filter_and_page(
    *,
    client: TestClient,
    db: Database,
    clock: FixedClock,
    officer: dict[str, str],
    person: str,
    make_key: Callable[..., str],
) -> None:
    [other] = made_people(db, clock, 1)
    start = clock.now()
    sent = [
        body(people=[person], idempotency_key="d-1"),
        body(
            recipient="payments_processor", purpose="billing", people=[other], idempotency_key="d-2"
        ),
        body(
            recipient="omni_europe",
            ground="affiliates",
            people=[person, other],
            idempotency_key="d-3",
        ),
    ]
    for one in sent:
        assert client.post("/v1/disclosures", headers=officer, json=one).status_code == 201
        clock.advance(dt.timedelta(hours=1))

    def listed(**query: Any) -> list[str]:
        response = client.get("/v1/disclosures", headers=officer, params=query)
        assert response.status_code == 200, response.text
        return [entry["recipient"] for entry in response.json()["disclosures"]]

    assert listed() == ["cloud_hosting", "payments_processor", "omni_europe"]
    assert listed(recipient="payments_processor") == ["payments_processor"]
    assert listed(purpose="service_support") == ["cloud_hosting", "omni_europe"]
    assert listed(ground="affiliates") == ["omni_europe"]
    assert listed(person=other) == ["payments_processor", "omni_europe"]
    hour = dt.timedelta(hours=1)
    assert listed(since=(start + hour).isoformat(), until=(start + 2 * hour).isoformat()) == [
        "payments_processor"
    ]
    first = client.get("/v1/disclosures", headers=officer, params={"limit": 2}).json()
    assert [e["recipient"] for e in first["disclosures"]] == ["cloud_hosting", "payments_processor"]
    rest = client.get(
        "/v1/disclosures", headers=officer, params={"limit": 2, "after": first["next"]}
    ).json()
    assert [e["recipient"] for e in rest["disclosures"]] == ["omni_europe"]
    assert rest["next"] is None
    with db.reading() as session:
        assert [e.recipient for e in disclosures(session, filters={"person": person})] == [
            "cloud_hosting",
            "omni_europe",
        ]

    mine = client.get(f"/v1/people/{person}/disclosures", headers=officer, params={"limit": 1})
    assert mine.status_code == 200, mine.text
    assert mine.json()["person_id"] == person
    assert [e["recipient"] for e in mine.json()["disclosures"]] == ["cloud_hosting"]
    [read] = audited(db, "disclosures:person:read")
    assert read["target"] == f"person:{person}"
    missing = client.get("/v1/people/nobody-at-all/disclosures", headers=officer)
    assert missing.status_code == 404
    service = bearer(make_key("support_agent"))
    assert client.get("/v1/disclosures", headers=service).status_code == 403


def test_a_large_disclosure_over_http_lists_the_first_exclusions_and_counts_them_all(
    client: TestClient, db: Database, clock: FixedClock, officer: dict[str, str]
) -> None:
    known = made_people(db, clock, 150)
    unknown = [f"unknown-{number}" for number in range(1001)]
    response = client.post("/v1/disclosures", headers=officer, json=body(people=known + unknown))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["requested"], answer["disclosed"], answer["excluded"]) == (1151, 150, 1001)
    assert answer["codes"] == {"person_not_found": 1001}
    assert [e["person_id"] for e in answer["exclusions"]] == unknown[:1000]
    assert answer["exclusions_truncated"] is True
    assert ledger_rows(db) == (1, 150)


def test_a_visitor_disclosed_before_signing_up_is_in_the_users_ledger(
    client: TestClient,
    db: Database,
    keys: KeyStore,
    officer: dict[str, str],
    make_key: Callable[..., str],
) -> None:
    service = bearer(make_key("service_client"))
    seen = client.post(
        "/v1/events",
        headers=service,
        json={
            "idempotency_key": "visit-ledger-1",
            "events": [{"type": "page_view", "time": "2026-11-25T10:00:00Z",
                        "visitor_id": "vid-ledger", "path": "/"}],
        },
    )  # fmt: skip
    assert seen.status_code == 200, seen.text
    visitor = visitor_person(db, keys, "vid-ledger")
    assert visitor is not None
    made = client.post(
        "/v1/disclosures",
        headers=officer,
        json=body(recipient="google_ads", purpose="promotional", categories=["cookie.id"],
                  people=[visitor]),
    )  # fmt: skip
    assert made.json()["disclosed"] == 1, made.text
    user = sign_up(client, service, "vid-ledger", "ines@example.com")

    for path in (f"/v1/people/{user}/disclosures", f"/v1/disclosures?person={user}"):
        listed = client.get(path, headers=officer).json()["disclosures"]
        assert [entry["id"] for entry in listed] == [made.json()["disclosure_id"]], path
