from __future__ import annotations

import pytest
from pydantic import BaseModel

from taskq.config import Settings
from taskq.errors import ConfigError, InvalidRequest, PermanentError, UnknownTask
from taskq.tasks import JobContext, RetryPolicy, TaskRegistry, load_tasks


class Payload(BaseModel):
    n: int


def test_decorator_registers_with_the_annotated_model() -> None:
    registry = TaskRegistry()

    @registry.task(max_attempts=4, timeout_s=3)
    def double(payload: Payload, ctx: JobContext) -> int:
        return payload.n * 2

    task = registry.get("double")
    assert task.payload_model is Payload
    assert task.policy.max_attempts == 4
    assert task.fn(task.parse({"n": 2}), JobContext("j", "double", 1, 4)) == 4
    assert task.schema()["properties"]["n"]["type"] == "integer"


def test_invalid_payload_names_the_field() -> None:
    registry = TaskRegistry()

    @registry.task(name="t")
    def t(payload: Payload, ctx: JobContext) -> None:
        return None

    with pytest.raises(InvalidRequest) as info:
        registry.get("t").parse({"n": "not a number"})
    assert info.value.field == "payload.n"


def test_unknown_task() -> None:
    with pytest.raises(UnknownTask):
        TaskRegistry().get("nope")


def test_a_task_needs_a_model_annotation() -> None:
    with pytest.raises(ConfigError):

        @TaskRegistry().task()
        def bare(payload, ctx):  # type: ignore[no-untyped-def]
            return None


def test_duplicate_names_are_refused() -> None:
    registry = TaskRegistry()

    @registry.task(name="same")
    def one(payload: Payload, ctx: JobContext) -> None: ...

    with pytest.raises(ConfigError, match="twice"):

        @registry.task(name="same")
        def two(payload: Payload, ctx: JobContext) -> None: ...


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"max_attempts": 11}, {"backoff_base_s": 0}, {"timeout_s": 0},
     {"backoff_base_s": 10, "backoff_cap_s": 5}],
)  # fmt: skip
def test_policy_limits(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_permanent_errors() -> None:
    policy = RetryPolicy(permanent=(KeyError,))
    assert policy.is_permanent(PermanentError("x"))
    assert policy.is_permanent(KeyError("x"))
    assert not policy.is_permanent(RuntimeError("x"))


def test_loading_configured_modules() -> None:
    registry = load_tasks(["taskq.demo_tasks"])
    assert {t.name for t in registry} >= {"echo", "sleep", "fail"}
    with pytest.raises(ConfigError, match="cannot import"):
        load_tasks(["no_such_module_here"])


def test_settings_from_env() -> None:
    env = {"TASKQ_TABLE": "t", "TASKQ_QUEUE_URL": "q", "TASKQ_DLQ_URL": "d", "TASKQ_AUTH": "off"}
    settings = Settings.from_env(env | {"TASKQ_TASK_MODULES": "a, b", "AWS_REGION": "eu-west-1"})
    assert settings.task_modules == ("a", "b")
    assert settings.region == "eu-west-1"
    with pytest.raises(ConfigError, match="TASKQ_TABLE"):
        Settings.from_env({"TASKQ_QUEUE_URL": "q", "TASKQ_DLQ_URL": "d"})
    with pytest.raises(ConfigError, match="integer"):
        Settings.from_env(env | {"TASKQ_RETENTION_DAYS": "soon"})
    with pytest.raises(ConfigError, match="between"):
        Settings.from_env(env | {"TASKQ_DEFAULT_MAX_ATTEMPTS": "50"})
    assert not settings.auth_required


def test_authentication_is_required_unless_turned_off() -> None:
    env = {"TASKQ_TABLE": "t", "TASKQ_QUEUE_URL": "q", "TASKQ_DLQ_URL": "d"}
    with pytest.raises(ConfigError, match="TASKQ_KEYS_TABLE"):
        Settings.from_env(env)
    assert Settings.from_env(env | {"TASKQ_KEYS_TABLE": "k"}).auth_required
    with pytest.raises(ConfigError, match="TASKQ_AUTH"):
        Settings.from_env(env | {"TASKQ_AUTH": "maybe"})


class Strict(BaseModel):
    n: int = 0
    s: str = ""


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"n": True}, "payload.n"), ({"n": "3"}, "payload.n"), ({"s": 5}, "payload.s")],
)
def test_payloads_are_checked_as_strict_json(payload: dict[str, object], field: str) -> None:
    """What the payload schema says passes; lax coercions (true -> 1, "3" -> 3) do not."""
    registry = TaskRegistry()

    @registry.task()
    def strict(p: Strict, ctx: JobContext) -> None:
        return None

    task = registry.get("strict")
    assert task.parse({"n": 3, "s": "x"}) == Strict(n=3, s="x")
    with pytest.raises(InvalidRequest) as refused:
        task.parse(payload)
    assert refused.value.field == field
