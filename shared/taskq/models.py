"""The job, its status and history, and the shapes that cross the HTTP and SQS boundaries."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"
TASK_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$"
# A listing cursor is URL-safe base64 without padding (taskq.store.codec makes it); the
# pattern only says which strings can be one: a cursor is valid only as it was handed out.
CURSOR_PATTERN = r"^[A-Za-z0-9_\-]+$"
DELAY_MAX_S = 365 * 86400  # the furthest a job may be scheduled ahead (delay_s or run_at)
PAYLOAD_DEPTH_MAX = 32  # levels of objects and arrays in a payload, the payload itself first
_JOB_ID_RE = re.compile(JOB_ID_PATTERN)
DEFAULT_TENANT = "default"  # every job's tenant while authentication is off

JobId = Annotated[str, StringConstraints(pattern=JOB_ID_PATTERN)]
TaskName = Annotated[str, StringConstraints(pattern=TASK_NAME_PATTERN)]


def _json_integer(value: Any) -> Any:
    """JSON Schema's "integer": a number without a fraction (3.0 too), never true or "3",
    which pydantic's lax int would take as 1 and 3 though the schema says integer."""
    if isinstance(value, bool | str | bytes):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


# The bounds before the validator: after it, pydantic writes them as ge/le, not JSON Schema's
# minimum/maximum, and the OpenAPI schema would lose them.
AttemptBudget = Annotated[int, Field(ge=1, le=10), BeforeValidator(_json_integer)]
DelaySeconds = Annotated[int, Field(ge=0, le=DELAY_MAX_S), BeforeValidator(_json_integer)]


def _rfc3339_text(value: Any) -> Any:
    """run_at is RFC 3339 text with an offset; pydantic would also take a bare number as
    epoch seconds, which a client cannot tell from a mistake."""
    if not isinstance(value, str | datetime):
        raise PydanticCustomError(
            "datetime_type", "Input should be an RFC 3339 date-time with an offset"
        )
    return value


RunAt = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_text),
    Field(description="RFC 3339 with an offset, e.g. 2027-01-31T09:00:00+01:00"),
]


_IDEMPOTENCY_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN)
IDEMPOTENCY_KEY_RULE = "1-128 characters of A-Z a-z 0-9 . _ : -"


def is_job_id(value: str) -> bool:
    return bool(_JOB_ID_RE.match(value))


def is_idempotency_key(value: str) -> bool:
    """The one check of an idempotency key, for the API's header and the CLI's option."""
    return bool(_IDEMPOTENCY_KEY_RE.fullmatch(value))


class Status(StrEnum):
    SCHEDULED = "scheduled"  # delayed: waits for its run_at before anyone may claim it
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Priority(StrEnum):
    """Which queue a job waits in: each has its own share of the workers (weighted, not
    strict: low keeps moving while high has room of its own)."""

    HIGH = "high"
    DEFAULT = "default"
    LOW = "low"


TERMINAL: frozenset[Status] = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})


class Event(BaseModel):
    """One entry of a job's history: what happened, on which attempt, when."""

    model_config = ConfigDict(frozen=True)

    kind: str = Field(description="the status entered, or an action such as 'requeued'")
    attempt: int
    at: datetime
    error: str | None = None
    delay_s: int | None = Field(default=None, description="backoff before the next attempt")
    detail: str | None = None


class Progress(BaseModel):
    """The latest progress a running task reported with `ctx.progress` (kept after it ends)."""

    fraction: float | None = Field(default=None, ge=0, le=1, description="0 to 1, when given")
    detail: dict[str, Any] | None = Field(default=None, description="a small JSON object")
    message: str | None = None
    attempt: int = Field(description="the attempt that reported it")
    at: datetime


class Job(BaseModel):
    """A job as stored. Immutable: every change is a new version read back from the store."""

    model_config = ConfigDict(frozen=True)

    id: str
    task: str
    payload: Any
    status: Status
    attempt: int = Field(description="attempts started so far; the claim's fencing token")
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    tenant: str = DEFAULT_TENANT
    result: Any = None
    error: str | None = None
    lease_until: float | None = Field(default=None, description="epoch seconds a claim lasts")
    run_after: float | None = Field(default=None, description="epoch seconds of the next retry")
    expires_at: int | None = Field(default=None, description="TTL, epoch seconds")
    idempotency_key: str | None = None
    request_hash: str | None = None
    events: tuple[Event, ...] = ()
    # The DLQ hand-off of a failed job: the token its one DLQ message carries, until when
    # its sender holds it (its invocation's deadline), and whether the message was sent.
    handoff: str | None = None
    handoff_until: float | None = None
    dead_lettered: bool = False
    run_at: float | None = Field(default=None, description="epoch seconds it was asked to run")
    schedule: str | None = Field(default=None, description="the periodic schedule that fired it")
    priority: Priority = Priority.DEFAULT
    wakes_by_clock: bool = False  # delayed past SQS's reach: the clock sends its message
    progress: Progress | None = None


# --- HTTP shapes ---------------------------------------------------------------


class _JobFields(BaseModel):
    """What a job is made of, as a client sends it (one job, or one item of a batch)."""

    # delay_s or run_at, not both: said in the schema too, so clients' validators know it.
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"not": {"required": ["delay_s", "run_at"]}}
    )

    task: TaskName = Field(description="name of a registered task (see GET /tasks)")
    payload: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "the task's input: JSON numbers are finite (no NaN or Infinity) and objects and"
            f" arrays nest at most {PAYLOAD_DEPTH_MAX} levels, the payload itself included"
        ),
    )
    max_attempts: AttemptBudget | None = Field(
        default=None, description="overrides the task's attempt budget"
    )
    delay_s: DelaySeconds | None = Field(
        default=None, description="run no sooner than this many seconds from now (not with run_at)"
    )
    run_at: RunAt | None = Field(
        default=None,
        description="run no sooner than this time, at most 365 days ahead; a past time runs now",
    )
    priority: Priority | None = Field(
        default=None, description="the queue it waits in; the task's own priority by default"
    )


class JobRequest(_JobFields):
    """What a client sends to POST /jobs, and what the CLI's submit builds: the payload is
    checked here, so both refuse what JSON cannot carry before anything stores it."""

    @field_validator("payload")
    @classmethod
    def _payload_is_json(cls, payload: dict[str, Any]) -> dict[str, Any]:
        if (found := payload_problem(payload)) is not None:
            where, kind, message = found
            # Raised as a ValidationError, pydantic roots `where` under "payload": the
            # error names the very value (payload.x.0.y), in the API's 422 and the CLI alike.
            error = InitErrorDetails(
                type=PydanticCustomError(kind, message), loc=where, input=_at(payload, where)
            )
            raise ValidationError.from_exception_data(cls.__name__, [error])
        return payload

    @model_validator(mode="after")
    def _one_time(self) -> JobRequest:
        """delay_s or run_at, not both; and run_at no further than delay_s may reach."""
        if self.delay_s is not None and self.run_at is not None:
            _refuse(self, "run_at", "delay_exclusive", "give delay_s or run_at, not both")
        if self.run_at is not None and self.run_at.timestamp() - time.time() > DELAY_MAX_S:
            _refuse(self, "run_at", "run_at_too_far", "must be at most 365 days from now")
        return self

    def run_at_epoch(self, now: float) -> float | None:
        """When the job may first run (None: at once, no time was asked). A past time runs
        at once and is kept as asked; one more than 365 days past reads as now, so no
        year-1 date reaches the store or a reply."""
        if self.run_at is not None:
            asked = self.run_at.timestamp()
            return asked if asked >= now - DELAY_MAX_S else now
        return None if self.delay_s is None else now + self.delay_s

    def timing(self) -> dict[str, Any]:
        """The time the client asked for, as it asked: part of an idempotent request's
        identity (delay_s, not the instant it resolves to, so a retried submit matches)."""
        if self.run_at is not None:
            return {"run_at": self.run_at.timestamp()}
        return {} if self.delay_s is None else {"delay_s": self.delay_s}


def _refuse(model: BaseModel, field: str, kind: str, message: str) -> None:
    error = InitErrorDetails(
        type=PydanticCustomError(kind, message), loc=(field,), input=getattr(model, field)
    )
    raise ValidationError.from_exception_data(type(model).__name__, [error])


class BatchItem(_JobFields):
    """One job of POST /jobs:batch; the idempotency key travels inside the item.

    Its payload is checked per item (the route builds a JobRequest of each), so one bad
    item is that item's 422, not the whole batch's.
    """

    idempotency_key: Annotated[str, StringConstraints(pattern=IDEMPOTENCY_KEY_PATTERN)] | None = (
        None
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[BatchItem] = Field(min_length=1, max_length=100)


class JobOut(BaseModel):
    """A job as the API shows it."""

    id: str
    task: str
    status: Status
    payload: Any
    attempts: int
    max_attempts: int
    result: Any = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    run_after: datetime | None = None
    expires_at: datetime | None = None
    run_at: datetime | None = Field(default=None, description="the time it was asked to run")
    schedule: str | None = Field(default=None, description="the periodic schedule that fired it")
    priority: Priority = Priority.DEFAULT
    progress: Progress | None = Field(default=None, description="the task's latest report")

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            task=job.task,
            status=job.status,
            payload=job.payload,
            attempts=job.attempt,
            max_attempts=job.max_attempts,
            result=job.result,
            error=job.error,
            created_at=job.created_at,
            updated_at=job.updated_at,
            run_after=_dt(job.run_after),
            expires_at=_dt(job.expires_at),
            run_at=_dt(job.run_at),
            schedule=job.schedule,
            priority=job.priority,
            progress=job.progress,
        )


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(default=None, description="pass as ?cursor= for the next page")


class BatchItemResult(BaseModel):
    index: int
    status: int = Field(description="202, or the HTTP status this item alone would have got")
    job: JobOut | None = None
    problem: dict[str, Any] | None = None


class BatchOut(BaseModel):
    accepted: int
    rejected: int
    items: list[BatchItemResult]


class LogLine(BaseModel):
    """One line a task wrote with `ctx.log`, or taskq's marker for the lines it dropped."""

    at: datetime
    attempt: int
    message: str


class LogPage(BaseModel):
    job_id: str
    lines: list[LogLine]
    next_cursor: str | None = Field(
        default=None,
        description="pass as ?after= for the lines after these; null when none are stored yet",
    )


class EventsOut(BaseModel):
    job_id: str
    events: list[Event]


class TaskInfo(BaseModel):
    name: str
    priority: Priority
    max_attempts: int
    timeout_s: float
    payload_schema: dict[str, Any]


class QueueMessage(BaseModel):
    """The SQS message body: the job id and the little the worker needs before the claim."""

    model_config = ConfigDict(extra="ignore")

    v: int = 1
    job_id: JobId
    task: TaskName


def payload_problem(payload: Any) -> tuple[tuple[str | int, ...], str, str] | None:
    """The first value of a payload JSON cannot carry: (where, error type, message).

    Python's json reads NaN, Infinity and -Infinity, which are not JSON: stored, they would
    come back as null. Nesting is bounded so no later step (hashing, storing, a task's own
    parsing) recurses without limit. The walk is iterative, so a deep payload cannot
    exhaust the stack here either.
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(payload, ())]
    while stack:
        value, where = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            spelled = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
            return where, "json_number", f"{spelled} is not a JSON number; send a finite one"
        items: Any = (
            value.items() if isinstance(value, dict)
            else enumerate(value) if isinstance(value, list | tuple)
            else None
        )  # fmt: skip
        if items is None:
            continue
        if len(where) >= PAYLOAD_DEPTH_MAX:
            return where, "json_depth", f"nested deeper than {PAYLOAD_DEPTH_MAX} levels"
        stack.extend((child, (*where, key)) for key, child in reversed(list(items)))
    return None


def _at(value: Any, where: tuple[str | int, ...]) -> Any:
    for key in where:
        value = value[key]
    return value


def _dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)
