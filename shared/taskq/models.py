"""The job, its status and history, and the shapes that cross the HTTP and SQS boundaries."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"
TASK_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$"
_JOB_ID_RE = re.compile(JOB_ID_PATTERN)
DEFAULT_TENANT = "default"  # every job's tenant while authentication is off

JobId = Annotated[str, StringConstraints(pattern=JOB_ID_PATTERN)]
TaskName = Annotated[str, StringConstraints(pattern=TASK_NAME_PATTERN)]


_IDEMPOTENCY_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN)
IDEMPOTENCY_KEY_RULE = "1-128 characters of A-Z a-z 0-9 . _ : -"


def is_job_id(value: str) -> bool:
    return bool(_JOB_ID_RE.match(value))


def is_idempotency_key(value: str) -> bool:
    """The one check of an idempotency key, for the API's header and the CLI's option."""
    return bool(_IDEMPOTENCY_KEY_RE.fullmatch(value))


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


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
    # The DLQ hand-off of a failed job: the token its one DLQ message carries, when it was
    # taken, and whether the message was sent (a later duplicate is then acknowledged).
    handoff: str | None = None
    handoff_at: float | None = None
    dead_lettered: bool = False


# --- HTTP shapes ---------------------------------------------------------------


class JobRequest(BaseModel):
    """What a client sends to POST /jobs."""

    model_config = ConfigDict(extra="forbid")

    task: TaskName = Field(description="name of a registered task (see GET /tasks)")
    payload: dict[str, Any] = Field(default_factory=dict, description="the task's input")
    max_attempts: int | None = Field(
        default=None, ge=1, le=10, description="overrides the task's attempt budget"
    )


class BatchItem(JobRequest):
    """One job of POST /jobs:batch; the idempotency key travels inside the item."""

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


class EventsOut(BaseModel):
    job_id: str
    events: list[Event]


class TaskInfo(BaseModel):
    name: str
    max_attempts: int
    timeout_s: float
    payload_schema: dict[str, Any]


class QueueMessage(BaseModel):
    """The SQS message body: the job id and the little the worker needs before the claim."""

    model_config = ConfigDict(extra="ignore")

    v: int = 1
    job_id: JobId
    task: TaskName


def _dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)
