"""The policy as people and programs read it: the page, the compiled JSON, the data map."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from charter.web.deps import PolicyDep, RuntimeDep
from charter.web.headers import inline_sources, page_policy

router = APIRouter(tags=["policy"])


@router.get("/policy", response_class=HTMLResponse)
def policy_page(runtime: RuntimeDep) -> HTMLResponse:
    """The human-readable policy, rendered from its declaration."""
    page = runtime.policy_page()
    # The page carries its stylesheet inline (it is also a standalone file, `charter policy
    # render`): allowed by its hash, and nothing else inline.
    policy = page_policy(**inline_sources(page))
    return HTMLResponse(page, headers={"Content-Security-Policy": policy})


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
