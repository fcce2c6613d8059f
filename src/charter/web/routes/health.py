"""`GET /healthz`: the service is up and its policy is loaded."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from charter.web.deps import PolicyDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str = Field(description="`ok` while Charter serves.", examples=["ok"])
    policy_version: str = Field(description="The version of the policy in force.")


@router.get("/healthz", response_model=Health)
def healthz(policy: PolicyDep) -> dict[str, str]:
    """Charter is up and keeps the policy of this version."""
    return {"status": "ok", "policy_version": policy.version}
