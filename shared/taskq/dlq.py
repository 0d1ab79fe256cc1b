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

import time
from collections.abc import Callable, Collection, Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass

from pydantic import ValidationError

from taskq.dlq_entries import (
    DELETED,
    LIVE,
    STALE,
    Action,
    AuditRecord,
    DeadEntry,
    Kind,
    Outcome,
    Report,
    Scan,
    Selector,
)
from taskq.errors import BackendError, InvalidTransition, JobNotFound
from taskq.log import logger
from taskq.models import Job, Status, is_job_id
from taskq.queue import DeadLetter, JobQueue, parse_body
from taskq.ratelimit import TokenBucket
from taskq.store import JobStore

# The DLQ's vocabulary (from taskq.dlq_entries) is re-exported: callers import it from here.
__all__ = [
    "DELETED", "HOLD_MARGIN_S", "LIVE", "RECEIVE_MAX", "SCAN_MAX", "SCAN_VISIBILITY_S", "STALE",
    "Action", "AuditRecord", "DeadEntry", "DeadLetters", "Kind", "Outcome", "OutcomeHook",
    "Report", "Scan", "Selector", "StepHook", "TokenBucket", "record_purge",
]  # fmt: skip

SCAN_VISIBILITY_S = 60  # how long a scan hides what it receives (released when decided)
HOLD_MARGIN_S = 15  # extend the hold on selected messages when less than this is left
SCAN_MAX = 10_000  # a scan stops after this many messages (reported as truncated)
RECEIVE_MAX = 10  # ReceiveMessage returns at most 10 messages per call

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
        return self._peek(selector or Selector(), limit=limit)

    def show(self, ident: str) -> DeadEntry | None:
        """The DLQ message with this message id, or the first one naming this job id."""
        scan = self._peek(Selector(ids=frozenset({ident})), limit=1)
        return scan.entries[0] if scan.entries else None

    def oldest_age(self) -> tuple[float | None, bool]:
        """Age in seconds of the oldest DLQ message, and whether every message was seen.

        SQS only reports this as a CloudWatch metric, so the DLQ is read (and released).
        """
        scan = self._peek(Selector(), with_jobs=False)
        if not scan.entries:
            return None, not scan.truncated
        return max(0.0, self.clock() - min(e.sent_at for e in scan.entries)), not scan.truncated

    def _peek(
        self, selector: Selector, *, limit: int | None = None, with_jobs: bool = True
    ) -> Scan:
        """A scan that takes nothing: what it selected is made visible again at once."""
        scan = self.scan(selector, limit=limit, with_jobs=with_jobs)
        self._release(scan.entries)
        return scan

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
        counts = counts or _all
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
                    entry = DeadEntry.read(message, jobs)
                    if entry.message_id in held:
                        # Received again (a long scan outlived the visibility): keep the
                        # newest receipt handle, the only one SQS still honours.
                        held[entry.message_id] = entry
                        continue
                    held[entry.message_id] = entry
                    allowed = restrict_to is None or entry.message_id in restrict_to
                    if allowed and selector.matches(entry, now):
                        if limit is not None and counted >= limit and counts(entry):
                            truncated = True  # over the limit: released with the others
                            continue
                        selected.append(entry.message_id)
                        if counts(entry):
                            counted += 1
        except BaseException:
            self._release(held.values())
            raise
        chosen = set(selected)
        self._release(e for m, e in held.items() if m not in chosen)
        entries = sorted((held[m] for m in selected), key=lambda e: e.failed_at)
        return Scan(entries=entries, seen=len(held), truncated=truncated)

    # --- redrive and purge ------------------------------------------------------------

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
        bucket = TokenBucket(rate, sleep=self.sleep) if rate else None
        sent: set[str] = set()  # jobs re-sent in this run: a second message for one is stale
        redrive = _Operation(
            "redrive",
            act=lambda entry: self._redrive_one(entry, actor, reset_attempts, bucket, sent),
            plan=_planned,
            lapsed="the message became visible before its turn; left in the DLQ",
            set_aside=_orphan,  # never deleted by a redrive: visible again right away
            counts=lambda entry: entry.kind is not Kind.ORPHAN,
            rate=rate,
        )
        return self._perform(redrive, selector, dry_run, max_messages, restrict_to, on_outcome)

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

        def purge_one(entry: DeadEntry) -> Outcome:
            try:
                self.queue.delete_dead(entry.receipt_handle)
            except BackendError as exc:
                return Outcome(entry, Action.ERROR, f"delete failed: {exc}; kept")
            self._step("deleted", entry)
            audit(AuditRecord.of("purge", actor, entry, self.clock()))
            return Outcome(entry, Action.PURGED, "deleted")

        purge = _Operation(
            "purge",
            act=purge_one,
            plan=lambda entry: Outcome(entry, Action.PURGED, "would delete"),
            lapsed="the message became visible; kept",
        )
        return self._perform(purge, selector, dry_run, max_messages, restrict_to, on_outcome)

    def _perform(
        self,
        operation: _Operation,
        selector: Selector,
        dry_run: bool,
        max_messages: int | None,
        restrict_to: Collection[str] | None,
        on_outcome: OutcomeHook | None,
    ) -> Report:
        """Select, then act on each selected message while holding it: redrive and purge
        differ only in `operation`, so both keep the same guarantees about what stays hidden."""
        report = Report(operation.name, dry_run)
        started = self.clock()  # the scan hides what it receives from now on
        scan = self.scan(
            selector, limit=max_messages, counts=operation.counts, restrict_to=restrict_to
        )
        report.scanned, report.truncated = scan.seen, scan.truncated
        work: list[DeadEntry] = []
        aside: list[Outcome] = []
        for entry in scan.entries:
            left = operation.set_aside(entry)
            if left is None:
                work.append(entry)
            else:
                aside.append(left)
        self._release(outcome.entry for outcome in aside)
        for outcome in aside:
            self._emit(report, on_outcome, outcome)
        self._missing(report, scan, restrict_to, on_outcome)
        if dry_run:
            self._release(work)
            for entry in work:
                self._emit(report, on_outcome, operation.plan(entry))
        else:
            self._act_on_each(
                operation, work, _Hold(started + self.visibility_s), report, on_outcome
            )
        return report

    def _act_on_each(
        self,
        operation: _Operation,
        work: list[DeadEntry],
        hold: _Hold,
        report: Report,
        on_outcome: OutcomeHook | None,
    ) -> None:
        """Act on the held messages in turn, keeping the rest hidden until their turn comes."""
        done: set[str] = set()  # deleted, or no longer ours: nothing to release
        lapsed: set[str] = set()  # visible again: someone else may hold them now
        try:
            for index, entry in enumerate(work):
                lapsed |= self._keep_held(work[index:], hold, operation.rate)
                if entry.message_id in lapsed:
                    outcome = Outcome(entry, Action.SKIPPED, operation.lapsed)
                else:
                    outcome = operation.act(entry)
                if entry.message_id in lapsed or outcome.action in DELETED:
                    done.add(entry.message_id)
                self._emit(report, on_outcome, outcome)
        finally:
            # Whatever happens (an error, Ctrl-C), what we did not delete is visible again.
            self._release(e for e in work if e.message_id not in done)

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
            self.queue.send(job.id, job.task, priority=job.priority)
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


def _take_all(entry: DeadEntry) -> Outcome | None:
    return None


@dataclass(frozen=True)
class _Operation:
    """What a redrive or a purge does to one selected message. DeadLetters._perform does
    the rest (select, hold, release, report) the same way for both, so neither can leave
    a message hidden, or delete one it no longer holds, in a way the other does not."""

    name: str  # the report's operation: "redrive" | "purge"
    act: Callable[[DeadEntry], Outcome]  # on a held message; an outcome in DELETED frees it
    plan: Callable[[DeadEntry], Outcome]  # what a dry run reports instead of acting
    lapsed: str  # the detail when a message's hold lapsed before its turn (left alone)
    set_aside: Callable[[DeadEntry], Outcome | None] = _take_all  # released and reported at once
    counts: Callable[[DeadEntry], bool] | None = None  # which selected count towards the limit
    rate: float | None = None  # acts a second: holds are extended to last the whole run


def _orphan(entry: DeadEntry) -> Outcome | None:
    """A redrive's answer for an orphan, which it never deletes; None for any other message."""
    if entry.kind is not Kind.ORPHAN:
        return None
    return Outcome(entry, Action.ORPHAN, f"{entry.orphan_reason}; left in the DLQ")


def _planned(entry: DeadEntry) -> Outcome:
    if entry.kind is Kind.FAILED:
        return Outcome(entry, Action.REDRIVEN, "would reset the job and re-send it")
    if entry.kind is Kind.LIVE:
        return Outcome(entry, Action.REQUEUED, f"job is {entry.status}: would re-send it")
    return Outcome(entry, Action.CLEARED, f"stale: job is {entry.status}; would delete")


def record_purge(store: JobStore, record: AuditRecord) -> None:
    """A purge's audit trail, whoever purged (the CLI, the dashboard): the record is
    logged, and noted in the job's own history when the job exists."""
    logger.info("dlq message purged", extra={"audit": asdict(record)})
    if record.job_id and is_job_id(record.job_id):
        with suppress(JobNotFound):
            store.record_event(
                record.job_id, "dlq-purged", f"{record.actor}; dlq message {record.message_id}"
            )
