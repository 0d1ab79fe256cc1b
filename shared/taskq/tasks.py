"""The task registry: a task is a function, the pydantic model of its payload, and a policy.

Users point taskq at their own modules with TASKQ_TASK_MODULES; importing a module
registers its tasks on the default registry through the `@task` decorator.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel, ValidationError

from taskq.caps import CONCURRENCY_MAX, Cap
from taskq.config import MAX_ATTEMPTS_LIMIT
from taskq.errors import ConfigError, InvalidRequest, PermanentError, UnknownSchedule, UnknownTask
from taskq.log import logger
from taskq.models import TASK_NAME_PATTERN, Priority
from taskq.progress import AttemptReport, checked_progress
from taskq.scheduling.declared import PeriodicSchedule, ScheduleSpec, bind_schedules
from taskq.text import first_validation_error

_TASK_NAME_RE = re.compile(TASK_NAME_PATTERN)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int | None = None  # None: the deployment's TASKQ_DEFAULT_MAX_ATTEMPTS
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 300.0
    timeout_s: float = 20.0
    # Exceptions that retrying cannot cure; PermanentError is always among them.
    permanent: tuple[type[BaseException], ...] = ()
    # None: a claim lasts the whole timeout. Set: it lasts this long, and each progress
    # report or heartbeat from the task extends it (taskq.progress), so a worker that died
    # is noticed after heartbeat_s, not after the timeout.
    heartbeat_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_attempts is not None and not 1 <= self.max_attempts <= MAX_ATTEMPTS_LIMIT:
            raise ConfigError(f"max_attempts must be 1..{MAX_ATTEMPTS_LIMIT}")
        if self.backoff_base_s <= 0 or self.backoff_cap_s < self.backoff_base_s:
            raise ConfigError("backoff needs 0 < base <= cap")
        if self.timeout_s <= 0:
            raise ConfigError("timeout_s must be positive")
        if self.heartbeat_s is not None and not 1 <= self.heartbeat_s <= self.timeout_s:
            raise ConfigError("heartbeat_s must be between 1 s and the task's timeout_s")

    @property
    def lease_s(self) -> float:
        """How long a claim lasts before another worker may take the job."""
        return self.heartbeat_s if self.heartbeat_s is not None else self.timeout_s

    def is_permanent(self, exc: BaseException) -> bool:
        return isinstance(exc, (PermanentError, *self.permanent))


@dataclass(frozen=True)
class JobContext:
    """What a running task may know about its job."""

    job_id: str
    task: str
    attempt: int  # within the current budget (a redrive may reset it)
    max_attempts: int
    runs: int = 0  # every attempt the job ever started, across redrives
    report: AttemptReport | None = field(default=None, repr=False, compare=False)

    def progress(self, value: float | dict[str, Any], message: str | None = None) -> None:
        """Report how far the task is: a fraction 0..1, or a small JSON object. Returns at
        once (written at most once a second, the latest value kept) and, for a task with
        heartbeat_s, extends its claim. Callable from plain and async tasks."""
        progress = checked_progress(value, message)
        if self.report is not None:
            self.report.progress(progress)

    def log(self, message: str) -> None:
        """A line for GET /jobs/{id}/logs (and CloudWatch, with job_id and attempt)."""
        logger.info(str(message), extra={"task_log": True})
        if self.report is not None:
            self.report.log(str(message))

    def heartbeat(self) -> None:
        """Extend the claim of a task with heartbeat_s without reporting progress."""
        if self.report is not None:
            self.report.heartbeat()


TaskFn = Callable[[Any, JobContext], Any]  # plain, or `async def` (then it returns an awaitable)


@dataclass(frozen=True)
class Task:
    name: str
    fn: TaskFn
    payload_model: type[BaseModel]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    schedules: tuple[PeriodicSchedule, ...] = ()  # periodic fires (taskq.scheduling)
    priority: Priority = Priority.DEFAULT  # its jobs' queue unless a submit says otherwise
    cap: Cap | None = None  # at most this many attempts at once (taskq.caps)

    def parse(self, payload: Any) -> BaseModel:
        """Validate a payload as the JSON it is, naming the offending field in the error.

        Strict JSON mode: what the payload schema (GET /tasks) says is what passes. Lax
        Python mode would take `true` or `"3"` for an integer and 5 for a string, values a
        client's own schema validation refuses. JSON Schema's integer includes 3.0, which
        strict mode would not: whole floats are sent as integers."""
        try:
            text = json.dumps(_whole_numbers(payload), separators=(",", ":"), ensure_ascii=False)
            return self.payload_model.model_validate_json(text, strict=True)
        except ValidationError as exc:
            where, message = first_validation_error(exc, "payload")
            raise InvalidRequest(f"{where}: {message}", field=where) from None

    @property
    def is_async(self) -> bool:
        """`async def` tasks run on the worker's event loop; plain ones in its thread pool."""
        return inspect.iscoroutinefunction(self.fn)

    def schema(self) -> dict[str, Any]:
        return self.payload_model.model_json_schema()


def _whole_numbers(value: Any) -> Any:
    """`value` with every whole float (3.0) as an int (3), as JSON Schema reads numbers."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


class TaskRegistry:
    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def task(
        self,
        name: str | None = None,
        *,
        payload: type[BaseModel] | None = None,
        max_attempts: int | None = None,
        backoff_base_s: float = 2.0,
        backoff_cap_s: float = 300.0,
        timeout_s: float = 20.0,
        permanent: tuple[type[BaseException], ...] = (),
        schedule: ScheduleSpec = None,
        schedule_tz: str = "UTC",
        schedule_payload: dict[str, Any] | None = None,
        schedule_overlap: bool = True,
        priority: str = Priority.DEFAULT,
        concurrency: int | None = None,
        concurrency_key: str | None = None,
        heartbeat_s: float | None = None,
    ) -> Callable[[TaskFn], TaskFn]:
        """Register `fn(payload, ctx)` (plain or `async def`) as a task. The payload
        model defaults to fn's annotation. `schedule` makes it periodic: an EventBridge
        expression (with `schedule_tz`, `schedule_payload`, `schedule_overlap`), or
        several `Schedule(...)`s. `priority`: "high", "default" or "low", the queue its
        jobs wait in unless a submit names another. `concurrency`: at most this many of its
        attempts run at once across all workers (per value of the payload field
        `concurrency_key`, if given). `heartbeat_s`: the claim lasts this long and each
        `ctx.progress`/`ctx.heartbeat` extends it (the task then must report that often)."""

        def register(fn: TaskFn) -> TaskFn:
            task_name = name or fn.__name__
            try:
                queue_priority = Priority(priority)
            except ValueError:
                raise ConfigError(
                    f"task {task_name!r}: priority must be one of "
                    f"{', '.join(p.value for p in Priority)}, not {priority!r}"
                ) from None
            model = payload or _payload_annotation(fn)
            policy = RetryPolicy(
                max_attempts, backoff_base_s, backoff_cap_s, timeout_s, permanent, heartbeat_s
            )
            cap = _cap(task_name, model, concurrency, concurrency_key)
            unscheduled = Task(task_name, fn, model, policy, priority=queue_priority, cap=cap)
            schedules = bind_schedules(
                task_name,
                schedule,
                tz=schedule_tz,
                payload=schedule_payload,
                overlap=schedule_overlap,
                check_payload=unscheduled.parse,
            )
            self.add(replace(unscheduled, schedules=schedules))
            return fn

        return register

    def add(self, task: Task) -> None:
        if not _TASK_NAME_RE.match(task.name):
            raise ConfigError(f"invalid task name {task.name!r}")
        existing = self._tasks.get(task.name)
        if existing is not None and existing.fn is not task.fn:
            raise ConfigError(f"task {task.name!r} is registered twice")
        taken = {s.name: s.task for s in self.schedules() if s.task != task.name}
        for schedule in task.schedules:
            if schedule.name in taken:
                raise ConfigError(
                    f"schedule {schedule.name!r} of task {task.name!r} is also a schedule of "
                    f"task {taken[schedule.name]!r}: name one of them differently"
                )
        self._tasks[task.name] = task

    def schedules(self) -> list[PeriodicSchedule]:
        """Every periodic schedule of every registered task, by name."""
        found = [s for t in self._tasks.values() for s in t.schedules]
        return sorted(found, key=lambda s: s.name)

    def schedule(self, name: str) -> PeriodicSchedule:
        for found in self.schedules():
            if found.name == name:
                return found
        raise UnknownSchedule(f"unknown schedule {name!r}", field="name")

    def get(self, name: str) -> Task:
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTask(f"unknown task {name!r}", field="task") from None

    def __iter__(self) -> Iterator[Task]:
        return iter(sorted(self._tasks.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._tasks)


def _cap(task: str, model: type[BaseModel], concurrency: int | None, key: str | None) -> Cap | None:
    if concurrency is None:
        if key is not None:
            raise ConfigError(f"task {task!r}: concurrency_key needs concurrency=N")
        return None
    if isinstance(concurrency, bool) or not isinstance(concurrency, int):
        raise ConfigError(f"task {task!r}: concurrency must be a whole number")
    if not 1 <= concurrency <= CONCURRENCY_MAX:
        raise ConfigError(f"task {task!r}: concurrency must be 1..{CONCURRENCY_MAX}")
    if key is not None and key not in model.model_fields:
        raise ConfigError(
            f"task {task!r}: concurrency_key {key!r} is not a field of {model.__name__}"
        )
    return Cap(concurrency, key)


def _payload_annotation(fn: TaskFn) -> type[BaseModel]:
    params = list(inspect.signature(fn, eval_str=True).parameters.values())
    hint = params[0].annotation if params else inspect.Parameter.empty
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return hint
    raise ConfigError(f"task {fn.__name__}: annotate its first parameter with a pydantic model")


default_registry = TaskRegistry()
task = default_registry.task


def load_tasks(modules: Iterable[str], registry: TaskRegistry = default_registry) -> TaskRegistry:
    """Import the configured task modules; their `@task` decorators fill the registry.

    The functions call this at import time (Lambda's init), so every problem is a ConfigError
    whose one line names the module and the fix: it is what `make dev` prints when it stops
    and what a failed init shows on AWS. The cause stays chained for the traceback in the
    logs. A module that imports but registers no task is refused too: a name that points at
    a helper module would otherwise go unnoticed until its jobs fail as unknown tasks.
    """
    import os  # local: only this function needs them
    import traceback

    listed = "TASKQ_TASK_MODULES (the TaskModules parameter on AWS)"
    library = os.path.dirname(os.path.abspath(__file__))

    def where(exc: BaseException) -> str:
        """Where the import failed: the innermost frame outside importlib and taskq itself."""
        if isinstance(exc, SyntaxError) and exc.filename:
            return f" ({exc.filename}, line {exc.lineno})"
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename[:1] != "<"]
        mine = [f for f in frames if not os.path.abspath(f.filename).startswith(library)]
        frames = mine or frames
        return f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""

    def not_found(module: str, missing: str) -> str:
        if missing != module:
            return (
                f"package {missing!r} is not importable here: its folder must be on sys.path "
                "(the functions get tasks/ from TasksLayer)"
            )
        if module.startswith("tasks."):
            path = module.removeprefix("tasks.").replace(".", "/")
            return f"there is no tasks/{path}.py; create it or correct {listed}"
        last = module.rpartition(".")[2]
        return (
            f"no such module; task modules go in the tasks/ package: move it to "
            f"tasks/{last}.py and list it as tasks.{last} in {listed}"
        )

    for module in modules:
        before = {t.name for t in registry}
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if missing and (module == missing or module.startswith(f"{missing}.")):
                why = not_found(module, missing)
            else:
                why = (
                    f"it imports {missing!r}, which is not installed{where(exc)}; add it to "
                    "tasks/requirements.txt (for make dev also: .venv/bin/pip install -r "
                    "tasks/requirements.txt)"
                )
            raise ConfigError(f"cannot import task module {module!r}: {why}") from exc
        except Exception as exc:
            raise ConfigError(
                f"cannot import task module {module!r}: {type(exc).__name__}: {exc}{where(exc)}"
            ) from exc
        found = {t.name for t in registry} - before  # registered while importing it ...
        # ... or defined there (a second load, or a module imported earlier by another)
        found |= {
            t.name for t in registry
            if f"{getattr(t.fn, '__module__', '')}.".startswith(f"{module}.")
        }  # fmt: skip
        if not found:
            raise ConfigError(
                f"task module {module!r} registers no task: decorate its task functions with "
                f"@task (from taskq.tasks import task), or take it out of {listed}"
            )
    if not len(registry):
        raise ConfigError("no tasks registered: check TASKQ_TASK_MODULES")
    return registry
