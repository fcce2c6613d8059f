"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.policy.compiled import CompiledPolicy, compile_policy
from charter.policy.loader import load_policy
from charter.policy.schema import Policy

ROOT = Path(__file__).resolve().parents[1]
OMNI_YAML = ROOT / "policies" / "omni.yaml"
PUBLISHED_TEXT = ROOT.parent / "shared" / "policy" / "omni-privacy-policy.txt"


@pytest.fixture(scope="session")
def omni_policy() -> Policy:
    return load_policy(OMNI_YAML)


@pytest.fixture(scope="session")
def omni_compiled(omni_policy: Policy) -> CompiledPolicy:
    return compile_policy(omni_policy)


@pytest.fixture(scope="session")
def omni_text() -> str:
    return OMNI_YAML.read_text(encoding="utf-8")
