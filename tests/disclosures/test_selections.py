"""Selections, through HTTP: a discloser fills one with JSON pages and NDJSON streams (an id
sent twice counts once), names it in one disclosure, which decides every person in it and
uses it up; only its creator sees it; a bad id is refused by its place with nothing added.
A selection larger than one internal chunk is disclosed whole, its exclusions paged in the
order the people were sent (C21, C22, C24)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from charter.clock import FixedClock
from charter.consent.choices import record_gpc
from charter.db import Database
from charter.policy.compiled import CompiledPolicy
from tests.conftest import bearer
from tests.disclosures.test_ledger import audited, body, ledger_rows, made_people

pytestmark = pytest.mark.clause("C21", "C22", "C24")

SELECTIONS = "/v1/disclosures/selections"
NDJSON = "application/x-ndjson"


def advertising(**fields: Any) -> dict[str, Any]:
    """A disclosure for advertising (a sale or sharing: GPC and opt-outs leave people out),
    of a selection rather than listed people."""
    chosen = {"recipient": "google_ads", "purpose": "promotional", "categories": ["cookie.id"]}
    return body(**{"people": [], **chosen, **fields})


def new_selection(client: TestClient, headers: dict[str, str]) -> str:
    response = client.post(SELECTIONS, headers=headers)
    assert response.status_code == 201, response.text
    made = response.json()
    assert (made["size"], made["used_by"]) == (0, None)
    selection_id: str = made["selection_id"]
    return selection_id


def add_page(
    client: TestClient, headers: dict[str, str], selection_id: str, people: Sequence[object]
) -> httpx2.Response:
    return client.post(
        f"{SELECTIONS}/{selection_id}/people", headers=headers, json={"people": list(people)}
    )


def add_stream(
    client: TestClient, headers: dict[str, str], selection_id: str, text: str
) -> httpx2.Response:
    return client.post(
        f"{SELECTIONS}/{selection_id}/people",
        headers={**headers, "Content-Type": NDJSON},
        content=text.encode(),
    )


def ndjson(people: Sequence[str]) -> str:
    return "".join(json.dumps(person) + "\n" for person in people)


def size_of(client: TestClient, headers: dict[str, str], selection_id: str) -> int:
    response = client.get(f"{SELECTIONS}/{selection_id}", headers=headers)
    assert response.status_code == 200, response.text
    size: int = response.json()["size"]
    return size


def disclosed_people(db: Database) -> set[str]:
    with db.reading() as session:
        rows = session.connection().exec_driver_sql("SELECT person_id FROM disclosed_people")
        return {person for (person,) in rows}


def every_exclusion(
    client: TestClient, headers: dict[str, str], disclosure_id: int, *, limit: int
) -> list[tuple[str, str]]:
    """`GET /v1/disclosures/{id}/exclusions`, page after page until `next` is null."""
    found: list[tuple[str, str]] = []
    after = 0
    pages = 0
    while True:
        response = client.get(
            f"/v1/disclosures/{disclosure_id}/exclusions",
            headers=headers,
            params={"after": after, "limit": limit},
        )
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["exclusions"]) <= limit
        found += [(e["person_id"], e["code"]) for e in page["exclusions"]]
        pages += 1
        assert pages < 1000, "the exclusions never end"
        if page["next"] is None:
            return found
        assert page["next"] == len(found)
        after = page["next"]


@pytest.fixture
def officer(make_key: Callable[..., str]) -> dict[str, str]:
    return bearer(make_key("privacy_officer", name="olivia"))


@pytest.fixture
def other_officer(make_key: Callable[..., str]) -> dict[str, str]:
    return bearer(make_key("privacy_officer", name="oscar"))


# --- filling and disclosing a selection ---------------------------------------------------------


def test_a_selection_filled_by_page_and_stream_is_disclosed_whole_and_counts_each_id_once(
    client: TestClient,
    db: Database,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
    officer: dict[str, str],
) -> None:
    a, b, c, d = made_people(db, clock, 4)
    with db.writing() as session:
        record_gpc(session, clock, omni_compiled, actor="test", person_ids=[b])
    selection = new_selection(client, officer)

    page = add_page(client, officer, selection, [a, b, c, a])
    assert page.status_code == 200, page.text
    assert page.json() == {"selection_id": selection, "size": 3, "used_by": None}
    # Blank lines are skipped; `c` was sent in the page already.
    stream = add_stream(client, officer, selection, f'"{c}"\n\n"nobody-at-all"\r\n"{d}"')
    assert stream.status_code == 200, stream.text
    assert stream.json()["size"] == 5
    assert size_of(client, officer, selection) == 5
    assert ledger_rows(db) == (0, 0)

    response = client.post(
        "/v1/disclosures", headers=officer, json=advertising(selection=selection)
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["requested"], answer["disclosed"], answer["excluded"]) == (5, 3, 2)
    # In the order they were sent.
    assert answer["exclusions"] == [
        {"person_id": b, "code": "gpc_signal"},
        {"person_id": "nobody-at-all", "code": "person_not_found"},
    ]
    assert answer["codes"] == {"gpc_signal": 1, "person_not_found": 1}
    assert answer["exclusions_truncated"] is False
    assert ledger_rows(db) == (1, 3)
    assert disclosed_people(db) == {a, c, d}
    used = client.get(f"{SELECTIONS}/{selection}", headers=officer).json()
    assert used == {"selection_id": selection, "size": 5, "used_by": answer["disclosure_id"]}
    [entry] = audited(db, "disclosures:disclosure:recorded")
    assert entry["details"]["selection"] is True
    assert entry["details"]["requested"] == 5
    assert not any(person in str(entry) for person in (a, b, c, d))


def test_a_used_selection_takes_no_second_disclosure_and_no_more_people(
    client: TestClient, db: Database, clock: FixedClock, officer: dict[str, str]
) -> None:
    people = made_people(db, clock, 3)
    selection = new_selection(client, officer)
    assert add_page(client, officer, selection, people[:2]).status_code == 200
    sent = advertising(selection=selection)
    first = client.post("/v1/disclosures", headers=officer, json=sent)
    assert first.status_code == 201, first.text

    again = client.post(
        "/v1/disclosures", headers=officer, json={**sent, "idempotency_key": "disclosure-2"}
    )
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "selection_used"
    more = add_page(client, officer, selection, people[2:])
    assert more.status_code == 409, more.text
    assert more.json()["error"]["code"] == "selection_used"
    streamed = add_stream(client, officer, selection, ndjson(people[2:]))
    assert streamed.status_code == 409
    assert size_of(client, officer, selection) == 2
    assert ledger_rows(db) == (1, 2)
    # A retry of the first request (same key) still gets its answer.
    replay = client.post("/v1/disclosures", headers=officer, json=sent)
    assert replay.status_code == 201, replay.text
    assert replay.json() == {**first.json(), "replayed": True}
    assert ledger_rows(db) == (1, 2)


def test_another_staff_members_selection_is_unknown_to_them(
    client: TestClient,
    db: Database,
    clock: FixedClock,
    officer: dict[str, str],
    other_officer: dict[str, str],
) -> None:
    people = made_people(db, clock, 2)
    selection = new_selection(client, officer)
    assert add_page(client, officer, selection, people[:1]).status_code == 200

    for response in (
        client.get(f"{SELECTIONS}/{selection}", headers=other_officer),
        add_page(client, other_officer, selection, people[1:]),
        add_stream(client, other_officer, selection, ndjson(people[1:])),
        client.post(
            "/v1/disclosures", headers=other_officer, json=advertising(selection=selection)
        ),
        client.get(f"{SELECTIONS}/no-such-selection", headers=officer),
        client.post("/v1/disclosures", headers=officer, json=advertising(selection="no-such")),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "selection_not_found"
    assert size_of(client, officer, selection) == 1
    assert ledger_rows(db) == (0, 0)
    # Its owner can still use it.
    mine = client.post("/v1/disclosures", headers=officer, json=advertising(selection=selection))
    assert mine.status_code == 201, mine.text
    assert disclosed_people(db) == set(people[:1])


TOO_LONG = "x" * 33
BAD_PAGES: dict[str, tuple[object, str | None]] = {
    "a number": ({"people": ["ok-1", 5]}, "people[1]"),
    "an empty id": ({"people": ["ok-1", "ok-2", ""]}, "people[2]"),
    "a null": ({"people": [None]}, "people[0]"),
    "an id too long": ({"people": ["ok-1", TOO_LONG]}, "people[1]"),
    "no one": ({"people": []}, None),
    "not a list": ({"people": "ok-1"}, None),
    "another field": ({"people": ["ok-1"], "extra": 1}, None),
    "a list": (["ok-1"], None),
}


@pytest.mark.parametrize("case", sorted(BAD_PAGES))
def test_a_bad_page_is_refused_naming_the_place_and_adds_nobody(
    case: str, *, client: TestClient, officer: dict[str, str]
) -> None:
    selection = new_selection(client, officer)
    assert add_page(client, officer, selection, ["already-there"]).status_code == 200
    sent, place = BAD_PAGES[case]
    response = client.post(f"{SELECTIONS}/{selection}/people", headers=officer, json=sent)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_people"
    if place is not None:
        assert place in error["message"]
    assert size_of(client, officer, selection) == 1


BAD_STREAMS = {
    "not JSON": ('"ok-1"\nok-2\n', "line 2"),
    "a number after a blank line": ('"ok-1"\n\n"ok-2"\n42\n', "line 4"),
    "an object": ('{"person": "ok-1"}\n', "line 1"),
    "an empty id": ('"ok-1"\n""\n', "line 2"),
    "an id too long": (f'"ok-1"\n"ok-2"\n"{TOO_LONG}"\n', "line 3"),
    "not UTF-8": ('"ok-1"\n"\xff"\n', "line 2"),
    "only blank lines": ("\n\n  \n", None),
}


@pytest.mark.parametrize("case", sorted(BAD_STREAMS))
def test_a_bad_line_is_refused_naming_the_line_and_adds_nobody(
    case: str, *, client: TestClient, officer: dict[str, str]
) -> None:
    selection = new_selection(client, officer)
    assert add_page(client, officer, selection, ["already-there"]).status_code == 200
    text, place = BAD_STREAMS[case]
    content = text.encode("latin-1") if case == "not UTF-8" else text.encode()
    response = client.post(
        f"{SELECTIONS}/{selection}/people",
        headers={**officer, "Content-Type": NDJSON},
        content=content,
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_people"
    if place is not None:
        assert place in error["message"]
    assert size_of(client, officer, selection) == 1


def test_a_page_that_is_not_json_is_refused_and_adds_nobody(
    client: TestClient, officer: dict[str, str]
) -> None:
    selection = new_selection(client, officer)
    response = client.post(
        f"{SELECTIONS}/{selection}/people",
        headers={**officer, "Content-Type": "application/json"},
        content=b'{"people": ["p-1", ',
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_json"
    assert size_of(client, officer, selection) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
def test_a_body_neither_json_nor_ndjson_is_refused_as_unsupported(
    content_type: str | None, *, client: TestClient, officer: dict[str, str]
) -> None:
    selection = new_selection(client, officer)
    headers = dict(officer)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = client.post(
        f"{SELECTIONS}/{selection}/people", headers=headers, content=b'"someone"\n'
    )
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert size_of(client, officer, selection) == 0


def test_a_json_page_with_a_charset_and_jsonl_are_accepted(
    client: TestClient, officer: dict[str, str]
) -> None:
    selection = new_selection(client, officer)
    page = client.post(
        f"{SELECTIONS}/{selection}/people",
        headers={**officer, "Content-Type": "application/json; charset=utf-8"},
        content=b'{"people": ["p-1"]}',
    )
    assert page.status_code == 200, page.text
    lines = client.post(
        f"{SELECTIONS}/{selection}/people",
        headers={**officer, "Content-Type": "application/jsonl"},
        content=b'"p-2"\n"p-1"\n',
    )
    assert lines.status_code == 200, lines.text
    assert lines.json()["size"] == 2


def test_a_disclosure_names_its_people_or_a_selection_never_both_nor_neither(
    client: TestClient, db: Database, clock: FixedClock, officer: dict[str, str]
) -> None:
    [someone] = made_people(db, clock, 1)
    selection = new_selection(client, officer)
    empty = client.post("/v1/disclosures", headers=officer, json=advertising(selection=selection))
    assert empty.status_code == 422, empty.text
    assert empty.json()["error"]["code"] == "no_people"
    assert add_page(client, officer, selection, [someone]).status_code == 200

    both = client.post(
        "/v1/disclosures", headers=officer, json=advertising(people=[someone], selection=selection)
    )
    assert both.status_code == 422, both.text
    assert both.json()["error"]["code"] == "people_and_selection"
    neither = client.post("/v1/disclosures", headers=officer, json=advertising())
    assert neither.status_code == 422, neither.text
    assert neither.json()["error"]["code"] == "no_people"
    assert ledger_rows(db) == (0, 0)
    assert client.get(f"{SELECTIONS}/{selection}", headers=officer).json()["used_by"] is None


def test_a_policy_refusal_leaves_the_selection_unused(
    client: TestClient, db: Database, clock: FixedClock, officer: dict[str, str]
) -> None:
    people = made_people(db, clock, 2)
    selection = new_selection(client, officer)
    assert add_page(client, officer, selection, people).status_code == 200
    sold = advertising(selection=selection, for_recipients_own_purposes=True)
    refused = client.post("/v1/disclosures", headers=officer, json=sold)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "never_sold"
    [entry] = audited(db, "disclosures:disclosure:refused")
    assert entry["details"]["requested"] == 2
    assert client.get(f"{SELECTIONS}/{selection}", headers=officer).json()["used_by"] is None
    allowed = client.post(
        "/v1/disclosures",
        headers=officer,
        json=advertising(selection=selection, idempotency_key="disclosure-2"),
    )
    assert allowed.status_code == 201, allowed.text
    assert allowed.json()["disclosed"] == 2


def test_a_staff_member_who_may_not_disclose_cannot_make_a_selection(
    client: TestClient, make_key: Callable[..., str]
) -> None:
    reader = bearer(make_key("support_agent"))
    assert client.post(SELECTIONS, headers=reader).status_code == 403


def test_the_exclusions_of_an_unknown_disclosure_are_not_found(
    client: TestClient, officer: dict[str, str]
) -> None:
    response = client.get("/v1/disclosures/4242/exclusions", headers=officer)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "disclosure_not_found"


# --- a selection larger than one chunk ----------------------------------------------------------


def test_a_selection_of_25000_people_is_disclosed_whole_with_its_exclusions_in_order(
    client: TestClient,
    db: Database,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
    officer: dict[str, str],
) -> None:
    known = made_people(db, clock, 22_000)
    gpc = known[::5]
    with db.writing() as session:
        record_gpc(session, clock, omni_compiled, actor="test", person_ids=gpc)
    sent: list[str] = []
    for number, person in enumerate(known):
        sent.append(person)
        if number % 7 == 3:
            sent.append(f"nobody-{number}")
    assert len(sent) > 25_000
    gpc_set = set(gpc)
    expected = [
        (person, "gpc_signal" if person in gpc_set else "person_not_found")
        for person in sent
        if person in gpc_set or person.startswith("nobody-")
    ]
    # Exclusions fall in each chunk of 10,000 the disclosure decides.
    assert {sent.index(person) // 10_000 for person, _ in expected[::100]} == {0, 1, 2}

    selection = new_selection(client, officer)
    # Three JSON pages and an NDJSON stream; the last resends people already there.
    for part in (sent[:8_000], sent[8_000:16_000], sent[16_000:21_000]):
        assert add_page(client, officer, selection, part).status_code == 200
    stream = add_stream(client, officer, selection, ndjson(sent[21_000:] + sent[:3]))
    assert stream.status_code == 200, stream.text
    assert stream.json()["size"] == len(sent)

    response = client.post(
        "/v1/disclosures", headers=officer, json=advertising(selection=selection)
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    unknown = len(sent) - len(known)
    assert answer["requested"] == len(sent)
    assert answer["disclosed"] == len(known) - len(gpc)
    assert answer["excluded"] == len(expected) == len(gpc) + unknown
    assert answer["codes"] == {"gpc_signal": len(gpc), "person_not_found": unknown}
    assert [(e["person_id"], e["code"]) for e in answer["exclusions"]] == expected[:1000]
    assert answer["exclusions_truncated"] is True
    assert every_exclusion(client, officer, answer["disclosure_id"], limit=1000) == expected
    assert every_exclusion(client, officer, answer["disclosure_id"], limit=777) == expected
    assert ledger_rows(db) == (1, len(known) - len(gpc))
    assert disclosed_people(db) == set(known) - gpc_set


def test_the_exclusions_keep_the_order_people_were_sent_in_after_an_id_sent_twice(
    client: TestClient, officer: dict[str, str]
) -> None:
    selection = new_selection(client, officer)
    assert add_page(client, officer, selection, ["p-a", "p-b"]).status_code == 200
    assert (
        add_page(client, officer, selection, ["p-a", "p-b", "p-c", "p-d", "p-e"]).status_code == 200
    )
    assert add_stream(client, officer, selection, ndjson(["p-f", "p-g", "p-h"])).status_code == 200
    assert size_of(client, officer, selection) == 8

    response = client.post(
        "/v1/disclosures", headers=officer, json=advertising(selection=selection)
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    expected = ["p-a", "p-b", "p-c", "p-d", "p-e", "p-f", "p-g", "p-h"]
    assert [e["person_id"] for e in answer["exclusions"]] == expected
    listed = every_exclusion(client, officer, answer["disclosure_id"], limit=3)
    assert [person for person, _ in listed] == expected


def test_an_id_sent_again_in_a_later_page_leaves_nobody_out_at_a_chunk_boundary(
    client: TestClient, officer: dict[str, str]
) -> None:
    """Every id of a selection is decided once, whatever pages it was sent in: here the
    ids sent after a repeated one straddle the disclosure's first chunk of 10,000."""
    first = [f"nobody-{number}" for number in range(9_999)]
    selection = new_selection(client, officer)
    assert add_page(client, officer, selection, first).status_code == 200
    assert add_page(client, officer, selection, [first[0], "late-1"]).status_code == 200
    assert add_page(client, officer, selection, ["late-2"]).json()["size"] == 10_001

    response = client.post(
        "/v1/disclosures", headers=officer, json=advertising(selection=selection)
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["requested"], answer["excluded"]) == (10_001, 10_001)
    assert answer["codes"] == {"person_not_found": 10_001}
    listed = every_exclusion(client, officer, answer["disclosure_id"], limit=1000)
    assert [person for person, _ in listed] == [*first, "late-1", "late-2"]
