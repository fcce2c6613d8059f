"""Personnel and keys over HTTP (privacy officer: `staff:manage`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from charter.staff import service
from charter.staff.models import ApiKey, StaffMember
from charter.staff.service import Actor
from charter.web.auth import Permit
from charter.web.deps import PolicyDep, ReadSession, RuntimeDep
from charter.web.params import KeyIdInPath, RoleName, StaffInPath, StaffName

router = APIRouter(prefix="/v1", tags=["staff"])
Manager = Annotated[Actor, Depends(Permit("staff:manage"))]


class NewStaff(BaseModel):
    name: StaffName
    role: RoleName


class NewKey(BaseModel):
    expires_in_days: int | None = Field(default=None, gt=0, le=3650)


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


@router.get("/staff")
def list_staff(_: Manager, session: ReadSession) -> dict[str, Any]:
    return {"staff": [_staff_json(m) for m in service.list_staff(session)]}


@router.post("/staff", status_code=201)
def add_staff(
    actor: Manager, body: NewStaff, runtime: RuntimeDep, policy: PolicyDep
) -> dict[str, Any]:
    with runtime.db.writing() as session:
        member = service.add_staff(
            session, runtime.clock, policy, actor=actor.ref, name=body.name, role=body.role
        )
        return _staff_json(member)


@router.post("/staff/{name}/disable")
def disable_staff(actor: Manager, name: StaffInPath, runtime: RuntimeDep) -> dict[str, Any]:
    with runtime.db.writing() as session:
        return _staff_json(
            service.disable_staff(session, runtime.clock, actor=actor.ref, name=name)
        )


@router.post("/staff/{name}/keys", status_code=201)
def create_key(
    actor: Manager, name: StaffInPath, runtime: RuntimeDep, body: NewKey | None = None
) -> dict[str, Any]:
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


@router.get("/staff/{name}/keys")
def list_keys(_: Manager, name: StaffInPath, session: ReadSession) -> dict[str, Any]:
    return {"keys": [_key_json(k) for k in service.list_keys(session, name)]}


@router.delete("/keys/{key_id}")
def revoke_key(actor: Manager, key_id: KeyIdInPath, runtime: RuntimeDep) -> dict[str, Any]:
    with runtime.db.writing() as session:
        return _key_json(service.revoke_key(session, runtime.clock, actor=actor.ref, key_id=key_id))
