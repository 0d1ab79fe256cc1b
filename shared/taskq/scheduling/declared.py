"""Periodic schedules as a task declares them: `@task(schedule="rate(5 minutes)")`.

Checked when the task module loads, so a malformed expression, an unknown time zone, a
payload the task would refuse or two schedules with one name stop the deployment's init
with one line, not a job failing at 3 a.m.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from taskq.errors import ConfigError, InvalidRequest
from taskq.models import TASK_NAME_PATTERN
from taskq.scheduling.expression import ScheduleExpression

_NAME_RE = re.compile(TASK_NAME_PATTERN)
CATCH_UP_DEFAULT_S = 3600
CATCH_UP_MAX_S = 30 * 86400


@dataclass(frozen=True)
class Schedule:
    """One schedule of a task, for tasks with several (or options beyond the shorthand).

    - `expression`: EventBridge syntax, `rate(5 minutes)` or `cron(0 3 * * ? *)`;
    - `tz`: the IANA time zone a cron expression reads in (rate ignores it);
    - `payload`: the payload of every job it fires (checked against the task's model);
    - `name`: how operators name it (`taskq schedules pause NAME`); the task's name by
      default, required when a task has several;
    - `overlap`: False skips a fire while the previous fire's job is unfinished;
    - `catch_up_s`: after the clock was down, the latest missed fire this recent still
      runs (once); older missed fires are skipped.
    """

    expression: str
    tz: str = "UTC"
    payload: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    overlap: bool = True
    catch_up_s: int = CATCH_UP_DEFAULT_S


@dataclass(frozen=True)
class PeriodicSchedule:
    """A schedule bound to its task, checked: what the clock fires and operators see."""

    name: str
    task: str
    expression: ScheduleExpression
    payload: dict[str, Any]
    overlap: bool
    catch_up_s: int


ScheduleSpec = str | Schedule | Sequence[str | Schedule] | None


def bind_schedules(
    task: str,
    spec: ScheduleSpec,
    *,
    tz: str = "UTC",
    payload: dict[str, Any] | None = None,
    overlap: bool = True,
    check_payload: Any = None,
) -> tuple[PeriodicSchedule, ...]:
    """The task's schedules, checked. `check_payload(payload)` raises InvalidRequest for a
    payload the task refuses (it is the task's own parse)."""
    if spec is None:
        return ()
    items = [spec] if isinstance(spec, str | Schedule) else list(spec)
    declared = [
        item if isinstance(item, Schedule)
        else Schedule(item, tz=tz, payload=dict(payload or {}), overlap=overlap)
        for item in items
    ]  # fmt: skip
    if len(declared) > 1 and any(d.name is None for d in declared):
        raise ConfigError(
            f"task {task!r} has {len(declared)} schedules: give each a name "
            "(Schedule(expression, name=...))"
        )
    bound = [_bind(task, d, check_payload) for d in declared]
    names = [b.name for b in bound]
    if len(set(names)) != len(names):
        raise ConfigError(f"task {task!r}: two schedules are named alike: {sorted(names)}")
    return tuple(bound)


def _bind(task: str, declared: Schedule, check_payload: Any) -> PeriodicSchedule:
    name = declared.name or task
    where = f"task {task!r}, schedule {name!r}"
    if not _NAME_RE.match(name):
        raise ConfigError(f"{where}: a schedule name is 1-64 of A-Z a-z 0-9 _ . - (a letter first)")
    if not isinstance(declared.catch_up_s, int) or not 0 <= declared.catch_up_s <= CATCH_UP_MAX_S:
        raise ConfigError(f"{where}: catch_up_s must be whole seconds, 0 to {CATCH_UP_MAX_S}")
    try:
        expression = ScheduleExpression.parse(declared.expression, declared.tz)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not isinstance(declared.payload, dict):
        raise ConfigError(f"{where}: schedule_payload must be a dict")
    if check_payload is not None:
        try:
            check_payload(declared.payload)
        except InvalidRequest as exc:
            raise ConfigError(f"{where}: its payload is refused by the task: {exc}") from None
    return PeriodicSchedule(
        name=name,
        task=task,
        expression=expression,
        payload=declared.payload,
        overlap=declared.overlap,
        catch_up_s=declared.catch_up_s,
    )
