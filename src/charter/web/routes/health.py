"""`GET /healthz`: the service is up and its policy is loaded."""

from __future__ import annotations

from fastapi import APIRouter

from charter.web.deps import PolicyDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(policy: PolicyDep) -> dict[str, str]:
    return {"status": "ok", "policy_version": policy.version}
