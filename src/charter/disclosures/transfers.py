"""Business transfers (C24): the people affected are disclosed to the acquirer on the
`business_transfer` ground, recorded in the ledger like any disclosure, and each is sent a
notice, queued in the same transaction (mail goes out after it commits).

Cross-border transfers and processors working on OMNI's instructions need nothing of their
own: they are disclosures with a ground (`POST /v1/disclosures`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from charter.access.use import deliver_disclosed
from charter.clock import Clock
from charter.db import in_chunks
from charter.disclosures.guards import BUSINESS_TRANSFER_GROUND, DisclosureRequest
from charter.disclosures.ledger import (
    RecordedDisclosure,
    disclosed_people,
    record_disclosure,
    requester_of,
)
from charter.mail.outbox import Outbox, queue_message
from charter.mail.rendering import BUSINESS_TRANSFER_NOTICE
from charter.policy.compiled import CompiledPolicy
from charter.staff.service import Actor
from charter.vault.keystore import KeyStore

# The category a notice is sent to.
NOTICE_CATEGORY = "contact.email"
# People whose addresses are opened, and notices queued, at a time.
_NOTICE_CHUNK = 2000


@dataclass(frozen=True)
class BusinessTransfer:
    """The disclosure recorded, and the notices: queued, or not sent for want of an address."""

    disclosure: RecordedDisclosure
    notices_queued: int = 0
    without_address: int = 0


@dataclass(frozen=True)
class TransferNotice:
    """What the notice tells people; the policy's own wording for what is not given."""

    # The acquirer by name (the recipient's name in the policy when None).
    acquirer_name: str | None = None
    # What is transferred, in words (the policy's own wording when None).
    transfer: str | None = None
    effective_on: dt.date | None = None


def business_transfer(
    session: Session,
    keys: KeyStore,
    clock: Clock,
    policy: CompiledPolicy,
    outbox: Outbox,
    *,
    actor: Actor,
    acquirer: str,
    people: Sequence[str],
    idempotency_key: str,
    categories: Sequence[str] = (),
    purpose: str | None = None,
    notice: TransferNotice | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BusinessTransfer:
    """Disclose `people` to the acquirer `acquirer` (a recipient of kind `acquirer`) on the
    `business_transfer` ground, for `purpose` (the acquirer's first declared purpose when
    None) and `categories` (all of its declared categories when none are given), and queue
    a notice to each person disclosed, at their latest e-mail address; all in the session's
    transaction. The same
    `idempotency_key` again records nothing and queues no notice twice. `progress(done,
    total)` follows the notices."""
    recipient = policy.recipients.get(acquirer)
    declared = tuple(recipient.purposes) if recipient is not None else ()
    # An undeclared recipient, or one that is not an acquirer, is refused by the guards.
    request = DisclosureRequest(
        recipient=acquirer,
        purpose=purpose or (declared[0] if declared else ""),
        categories=tuple(categories or (recipient.categories if recipient is not None else ())),
        requester=requester_of(actor),
        ground=BUSINESS_TRANSFER_GROUND,
    )
    recorded = record_disclosure(
        session,
        clock,
        policy,
        actor=actor,
        request=request,
        people=people,
        idempotency_key=idempotency_key,
    )
    if recorded.refusal is not None or recorded.id is None:
        return BusinessTransfer(recorded)
    owners = disclosed_people(session, recorded.id)
    told = notice or TransferNotice()
    context = {
        "acquirer": told.acquirer_name or (recipient.name if recipient is not None else acquirer),
        "transfer": told.transfer,
        "effective_on": told.effective_on.isoformat() if told.effective_on else None,
        "contact": policy.policy.organisation.contact_email,
    }
    queued = without = done = 0
    for chunk in in_chunks(owners, _NOTICE_CHUNK):
        opened = deliver_disclosed(
            session,
            keys,
            clock,
            policy,
            actor=actor,
            disclosure_id=recorded.id,
            owners=chunk,
            categories=(NOTICE_CATEGORY,),
            action="access:contact:notified",
        )
        for owner in chunk:
            addresses = [v.value for v in opened.values.get(owner, ()) if v.field == "email"]
            addresses = addresses or [v.value for v in opened.values.get(owner, ())]
            if not addresses:
                without += 1
                continue
            queue_message(
                session,
                clock,
                outbox,
                to=addresses[-1],
                template=BUSINESS_TRANSFER_NOTICE,
                context=context,
                idempotency_key=f"business-transfer:{recorded.id}:{owner}",
                person_id=owner,
            )
            queued += 1
        done += len(chunk)
        if progress is not None:
            progress(done, len(owners))
    return BusinessTransfer(recorded, queued, without)
