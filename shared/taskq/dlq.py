"""The dead-letter queue as operators see it: list, show, redrive and purge its messages.

A DLQ message is classified by the job it names, read fresh from the store:

- failed: the usual case. A redrive resets the job (store.redrive: conditional
  failed -> pending, with an event saying who redrove it and from which message),
  sends a new message to the main queue, and only then deletes the DLQ message.
- live (pending, running, retrying): an earlier redrive stopped after the reset,
  another path already re-queued the job, or SQS itself moved the message here
  (maxReceiveCount). A redrive sends a message, then deletes: the claim's condition
  makes a second message for a job harmless, while deleting without sending could
  leave a job with no message at all.
- stale (completed, cancelled): nothing is left to run; a redrive deletes the message
  (it re-reads the job first, and reports it). Terminal jobs never become failed, so
  that check cannot go out of date.
- orphan: no such job (expired or never stored), or a body that is not a job message.
  A redrive never deletes these; it reports them. Only a purge that selects them does.

The order reset -> send -> delete is what makes a redrive crash-safe: stopped at any
point, a job is still in the DLQ (failed, or pending and found live by the next
redrive) or queued, possibly twice, and it runs once.

Reading a DLQ means receiving its messages, which hides them. A scan hides what it
receives for the visibility timeout, keeps the selected messages hidden while it works
on them (extending the timeout when a rate-limited run needs longer), and makes all
others visible again as soon as the scan has decided (it cannot release them sooner:
a released message would be received again by the same scan).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from taskq.errors import BackendError, InvalidTransition, JobNotFound
from taskq.models import Job, Status
from taskq.queue import DeadLetter, JobQueue, parse_body
from taskq.ratelimit import TokenBucket
from taskq.store import JobStore

SCAN_VISIBILITY_S = 60  # how long a scan hides what it receives (released when decided)
HOLD_MARGIN_S = 15  # extend the hold on selected messages when less than this is left
SCAN_MAX = 10_000  # a scan stops after this many messages (reported as truncated)
RECEIVE_MAX = 10  # ReceiveMessage returns at most 10 messages per call

LIVE = frozenset({Status.PENDING, Status.RUNNING, Status.RETRYING})
STALE = frozenset({Status.COMPLETED, Status.CANCELLED})


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

    @property
    def reason(self) -> str | None:
        """Why taskq dead-lettered it; None when SQS's redrive policy moved it here."""
        return self.attributes.get("taskq-reason")

    @property
    def kind(self) -> Kind:
        if self.job is None:
            return Kind.ORPHAN
        if self.job.status == Status.FAILED:
            return Kind.FAILED
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
            "failed_at": _iso(self.failed_at),
            "sent_at": _iso(self.sent_at),
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


StepHook = Callable[[str, DeadEntry], None]  # ("reset" | "sent" | "deleted", entry)
OutcomeHook = Callable[[Outcome], None]


class DeadLetters:
    """DLQ operations over a store and a queue. The store changes job status; this never does."""

    def __init__(
        self,
        store: JobStore,
        queue: JobQueue,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        visibility_s: int = SCAN_VISIBILITY_S,
        on_step: StepHook | None = None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.clock = clock
        self.sleep = sleep
        self.visibility_s = visibility_s
        # Called after each step of a redrive or purge took effect: the progress seam,
        # and where tests stop a run between steps to prove nothing is lost.
        self.on_step = on_step

    # --- reads ------------------------------------------------------------------------

    def list_messages(self, selector: Selector | None = None, *, limit: int | None = None) -> Scan:
        """The selected messages (all, without a selector), oldest first; nothing stays hidden."""
        scan = self.scan(selector or Selector(), limit=limit)
        self._release(scan.entries)
        return scan

    def show(self, ident: str) -> DeadEntry | None:
        """The DLQ message with this message id, or the first one naming this job id."""
        scan = self.scan(Selector(ids=frozenset({ident})), limit=1)
        self._release(scan.entries)
        return scan.entries[0] if scan.entries else None

    def oldest_age(self) -> tuple[float | None, bool]:
        """Age in seconds of the oldest DLQ message, and whether every message was seen.

        SQS only reports this as a CloudWatch metric, so the DLQ is read (and released).
        """
        scan = self.scan(Selector(), with_jobs=False)
        self._release(scan.entries)
        if not scan.entries:
            return None, not scan.truncated
        return max(0.0, self.clock() - min(e.sent_at for e in scan.entries)), not scan.truncated

    def scan(
        self,
        selector: Selector,
        *,
        limit: int | None = None,
        counts: Callable[[DeadEntry], bool] | None = None,
        with_jobs: bool = True,
        restrict_to: Collection[str] | None = None,
    ) -> Scan:
        """Receive DLQ messages, keep (hidden) the selected ones, release the rest.

        Stops once `limit` selected messages count (by `counts`, all by default), when
        the DLQ yields nothing new, or after SCAN_MAX messages. With `restrict_to`,
        only those message ids can be selected (what an operator confirmed).
        """
        now = self.clock()
        expected = self.queue.depth(dead=True)["visible"]
        held: dict[str, DeadEntry] = {}  # message id -> entry, all received so far
        selected: list[str] = []
        counted = 0
        empties = 0
        truncated = False
        try:
            while True:
                if limit is not None and counted >= limit:
                    # More may match: some seen were over the limit, or some were not read.
                    truncated = truncated or len(held) < expected
                    break
                if restrict_to is not None and len(selected) >= len(restrict_to):
                    break
                if len(held) >= SCAN_MAX:
                    truncated = True
                    break
                # Short polls while messages come; one long poll (all SQS hosts) before
                # concluding the DLQ is exhausted when fewer were seen than it reported.
                batch = self.queue.receive_dead(
                    max_messages=RECEIVE_MAX,
                    visibility_s=self.visibility_s,
                    wait_s=0 if empties == 0 else 1,
                )
                if not batch:
                    empties += 1
                    if len(held) >= expected or empties >= 2:
                        break
                    continue
                empties = 0
                jobs = self._jobs(batch) if with_jobs else {}
                for message in batch:
                    entry = _entry(message, jobs)
                    if entry.message_id in held:
                        # Received again (a long scan outlived the visibility): keep the
                        # newest receipt handle, the only one SQS still honours.
                        held[entry.message_id] = entry
                        continue
                    held[entry.message_id] = entry
                    allowed = restrict_to is None or entry.message_id in restrict_to
                    if allowed and selector.matches(entry, now):
                        if limit is not None and counted >= limit and (counts or _all)(entry):
                            truncated = True  # over the limit: released with the others
                            continue
                        selected.append(entry.message_id)
                        if (counts or _all)(entry):
                            counted += 1
        except BaseException:
            self._release(held.values())
            raise
        chosen = set(selected)
        self._release(e for m, e in held.items() if m not in chosen)
        entries = sorted((held[m] for m in selected), key=lambda e: e.failed_at)
        return Scan(entries=entries, seen=len(held), truncated=truncated)

    # --- redrive ----------------------------------------------------------------------

    def redrive(
        self,
        selector: Selector,
        *,
        actor: str,
        reset_attempts: bool = True,
        max_messages: int | None = None,
        rate: float | None = None,
        dry_run: bool = False,
        restrict_to: Collection[str] | None = None,
        on_outcome: OutcomeHook | None = None,
    ) -> Report:
        """Put the selected messages' jobs back on the main queue; see the module docstring.

        `max_messages` caps the messages taken (orphans are reported, not counted);
        `rate` caps sends per second.
        """
        report = Report("redrive", dry_run)
        started = self.clock()
        scan = self.scan(
            selector,
            limit=max_messages,
            counts=lambda e: e.kind is not Kind.ORPHAN,
            restrict_to=restrict_to,
        )
        report.scanned, report.truncated = scan.seen, scan.truncated
        orphans = [e for e in scan.entries if e.kind is Kind.ORPHAN]
        work = [e for e in scan.entries if e.kind is not Kind.ORPHAN]
        self._release(orphans)  # never deleted by a redrive: visible again right away
        for entry in orphans:
            self._emit(report, on_outcome, Outcome(entry, Action.ORPHAN, _orphan(entry)))
        self._missing(report, scan, restrict_to, on_outcome)
        if dry_run:
            self._release(work)
            for entry in work:
                self._emit(report, on_outcome, _planned(entry))
            return report
        bucket = TokenBucket(rate, sleep=self.sleep) if rate else None
        hold = _Hold(started + self.visibility_s)
        sent: set[str] = set()
        done: set[str] = set()  # deleted, or no longer ours: nothing to release
        lapsed: set[str] = set()  # visible again: someone else may hold them now
        try:
            for index, entry in enumerate(work):
                lapsed |= self._keep_held(work[index:], hold, rate)
                if entry.message_id in lapsed:
                    outcome = Outcome(
                        entry,
                        Action.SKIPPED,
                        "the message became visible before its turn; left in the DLQ",
                    )
                    done.add(entry.message_id)
                else:
                    outcome = self._redrive_one(entry, actor, reset_attempts, bucket, sent)
                    if outcome.action in (Action.REDRIVEN, Action.REQUEUED, Action.CLEARED):
                        done.add(entry.message_id)
                self._emit(report, on_outcome, outcome)
        finally:
            # Whatever happens (an error, Ctrl-C), what we did not delete is visible again.
            self._release(e for e in work if e.message_id not in done)
        return report

    def _redrive_one(
        self,
        entry: DeadEntry,
        actor: str,
        reset_attempts: bool,
        bucket: TokenBucket | None,
        sent: set[str],
    ) -> Outcome:
        """reset (if failed) -> send -> delete, each step only after the one before it."""
        assert entry.job_id is not None  # orphans were set aside
        action = Action.REQUEUED
        try:
            job = self.store.find(entry.job_id)
            for _ in range(3):  # a job someone else changed meanwhile is looked at again
                if job is None or job.status != Status.FAILED:
                    break
                try:
                    job = self.store.redrive(
                        job.id,
                        reset_attempts=reset_attempts,
                        actor=f"{actor}; dlq message {entry.message_id}",
                    )
                except (InvalidTransition, JobNotFound):
                    job = self.store.find(entry.job_id)
                    continue
                action = Action.REDRIVEN
                self._step("reset", entry)
                break
        except BackendError as exc:
            return Outcome(entry, Action.ERROR, f"reading or resetting the job failed: {exc}")
        if job is None:
            return Outcome(entry, Action.ORPHAN, "job not found; left in the DLQ")
        if job.status == Status.FAILED:
            return Outcome(entry, Action.SKIPPED, "the job kept changing; left in the DLQ")
        if job.status in STALE or (action is Action.REQUEUED and job.id in sent):
            why = (
                f"job is {job.status}"
                if job.status in STALE
                else "job already re-sent from another message in this run"
            )
            return self._delete(entry, Action.CLEARED, f"stale: {why}; message deleted")
        try:
            if bucket is not None:
                bucket.acquire()
            self.queue.send(job.id, job.task)
        except BackendError as exc:
            return Outcome(
                entry,
                Action.ERROR,
                f"send failed: {exc}; job is {job.status}, message left in the DLQ "
                "(run the redrive again)",
            )
        sent.add(job.id)
        self._step("sent", entry)
        detail = (
            f"job reset to pending ({'fresh attempts' if reset_attempts else 'attempts kept'})"
            if action is Action.REDRIVEN
            else f"job was already {job.status}: re-sent"
        )
        return self._delete(entry, action, detail)

    def _delete(self, entry: DeadEntry, action: Action, detail: str) -> Outcome:
        try:
            self.queue.delete_dead(entry.receipt_handle)
        except BackendError as exc:
            return Outcome(
                entry,
                Action.ERROR,
                f"{detail}, but deleting the DLQ message failed: {exc} "
                "(the next redrive clears it once the job has moved on)",
            )
        self._step("deleted", entry)
        return Outcome(entry, action, detail)

    def _keep_held(self, remaining: list[DeadEntry], hold: _Hold, rate: float | None) -> set[str]:
        """Extend the hold on the messages still to do when it is about to run out.

        Returns the ids whose hold SQS refused to extend (the message became visible).
        """
        now = self.clock()
        if not remaining or hold.until - now > HOLD_MARGIN_S:
            return set()
        seconds = self.visibility_s + (int(len(remaining) / rate) + 1 if rate else 0)
        refused = set(self.queue.hold_dead((e.receipt_handle for e in remaining), seconds))
        hold.until = now + seconds
        return {e.message_id for e in remaining if e.receipt_handle in refused}

    # --- purge ------------------------------------------------------------------------

    def purge(
        self,
        selector: Selector,
        *,
        actor: str,
        audit: Callable[[AuditRecord], None],
        max_messages: int | None = None,
        dry_run: bool = False,
        restrict_to: Collection[str] | None = None,
        on_outcome: OutcomeHook | None = None,
    ) -> Report:
        """Delete the selected DLQ messages (orphans included), each with an audit record.

        Jobs are not touched: a purged failed job stays failed until its TTL.
        """
        report = Report("purge", dry_run)
        started = self.clock()
        scan = self.scan(selector, limit=max_messages, restrict_to=restrict_to)
        report.scanned, report.truncated = scan.seen, scan.truncated
        self._missing(report, scan, restrict_to, on_outcome)
        if dry_run:
            self._release(scan.entries)
            for entry in scan.entries:
                self._emit(report, on_outcome, Outcome(entry, Action.PURGED, "would delete"))
            return report
        hold = _Hold(started + self.visibility_s)
        done: set[str] = set()
        lapsed: set[str] = set()
        try:
            for index, entry in enumerate(scan.entries):
                lapsed |= self._keep_held(scan.entries[index:], hold, None)
                if entry.message_id in lapsed:
                    outcome = Outcome(entry, Action.SKIPPED, "the message became visible; kept")
                    done.add(entry.message_id)
                else:
                    try:
                        self.queue.delete_dead(entry.receipt_handle)
                    except BackendError as exc:
                        outcome = Outcome(entry, Action.ERROR, f"delete failed: {exc}; kept")
                    else:
                        done.add(entry.message_id)
                        self._step("deleted", entry)
                        audit(_audit("purge", actor, entry, self.clock()))
                        outcome = Outcome(entry, Action.PURGED, "deleted")
                self._emit(report, on_outcome, outcome)
        finally:
            self._release(e for e in scan.entries if e.message_id not in done)
        return report

    # --- plumbing ---------------------------------------------------------------------

    def _jobs(self, batch: list[DeadLetter]) -> dict[str, Job]:
        ids = []
        for message in batch:
            try:
                ids.append(parse_body(message.body).job_id)
            except (ValueError, ValidationError):
                continue
        return self.store.find_many(ids)

    def _release(self, entries: Iterable[DeadEntry]) -> None:
        handles = [e.receipt_handle for e in entries]
        if handles:
            self.queue.release_dead(handles)

    def _step(self, step: str, entry: DeadEntry) -> None:
        if self.on_step is not None:
            self.on_step(step, entry)

    def _missing(
        self,
        report: Report,
        scan: Scan,
        restrict_to: Collection[str] | None,
        on_outcome: OutcomeHook | None,
    ) -> None:
        """Confirmed messages the second pass did not find are reported, not forgotten."""
        if restrict_to is None:
            return
        found = {e.message_id for e in scan.entries}
        for message_id in sorted(set(restrict_to) - found):
            gone = DeadEntry(message_id, "", "", {}, 0.0, None, None, None, "not seen")
            detail = "no longer seen in the DLQ (taken or hidden by someone else meanwhile)"
            self._emit(report, on_outcome, Outcome(gone, Action.SKIPPED, detail))

    @staticmethod
    def _emit(report: Report, hook: OutcomeHook | None, outcome: Outcome) -> None:
        report.outcomes.append(outcome)
        if hook is not None:
            hook(outcome)


@dataclass
class _Hold:
    """Until when the selected messages are surely hidden (received no earlier than the scan)."""

    until: float


def _all(entry: DeadEntry) -> bool:
    return True


def _entry(message: DeadLetter, jobs: dict[str, Job]) -> DeadEntry:
    sent_ms = message.attributes.get("SentTimestamp", "")
    sent_at = int(sent_ms) / 1000.0 if sent_ms.isdigit() else 0.0
    try:
        parsed = parse_body(message.body)
    except (ValueError, ValidationError) as exc:
        return DeadEntry(
            message_id=message.message_id,
            receipt_handle=message.receipt_handle,
            body=message.body,
            attributes=message.attributes,
            sent_at=sent_at,
            job_id=message.attributes.get("taskq-job-id") or None,
            task=message.attributes.get("taskq-task") or None,
            job=None,
            orphan_reason=f"malformed body: {_first_line(exc)}",
        )
    job = jobs.get(parsed.job_id)
    return DeadEntry(
        message_id=message.message_id,
        receipt_handle=message.receipt_handle,
        body=message.body,
        attributes=message.attributes,
        sent_at=sent_at,
        job_id=parsed.job_id,
        task=job.task if job else parsed.task,
        job=job,
        orphan_reason=None if job else "job not found (expired, or never stored)",
    )


def _orphan(entry: DeadEntry) -> str:
    return f"{entry.orphan_reason}; left in the DLQ"


def _planned(entry: DeadEntry) -> Outcome:
    if entry.kind is Kind.FAILED:
        return Outcome(entry, Action.REDRIVEN, "would reset the job and re-send it")
    if entry.kind is Kind.LIVE:
        return Outcome(entry, Action.REQUEUED, f"job is {entry.status}: would re-send it")
    return Outcome(entry, Action.CLEARED, f"stale: job is {entry.status}; would delete")


def _audit(operation: str, actor: str, entry: DeadEntry, now: float) -> AuditRecord:
    return AuditRecord(
        operation=operation,
        actor=actor,
        at=_iso(now),
        message_id=entry.message_id,
        job_id=entry.job_id,
        task=entry.task,
        job_status=str(entry.status) if entry.status else None,
        error=entry.error,
        body=entry.body[:1000],
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]
