"""The policy as people and programs read it: the page, the compiled JSON, the data map."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from charter.web.deps import PolicyDep, RuntimeDep

router = APIRouter(tags=["policy"])


@router.get("/policy", response_class=HTMLResponse)
def policy_page(runtime: RuntimeDep) -> HTMLResponse:
    """The human-readable policy, rendered from its declaration."""
    return HTMLResponse(runtime.policy_page())


@router.get("/v1/policy")
def policy_json(policy: PolicyDep) -> dict[str, Any]:
    """The policy declaration in force, as JSON."""
    return policy.policy.model_dump(mode="json")


@router.get("/v1/datamap")
def datamap(policy: PolicyDep) -> dict[str, Any]:
    """Each category of personal data x the purposes that use it x its recipients x retention."""
    return {
        "policy_version": policy.version,
        "categories": [entry.as_json() for entry in policy.datamap],
    }
