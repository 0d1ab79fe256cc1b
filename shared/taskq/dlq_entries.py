"""What the DLQ holds and what an operation on it reports: values, no AWS calls.

taskq.dlq scans, holds and changes DLQ messages; what it passes around (a message with
the job it names, a selection, an outcome, a report, an audit record) lives here, so the
operations read as their steps, and the CLI and tests can build and read these values
without a queue or a store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

from pydantic import ValidationError

from taskq.models import Job, Status
from taskq.queue import DeadLetter, parse_body
from taskq.text import first_line, iso_seconds

LIVE = frozenset({Status.SCHEDULED, Status.PENDING, Status.RUNNING, Status.RETRYING})
STALE = frozenset({Status.COMPLETED, Status.CANCELLED})


NO_HANDOFF = "-"  # the attribute's value on a DLQ message sent without a hand-off token


class Kind(StrEnum):
    FAILED = "failed"
    LIVE = "live"
    STALE = "stale"
    ORPHAN = "orphan"


class Action(StrEnum):
    REDRIVEN = "redriven"  # failed -> pending, re-sent, DLQ message deleted
    REQUEUED = "requeued"  # job already live: re-sent, DLQ message deleted
    CLEARED = "cleared"  # stale message deleted (job finished, or re-sent in this run)
    PURGED = "purged"  # deleted by a purge
    ORPHAN = "orphan"  # left in the DLQ: no job to redrive
    SKIPPED = "skipped"  # left in the DLQ: see the detail; running again may take it
    ERROR = "error"  # a backend call failed: see the detail for where the job stands


# Outcomes after which the DLQ message is gone: the operation no longer holds it.
DELETED = frozenset({Action.REDRIVEN, Action.REQUEUED, Action.CLEARED, Action.PURGED})


@dataclass(frozen=True)
class DeadEntry:
    """One DLQ message with the job it names (as read during the scan)."""

    message_id: str
    receipt_handle: str = field(repr=False)
    body: str
    attributes: dict[str, str]
    sent_at: float  # epoch seconds the message entered the DLQ (SentTimestamp)
    job_id: str | None
    task: str | None
    job: Job | None
    orphan_reason: str | None = None

    @classmethod
    def read(cls, message: DeadLetter, jobs: Mapping[str, Job]) -> DeadEntry:
        """The entry for a received message; `jobs` holds the jobs its batch names."""
        sent_ms = message.attributes.get("SentTimestamp", "")
        sent_at = int(sent_ms) / 1000.0 if sent_ms.isdigit() else 0.0
        entry = partial(
            cls, message.message_id, message.receipt_handle, message.body, message.attributes,
            sent_at,
        )  # fmt: skip
        try:
            parsed = parse_body(message.body)
        except (ValueError, ValidationError) as exc:
            return entry(
                job_id=message.attributes.get("taskq-job-id") or None,
                task=message.attributes.get("taskq-task") or None,
                job=None,
                orphan_reason=f"malformed body: {first_line(exc, 200)}",
            )
        job = jobs.get(parsed.job_id)
        if job is not None and job.task != parsed.task:
            # Forged, corrupt, or another deployment's: it must not act on the real job.
            return entry(
                job_id=parsed.job_id,
                task=parsed.task,
                job=None,
                orphan_reason=f"message names task {parsed.task!r}, its job is {job.task!r}",
            )
        return entry(
            job_id=parsed.job_id,
            task=job.task if job else parsed.task,
            job=job,
            orphan_reason=None if job else "job not found (expired, or never stored)",
        )

    @property
    def reason(self) -> str | None:
        """Why taskq dead-lettered it; None when SQS's redrive policy moved it here."""
        return self.attributes.get("taskq-reason")

    @property
    def kind(self) -> Kind:
        if self.job is None:
            return Kind.ORPHAN
        if self.job.status == Status.FAILED:
            # "-" (or none): sent without a hand-off. Otherwise a copy under an old token:
            # another delivery re-sent the job's DLQ message under a newer one.
            handoff = self.attributes.get("taskq-handoff", NO_HANDOFF)
            superseded = handoff != NO_HANDOFF and self.job.handoff not in (None, handoff)
            return Kind.STALE if superseded else Kind.FAILED
        return Kind.LIVE if self.job.status in LIVE else Kind.STALE

    @property
    def status(self) -> Status | None:
        return self.job.status if self.job else None

    @property
    def attempts(self) -> int | None:
        if self.job is not None:
            return self.job.attempt
        raw = self.attributes.get("taskq-attempts", "")
        return int(raw) if raw.isdigit() else None

    @property
    def error(self) -> str | None:
        """The job's last error, or the reason on the message when there is no job."""
        return (self.job.error if self.job else None) or self.reason

    @property
    def failed_at(self) -> float:
        """When the job last failed (its history), else when the message entered the DLQ."""
        if self.job is not None:
            for event in reversed(self.job.events):
                if event.kind == Status.FAILED:
                    return event.at.timestamp()
        return self.sent_at

    @property
    def receive_count(self) -> int:
        raw = self.attributes.get("ApproximateReceiveCount", "")
        return int(raw) if raw.isdigit() else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "job_id": self.job_id,
            "task": self.task,
            "kind": str(self.kind),
            "orphan": self.kind is Kind.ORPHAN,
            "orphan_reason": self.orphan_reason,
            "status": str(self.status) if self.status else None,
            "attempts": self.attempts,
            "max_attempts": self.job.max_attempts if self.job else None,
            "error": self.error,
            "reason": self.reason,
            "failed_at": iso_seconds(self.failed_at),
            "sent_at": iso_seconds(self.sent_at),
            "receive_count": self.receive_count,
        }


@dataclass(frozen=True)
class Selector:
    """Which DLQ messages an operation takes. All given criteria must match."""

    ids: frozenset[str] = frozenset()  # job ids or DLQ message ids
    task: str | None = None
    error_match: re.Pattern[str] | None = None
    older_than_s: float | None = None
    newer_than_s: float | None = None
    everything: bool = False  # --all: required when no criterion is given

    @property
    def has_criteria(self) -> bool:
        return bool(
            self.ids
            or self.task is not None
            or self.error_match is not None
            or self.older_than_s is not None
            or self.newer_than_s is not None
        )

    def matches(self, entry: DeadEntry, now: float) -> bool:
        if self.ids and entry.job_id not in self.ids and entry.message_id not in self.ids:
            return False
        if self.task is not None and entry.task != self.task:
            return False
        if self.error_match is not None and not any(
            text and self.error_match.search(text) for text in (entry.error, entry.reason)
        ):
            return False
        age = now - entry.failed_at
        if self.older_than_s is not None and age < self.older_than_s:
            return False
        return self.newer_than_s is None or age <= self.newer_than_s


@dataclass
class Scan:
    """What a pass over the DLQ found. `entries` are the selected messages, oldest first."""

    entries: list[DeadEntry]
    seen: int  # messages received (each once)
    truncated: bool  # stopped early (limit or SCAN_MAX): more may be waiting


@dataclass(frozen=True)
class Outcome:
    entry: DeadEntry
    action: Action
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**self.entry.to_dict(), "action": str(self.action), "detail": self.detail}


@dataclass
class Report:
    """What a redrive or purge did (or, in a dry run, would do) to each selected message."""

    operation: str  # "redrive" | "purge"
    dry_run: bool
    scanned: int = 0
    truncated: bool = False
    outcomes: list[Outcome] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = {str(a): 0 for a in Action}
        for outcome in self.outcomes:
            counts[outcome.action] += 1
        return counts

    @property
    def complete(self) -> bool:
        """True when every selected message was dealt with (orphans count as dealt with)."""
        return not any(o.action in (Action.SKIPPED, Action.ERROR) for o in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "dry_run": self.dry_run,
            "scanned": self.scanned,
            "truncated": self.truncated,
            "counts": self.counts(),
            "messages": [o.to_dict() for o in self.outcomes],
        }


@dataclass(frozen=True)
class AuditRecord:
    """One purged DLQ message: who removed what, and when."""

    operation: str
    actor: str
    at: str
    message_id: str
    job_id: str | None
    task: str | None
    job_status: str | None
    error: str | None
    body: str

    @classmethod
    def of(cls, operation: str, actor: str, entry: DeadEntry, now: float) -> AuditRecord:
        return cls(
            operation=operation,
            actor=actor,
            at=iso_seconds(now),
            message_id=entry.message_id,
            job_id=entry.job_id,
            task=entry.task,
            job_status=str(entry.status) if entry.status else None,
            error=entry.error,
            body=entry.body[:1000],
        )
