"""Exporting the ledger, through HTTP: `GET /v1/disclosures/export` streams the ledger as
NDJSON, a line per disclosure equal to what `GET /v1/disclosures` reads, filtered the same
way; `people=true` adds a line per person disclosed after each disclosure; the export is
audited by the names of its filters; only a reader of the ledger may export it (C21, C24)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from charter.clock import FixedClock
from charter.db import Database
from charter.disclosures.guards import DisclosureRequest
from charter.disclosures.ledger import record_disclosure, requester_of
from charter.policy.compiled import CompiledPolicy
from charter.staff.service import Actor
from tests.conftest import bearer
from tests.disclosures.test_ledger import audited, body, made_people

pytestmark = pytest.mark.clause("C21", "C24")

EXPORT = "/v1/disclosures/export"
EXPORTED = "disclosures:ledger:exported"
HOUR = dt.timedelta(hours=1)


def exported(client: TestClient, headers: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    response = client.get(EXPORT, headers=headers, params=query)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    text = response.text
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def listed(client: TestClient, headers: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    """`GET /v1/disclosures`, every page, as export lines."""
    entries: list[dict[str, Any]] = []
    after = 0
    while True:
        response = client.get(
            "/v1/disclosures", headers=headers, params={**query, "after": after, "limit": 1000}
        )
        assert response.status_code == 200, response.text
        page = response.json()
        entries += [{"kind": "disclosure", **entry} for entry in page["disclosures"]]
        if page["next"] is None:
            return entries
        after = page["next"]


@pytest.fixture
def officer(make_key: Callable[..., str]) -> dict[str, str]:
    return bearer(make_key("privacy_officer", name="olivia"))


@pytest.fixture
def ledger(
    client: TestClient, db: Database, clock: FixedClock, officer: dict[str, str]
) -> dict[str, Any]:
    """Three disclosures an hour apart: Ann's to the host, Ben's for billing, and both to
    OMNI Europe for its own marketing (Shine the Light)."""
    ann, ben = made_people(db, clock, 2)
    start = clock.now()
    sent = [
        body(people=[ann], idempotency_key="d-1"),
        body(
            recipient="payments_processor", purpose="billing", people=[ben], idempotency_key="d-2"
        ),
        body(
            recipient="omni_europe",
            purpose="promotional",
            ground="affiliates",
            people=[ann, ben, "nobody-at-all"],
            idempotency_key="d-3",
        ),
    ]
    ids = []
    for one in sent:
        response = client.post("/v1/disclosures", headers=officer, json=one)
        assert response.status_code == 201, response.text
        ids.append(response.json()["disclosure_id"])
        clock.advance(HOUR)
    return {"ann": ann, "ben": ben, "start": start, "ids": ids}


def test_the_export_is_the_ledger_line_by_line_and_filters_like_it(
    client: TestClient, officer: dict[str, str], ledger: dict[str, Any]
) -> None:
    everything = exported(client, officer)
    assert [line["id"] for line in everything] == ledger["ids"]
    assert [line["recipient"] for line in everything] == [
        "cloud_hosting",
        "payments_processor",
        "omni_europe",
    ]
    assert everything == listed(client, officer)
    assert everything[2]["requested"] == 3
    assert everything[2]["excluded"] == 1
    start = ledger["start"]
    filters: list[dict[str, Any]] = [
        {"recipient": "payments_processor"},
        {"purpose": "service_support"},
        {"ground": "affiliates"},
        {"person": ledger["ben"]},
        {"since": (start + HOUR).isoformat()},
        {"until": (start + 2 * HOUR).isoformat()},
        {"since": (start + HOUR).isoformat(), "until": (start + 2 * HOUR).isoformat()},
        {"person": ledger["ann"], "recipient": "omni_europe"},
    ]
    expected_ids = [
        [ledger["ids"][1]],
        [ledger["ids"][0]],
        [ledger["ids"][2]],
        ledger["ids"][1:],
        ledger["ids"][1:],
        ledger["ids"][:2],
        [ledger["ids"][1]],
        [ledger["ids"][2]],
    ]
    for query, ids in zip(filters, expected_ids, strict=True):
        lines = exported(client, officer, **query)
        assert [line["id"] for line in lines] == ids, query
        assert lines == listed(client, officer, **query), query
    assert exported(client, officer, recipient="acquirer") == []
    assert exported(client, officer, person="nobody-at-all") == []


def test_the_export_with_people_lists_each_person_disclosed_after_their_disclosure(
    client: TestClient, officer: dict[str, str], ledger: dict[str, Any]
) -> None:
    ann, ben = ledger["ann"], ledger["ben"]
    first, second, third = ledger["ids"]
    lines = exported(client, officer, people="true")

    def person(disclosure_id: int, person_id: str, *, shine: bool) -> dict[str, Any]:
        return {
            "kind": "person",
            "disclosure_id": disclosure_id,
            "person_id": person_id,
            "shine_the_light": shine,
        }

    disclosures = listed(client, officer)
    assert lines == [
        disclosures[0],
        person(first, ann, shine=False),
        disclosures[1],
        person(second, ben, shine=False),
        disclosures[2],
        # By person id; the unknown id left out is no person disclosed.
        *(person(third, p, shine=True) for p in sorted([ann, ben])),
    ]
    only_ben = exported(client, officer, people="true", person=ben, recipient="omni_europe")
    assert only_ben == [disclosures[2], *(person(third, p, shine=True) for p in sorted([ann, ben]))]


def test_an_export_is_audited_by_the_names_of_its_filters(
    client: TestClient, db: Database, officer: dict[str, str], ledger: dict[str, Any]
) -> None:
    exported(client, officer)
    exported(
        client,
        officer,
        people="true",
        person=ledger["ben"],
        recipient="payments_processor",
        since=ledger["start"].isoformat(),
    )
    plain, filtered = audited(db, EXPORTED)
    assert plain["target"] == "disclosures"
    assert plain["actor"].startswith("staff:")
    assert plain["details"] == {"filters": [], "people": False}
    assert filtered["details"] == {"filters": ["person", "recipient", "since"], "people": True}
    # The filters' values came from the caller: none is copied.
    assert ledger["ben"] not in str(filtered)
    assert "payments_processor" not in str(filtered)


@pytest.mark.parametrize("role", ["support_agent", "service_client"])
def test_a_staff_member_who_may_not_read_the_ledger_cannot_export_it(
    role: str,
    *,
    client: TestClient,
    db: Database,
    make_key: Callable[..., str],
    ledger: dict[str, Any],
) -> None:
    response = client.get(EXPORT, headers=bearer(make_key(role)), params={"people": "true"})
    assert response.status_code == 403, response.text
    assert "kind" not in response.text
    assert audited(db, EXPORTED) == []


def test_a_bad_filter_is_refused_before_anything_is_exported(
    client: TestClient, db: Database, officer: dict[str, str], ledger: dict[str, Any]
) -> None:
    response = client.get(EXPORT, headers=officer, params={"since": "yesterday"})
    assert response.status_code == 422, response.text
    naive = client.get(EXPORT, headers=officer, params={"since": "2026-11-25T12:00:00"})
    assert naive.status_code == 422, naive.text
    assert audited(db, EXPORTED) == []


# --- more than one internal page ----------------------------------------------------------------


def test_the_export_lists_every_person_of_a_disclosure_of_more_than_10000(
    client: TestClient, db: Database, clock: FixedClock, officer: dict[str, str]
) -> None:
    everyone = made_people(db, clock, 10_050)
    made = client.post("/v1/disclosures/selections", headers=officer)
    selection = made.json()["selection_id"]
    filled = client.post(
        f"/v1/disclosures/selections/{selection}/people",
        headers=officer,
        json={"people": everyone},
    )
    assert filled.status_code == 200, filled.text
    response = client.post(
        "/v1/disclosures", headers=officer, json=body(selection=selection, people=[])
    )
    assert response.status_code == 201, response.text
    disclosure_id = response.json()["disclosure_id"]

    [head, *rest] = exported(client, officer, people="true")
    assert (head["kind"], head["id"], head["disclosed"]) == ("disclosure", disclosure_id, 10_050)
    assert [line["person_id"] for line in rest] == sorted(everyone)
    assert {(line["kind"], line["disclosure_id"]) for line in rest} == {("person", disclosure_id)}


def test_the_export_reads_past_its_first_page_of_1000_disclosures(
    client: TestClient,
    db: Database,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
    officer: dict[str, str],
) -> None:
    [ann, ben] = made_people(db, clock, 2)
    analyst = Actor(staff_id=7, key_id="k" * 12, role="privacy_officer", permissions=frozenset())
    request = DisclosureRequest(
        "cloud_hosting", "service_support", ("contact.email",), requester_of(analyst)
    )
    with db.writing() as session:
        for number in range(1_003):
            record_disclosure(
                session,
                clock,
                omni_compiled,
                actor=analyst,
                request=request,
                # Ben is in every other one.
                people=[ann, ben] if number % 2 else [ann],
                idempotency_key=f"bulk-{number}",
            )
    lines = exported(client, officer)
    assert len(lines) == 1_003
    assert lines == listed(client, officer)
    assert len(exported(client, officer, person=ben)) == 501
    with_people = exported(client, officer, people="true", person=ben)
    assert len(with_people) == 501 * 3
    assert [line["kind"] for line in with_people[:6]] == ["disclosure", "person", "person"] * 2
