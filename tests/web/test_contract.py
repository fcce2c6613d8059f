"""The OpenAPI document is the contract (issue 9): schemathesis generates requests for every
operation of /openapi.json, with a privacy officer's key and with none, and every answer must
be one the document lists, in the body it documents, and never a 5xx."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import BACKEND, bearer

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite", reason="the contract does not depend on the database: run on SQLite"
)


# What the document promises of every answer. Not schemathesis's `positive_data_acceptance`:
# a request can fit the schema and still be refused for a rule the schema cannot state (no
# visitor cookie, a consent receipt for another topic), with a documented status and code.
# Per operation and run: four runs over about twenty operations make some 1,500 requests.
EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def operations(app: FastAPI) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=str)
@pytest.mark.parametrize("keyed", [True, False], ids=["officer-key", "no-key"])
def test_every_answer_is_one_the_document_lists(
    app: FastAPI,
    make_key: Callable[[str], str],
    keyed: bool,
    mode: schemathesis.GenerationMode,
) -> None:
    """Requests that fit the document (positive) and requests that break it (negative)."""
    headers = bearer(make_key("privacy_officer")) if keyed else {}
    failures = []
    for operation in operations(app):

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except Unsatisfiable:
            # Nothing to break: an operation without parameters or body has no negative case.
            if mode is not schemathesis.GenerationMode.NEGATIVE:
                raise
        except BaseException as exc:  # noqa: BLE001 - schemathesis raises a group; all are reported
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert failures == [], "\n\n".join(failures)
