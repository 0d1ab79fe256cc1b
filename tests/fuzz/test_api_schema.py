"""Schemathesis against the API's own OpenAPI schema, with every check it has.

Not only "no 5xx": each answer's status must be documented for its operation, its content
type, headers and body must fit the schema, schema-valid requests must be accepted and
schema-invalid ones (negative mode) refused with a 4xx, and a keyed operation that succeeds
with the key must refuse the same request without it or with a wrong one. Each operation
runs with a key and without, in positive and negative mode; the example counts keep the run
well under a minute on two cores. (Methods outside the schema, 405 with its Allow header,
are schemathesis's coverage phase, not run here: tests/unit/test_api.py checks them.)

The app runs in-process over moto's in-process mock (fast enough for hundreds of cases);
the same app runs behind the real gateway in tests/faults/test_hostile.py. Schemathesis's
pytest plugin does not run under this pytest, so each operation's strategy drives
Hypothesis here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from infra.provision import Resources
from taskq.api import create_app
from taskq.auth import KeyStore
from taskq.config import Settings
from taskq.models import DELAY_MAX_S
from taskq.tasks import TaskRegistry
from taskq.wiring import build, services

# (mode, with a key?) -> max examples per operation: about 250 requests in all, 15-20 s on
# an idle two-core machine (explored at 150 each without a failure).
EXAMPLES = {
    (GenerationMode.POSITIVE, True): 20,
    (GenerationMode.NEGATIVE, True): 10,
    (GenerationMode.POSITIVE, False): 8,
    (GenerationMode.NEGATIVE, False): 5,
}


def make_schema(
    settings_: Settings, aws: Resources, dynamodb: Any, *, catalogue: bool = True
) -> tuple[Any, str]:
    """The app with keys required, the schema it serves (with its task catalogue, or as
    served), and a key."""
    config = replace(settings_, auth_required=True, keys_table=aws.tables["ApiKeysTable"])
    svc = build(config)
    app = create_app()
    app.dependency_overrides[services] = lambda: svc
    _, key = KeyStore(aws.tables["ApiKeysTable"], dynamodb).create("fuzz", "schemathesis")
    served = app.openapi()
    schema = schemathesis.openapi.from_dict(
        with_task_catalogue(served, svc.registry) if catalogue else served
    )
    schema.app = app
    return schema, key


def with_task_catalogue(served: dict[str, Any], registry: TaskRegistry) -> dict[str, Any]:
    """The served schema with each job body narrowed to the registered tasks' payloads.

    The served schema names tasks by pattern only: which tasks exist and what their payloads
    need is what GET /tasks tells a keyed caller (/openapi.json is public). Narrowed the
    same way here, a schema-valid job is one the API must accept, so schemathesis's
    positive_data_acceptance check holds for the submit routes too.

    Positive mode only: a task's payload model validates in pydantic's lax mode (the demo
    sleep task takes "seconds": true as 1.0 and "5" as 5.0), which its JSON schema does not
    say, so negative mode against these payload schemas fails on the registry's tasks
    (taskq.tasks), not on the API's own rules. Negative mode uses the schema as served.
    """
    schema = copy.deepcopy(served)
    components = schema["components"]["schemas"]
    for name in ("JobRequest", "BatchItem"):
        body = components.pop(name)
        variants = []
        for task in registry:
            payload = task.schema()
            variant = copy.deepcopy(body)
            variant["properties"]["task"] = {"type": "string", "enum": [task.name]}
            variant["properties"]["payload"] = payload
            variant["required"] = ["task", "payload"] if payload.get("required") else ["task"]
            variants.append(variant)
        components[name] = {"oneOf": variants}
    return schema


def operations(schema: Any) -> list[Any]:
    ops = [result.ok() for result in schema.get_all_operations()]
    assert len(ops) >= 9  # every route is in the schema
    return ops


def excluded(case: Any) -> list[Callable[..., Any]]:
    """A cursor is opaque: only one the API handed out is valid, and run_at is at most 365
    days from now, which no schema can say (it moves with the clock)."""
    beyond = "cursor" in (case.query or {}) or _too_far(case.body)
    return [positive_data_acceptance] if beyond else []


def _too_far(body: Any) -> bool:
    items = body.get("jobs", [body]) if isinstance(body, dict) else []
    limit = datetime.now(UTC) + timedelta(seconds=DELAY_MAX_S)
    for item in items if isinstance(items, list) else []:
        run_at = item.get("run_at") if isinstance(item, dict) else None
        try:
            if run_at and datetime.fromisoformat(run_at) > limit:
                return True
        except (TypeError, ValueError):
            continue
    return False


def fuzz(operation: Any, mode: GenerationMode, check: Callable[[Any], None], n: int) -> None:
    """Run `check` on `n` cases generated for `operation`."""
    fuzzed = settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))
    try:
        fuzzed(given(case=operation.as_strategy(generation_mode=mode))(check))()
    except Unsatisfiable:
        # Nothing to negate: no parameter, no body, no key (GET /healthz).
        if mode is GenerationMode.POSITIVE or any(operation.iter_parameters()) or operation.body:
            raise


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_with_a_key(
    settings: Settings, aws: Resources, dynamodb: Any, mode: GenerationMode
) -> None:
    schema, key = make_schema(settings, aws, dynamodb, catalogue=mode is GenerationMode.POSITIVE)
    answered: set[str] = set()

    def check(case: Any) -> None:
        response = case.call_and_validate(
            headers={"Authorization": f"Bearer {key}"}, excluded_checks=excluded(case)
        )
        if response.status_code < 300:
            answered.add(case.operation.label)

    for operation in operations(schema):
        fuzz(operation, mode, check, EXAMPLES[mode, True])
    if mode is GenerationMode.POSITIVE:
        # Not only refusals were tested: every operation a made-up id cannot send to a 404
        # (submits included, thanks to the catalogue) was answered with a success too.
        wanted = {op.label for op in operations(schema) if not any(op.path_parameters)}
        assert wanted <= answered, wanted - answered


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_without_a_key(
    settings: Settings, aws: Resources, dynamodb: Any, mode: GenerationMode
) -> None:
    schema, _ = make_schema(settings, aws, dynamodb, catalogue=mode is GenerationMode.POSITIVE)

    def check(case: Any) -> None:
        response = case.call_and_validate(excluded_checks=excluded(case))
        if mode is GenerationMode.POSITIVE and case.path != "/healthz":
            assert response.status_code == 401, (case.path, response.status_code)

    for operation in operations(schema):
        fuzz(operation, mode, check, EXAMPLES[mode, False])
