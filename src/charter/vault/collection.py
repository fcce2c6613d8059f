"""Collection (C5-C8, C13, C16, C17, C19): data comes in only as the policy declares it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.consent.choices import record_gpc
from charter.errors import NotFound, Unprocessable, quoted
from charter.policy.compiled import CompiledPolicy
from charter.policy.schema import CollectionPoint
from charter.vault.identifiers import BlindIndex, is_email_address, new_person_id, new_record_ids
from charter.vault.keystore import KeyStore, sealers_to_write
from charter.vault.models import Record
from charter.vault.people import (
    active_owner,
    correspondent_by_email_index,
    new_person,
    sign_up,
    visitors,
)
from charter.vault.sealing import SEAL_VERSION, record_ad

Source = Literal["given", "automatic", "other_source"]
# Kinds of person a collection point creates when it does not name one.
_SEPARATE_KINDS = frozenset({"job_applicant", "correspondent"})


@dataclass(frozen=True)
class Submission:
    """What a service hands in: the point, who it is about, and the field values."""

    collection_point: str
    fields: Mapping[str, str]
    person_id: str | None = None
    visitor_id: str | None = None
    extra_visitor_ids: tuple[str, ...] = ()
    customer_id: str | None = None
    source: Source = "given"
    source_name: str | None = None
    publish: bool = False
    # The person's browser sent Global Privacy Control (Sec-GPC: 1) with the submission.
    gpc: bool = False


@dataclass(frozen=True)
class Receipt:
    person_id: str
    submission_id: str
    stored_fields: tuple[str, ...]
    published: bool


def check_fields(
    point: CollectionPoint, fields: Mapping[str, str], *, mandatory: bool = True
) -> None:
    """Refuse undeclared fields, e-mail fields that hold no address and missing mandatory
    fields, naming every one (C17).

    `mandatory=False` for data from another source (C19): it adds to what the person gave,
    so the form's mandatory fields are not asked of it, but it must bring some field.
    """
    declared = {f.name for f in point.fields}
    undeclared = sorted(set(fields) - declared)
    if undeclared:
        raise Unprocessable(
            f"{point.id} does not declare {quoted(undeclared)}; Charter stores only what the "
            "policy announces",
            code="undeclared_fields",
            details={"fields": undeclared},
        )
    _check_addresses(point, fields)
    given = [name for name, value in fields.items() if str(value).strip()]
    if not mandatory:
        if not given:
            raise Unprocessable(
                "no field values given", code="missing_fields", details={"fields": []}
            )
        return
    missing = [
        f.name for f in point.fields if f.mandatory and not str(fields.get(f.name, "")).strip()
    ]
    if missing:
        raise Unprocessable(
            f"{point.id} needs {', '.join(missing)}",
            code="missing_fields",
            details={"fields": missing},
        )


def _check_addresses(point: CollectionPoint, fields: Mapping[str, str]) -> None:
    """Refuse an e-mail field whose value is not an address, naming the field, never the value:
    people are found by the blind index of their address, and mail is sent to it."""
    invalid = [
        f.name
        for f in point.fields
        if f.category == "contact.email"
        and str(fields.get(f.name, "")).strip()
        and not is_email_address(str(fields[f.name]))
    ]
    if invalid:
        raise Unprocessable(
            f"{', '.join(invalid)} is not an e-mail address",
            code="invalid_email",
            details={"fields": invalid},
        )


def _check_source(policy: CompiledPolicy, point: CollectionPoint, submission: Submission) -> None:
    if submission.source == "other_source":
        sources = {s.id: s for s in policy.policy.enrichment_sources}
        source = sources.get(submission.source_name or "")
        if source is None:
            raise Unprocessable(
                "data from another source must name a declared enrichment source "
                f"({', '.join(sources)})",
                code="unknown_source",
            )
        allowed = {leaf for ref in source.categories for leaf in policy.expand(ref)}
        fields = {f.name: f.category for f in point.fields}
        outside = sorted(name for name in submission.fields if fields[name] not in allowed)
        if outside:
            raise Unprocessable(
                f"{source.id} is not declared as a source of {', '.join(outside)}",
                code="category_not_from_source",
                details={"fields": outside},
            )
    elif submission.source_name is not None:
        raise Unprocessable(
            "source_name is only for data from another source", code="unexpected_source_name"
        )
    expected = "automatic" if point.method == "automatic" else "given"
    if submission.source not in (expected, "other_source"):
        raise Unprocessable(f"{point.id} collects data that is {expected}", code="wrong_source")
    if submission.publish and not point.publication_needs_permission:
        raise Unprocessable(f"{point.id} offers no publication", code="publication_not_offered")


def _email_field(point: CollectionPoint, fields: Mapping[str, str]) -> str | None:
    for field in point.fields:
        if field.category == "contact.email" and fields.get(field.name):
            return fields[field.name]
    return None


@dataclass(frozen=True)
class Reached:
    """Whom a submission is about: an active owner, and their kind; for a sign-up, whether
    its address already had an account (see `vault.people.sign_up`)."""

    person_id: str
    kind: str
    address_in_use: bool = False


def _person_for(
    session: Session,
    clock: Clock,
    index: BlindIndex,
    point: CollectionPoint,
    submission: Submission,
) -> Reached:
    """The person the submission is about (an owner, active), and their kind."""
    if submission.source == "other_source":
        # Enrichment adds to a person Charter already holds; it never creates one (C19).
        if submission.person_id is None:
            raise Unprocessable(
                "data from another source is about a known person: give person_id",
                code="person_required",
            )
        return Reached(*active_owner(session, submission.person_id))
    if point.creates_user:
        visitor_ids = [v for v in (submission.visitor_id, *submission.extra_visitor_ids) if v]
        signed = sign_up(
            session,
            clock,
            index,
            visitor_ids=visitor_ids,
            email=_email_field(point, submission.fields),
            customer_id=submission.customer_id,
        )
        return Reached(signed.user.id, signed.user.kind, signed.address_in_use)
    if submission.person_id is not None:
        return Reached(*active_owner(session, submission.person_id))
    separate = next((s for s in point.subjects if s in _SEPARATE_KINDS), None)
    if point.readable_by_roles is not None and separate is not None:
        # Kept apart from customer data (C6): a new person, never linked to a visitor. Its
        # address's blind index lets a rights request by e-mail find it (people:lookup); no
        # sign-up or correspondence is ever filed with it, those look for their own kinds.
        apart = new_person(session, clock, separate)
        email = _email_field(point, submission.fields)
        apart.email_index = index.email(email) if email else None
        return Reached(apart.id, separate)
    if point.method == "email" and separate is not None:
        email = _email_field(point, submission.fields)
        return Reached(_sender(session, clock, index, separate, email), separate)
    if submission.visitor_id is not None:
        person_id = visitors(session, clock, index, [submission.visitor_id])[submission.visitor_id]
        return Reached(*active_owner(session, person_id))
    raise Unprocessable(
        "say who the data is about: person_id or visitor_id", code="person_required"
    )


def _sender(session: Session, clock: Clock, index: BlindIndex, kind: str, email: str | None) -> str:
    """Correspondence is kept (C7), filed under a correspondent for the sender's address:
    anyone can write from any address, so a message is never filed with the account that
    holds it, nor its id answered, on the sender's word. The service that knows the sender is
    signed in says so by naming them (`person_id`)."""
    digest = index.email(email) if email else None
    known = correspondent_by_email_index(session, digest) if digest else None
    if known is not None:
        return known
    person = new_person(session, clock, kind)
    person.email_index = digest
    return person.id


def _check_subject(policy: CompiledPolicy, point: CollectionPoint, kind: str) -> None:
    """A point collects from its own data subjects only: a job application never lands on a
    customer's record, nor an order on an applicant's (C6)."""
    if not policy.covers(frozenset(point.subjects), kind):
        raise Unprocessable(
            f"{point.id} collects from {', '.join(point.subjects)} only; this person is a {kind}",
            code="subject_not_covered",
        )


def collect(
    session: Session,
    keys: KeyStore,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: str,
    submission: Submission,
) -> Receipt:
    """Store one submission to a collection point, sealed under its person's key."""
    point = policy.collection_points.get(submission.collection_point)
    if point is None:
        raise NotFound(
            f"'{submission.collection_point}' is not a collection point of the policy",
            code="unknown_collection_point",
        )
    check_fields(point, submission.fields, mandatory=submission.source != "other_source")
    _check_source(policy, point, submission)
    index = BlindIndex(keys.index_key())
    reached = _person_for(session, clock, index, point, submission)
    _check_subject(policy, point, reached.kind)
    person_id = reached.person_id
    if submission.gpc:
        record_gpc(session, clock, policy, actor=actor, person_ids=[person_id])
    sealer = sealers_to_write(keys, [person_id])[person_id]
    submission_id = new_person_id()
    now = clock.now()
    categories = {f.name: f.category for f in point.fields}
    present = [
        name
        for name in (f.name for f in point.fields)
        if submission.fields.get(name) not in (None, "")
    ]
    ids = new_record_ids(len(present))
    published = submission.publish and point.publication_needs_permission
    for record_id, name in zip(ids, present, strict=True):
        row = Record(
            id=record_id,
            person_id=person_id,
            submission_id=submission_id,
            collection_point=point.id,
            field=name,
            category=categories[name],
            source=submission.source,
            source_name=submission.source_name,
            policy_version=policy.version,
            collected_at=now,
            published=published,
            seal_version=SEAL_VERSION,
        )
        row.sealed = sealer.seal(str(submission.fields[name]).encode(), record_ad(row))
        session.add(row)
    record(
        session,
        clock,
        Event(
            actor,
            "vault:submission:collected",
            f"person:{person_id}",
            details={
                "collection_point": point.id,
                "submission": submission_id,
                "fields": present,
                "source": submission.source,
                "published": published,
                **({"address_in_use": True} if reached.address_in_use else {}),
            },
        ),
    )
    return Receipt(person_id, submission_id, tuple(present), published)
