"""Schemathesis against the API's own OpenAPI schema: no 5xx, every answer fits the schema.

The app runs in-process over moto's in-process mock (fast enough for hundreds of cases);
the same app runs behind the real gateway in the integration suite. Schemathesis's pytest
plugin does not run under this pytest, so each operation's strategy drives Hypothesis here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from infra.provision import Resources
from taskq.api import create_app
from taskq.auth import KeyStore
from taskq.config import Settings
from taskq.wiring import build, services

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
FUZZ_SMALL = settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))


def make_schema(settings_: Settings, aws: Resources, dynamodb: Any) -> tuple[Any, str]:
    config = replace(settings_, auth_required=True, keys_table=aws.tables["ApiKeysTable"])
    svc = build(config)
    app = create_app()
    app.dependency_overrides[services] = lambda: svc
    _, key = KeyStore(aws.tables["ApiKeysTable"], dynamodb).create("fuzz", "schemathesis")
    return schemathesis.openapi.from_asgi("/openapi.json", app), key


def operations(schema: Any) -> list[Any]:
    ops = [result.ok() for result in schema.get_all_operations()]
    assert len(ops) >= 9  # every route is in the schema
    return ops


def test_every_operation_with_a_key(settings: Settings, aws: Resources, dynamodb: Any) -> None:
    schema, key = make_schema(settings, aws, dynamodb)
    for operation in operations(schema):

        @FUZZ
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            # Which tasks exist and what their payloads need is the registry's business
            # (GET /tasks), not the schema's: a schema-valid unknown task is rightly a 422.
            case.call_and_validate(
                headers={"Authorization": f"Bearer {key}"},
                excluded_checks=[positive_data_acceptance],
            )

        check()


def test_every_operation_without_a_key(settings: Settings, aws: Resources, dynamodb: Any) -> None:
    schema, _ = make_schema(settings, aws, dynamodb)
    for operation in operations(schema):

        @FUZZ_SMALL
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call()
            assert response.status_code < 500
            if case.path != "/healthz":
                assert response.status_code == 401, (case.path, response.status_code)

        check()
