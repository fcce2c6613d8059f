"""Personnel and keys over HTTP (privacy officer: `staff:manage`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from charter.staff import service
from charter.staff.models import ApiKey, StaffMember
from charter.staff.service import Actor
from charter.web.auth import Permit
from charter.web.contract import refusals
from charter.web.deps import PolicyDep, ReadSession, RuntimeDep
from charter.web.params import KeyIdInPath, RoleName, StaffInPath, StaffName

router = APIRouter(prefix="/v1", tags=["staff"])
Manager = Annotated[Actor, Depends(Permit("staff:manage"))]


class NewStaff(BaseModel):
    """A member of OMNI's personnel, with the role the policy gives them."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "avery", "role": "support_agent"}]}
    )

    name: StaffName = Field(description="A handle: letters, digits, `.`, `_` and `-`.")
    role: RoleName = Field(description="One of the roles of the policy (`GET /v1/policy`).")


class NewKey(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"expires_in_days": 90}]})

    expires_in_days: int | None = Field(
        default=None, gt=0, le=3650, description="The key stops working after this many days."
    )


class Member(BaseModel):
    name: str
    role: str
    active: bool = Field(description="False once disabled: their keys fail.")
    created_at: dt.datetime
    disabled_at: dt.datetime | None


class Staff(BaseModel):
    staff: list[Member]


class Key(BaseModel):
    key_id: str = Field(description="The key's id (the part after `chk_`); never its secret.")
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


class Keys(BaseModel):
    keys: list[Key]


class IssuedKey(BaseModel):
    key: str = Field(description="The key, shown this once: give it as `Authorization: Bearer`.")
    key_id: str
    expires_at: dt.datetime | None


def _staff_json(member: StaffMember) -> dict[str, Any]:
    return {
        "name": member.name,
        "role": member.role,
        "active": member.active,
        "created_at": member.created_at,
        "disabled_at": member.disabled_at,
    }


def _key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
    }


@router.get("/staff", response_model=Staff)
def list_staff(_: Manager, session: ReadSession) -> dict[str, Any]:
    """OMNI's personnel who may reach personal data through Charter, and their roles."""
    return {"staff": [_staff_json(m) for m in service.list_staff(session)]}


@router.post(
    "/staff",
    status_code=201,
    response_model=Member,
    responses=refusals(
        409,
        422,
        _409="A staff member of that name exists (`staff_exists`).",
        _422="Not a valid handle (`invalid_staff_name`), or not a role of the policy "
        "(`unknown_role`).",
    ),
)
def add_staff(
    actor: Manager, body: NewStaff, runtime: RuntimeDep, policy: PolicyDep
) -> dict[str, Any]:
    """Add a member of the personnel, with a role the policy declares; audited."""
    with runtime.db.writing() as session:
        member = service.add_staff(
            session, runtime.clock, policy, actor=actor.ref, name=body.name, role=body.role
        )
        return _staff_json(member)


@router.post(
    "/staff/{name}/disable",
    response_model=Member,
    responses=refusals(
        404,
        409,
        _404="No staff member of that name (`staff_not_found`).",
        _409="The last active privacy officer (`last_privacy_officer`).",
    ),
)
def disable_staff(actor: Manager, name: StaffInPath, runtime: RuntimeDep) -> dict[str, Any]:
    """Disable a staff member: their keys fail from the next request on; audited."""
    with runtime.db.writing() as session:
        return _staff_json(
            service.disable_staff(session, runtime.clock, actor=actor.ref, name=name)
        )


@router.post(
    "/staff/{name}/keys",
    status_code=201,
    response_model=IssuedKey,
    responses=refusals(
        404,
        409,
        _404="No staff member of that name (`staff_not_found`).",
        _409="The staff member is disabled (`staff_disabled`).",
    ),
)
def create_key(
    actor: Manager, name: StaffInPath, runtime: RuntimeDep, body: NewKey | None = None
) -> dict[str, Any]:
    """Issue an API key for a staff member; the key is shown this once. No body: a key that
    does not expire."""
    body = body or NewKey()
    with runtime.db.writing() as session:
        expires = dt.timedelta(days=body.expires_in_days) if body.expires_in_days else None
        issued = service.create_key(
            session,
            runtime.clock,
            actor=actor.ref,
            staff_name=name,
            expires_in=expires,
            issuer=actor,
        )
        return {"key": issued.key, "key_id": issued.key_id, "expires_at": issued.expires_at}


@router.get(
    "/staff/{name}/keys",
    response_model=Keys,
    responses=refusals(404, _404="No staff member of that name (`staff_not_found`)."),
)
def list_keys(_: Manager, name: StaffInPath, session: ReadSession) -> dict[str, Any]:
    """A staff member's keys: ids and dates, never a secret."""
    return {"keys": [_key_json(k) for k in service.list_keys(session, name)]}


@router.delete(
    "/keys/{key_id}",
    response_model=Key,
    responses=refusals(404, _404="No key with that id (`key_not_found`)."),
)
def revoke_key(actor: Manager, key_id: KeyIdInPath, runtime: RuntimeDep) -> dict[str, Any]:
    """Revoke a key: it fails from the next request on; audited."""
    with runtime.db.writing() as session:
        return _key_json(service.revoke_key(session, runtime.clock, actor=actor.ref, key_id=key_id))
