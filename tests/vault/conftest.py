"""Fixtures of the vault tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import bearer


@pytest.fixture
def service(make_key: Callable[[str], str]) -> dict[str, str]:
    """Headers of a `service_client`: the web back end that collects and uses data."""
    return bearer(make_key("service_client"))
