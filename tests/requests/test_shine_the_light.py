"""Shine the Light through the library: a request received in January is answered with the
report of the preceding calendar year only, read from the ledger's disclosures for direct
marketing; a person Charter knows with none gets the no-disclosure statement, a person it
does not know gets neither; a second request of the same year refers to the first; nothing
answers an unverified request (C25)."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from charter.clock import FixedClock
from charter.db import Database
from charter.disclosures.guards import DisclosureRequest
from charter.disclosures.ledger import record_disclosure, requester_of
from charter.errors import Conflict
from charter.mail.mailers import OutgoingMessage
from charter.mail.models import OutboxMessage
from charter.mail.outbox import Outbox, opened
from charter.policy.compiled import CompiledPolicy
from charter.requests.service import (
    Intake,
    Links,
    get_request,
    steps_of,
    submit_request,
    verify_by_link,
)
from charter.requests.shine_the_light import (
    StlAnswer,
    answer_shine_the_light,
    shine_the_light_report,
)
from charter.staff.service import Actor
from charter.vault.identifiers import BlindIndex
from charter.vault.people import sign_up, visitors

pytestmark = pytest.mark.clause("C25")

ANALYST = Actor(staff_id=7, key_id="k" * 12, role="privacy_officer", permissions=frozenset())
OFFICER = "staff:7"
ANA = "ana@example.com"
EUROPE = "OMNI Technologies Europe Ltd."
EUROPE_ADDRESS = "2 Example Square, London EC1A 1AA, United Kingdom"
EUROPE_BUSINESS = "Sales and support of OMNI Services in Europe"
NO_RECORD = "We hold no record linked to this address"
NOTHING_DISCLOSED = "did not disclose personal information about you"


def utc(moment: str) -> dt.datetime:
    """`moment` (ISO 8601, no offset) in UTC."""
    return dt.datetime.fromisoformat(moment).replace(tzinfo=dt.UTC)


@pytest.fixture
def index() -> BlindIndex:
    return BlindIndex(secrets.token_bytes(32))


@pytest.fixture
def links(index: BlindIndex) -> Links:
    return Links(index, "https://charter.example.com")


@pytest.fixture
def outbox() -> Outbox:
    return Outbox(secrets.token_bytes(32), sender="privacy@omni.example.com")


class World:
    """The library calls of these tests, on one database and one clock moved by hand."""

    def __init__(
        self,
        db: Database,
        policy: CompiledPolicy,
        index: BlindIndex,
        links: Links,
        outbox: Outbox,
    ) -> None:
        self.db = db
        self.policy = policy
        self.index = index
        self.links = links
        self.outbox = outbox
        self.clock = FixedClock(utc("2025-03-01T09:00"))
        self._keys = iter(range(1_000_000))

    def at(self, moment: dt.datetime) -> None:
        self.clock = FixedClock(moment)

    def user(self, email: str | None = None, *, visitor_ids: tuple[str, ...] = ()) -> str:
        with self.db.writing() as session:
            made = sign_up(
                session,
                self.clock,
                self.index,
                visitor_ids=list(visitor_ids),
                email=email,
                customer_id=None,
            )
            return made.user.id

    def visitor(self, visitor_id: str) -> str:
        with self.db.writing() as session:
            return visitors(session, self.clock, self.index, [visitor_id])[visitor_id]

    def disclose(
        self,
        people: list[str],
        recipient: str = "omni_europe",
        purpose: str = "promotional",
        categories: tuple[str, ...] = ("contact.email",),
        ground: str | None = "affiliates",
    ) -> None:
        request = DisclosureRequest(
            recipient, purpose, categories, requester_of(ANALYST), ground=ground
        )
        with self.db.writing() as session:
            recorded = record_disclosure(
                session,
                self.clock,
                self.policy,
                actor=ANALYST,
                request=request,
                people=people,
                idempotency_key=f"disclosure-{next(self._keys)}",
            )
        recorded.raise_if_refused()
        assert recorded.disclosed == len(people), recorded

    def processors(self, people: list[str]) -> None:
        """Disclosures to processors on OMNI's behalf: never for the Shine the Light report,
        even for a purpose of marketing."""
        self.disclose(
            people, "cloud_hosting", "service_support", ("identity.name", "contact.email"), None
        )
        self.disclose(people, "email_delivery", "promotional", ("identity.name",), "affiliates")

    def request(self, email: str, *, verified: bool = True) -> str:
        """A Shine the Light request e-mailed from `email`, verified by the mailed link."""
        with self.db.writing() as session:
            submitted = submit_request(
                session,
                self.clock,
                self.policy,
                self.index,
                actor="mailbox",
                intake=Intake(
                    "shine_the_light", "email", email=email, source_key=f"<{secrets.token_hex(8)}>"
                ),
                outbox=self.outbox,
                links=self.links,
            )
            request_id = submitted.request.id
        if verified:
            token = self._mailed_token(request_id)
            with self.db.writing() as session:
                verify_by_link(session, self.clock, self.links, token=token, client="c" * 16)
        return request_id

    def _mailed_token(self, request_id: str) -> str:
        with self.db.reading() as session:
            row = session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.idempotency_key.startswith(f"request:{request_id}:verify:")
                )
            ).one()
            text = opened(self.outbox, row).text
        [link] = re.findall(r"https://charter\.example\.com\S+", text)
        return str(parse_qs(urlsplit(link).query)["token"][0])

    def answer(self, request_id: str, address: str) -> StlAnswer:
        with self.db.writing() as session:
            return answer_shine_the_light(
                session,
                self.clock,
                self.policy,
                self.outbox,
                request_id=request_id,
                actor=OFFICER,
                address=address,
            )

    def mail(self, request_id: str) -> tuple[OutgoingMessage, str | None]:
        """The answer queued for the request, opened, and the person it is written to."""
        with self.db.reading() as session:
            row = session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.idempotency_key == f"request:{request_id}:answer"
                )
            ).one()
            return opened(self.outbox, row), row.person_id

    def answer_mails(self, request_id: str) -> int:
        with self.db.reading() as session:
            rows = session.scalars(
                select(OutboxMessage.id).where(
                    OutboxMessage.idempotency_key == f"request:{request_id}:answer"
                )
            ).all()
            return len(rows)


@pytest.fixture
def world(
    db: Database, omni_compiled: CompiledPolicy, index: BlindIndex, links: Links, outbox: Outbox
) -> World:
    return World(db, omni_compiled, index, links, outbox)


def test_a_request_in_january_is_answered_with_the_preceding_calendar_year_only(
    world: World,
) -> None:
    ana = world.user(ANA)
    ben = world.user("ben@example.com")
    world.disclose([ana, ben], categories=("identity.name",))  # 2025-03-01
    world.at(utc("2025-12-31T23:59:59"))
    world.disclose([ana], categories=("identity.name",))
    world.at(utc("2026-01-01"))  # the first instant of 2026 is in it
    world.disclose([ana, ben])
    world.at(utc("2026-07-14T10:00"))
    world.disclose([ana])
    world.processors([ana, ben])
    world.disclose([ben], categories=("identity.name",))
    world.at(utc("2026-12-31T23:59:59.999999"))  # and so is its last
    world.disclose([ana])
    world.at(utc("2027-01-01"))  # the first instant of 2027 is not in 2026
    world.disclose([ana], categories=("identity.name",))

    world.at(utc("2027-01-12T15:00"))
    request_id = world.request(ANA)
    world.at(utc("2027-01-13T09:00"))
    answered = world.answer(request_id, ANA)

    report = answered.report
    assert report is not None
    assert (report.year, report.person_id, report.person_known) == (2026, ana, True)
    assert report.no_disclosures is False
    # Only what went to omni_europe for its own marketing in 2026: not the name it received
    # in 2025 and 2027, nor what the processors received in 2026.
    assert report.categories == ("E-mail address",)
    assert report.disclosures == 3
    [europe] = report.recipients
    assert (europe.name, europe.postal_address, europe.nature_of_business) == (
        EUROPE,
        EUROPE_ADDRESS,
        EUROPE_BUSINESS,
    )
    assert europe.categories == ("E-mail address",)
    assert answered.referred_to is None
    request = answered.request
    assert (request.state, request.closed_at) == ("answered", utc("2027-01-13T09:00"))
    assert request.response == "report for 2026 sent: 1 categories, 1 recipients"
    with world.db.reading() as session:
        assert steps_of(session, request_id)[-1].actor == OFFICER

    message, person_id = world.mail(request_id)
    assert (message.to, person_id) == (ANA, ana)
    assert message.subject == "OMNI's answer to your Shine the Light request (2026)"
    for text in (message.text, message.html):
        assert "§1798.83" in text
        assert "during calendar year 2026" in text
        assert EUROPE in text
        assert EUROPE_ADDRESS in text
        assert EUROPE_BUSINESS in text
        assert "E-mail address" in text
        for absent in ("Example Cloud Hosting", "Example Mail Delivery", NOTHING_DISCLOSED):
            assert absent not in text
    assert "\n- E-mail address\n" in message.text
    assert "\n- Name\n" not in message.text
    assert "<li>E-mail address</li>" in message.html
    assert "<li>Name</li>" not in message.html
    assert "names and addresses of all the third parties" in message.text

    # The other years, asked of the library: each has its own.
    with world.db.reading() as session:
        of_2025 = shine_the_light_report(session, world.policy, person_id=ana, year=2025)
        of_2027 = shine_the_light_report(session, world.policy, person_id=ana, year=2027)
        of_ben = shine_the_light_report(session, world.policy, person_id=ben, year=2026)
    assert (of_2025.categories, of_2025.disclosures) == (("Name",), 2)
    assert (of_2027.categories, of_2027.disclosures) == (("Name",), 1)
    assert (of_ben.categories, of_ben.disclosures) == (("E-mail address", "Name"), 2)


def test_the_report_as_json(world: World) -> None:
    ana = world.user(ANA)
    world.at(utc("2026-05-02"))
    world.disclose([ana], categories=("identity.name", "contact.email"))
    with world.db.reading() as session:
        report = shine_the_light_report(session, world.policy, person_id=ana, year=2026)
    assert report.as_json() == {
        "year": 2026,
        "person_id": ana,
        "person_known": True,
        "no_disclosures": False,
        "disclosures": 1,
        "categories": ["E-mail address", "Name"],
        "recipients": [
            {
                "name": EUROPE,
                "postal_address": EUROPE_ADDRESS,
                "nature_of_business": EUROPE_BUSINESS,
                "categories": ["E-mail address", "Name"],
            }
        ],
    }


def test_a_visitor_merged_into_a_user_is_the_user(world: World) -> None:
    world.at(utc("2026-02-01"))
    visitor = world.visitor("v-stl-1")
    # Disclosed before they signed up: the ledger names the visitor.
    world.disclose([visitor], categories=("identity.name",))
    world.at(utc("2026-03-01"))
    user = world.user(ANA, visitor_ids=("v-stl-1",))
    world.disclose([user])
    with world.db.reading() as session:
        by_user = shine_the_light_report(session, world.policy, person_id=user, year=2026)
        by_visitor = shine_the_light_report(session, world.policy, person_id=visitor, year=2026)
    assert by_user == by_visitor
    assert (by_user.person_id, by_user.disclosures) == (user, 2)
    assert by_user.categories == ("E-mail address", "Name")


def test_a_known_person_with_no_such_disclosure_gets_the_no_disclosure_statement(
    world: World,
) -> None:
    ana = world.user(ANA)
    world.disclose([ana])  # 2025: not the year asked about
    world.at(utc("2026-06-01"))
    world.processors([ana])  # 2026, but on OMNI's behalf
    world.at(utc("2027-01-05"))
    request_id = world.request(ANA)
    answered = world.answer(request_id, ANA)

    report = answered.report
    assert report is not None
    assert (report.person_known, report.no_disclosures) == (True, True)
    assert (report.categories, report.recipients, report.disclosures) == ((), (), 0)
    assert answered.request.response == (
        "no disclosures for direct marketing in 2026: statement sent"
    )
    message, person_id = world.mail(request_id)
    assert person_id == ana
    for text in (message.text, message.html):
        assert NOTHING_DISCLOSED in text
        assert "during calendar year 2026" in text
        assert NO_RECORD not in text
        assert EUROPE not in text


def test_an_unknown_person_gets_neither_a_report_nor_the_no_disclosure_statement(
    world: World,
) -> None:
    world.at(utc("2027-01-05"))
    request_id = world.request("stranger@example.com")
    with world.db.reading() as session:
        assert get_request(session, request_id).person_id is None
    answered = world.answer(request_id, "stranger@example.com")

    report = answered.report
    assert report is not None
    assert (report.person_known, report.no_disclosures, report.person_id) == (False, False, None)
    assert report.as_json()["no_disclosures"] is False
    assert answered.request.response == (
        "no record linked to the requester: no report could be made"
    )
    message, person_id = world.mail(request_id)
    assert (message.to, person_id) == ("stranger@example.com", None)
    for text in (message.text, message.html):
        assert NO_RECORD in text
        assert NOTHING_DISCLOSED not in text

    with world.db.reading() as session:
        for nobody in (None, "no-such-person"):
            unknown = shine_the_light_report(session, world.policy, person_id=nobody, year=2026)
            assert (unknown.person_known, unknown.no_disclosures) == (False, False)


def test_a_second_request_of_the_same_year_refers_to_the_first(world: World) -> None:
    ana = world.user(ANA)
    world.at(utc("2026-04-01"))
    world.disclose([ana])
    world.at(utc("2027-01-10T12:00"))
    first = world.request(ANA)
    assert world.answer(first, ANA).report is not None
    world.at(utc("2027-02-20"))
    # Asked of the library, by the person's id, on another channel.
    with world.db.writing() as session:
        second = submit_request(
            session,
            world.clock,
            world.policy,
            world.index,
            actor="service",
            intake=Intake("shine_the_light", "api", person_id=ana, reauthenticated=True),
        ).request.id
    answered = world.answer(second, ANA)

    assert answered.report is None
    assert answered.referred_to is not None
    assert answered.referred_to.id == first
    assert answered.request.state == "answered"
    assert answered.request.response == (
        f"answered by referring to request {first}, answered on 2027-01-10: "
        "one answer a calendar year"
    )
    message, person_id = world.mail(second)
    assert (message.to, person_id) == (ANA, ana)
    for text in (message.text, message.html):
        assert "We answered your request for calendar year 2026 on 2027-01-10" in text
        assert EUROPE not in text
        assert NOTHING_DISCLOSED not in text
    assert answered.as_json()["referred_to"] == {
        "request_id": first,
        "answered_at": "2027-01-10T12:00:00+00:00",
    }

    # The next year is a year of its own: a report again.
    world.at(utc("2028-01-03"))
    third = world.request(ANA)
    fresh = world.answer(third, ANA)
    assert fresh.referred_to is None
    assert fresh.report is not None
    assert (fresh.report.year, fresh.report.no_disclosures) == (2027, True)


def test_an_unverified_request_cannot_be_answered(world: World) -> None:
    ana = world.user(ANA)
    world.at(utc("2026-04-01"))
    world.disclose([ana])
    world.at(utc("2027-01-05"))
    request_id = world.request(ANA, verified=False)
    with pytest.raises(Conflict) as refused:
        world.answer(request_id, ANA)
    assert refused.value.code == "not_verified"
    with world.db.reading() as session:
        request = get_request(session, request_id)
        assert (request.state, request.response, request.closed_at) == (
            "awaiting_verification",
            None,
            None,
        )
    # Nothing was mailed: no report reached an address nobody confirmed.
    assert world.answer_mails(request_id) == 0


def test_only_a_shine_the_light_request_is_answered_so(world: World) -> None:
    ana = world.user(ANA)
    with world.db.writing() as session:
        know = submit_request(
            session,
            world.clock,
            world.policy,
            world.index,
            actor="service",
            intake=Intake("know_categories", "api", person_id=ana, reauthenticated=True),
        ).request.id
    with pytest.raises(Conflict) as refused:
        world.answer(know, ANA)
    assert refused.value.code == "not_shine_the_light"
    assert world.answer_mails(know) == 0


def test_an_answered_request_is_not_answered_again(world: World) -> None:
    ana = world.user(ANA)
    world.at(utc("2027-01-05"))
    request_id = world.request(ANA)
    world.answer(request_id, ANA)
    with pytest.raises(Conflict) as refused:
        world.answer(request_id, ANA)
    assert refused.value.code == "invalid_transition"
    assert world.answer_mails(request_id) == 1
    with world.db.reading() as session:
        assert get_request(session, request_id).person_id == ana
