"""Rights requests: intake, verification, and each step to an answer, audited (C25).

A request moves through one state machine:

    received -> awaiting_verification -> verified -> in_progress -> answered
                                     \\-> denied (with its basis) | withdrawn

Nothing skips verification: a request is verified only by a fresh re-authentication the
calling service asserts for the person's own account, by the single-use link mailed to
the address it came from, or (opt-out of sale or sharing) by needing none. `answer`
checks that the request was verified whatever state it is in, so no order of calls can
answer an unverified erasure (the Fides CVE-2026-42303 pattern). A request is extended
once, with its reason, before it is due. Every step is a row of its own and an audit
entry in the same transaction; neither holds a personal value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.db import conflict_insert, table_of
from charter.errors import Conflict, NotFound, Unprocessable
from charter.mail.outbox import Outbox, queue_message
from charter.mail.rendering import MailTemplate
from charter.policy.compiled import CompiledPolicy
from charter.requests.deadlines import CLASSIFIED_TYPES, TYPES, deadlines, in_words
from charter.requests.models import RequestStep, RightsRequest
from charter.vault.crypto import DecryptionFailed, Sealer
from charter.vault.identifiers import BlindIndex, is_email_address
from charter.vault.people import join_correspondence, owner_of, people_by_email

OPEN_STATES = ("received", "awaiting_verification", "verified", "in_progress")
CLOSED_STATES = ("answered", "denied", "withdrawn")
STATES = OPEN_STATES + CLOSED_STATES
CHANNELS = ("api", "public", "email", "staff")
# Where each state may go next.
_NEXT: dict[str, frozenset[str]] = {
    "received": frozenset({"awaiting_verification", "verified", "denied", "withdrawn"}),
    "awaiting_verification": frozenset({"verified", "denied", "withdrawn"}),
    "verified": frozenset({"in_progress", "answered", "denied", "withdrawn"}),
    "in_progress": frozenset({"answered", "denied", "withdrawn"}),
}
# Types whose request needs no verification (11 CCR 7026: an opt-out is not verified).
UNVERIFIED_TYPES = frozenset({"opt_out_sale_sharing"})
# How long a verification link works (11 CCR 7060-7062 leave it to the business; a day).
LINK_LIFETIME = dt.timedelta(hours=24)
LINK_KEY_PURPOSE = "request-verification-links"
REPLY_KEY_PURPOSE = "request-reply-addresses"
VERIFY_PATH = "/v1/public/requests/verify"

VERIFICATION_MAIL = MailTemplate("charter.requests", "verify_request")
RECEIVED_MAIL = MailTemplate("charter.requests", "request_received")
EXTENDED_MAIL = MailTemplate("charter.requests", "request_extended")

_REQUESTS = table_of(RightsRequest)


@dataclass(frozen=True)
class Intake:
    """A request as it arrives: who asks, by which channel, for what."""

    type: str
    channel: str
    # The address the person wrote from or gave; used for verification and to find them,
    # kept only as a blind index.
    email: str | None = None
    person_id: str | None = None
    # The calling service re-authenticated the person on their own account just now.
    reauthenticated: bool = False
    # One request per key: the Message-ID of an e-mail, or the caller's idempotency key.
    source_key: str | None = None
    # Non-personal facts (for `correct`: the field concerned).
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Submitted:
    request: RightsRequest
    # Whether this is a request recorded before under the same source key.
    replayed: bool = False


class Links:
    """Signs and checks the single-use verification links mailed to people. A link carries
    the request, a nonce (whose digest the request keeps until it is used) and when it was
    issued by Charter's clock."""

    def __init__(self, index: BlindIndex, public_url: str) -> None:
        self._serializer = URLSafeSerializer(
            index.derived_key(LINK_KEY_PURPOSE), salt="charter-request-verification"
        )
        self.public_url = public_url

    def token(self, request_id: str, nonce: str, issued_at: dt.datetime) -> str:
        return str(
            self._serializer.dumps({"r": request_id, "n": nonce, "t": issued_at.timestamp()})
        )

    def url(self, token: str) -> str:
        return f"{self.public_url}{VERIFY_PATH}?token={token}"

    def read(self, token: str, now: dt.datetime) -> tuple[str, str]:
        """The request id and nonce of a good link; `LinkRefused` with its code if not."""
        try:
            payload = self._serializer.loads(token)
        except BadSignature:
            raise LinkRefused("the link is not one Charter sent", code="link_invalid") from None
        if not isinstance(payload, dict) or not {"r", "n", "t"} <= set(payload):
            raise LinkRefused("the link is not one Charter sent", code="link_invalid")
        issued = dt.datetime.fromtimestamp(float(payload["t"]), dt.UTC)
        if now - issued > LINK_LIFETIME:
            raise LinkRefused("the link has expired; ask again", code="link_expired")
        return str(payload["r"]), str(payload["n"])


class Replies:
    """Seals the address a request is answered at, bound to the request, under a key of its
    own derived from the index key; only while the request is open."""

    def __init__(self, index: BlindIndex) -> None:
        self._sealer = Sealer(index.derived_key(REPLY_KEY_PURPOSE))

    def seal(self, request_id: str, address: str) -> bytes:
        return self._sealer.seal(address.encode(), _reply_bound(request_id))

    def open(self, request: RightsRequest) -> str | None:
        """The address to answer `request` at, or None (none given, or closed)."""
        if request.reply_sealed is None:
            return None
        try:
            return self._sealer.open(request.reply_sealed, _reply_bound(request.id)).decode()
        except DecryptionFailed:
            return None


def _reply_bound(request_id: str) -> bytes:
    return b"request-reply:v1\x1f" + request_id.encode()


class LinkRefused(Unprocessable):
    """A verification link that is forged, expired or used already."""


def submit_request(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    index: BlindIndex,
    *,
    actor: str,
    intake: Intake,
    outbox: Outbox | None = None,
    links: Links | None = None,
    replies: Replies | None = None,
) -> Submitted:
    """Record a request, with its deadlines, and start it: verified at once when it needs no
    verification or the service asserts a fresh re-authentication of the person; otherwise
    awaiting the single-use link mailed (with `outbox` and `links`) to the address it gave.
    With `replies`, the address is kept sealed to answer at until the request closes.
    The same `source_key` again returns the first request and records nothing."""
    _check_intake(intake)
    if intake.source_key is not None:
        earlier = session.scalars(
            select(RightsRequest).where(RightsRequest.source_key == intake.source_key)
        ).one_or_none()
        if earlier is not None:
            return Submitted(earlier, replayed=True)
    now = clock.now()
    person_id = _person_of(session, index, intake)
    method = _verified_at_intake(intake, person_id)
    due = deadlines(policy, intake.type, intake.channel, now)
    request_id = secrets.token_hex(16)
    details = dict(intake.details or {})
    # The request is written once, in the state intake leaves it in.
    nonce = None
    if method is None and intake.email and outbox is not None and links is not None:
        nonce = secrets.token_hex(16)
        details["link"] = _digest(nonce)
    request = RightsRequest(
        id=request_id,
        type=intake.type,
        state="verified" if method is not None else "awaiting_verification",
        channel=intake.channel,
        person_id=person_id,
        email_index=index.email(intake.email) if intake.email else None,
        received_at=now,
        confirm_by=due.confirm_by,
        due_at=due.due_at,
        verified_at=now if method is not None else None,
        verification=method,
        report_year=now.year - 1 if intake.type == "shine_the_light" else None,
        source_key=intake.source_key,
        reply_sealed=(
            replies.seal(request_id, intake.email) if replies is not None and intake.email else None
        ),
        details=details,
    )
    if intake.source_key is not None:
        # Two deliveries of the same message at once: the second finds the first's row.
        inserted = session.execute(
            conflict_insert(session)(_REQUESTS)
            .values(**_columns(request))
            .on_conflict_do_nothing(index_elements=["source_key"])
            .returning(_REQUESTS.c.id)
        ).scalar()
        if inserted is None:
            earlier = session.scalars(
                select(RightsRequest).where(RightsRequest.source_key == intake.source_key)
            ).one()
            return Submitted(earlier, replayed=True)
        request = session.get_one(RightsRequest, inserted)
    else:
        session.add(request)
        # Before its steps: with no relationship between them, the flush would not order
        # the step rows after the request row they point at.
        session.flush()
    _step(session, clock, request, None, "received", actor=actor, note=intake.channel)
    _step(session, clock, request, "received", request.state, actor=actor, note=method)
    if nonce is not None and intake.email and outbox is not None and links is not None:
        _mail_link(
            session,
            clock,
            outbox=outbox,
            link=links.url(links.token(request.id, nonce, now)),
            request=request,
            address=intake.email,
        )
    return Submitted(request)


def _verified_at_intake(intake: Intake, person_id: str | None) -> str | None:
    """How the request is verified as it arrives, if it is: it needs no verification, or
    the service re-authenticated the person on their own account."""
    if intake.type in UNVERIFIED_TYPES:
        return "not_required"
    if intake.reauthenticated:
        if person_id is None or intake.person_id is None:
            raise Unprocessable(
                "a re-authentication verifies the person's own account: name its person_id",
                code="reauthentication_needs_person",
            )
        return "reauthenticated"
    return None


def _check_intake(intake: Intake) -> None:
    if intake.type not in TYPES:
        raise Unprocessable(
            f"the type '{intake.type}' is not one of: {', '.join(TYPES)}", code="unknown_type"
        )
    if intake.channel not in CHANNELS:
        raise ValueError(f"not a channel: {intake.channel}")
    if intake.email is not None and not is_email_address(intake.email):
        raise Unprocessable(
            "email is not an e-mail address", code="invalid_email", details={"fields": ["email"]}
        )
    if intake.email is None and intake.person_id is None:
        raise Unprocessable(
            "a request names the person (person_id) or the address to answer (email)",
            code="no_requester",
        )


def _person_of(session: Session, index: BlindIndex, intake: Intake) -> str | None:
    """The person the request is about, if Charter knows them; unknown is not an error (the
    answer says what the law expects)."""
    if intake.person_id is not None:
        try:
            return owner_of(session, intake.person_id).id
        except NotFound:
            pass  # the address, if given, may still name them
    if intake.email is not None:
        found = people_by_email(session, index, intake.email)
        return found[0].id if found else None
    return None


def _columns(request: RightsRequest) -> dict[str, Any]:
    return {column.key: getattr(request, column.key) for column in _REQUESTS.columns}


def _mail_link(
    session: Session,
    clock: Clock,
    *,
    outbox: Outbox,
    link: str,
    request: RightsRequest,
    address: str,
) -> None:
    """Mail the single-use `link` of `request` to `address`."""
    queue_message(
        session,
        clock,
        outbox,
        to=address,
        template=VERIFICATION_MAIL,
        context={
            "link": link,
            "kind": in_words(request.type),
            "hours": int(LINK_LIFETIME.total_seconds() // 3600),
        },
        idempotency_key=f"request:{request.id}:verify:{request.details['link'][:16]}",
        person_id=request.person_id,
    )


def _digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def verify_by_link(
    session: Session, clock: Clock, links: Links, *, token: str, client: str
) -> RightsRequest:
    """Verify the request a mailed link names; a forged, expired or used link is refused
    (`link_invalid`, `link_expired`, `link_used`) and the attempt audited by `client` (a
    keyed digest of the caller's address, never the address)."""
    try:
        request_id, nonce = links.read(token, clock.now())
        request = session.get(RightsRequest, request_id, with_for_update=True)
        if request is None:
            raise LinkRefused("the link is not one Charter sent", code="link_invalid")
        if request.details.get("link") != _digest(nonce) or request.state != (
            "awaiting_verification"
        ):
            raise LinkRefused("the link was used already, or replaced", code="link_used")
    except LinkRefused as refused:
        record(
            session,
            clock,
            Event(
                f"client:{client}",
                "requests:verification:refused",
                "request",
                outcome="refused",
                details={"code": refused.code},
            ),
        )
        raise
    request.details = {key: value for key, value in request.details.items() if key != "link"}
    _verify(session, clock, request, actor=f"client:{client}", method="email_link")
    if request.person_id is not None and request.email_index is not None:
        # The person proved the address: letters written from it are theirs now.
        join_correspondence(
            session,
            clock,
            person_id=request.person_id,
            email_index=request.email_index,
            actor=f"client:{client}",
        )
    return request


def _verify(
    session: Session, clock: Clock, request: RightsRequest, *, actor: str, method: str
) -> None:
    request.verified_at = clock.now()
    request.verification = method
    _move(session, clock, request, "verified", actor=actor, note=method)


def get_request(session: Session, request_id: str, *, for_update: bool = False) -> RightsRequest:
    request = session.get(RightsRequest, request_id, with_for_update=for_update)
    if request is None:
        raise NotFound("no request with that id", code="request_not_found")
    return request


def classify(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    request_id: str,
    *,
    actor: str,
    request_type: str,
) -> RightsRequest:
    """Give an `unclear` request (an e-mail staff had to read) its type. Its deadline is
    the type's from when it was received, never later than the one it already had."""
    request = get_request(session, request_id, for_update=True)
    if request.type != "unclear":
        raise Conflict("only an unclear request is classified", code="already_classified")
    if request_type not in CLASSIFIED_TYPES:
        raise Unprocessable(
            f"the type '{request_type}' is not one of: {', '.join(CLASSIFIED_TYPES)}",
            code="unknown_type",
        )
    if request.state in CLOSED_STATES:
        raise Conflict(f"the request is {request.state}", code="request_closed")
    due = deadlines(policy, request_type, request.channel, request.received_at)
    request.type = request_type
    request.due_at = min(request.due_at, due.due_at)
    request.confirm_by = due.confirm_by
    request.report_year = (
        request.received_at.year - 1 if request_type == "shine_the_light" else None
    )
    _step(session, clock, request, request.state, request.state, actor=actor, note="classified")
    if request_type in UNVERIFIED_TYPES and request.state == "awaiting_verification":
        _verify(session, clock, request, actor=actor, method="not_required")
    return request


def start(session: Session, clock: Clock, request_id: str, *, actor: str) -> RightsRequest:
    """Begin work on a verified request."""
    request = get_request(session, request_id, for_update=True)
    _move(session, clock, request, "in_progress", actor=actor)
    return request


def answer(
    session: Session, clock: Clock, request_id: str, *, actor: str, response: str
) -> RightsRequest:
    """Close a request with its answer (`response`: what was done, in words, no personal
    value). Only a verified request is answered, whatever its state says."""
    request = get_request(session, request_id, for_update=True)
    if request.verified_at is None or request.verification is None:
        raise Conflict("the request is not verified; it cannot be answered", code="not_verified")
    _move(session, clock, request, "answered", actor=actor, note=response)
    request.response = response
    return request


def deny(
    session: Session, clock: Clock, request_id: str, *, actor: str, basis: str
) -> RightsRequest:
    """Close a request with a denial and its basis (e.g. "could not be verified")."""
    request = get_request(session, request_id, for_update=True)
    _move(session, clock, request, "denied", actor=actor, note=basis)
    request.denial_basis = basis
    return request


def withdraw(session: Session, clock: Clock, request_id: str, *, actor: str) -> RightsRequest:
    request = get_request(session, request_id, for_update=True)
    _move(session, clock, request, "withdrawn", actor=actor)
    return request


def extend(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    request_id: str,
    *,
    actor: str,
    reason: str,
    outbox: Outbox | None = None,
    address: str | None = None,
) -> RightsRequest:
    """Extend an open request's deadline once, by its right's extension, with `reason`; a
    notice goes to the person (queued with `outbox` to `address`, where given)."""
    request = get_request(session, request_id, for_update=True)
    if request.state not in OPEN_STATES:
        raise Conflict(f"the request is {request.state}", code="request_closed")
    extension = deadlines(policy, request.type, request.channel, request.received_at)
    if extension.extension_days is None:
        raise Conflict("this kind of request has no extension", code="no_extension")
    if request.extended_at is not None:
        raise Conflict("the request was extended already; once is the most", code="extended")
    now = clock.now()
    if now > request.due_at:
        raise Conflict("the request is past due; it can no longer be extended", code="past_due")
    request.extended_at = now
    request.extension_reason = reason
    request.due_at = request.due_at + dt.timedelta(days=extension.extension_days)
    _step(session, clock, request, request.state, request.state, actor=actor, note="extended")
    if outbox is not None and address is not None:
        queue_message(
            session,
            clock,
            outbox,
            to=address,
            template=EXTENDED_MAIL,
            context={
                "kind": in_words(request.type),
                "reason": reason,
                "due": request.due_at.date().isoformat(),
            },
            idempotency_key=f"request:{request.id}:extended",
            person_id=request.person_id,
        )
    return request


def _move(
    session: Session,
    clock: Clock,
    request: RightsRequest,
    to: str,
    *,
    actor: str,
    note: str | None = None,
) -> None:
    before = request.state
    if to not in _NEXT.get(before, frozenset()):
        raise Conflict(
            f"a request {before.replace('_', ' ')} cannot become {to.replace('_', ' ')}",
            code="invalid_transition",
        )
    if to in ("in_progress", "answered") and request.verified_at is None:
        raise Conflict("the request is not verified", code="not_verified")
    request.state = to
    if to in CLOSED_STATES:
        request.closed_at = clock.now()
        # The address served verification, the look-up and the answer; the record keeps none.
        request.email_index = None
        request.reply_sealed = None
    _step(session, clock, request, before, to, actor=actor, note=note)


def _step(
    session: Session,
    clock: Clock,
    request: RightsRequest,
    before: str | None,
    to: str,
    *,
    actor: str,
    note: str | None,
) -> None:
    session.add(
        RequestStep(
            request_id=request.id,
            at=clock.now(),
            from_state=before,
            to_state=to,
            actor=actor,
            note=note,
        )
    )
    record(
        session,
        clock,
        Event(
            actor,
            "requests:request:" + (note if note in ("extended", "classified") else to),
            f"request:{request.id}",
            details={"type": request.type, "from": before, "channel": request.channel},
        ),
    )


def find_requests(
    session: Session,
    *,
    state: str | None = None,
    type: str | None = None,
    due_before: dt.datetime | None = None,
    after: str | None = None,
    limit: int = 1000,
) -> Sequence[RightsRequest]:
    """Requests by id (after the id `after`), filtered; with `due_before`, only the open
    ones due before then."""
    query = select(RightsRequest).order_by(RightsRequest.id).limit(limit)
    if state is not None:
        query = query.where(RightsRequest.state == state)
    if type is not None:
        query = query.where(RightsRequest.type == type)
    if due_before is not None:
        query = query.where(RightsRequest.due_at < due_before, RightsRequest.state.in_(OPEN_STATES))
    if after is not None:
        query = query.where(RightsRequest.id > after)
    return session.scalars(query).all()


def due_requests(
    session: Session, *, before: dt.datetime, limit: int = 1000
) -> Sequence[RightsRequest]:
    """The open requests due before `before`, soonest first."""
    return session.scalars(
        select(RightsRequest)
        .where(RightsRequest.state.in_(OPEN_STATES), RightsRequest.due_at < before)
        .order_by(RightsRequest.due_at, RightsRequest.id)
        .limit(limit)
    ).all()


def steps_of(session: Session, request_id: str) -> Sequence[RequestStep]:
    return session.scalars(
        select(RequestStep).where(RequestStep.request_id == request_id).order_by(RequestStep.id)
    ).all()


# How long a closed request's record is kept (11 CCR 7101: at least 24 months).
RECORDS_KEPT_MONTHS = 24


def months_before(moment: dt.datetime, months: int) -> dt.datetime:
    """The same day and time `months` earlier (the month's last day where it is shorter)."""
    year, month = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    day = moment.day
    while True:
        try:
            return moment.replace(year=year, month=month + 1, day=day)
        except ValueError:
            day -= 1


def sweep_request_records(session: Session, clock: Clock, *, actor: str) -> int:
    """Delete the records of requests closed more than 24 months ago, with their steps;
    how many. Open requests are never swept. Audited, as a count."""
    cutoff = months_before(clock.now(), RECORDS_KEPT_MONTHS)
    old = list(
        session.scalars(
            select(RightsRequest.id).where(
                RightsRequest.state.in_(CLOSED_STATES), RightsRequest.closed_at < cutoff
            )
        )
    )
    if not old:
        return 0
    session.execute(delete(RequestStep).where(RequestStep.request_id.in_(old)))
    session.execute(delete(RightsRequest).where(RightsRequest.id.in_(old)))
    record(
        session,
        clock,
        Event(actor, "requests:records:swept", "requests", details={"deleted": len(old)}),
    )
    return len(old)
