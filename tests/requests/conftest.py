"""Keys the request tests call with: an OMNI service's and a privacy officer's."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import bearer


@pytest.fixture
def service(make_key: Callable[..., str]) -> dict[str, str]:
    return bearer(make_key("service_client"))


@pytest.fixture
def officer(make_key: Callable[..., str]) -> dict[str, str]:
    return bearer(make_key("privacy_officer"))
