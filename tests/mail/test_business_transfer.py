"""Business transfers (C24): the people affected are disclosed to the acquirer on the
`business_transfer` ground and each is sent a notice, queued in the same transaction and
delivered to a real SMTP server; erasure takes a person's unsent mail with it; and the same
through `charter transfers business`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner, Result

from charter.audit.reading import page_entries
from charter.boot import open_keystore
from charter.cli.main import build_app
from charter.clock import FixedClock
from charter.db import Database
from charter.disclosures.transfers import BusinessTransfer, TransferNotice, business_transfer
from charter.mail.models import OutboxMessage
from charter.mail.outbox import Outbox
from charter.mail.sender import Sender
from charter.mail.smtp import SmtpMailer
from charter.policy.compiled import CompiledPolicy
from charter.settings import Settings
from charter.staff.service import add_staff, console_actor
from charter.vault.collection import Submission, collect
from charter.vault.erasure import erase_person
from charter.vault.keystore import KeyStore
from charter.vault.people import new_person
from tests.conftest import bearer
from tests.mail.conftest import SmtpServer
from tests.vault.calls import sign_up

pytestmark = pytest.mark.clause("C24")


@pytest.fixture
def service(make_key: Callable[..., str]) -> dict[str, str]:
    return bearer(make_key("service_client"))


@pytest.fixture
def officer(make_key: Callable[..., str]) -> str:
    make_key("privacy_officer", name="olivia")
    return "olivia"


def transfer(  # noqa: PLR0917 - the fixtures a transfer needs
    db: Database,
    keys: KeyStore,
    clock: FixedClock,
    policy: CompiledPolicy,
    outbox: Outbox,
    people: list[str],
    **options: Any,
) -> BusinessTransfer:
    with db.writing() as session:
        actor = console_actor(session, policy, handle="olivia", permission="disclosures:make")
        return business_transfer(
            session,
            keys,
            clock,
            policy,
            outbox,
            actor=actor,
            people=people,
            **{"acquirer": "acquirer", "idempotency_key": "sale-2027", **options},
        )


def outbox_rows(db: Database) -> list[OutboxMessage]:
    with db.reading() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)))


def audited(db: Database, prefix: str) -> list[dict[str, Any]]:
    with db.reading() as session:
        entries = [entry.as_json() for entry in page_entries(session, limit=1000)]
    return [e for e in entries if str(e["action"]).startswith(prefix)]


def test_each_person_transferred_gets_one_notice_at_their_address(  # noqa: PLR0917 - fixtures
    client: TestClient,
    db: Database,
    keys: KeyStore,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
    outbox: Outbox,
    smtp_server: SmtpServer,
    service: dict[str, str],
    officer: str,
) -> None:
    ada = sign_up(client, service, "v-sale-1", "ada@example.com")
    grace = sign_up(client, service, "v-sale-2", "grace@example.com")
    gone = sign_up(client, service, "v-sale-3", "gone@example.com")
    erase_person(db, keys, clock, actor="test", person_id=gone)
    with db.writing() as session:
        no_address = new_person(session, clock, "user").id
    notice = TransferNotice(acquirer_name="Example Holdings", effective_on=None)

    done = transfer(
        db, keys, clock, omni_compiled, outbox, [ada, grace, gone, no_address], notice=notice
    )

    recorded = done.disclosure
    assert recorded.refusal is None
    assert (recorded.requested, recorded.disclosed, recorded.excluded) == (4, 3, 1)
    assert recorded.codes == {"person_erased": 1}
    assert (done.notices_queued, done.without_address) == (2, 1)
    assert {row.person_id for row in outbox_rows(db)} == {ada, grace}

    sender = Sender(db=db, mailer=SmtpMailer(smtp_server.url), clock=clock, outbox=outbox)
    assert sender.send_due().delivered == 2
    assert sorted(str(m["To"]) for m in smtp_server.inbox.messages) == [
        "ada@example.com",
        "grace@example.com",
    ]
    [first, _] = smtp_server.inbox.messages
    assert first["Subject"] == "Your data is being transferred to Example Holdings"
    text = first.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "legal@teamomni.com" in text

    # The ledger has the ground; the audit log counts the addresses opened, names none.
    with db.reading() as session:
        ground = session.connection().exec_driver_sql("SELECT ground FROM disclosures").scalar()
    assert ground == "business_transfer"
    [opened] = audited(db, "access:contact:notified")
    assert opened["target"] == f"disclosure:{recorded.id}"
    assert opened["details"]["values"] == 2
    assert "example.com" not in json.dumps(audited(db, ""))


def test_the_same_transfer_again_records_nothing_and_queues_no_second_notice(  # noqa: PLR0917
    client: TestClient,
    db: Database,
    keys: KeyStore,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
    outbox: Outbox,
    service: dict[str, str],
    officer: str,
) -> None:
    ada = sign_up(client, service, "v-sale-4", "ada@example.com")
    first = transfer(db, keys, clock, omni_compiled, outbox, [ada])
    again = transfer(db, keys, clock, omni_compiled, outbox, [ada])
    assert again.disclosure.replayed
    assert again.disclosure.id == first.disclosure.id
    assert len(outbox_rows(db)) == 1


def test_a_transfer_to_a_recipient_that_is_not_an_acquirer_is_refused_without_notices(  # noqa: PLR0917
    client: TestClient,
    db: Database,
    keys: KeyStore,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
    outbox: Outbox,
    service: dict[str, str],
    officer: str,
) -> None:
    ada = sign_up(client, service, "v-sale-5", "ada@example.com")
    done = transfer(db, keys, clock, omni_compiled, outbox, [ada], acquirer="omni_europe")
    assert done.disclosure.refusal is not None
    assert done.disclosure.refusal.code == "business_transfer_to_non_acquirer"
    assert outbox_rows(db) == []
    [refused] = audited(db, "disclosures:disclosure:refused")
    assert refused["details"]["code"] == "business_transfer_to_non_acquirer"


def test_erasing_a_person_deletes_their_unsent_notice(  # noqa: PLR0917 - fixtures
    client: TestClient,
    db: Database,
    keys: KeyStore,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
    outbox: Outbox,
    service: dict[str, str],
    officer: str,
) -> None:
    ada = sign_up(client, service, "v-sale-6", "ada@example.com")
    grace = sign_up(client, service, "v-sale-7", "grace@example.com")
    transfer(db, keys, clock, omni_compiled, outbox, [ada, grace])
    erase_person(db, keys, clock, actor="test", person_id=ada)
    assert [row.person_id for row in outbox_rows(db)] == [grace]
    [erased] = audited(db, "vault:person:erased")
    assert erased["details"]["messages_deleted"] == 1


# --- the command ---------------------------------------------------------------------------------


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    unset: dict[str, str | None] = dict.fromkeys(
        (
            "CHARTER_KEYSTORE_URL",
            "CHARTER_MASTER_KEY",
            "CHARTER_MASTER_KEY_FILE",
            "CHARTER_POLICY",
            "CHARTER_MAILER",
            "CHARTER_SMTP_URL",
        )
    )
    return CliRunner().invoke(build_app(), list(args), env={**unset, **env}, input=stdin)


def test_charter_transfers_business_records_the_transfer_and_the_notices_go_out(  # noqa: PLR0917
    tmp_path: Path,
    migrated_url: str,
    db: Database,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
    smtp_server: SmtpServer,
) -> None:
    env = {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_DATABASE_URL": migrated_url}
    assert _cli(env, "init").exit_code == 0
    settings = Settings.from_env(env)
    home_keys = open_keystore(settings)
    try:
        # A person with an address, stored as the service would (sealed under the home's keys).
        with db.writing() as session:
            add_staff(
                session, clock, omni_compiled, actor="test", name="olivia", role="privacy_officer"
            )
            receipt = collect(
                session,
                home_keys,
                clock,
                omni_compiled,
                actor="test",
                submission=Submission(
                    collection_point="sign_up",
                    visitor_id="v-cli-1",
                    fields={"name": "Sam Example", "email": "sam@example.com"},
                ),
            )
    finally:
        home_keys.engine.dispose()
    people = tmp_path / "people.txt"
    people.write_text(f"{receipt.person_id}\n\nnobody-at-all\n")

    ran = _cli(
        env, "transfers", "business", "--people", str(people), "--as", "olivia",
        "--acquirer-name", "Example Holdings", "--json",
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    answer = json.loads(ran.output)
    assert (answer["disclosed"], answer["excluded"]) == (1, 1)
    assert answer["codes"] == {"person_not_found": 1}
    assert answer["notices_queued"] == 1

    again = _cli(env, "transfers", "business", "--people", str(people), "--as", "olivia")
    assert again.exit_code == 0, again.output
    assert "nothing recorded again" in again.output

    smtp = {**env, "CHARTER_MAILER": "smtp", "CHARTER_SMTP_URL": smtp_server.url}
    sent = _cli(smtp, "mail", "send", "--json")
    assert json.loads(sent.output)["delivered"] == 1
    [message] = smtp_server.inbox.messages
    assert message["To"] == "sam@example.com"

    listed = _cli(env, "disclosures", "list", "--ground", "business_transfer", "--json")
    [entry] = json.loads(listed.output)["disclosures"]
    assert (entry["recipient"], entry["disclosed"]) == ("acquirer", 1)


def test_charter_transfers_business_refuses_a_bad_file_and_an_unknown_operator(
    tmp_path: Path, migrated_url: str
) -> None:
    env = {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_DATABASE_URL": migrated_url}
    assert _cli(env, "init").exit_code == 0
    bad = tmp_path / "bad.txt"
    bad.write_text("x" * 40 + "\n")
    ran = _cli(env, "transfers", "business", "--people", str(bad), "--as", "olivia")
    assert ran.exit_code == 1
    assert "line 1 of" in ran.output
    good = tmp_path / "good.txt"
    good.write_text("someone\n")
    ran = _cli(env, "transfers", "business", "--people", str(good), "--as", "nobody")
    assert ran.exit_code == 1
    assert "no active staff member 'nobody'" in ran.output
    assert "Traceback" not in ran.output
