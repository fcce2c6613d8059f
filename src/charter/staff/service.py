"""Adding and disabling personnel, issuing and revoking keys, and authenticating a key.

Keys look like `chk_<key id>_<secret>`. The key id finds the row; the secret is compared by
hash in constant time, and an unknown key id is compared against a dummy hash, so a wrong
key and an unknown one take the same time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from charter.audit.chain import Event, record
from charter.audit.reading import last_acted
from charter.clock import Clock
from charter.db import table_of, utc_from_text
from charter.errors import Conflict, NotFound, Unauthenticated, Unprocessable
from charter.policy.compiled import CompiledPolicy
from charter.staff.models import ApiKey, StaffMember

KEY_PREFIX = "chk"
_KEY_SHAPE = re.compile(r"^chk_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{32,64})$")
_NAME_SHAPE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_DUMMY_HASH = hashlib.sha256(b"charter-unknown-key").hexdigest()
# The role that manages staff and keys (the policy's personnel section).
_OFFICER = "privacy_officer"


@dataclass(frozen=True)
class Actor:
    """Who is calling: a staff member through one of their keys, with the policy's role."""

    staff_id: int
    key_id: str
    role: str
    permissions: frozenset[str]
    # The staff member who minted this key for them, if not they themselves.
    issued_by: int | None = None

    @property
    def ref(self) -> str:
        """How the audit log names this actor: ids only; a key minted by another staff member
        names them too, so that what is done with it is on both."""
        return key_actor(self.staff_id, self.key_id, self.issued_by)


def key_actor(staff_id: int, key_id: str, issued_by: int | None) -> str:
    """How the audit log names what is done with a key (`Actor.ref`)."""
    ref = f"staff:{staff_id}/key:{key_id}"
    return ref if issued_by is None else f"{ref}/by:staff:{issued_by}"


@dataclass(frozen=True)
class IssuedKey:
    key: str
    key_id: str
    staff_name: str
    expires_at: dt.datetime | None


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _staff_by_name(session: Session, name: str) -> StaffMember:
    member = session.scalars(select(StaffMember).where(StaffMember.name == name)).one_or_none()
    if member is None:
        raise NotFound(f"no staff member named '{name}'", code="staff_not_found")
    return member


def add_staff(
    session: Session, clock: Clock, policy: CompiledPolicy, *, actor: str, name: str, role: str
) -> StaffMember:
    """Add a staff member with a role from the policy's personnel section."""
    if not _NAME_SHAPE.match(name):
        raise Unprocessable(
            "a staff name is 1-64 lower-case letters, digits, '.', '_' or '-'",
            code="invalid_staff_name",
        )
    if role not in policy.role_permissions:
        known = ", ".join(sorted(policy.role_permissions))
        raise Unprocessable(
            f"'{role}' is not a role of the policy (roles: {known})", code="unknown_role"
        )
    if session.scalars(select(StaffMember.id).where(StaffMember.name == name)).first() is not None:
        raise Conflict(f"a staff member named '{name}' already exists", code="staff_exists")
    member = StaffMember(name=name, role=role, active=True, created_at=clock.now())
    try:
        # A savepoint, so that losing a race for the name leaves the caller's transaction usable.
        with session.begin_nested():
            session.add(member)
    except IntegrityError:
        raise Conflict(
            f"a staff member named '{name}' already exists", code="staff_exists"
        ) from None
    record(
        session,
        clock,
        Event(actor, "staff:member:added", f"staff:{member.id}", details={"role": role}),
    )
    return member


def list_staff(session: Session) -> list[StaffMember]:
    return list(session.scalars(select(StaffMember).order_by(StaffMember.name)))


def disable_staff(session: Session, clock: Clock, *, actor: str, name: str) -> StaffMember:
    """Disable a staff member; their keys stop working on the next request."""
    member = _staff_by_name(session, name)
    if member.active and member.role == _OFFICER:
        # Locked, so that two officers disabling each other at once take turns: one of
        # them stays. Without an active privacy officer nobody could manage staff again.
        officers = session.scalars(
            select(StaffMember.id)
            .where(StaffMember.role == _OFFICER, StaffMember.active.is_(True))
            .with_for_update()
        ).all()
        if len(officers) <= 1:
            raise Conflict(
                "this is the last active privacy officer: add or enable another first",
                code="last_privacy_officer",
            )
    if member.active:
        member.active = False
        member.disabled_at = clock.now()
        record(session, clock, Event(actor, "staff:member:disabled", f"staff:{member.id}"))
    return member


def enable_staff(session: Session, clock: Clock, *, actor: str, name: str) -> StaffMember:
    """Enable a disabled staff member again; their keys that are neither revoked nor expired
    work again on the next request."""
    member = _staff_by_name(session, name)
    if member.active:
        raise Conflict(f"staff member '{name}' is already active", code="staff_active")
    member.active = True
    member.disabled_at = None
    record(session, clock, Event(actor, "staff:member:enabled", f"staff:{member.id}"))
    return member


def create_key(
    session: Session,
    clock: Clock,
    *,
    actor: str,
    staff_name: str,
    expires_in: dt.timedelta | None = None,
    issuer: Actor | None = None,
) -> IssuedKey:
    """Issue a key for a staff member. The returned key is the only copy of its secret.
    `issuer`, the staff member minting it over the API, is recorded as its issuer when the
    key is for someone else."""
    member = _staff_by_name(session, staff_name)
    if not member.active:
        raise Conflict(f"staff member '{staff_name}' is disabled", code="staff_disabled")
    if expires_in is not None and expires_in <= dt.timedelta(0):
        raise Unprocessable("a key's lifetime must be positive", code="invalid_expiry")
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    key_id = "".join(secrets.choice(alphabet) for _ in range(12))
    secret = secrets.token_urlsafe(32)
    now = clock.now()
    expires_at = now + expires_in if expires_in is not None else None
    row = ApiKey(
        key_id=key_id,
        secret_hash=_hash_secret(secret),
        staff_id=member.id,
        created_at=now,
        expires_at=expires_at,
        issued_by=issuer.staff_id if issuer is not None and issuer.staff_id != member.id else None,
    )
    session.add(row)
    record(
        session,
        clock,
        Event(
            actor,
            "staff:key:created",
            f"key:{key_id}",
            details={
                "staff": member.id,
                "expires": expires_at is not None,
                "issued_by": row.issued_by,
            },
        ),
    )
    return IssuedKey(f"{KEY_PREFIX}_{key_id}_{secret}", key_id, member.name, expires_at)


def revoke_key(session: Session, clock: Clock, *, actor: str, key_id: str) -> ApiKey:
    """Revoke a key by its id (the part after `chk_`); it fails on the next request."""
    row = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).one_or_none()
    if row is None:
        raise NotFound(f"no key with id '{key_id}'", code="key_not_found")
    if row.revoked_at is None:
        row.revoked_at = clock.now()
        record(session, clock, Event(actor, "staff:key:revoked", f"key:{key_id}"))
    return row


def list_keys(session: Session, staff_name: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if staff_name is not None:
        query = query.where(ApiKey.staff_id == _staff_by_name(session, staff_name).id)
    return list(session.scalars(query))


@dataclass(frozen=True)
class KeyUse:
    """A key as a listing shows it: never its secret."""

    key: ApiKey
    staff_name: str
    # The last time the audit log records something done with the key; None if never.
    last_used_at: dt.datetime | None


def key_state(key: ApiKey, now: dt.datetime) -> str:
    """`revoked`, `expired` or `valid`, as `admit` decides on the key itself (whether its
    holder is active aside)."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "valid"


def key_uses(session: Session, staff_name: str | None = None) -> list[KeyUse]:
    """`list_keys`, with each key's holder and its last recorded use."""
    keys = list_keys(session, staff_name)
    names = dict(session.execute(select(StaffMember.id, StaffMember.name)).all())
    refs = {key.key_id: key_actor(key.staff_id, key.key_id, key.issued_by) for key in keys}
    used = last_acted(session, refs.values())
    return [KeyUse(key, names[key.staff_id], used.get(refs[key.key_id])) for key in keys]


class AuthenticationFailed(Unauthenticated):
    """The key was refused; `reason` is short and safe to show and to audit. `key_id` names
    the key when one with that id exists (a real key presented wrongly, revoked, expired)."""

    def __init__(self, message: str, *, code: str, key_id: str | None = None) -> None:
        super().__init__(message, code=code)
        self.key_id = key_id


_KEYS, _STAFF = table_of(ApiKey), table_of(StaffMember)
# Plain columns on the tables, not ORM objects: this runs on every request.
_KEY_LOOKUP = (
    select(
        _KEYS.c.secret_hash,
        _KEYS.c.revoked_at,
        _KEYS.c.expires_at,
        _KEYS.c.staff_id,
        _STAFF.c.active,
        _STAFF.c.role,
        _KEYS.c.issued_by,
    )
    .join(_STAFF)
    .where(_KEYS.c.key_id == bindparam("key_id"))
)


def authenticate(session: Session, clock: Clock, policy: CompiledPolicy, presented: str) -> Actor:
    """Check a presented key; return the actor or raise `AuthenticationFailed`."""
    key_id, secret = split_key(presented)
    row = session.connection().execute(_KEY_LOOKUP, {"key_id": key_id}).one_or_none()
    return admit(row, key_id, secret, clock, policy)


def split_key(presented: str) -> tuple[str, str]:
    """A presented key's id and secret, or `AuthenticationFailed` for a malformed key."""
    match = _KEY_SHAPE.match(presented)
    if match is None:
        raise AuthenticationFailed("the API key is malformed", code="malformed_key")
    key_id, secret = match.groups()
    return key_id, secret


class KeyRow(NamedTuple):
    """What `admit` needs of a key and its staff member (the columns of `_KEY_LOOKUP`)."""

    secret_hash: str
    revoked_at: dt.datetime | None
    expires_at: dt.datetime | None
    staff_id: int
    active: bool
    role: str
    issued_by: int | None


# `_KEY_LOOKUP` for psycopg's own parameter style, for a read made without SQLAlchemy (see
# charter.loop_reads); its times come back in their stored text form (`key_row`).
KEY_LOOKUP_PG = str(_KEY_LOOKUP.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]


def key_row(values: Sequence[Any] | None) -> KeyRow | None:
    """A `KeyRow` from the raw values of `KEY_LOOKUP_PG`."""
    if values is None:
        return None
    secret_hash, revoked_at, expires_at, staff_id, active, role, issued_by = values
    return KeyRow(
        secret_hash,
        utc_from_text(revoked_at),
        utc_from_text(expires_at),
        staff_id,
        active,
        role,
        issued_by,
    )


def admit(row: Any, key_id: str, secret: str, clock: Clock, policy: CompiledPolicy) -> Actor:
    """The actor of a key whose stored `row` (a `KeyRow` or a row of `_KEY_LOOKUP`, None for
    no such key) matches `secret`, or `AuthenticationFailed`."""
    stored = row.secret_hash if row is not None else _DUMMY_HASH
    matches = hmac.compare_digest(stored, _hash_secret(secret))
    if row is None:
        raise AuthenticationFailed("the API key is not valid", code="invalid_key")

    def refused(message: str, code: str) -> AuthenticationFailed:
        return AuthenticationFailed(message, code=code, key_id=key_id)

    if not matches:
        raise refused("the API key is not valid", "invalid_key")
    if row.revoked_at is not None:
        raise refused("the API key was revoked", "revoked_key")
    if row.expires_at is not None and row.expires_at <= clock.now():
        raise refused("the API key has expired", "expired_key")
    if not row.active:
        raise refused("the staff member is disabled", "staff_disabled")
    permissions = policy.role_permissions.get(row.role)
    if permissions is None:
        raise refused("the staff member's role is not in the policy", "unknown_role")
    return Actor(row.staff_id, key_id, row.role, permissions, row.issued_by)


def record_permission_denied(
    session: Session, clock: Clock, *, actor: Actor, route: str, permission: str
) -> None:
    """Audit a request refused for lack of permission: who asked, where, for what. A staff
    member trying doors their role does not open leaves a trace (OWASP ASVS 16.3.2)."""
    record(
        session,
        clock,
        Event(
            actor.ref,
            "auth:permission:denied",
            f"route:{route}",
            outcome="refused",
            details={"permission": permission, "role": actor.role},
        ),
    )


# The key id the audit log gives work a staff member does at the console (`charter ...`),
# where no API key is presented: the operator is named with them.
CONSOLE_KEY = "console"


def console_actor(
    session: Session, policy: CompiledPolicy, *, handle: str, permission: str
) -> Actor:
    """The actor of work that the staff member `handle` does at the console: active, with a
    role of the policy that holds `permission`; otherwise a refusal that says which."""
    member = session.scalars(select(StaffMember).where(StaffMember.name == handle)).one_or_none()
    if member is None or not member.active:
        raise NotFound(f"no active staff member '{handle}'", code="staff_not_found")
    permissions = policy.role_permissions.get(member.role, frozenset())
    if permission not in permissions:
        raise Unprocessable(
            f"the role '{member.role}' may not {permission}", code="permission_denied"
        )
    return Actor(member.id, CONSOLE_KEY, member.role, permissions)
