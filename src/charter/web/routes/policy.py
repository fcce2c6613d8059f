"""The policy as people and programs read it: the page, the compiled JSON, the data map."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from charter.policy.schema import Policy
from charter.web.deps import PolicyDep, RuntimeDep
from charter.web.headers import inline_sources, page_policy

router = APIRouter(tags=["policy"])


class DatamapRetention(BaseModel):
    keep: str = Field(description="How the policy keeps this category (its retention rule).")
    months: int | None = Field(description="For how many months, where the rule counts them.")


class DatamapEntry(BaseModel):
    category: str = Field(description="A category of personal data the policy names.")
    label: str = Field(description="The category in the policy's words.")
    purposes: list[str] = Field(description="The purposes that use it.")
    recipients: list[str] = Field(description="Who receives it.")
    retention: DatamapRetention


class Datamap(BaseModel):
    policy_version: str
    categories: list[DatamapEntry]


@router.get("/policy", response_class=HTMLResponse)
def policy_page(runtime: RuntimeDep) -> HTMLResponse:
    """The human-readable policy, rendered from its declaration."""
    page = runtime.policy_page()
    # The page carries its stylesheet inline (it is also a standalone file, `charter policy
    # render`): allowed by its hash, and nothing else inline.
    policy = page_policy(**inline_sources(page))
    return HTMLResponse(page, headers={"Content-Security-Policy": policy})


@router.get("/v1/policy", response_model=Policy)
def policy_json(policy: PolicyDep) -> Policy:
    """The policy declaration in force, as JSON."""
    return policy.policy


@router.get("/v1/datamap", response_model=Datamap)
def datamap(policy: PolicyDep) -> dict[str, Any]:
    """Each category of personal data x the purposes that use it x its recipients x retention."""
    return {
        "policy_version": policy.version,
        "categories": [entry.as_json() for entry in policy.datamap],
    }
