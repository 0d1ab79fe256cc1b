"""Every error taskq raises, under one root so callers can catch them all.

The HTTP mapping (status codes, problem+json) lives with the API, not here.
"""

from __future__ import annotations


class TaskqError(Exception):
    """Root of all taskq errors."""


class ConfigError(TaskqError):
    """The environment does not describe a usable taskq deployment."""


class UsageError(TaskqError):
    """The command line asks for something that cannot work (the CLI exits 2)."""


# --- the caller asked for something wrong -----------------------------------


class InvalidRequest(TaskqError):
    """Input that can never succeed as given (bad id, cursor, key, payload)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownTask(InvalidRequest):
    """The job names a task that no registered module defines."""


class UnknownSchedule(InvalidRequest):
    """An operator named a schedule that no registered task declares."""


class PayloadTooLarge(InvalidRequest):
    """The job would not fit in DynamoDB's item or SQS's message limits."""


class Unauthorized(TaskqError):
    """No API key, or one that is malformed, unknown or revoked (all answered alike)."""


class JobNotFound(TaskqError):
    """No such job, or it expired (TTL) and only awaits DynamoDB's lazy delete."""


class Conflict(TaskqError):
    """The request is well-formed but the job's state does not allow it."""


class InvalidTransition(Conflict):
    """A status change whose precondition failed (someone else changed the job first)."""

    def __init__(self, job_id: str, transition: str, current: str | None) -> None:
        super().__init__(f"cannot {transition} job {job_id}: it is {current or 'missing'}")
        self.job_id = job_id
        self.transition = transition
        self.current = current


class IdempotencyConflict(Conflict):
    """The idempotency key was already used with a different request body."""


# --- raised by task code to steer the worker ----------------------------------


class TaskFailure(TaskqError):
    """Base for errors a task raises on purpose."""


class RetryableError(TaskFailure):
    """Try the job again later, if attempts remain."""


class PermanentError(TaskFailure):
    """Retrying cannot help: fail the job now."""


class TaskTimeout(TaskFailure):
    """The task ran past its own timeout (treated as retryable)."""


class ResultRejected(TaskFailure):
    """The task returned something taskq cannot store (not JSON, or too large)."""


# --- the backend misbehaved ---------------------------------------------------


class BackendError(TaskqError):
    """DynamoDB or SQS failed in a way retries inside botocore did not cure."""
