"""Every change of a job's status, each defined once: the request it sends and how its
answer is read. The only code in taskq that writes the status attribute.

A transition is one conditional DynamoDB write that also appends its event to the job's
history, so a status and its history never disagree and no transition costs a second
write. The sync store (`JobStore`) and the worker's async store both send these very
requests; neither holds a copy of the conditions.

transition      from                          condition, besides existing      writes
--------------  ----------------------------  -------------------------------  ----------------
create          (no item)                     no item, or only an expired one  pending item, or
                                                                               scheduled (run_at
                                                                               ahead)
claim           pending; retrying or          attempt < max_attempts, and the  running,
                scheduled when due; running   message names the job's task     attempt + 1, lease
                with a lapsed lease
complete        running                       attempt = the claimed attempt    completed, result,
                                              (the fencing token)              expires_at
retry           running                       attempt = the claimed attempt    retrying, error,
                                                                               run_after
fail            running                       attempt = the claimed attempt    failed, error, TTL,
                                                                               DLQ hand-off token
fail_abandoned  running, lease lapsed,        attempt = the attempt seen       failed, error, TTL,
                no attempts left              abandoned                        hand-off token
take_handoff    failed, not dead-lettered     the hand-off token seen (stale)  a new token
mark_dead_      failed                        hand-off token = the sender's    dead_lettered
  lettered
cancel          scheduled, pending, retrying  tenant matches, when given       cancelled, TTL;
                                                                               out of the wake
                                                                               index
promote         scheduled, to be woken by     still so (two clocks: one sends  woken by its
                the clock                     its message)                     message
redrive         failed                        keeping the count: attempt =     pending; attempt 0
                                              the count read just before       or budget + 1;
                                                                               hand-off removed
record_event    any                           the item has a history           one event
heartbeat       running (no status change)    attempt = the claimed attempt    progress, lease
mark_requeued   the status the sweeper read   updated_at = the version read    updated_at, event
backfill_phase  the status read (an upgrade)  no phase yet                     phase

Every finish (complete, fail, fail_abandoned, cancel) also sets the job's phase to its
outcome and its finished_at; promote and redrive set it back to "live". Nothing else
touches the phase, the key of the index listings read (codec's PHASE_LIVE): so the claim,
a retry and every heartbeat leave that index alone, and a job's happy path writes it twice
(the create puts it, the finish moves it).

A failed job has exactly one live DLQ message: the write that fails it takes a hand-off
token, its DLQ message carries that token, and `mark_dead_lettered` records the send; a
duplicate delivery then finds the job dead-lettered and is acknowledged. The token is held
until the sender's invocation deadline (`handoff_until`): a sender that died between the
send and the mark leaves it unmarked past that, when another delivery takes a new token
(`take_handoff`) and sends again; a copy under an old token is recognisably stale.

Every write carries a fresh `write_id`: when botocore retries a write whose response was
lost, the retry's condition fails against the item the first try wrote, and the
`write_id` in the returned item tells "our own write" from "someone else's".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from taskq.backoff import expires_at, is_expired
from taskq.errors import InvalidTransition, JobNotFound
from taskq.models import Job, Status
from taskq.store.codec import (
    PHASE_LIVE,
    WAKE_BY_CLOCK,
    WAKE_BY_MESSAGE,
    Item,
    NewJob,
    clip,
    event,
    key,
    new_item,
    number,
    to_job,
)
from taskq.text import STORED_TIME_FORMAT, stored_time

# How long a DLQ hand-off is held when its sender's invocation deadline is unknown (no
# Lambda context, or a direct call): a send takes seconds, botocore's retries included.
HANDOFF_HOLD_S = 120.0

# A finish moves the job in the phase index from "live" to its outcome (":to", the status
# it takes), with the time it finished beside it there.
_FINISHED = "phase = :to, finished_at = :finished_at"


def _finished(now: float) -> Item:
    return {":finished_at": {"N": repr(now)}}


# status, error and result are DynamoDB reserved words; DynamoDB refuses unused names.
_RESERVED = (("#s", "status"), ("#e", "error"), ("#r", "result"), ("#t", "task"))


@dataclass(frozen=True)
class Write:
    """One conditional UpdateItem on a job, and how its answer (or refusal) reads."""

    job_id: str
    name: str
    request: dict[str, Any]
    write_id: str
    tenant: str | None = None

    def accepted(self, response: Any) -> Job:
        return to_job(response["Attributes"])

    def refused(self, current: Item | None, now: float) -> Job:
        """The condition failed on `current` (the item as DynamoDB returned it)."""
        if (
            current is None
            or is_expired(number(current, "expires_at"), now)
            or (self.tenant is not None and current.get("tenant", {}).get("S") != self.tenant)
        ):
            # Another tenant's job reads as "not found", like a read would.
            raise JobNotFound(f"job {self.job_id} not found")
        if current.get("write_id", {}).get("S") == self.write_id:
            # Our own write: applied, but its response was lost and botocore's retry met it.
            return to_job(current)
        raise InvalidTransition(self.job_id, self.name, current["status"]["S"])


@dataclass(frozen=True)
class Create:
    """The conditional PutItem of a new job; answers (job, created)."""

    job_id: str
    request: dict[str, Any]
    write_id: str

    def accepted(self) -> tuple[Job, bool]:
        return to_job(self.request["Item"]), True

    def refused(self, current: Item) -> tuple[Job, bool]:
        """An unexpired job with this id exists: returned untouched; created only if it is
        our own put, applied but its response lost and met by botocore's retry.

        Our own put either as it wrote the item (its write_id), or since changed by a later
        transition, which takes a write_id of its own: botocore's retries can take longer
        than the sweeper's window, so a job this put created may be re-sent, or even run,
        before the retry meets it. A job without an idempotency key has a random id (122
        bits): the job there, created at this put's instant, is this put's. With a key, the
        caller sees a replay of the same request (the job, unchanged), as a retried client
        would.
        """
        mine = self.request["Item"]
        ours = current.get("write_id", {}).get("S") == self.write_id or (
            "idempotency_key" not in mine
            and all(current.get(name) == mine.get(name) for name in ("created_at", "request_hash"))
        )
        return to_job(current), ours


class Transitions:
    """Builds each transition's request for one table."""

    def __init__(self, table: str, retention_days: int) -> None:
        self.table = table
        self.retention_days = retention_days

    def create(self, new: NewJob, now: float) -> Create:
        write_id = uuid.uuid4().hex
        item = {**new_item(new, now), "write_id": {"S": write_id}}
        request = {
            "TableName": self.table,
            "Item": item,
            # Two submits with one idempotency key race here: exactly one creates the
            # job; an expired leftover (TTL not yet applied) may be replaced.
            "ConditionExpression": "attribute_not_exists(id) OR expires_at <= :now",
            "ExpressionAttributeValues": {":now": {"N": str(int(now))}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        return Create(new.job_id, request, write_id)

    def claim(
        self, job_id: str, lease_until: float, now: float, *, task: str | None = None
    ) -> Write:
        """pending/retrying (or running with a lapsed lease) -> running, attempt += 1.

        `task`: the task the delivered message names (the worker always passes it).
        """
        values: Item = {":task": {"S": task}} if task is not None else {}
        return self._write(
            job_id,
            "claim",
            update="SET #s = :running, attempt = attempt + :one, lease_until = :lease, "
            "updated_at = :iso, events = list_append(events, :ev) "
            "REMOVE run_after, wake, wake_at",
            # A duplicate delivery of a finished job, or one still running under a live
            # lease elsewhere, must not run it again; nor may a retry start early.
            # A message naming another task (forged, corrupt, an older deployment's) must
            # not run or change the job.
            # A delayed job's early wake-up (a duplicate, a sweeper's re-send) finds it
            # not yet due and leaves it scheduled.
            condition="attempt < max_attempts AND "
            + ("#t = :task AND " if task is not None else "")
            + "((#s = :pending) OR (#s = :retrying AND run_after <= :now_slack) OR "
            "(#s = :scheduled AND run_after <= :now) OR "
            "(#s = :running AND lease_until < :now))",
            values={
                **values,
                ":running": {"S": Status.RUNNING},
                ":pending": {"S": Status.PENDING},
                ":retrying": {"S": Status.RETRYING},
                ":scheduled": {"S": Status.SCHEDULED},
                ":one": {"N": "1"},
                ":lease": {"N": repr(lease_until)},
                ":now": {"N": repr(now)},
                ":now_slack": {"N": repr(now + 1.0)},
                ":iso": {"S": stored_time(now)},
                ":ev": {"L": [event(Status.RUNNING, now)]},
            },
        )

    def complete(self, job_id: str, attempt: int, result_json: str, now: float) -> Write:
        return self._finish_attempt(
            job_id,
            attempt,
            "complete",
            Status.COMPLETED,
            now,
            extra_set="#r = :result, expires_at = :ttl, " + _FINISHED,
            extra_remove=", #e",
            values={":result": {"S": result_json}, ":ttl": self._ttl(now), **_finished(now)},
        )

    def retry(self, job_id: str, attempt: int, error: str, delay_s: int, now: float) -> Write:
        return self._finish_attempt(
            job_id,
            attempt,
            "retry",
            Status.RETRYING,
            now,
            extra_set="#e = :err, run_after = :after",
            values={":err": {"S": clip(error)}, ":after": {"N": repr(now + delay_s)}},
            event_item=event(Status.RETRYING, now, error=error, delay_s=delay_s),
        )

    def fail(
        self, job_id: str, attempt: int, error: str, now: float, *, handoff_until: float
    ) -> Write:
        """running -> failed; the failing worker holds the DLQ hand-off until `handoff_until`
        (its invocation's deadline: past it, a sender that has not marked its send is dead)."""
        return self._finish_attempt(
            job_id,
            attempt,
            "fail",
            Status.FAILED,
            now,
            extra_set="#e = :err, expires_at = :ttl, handoff = :handoff, "
            "handoff_until = :handoff_until, " + _FINISHED,
            values={
                **_finished(now),
                ":err": {"S": clip(error)},
                ":ttl": self._ttl(now),
                ":handoff": {"S": uuid.uuid4().hex},
                ":handoff_until": {"N": repr(handoff_until)},
            },
            event_item=event(Status.FAILED, now, error=error),
        )

    def fail_abandoned(
        self, job_id: str, attempt: int, now: float, *, handoff_until: float
    ) -> Write:
        """running with a lapsed lease and no attempts left -> failed (its worker died)."""
        error = "the last attempt's worker stopped before finishing (lease expired)"
        return self._write(
            job_id,
            "fail",
            update="SET #s = :failed, #e = :err, expires_at = :ttl, updated_at = :iso, "
            "handoff = :handoff, handoff_until = :handoff_until, phase = :failed, "
            "finished_at = :finished_at, events = list_append(events, :ev) "
            "REMOVE lease_until",
            # Only the attempt we saw abandoned: a newer claim owns the job otherwise.
            condition="#s = :running AND attempt = :attempt AND attempt >= max_attempts "
            "AND lease_until < :now",
            values={
                ":failed": {"S": Status.FAILED},
                ":finished_at": {"N": repr(now)},
                ":running": {"S": Status.RUNNING},
                ":attempt": {"N": str(attempt)},
                ":now": {"N": repr(now)},
                ":handoff": {"S": uuid.uuid4().hex},
                ":handoff_until": {"N": repr(handoff_until)},
                ":err": {"S": error},
                ":ttl": self._ttl(now),
                ":iso": {"S": stored_time(now)},
                ":ev": {"L": [event(Status.FAILED, now, error=error)]},
            },
        )

    def cancel(
        self, job_id: str, now: float, tenant: str | None = None, *, actor: str | None = None
    ) -> Write:
        """-> cancelled; `actor` (an operator, by the CLI or the dashboard) goes in its event."""
        return self._write(
            job_id,
            "cancel",
            tenant=tenant,
            update="SET #s = :cancelled, expires_at = :ttl, updated_at = :iso, "
            "phase = :cancelled, finished_at = :finished_at, "
            "events = list_append(events, :ev) REMOVE run_after, wake, wake_at",
            # A worker may claim the job at this instant: only one of the two wins. A
            # cancelled scheduled job's wake-up, when it comes, finds it cancelled.
            condition="#s IN (:pending, :retrying, :scheduled)",
            values={
                ":cancelled": {"S": Status.CANCELLED},
                ":finished_at": {"N": repr(now)},
                ":pending": {"S": Status.PENDING},
                ":retrying": {"S": Status.RETRYING},
                ":scheduled": {"S": Status.SCHEDULED},
                ":ttl": self._ttl(now),
                ":iso": {"S": stored_time(now)},
                ":ev": {"L": [event(Status.CANCELLED, now, detail=actor)]},
            },
        )

    def promote(self, job_id: str) -> Write:
        """A scheduled job the clock wakes: its message is about to be sent (by SQS from now)."""
        return self._write(
            job_id,
            "promote",
            # Into the live phase: the sweeper now watches it, as it does every job SQS brings.
            update="SET wake = :message, phase = :live",
            # Two clocks reading the index at once: only one sends the message. A job
            # cancelled or claimed meanwhile has left the index and is left alone.
            condition="#s = :scheduled AND wake = :clock",
            values={
                ":scheduled": {"S": Status.SCHEDULED},
                ":clock": {"S": WAKE_BY_CLOCK},
                ":message": {"S": WAKE_BY_MESSAGE},
                ":live": {"S": PHASE_LIVE},
            },
        )

    def redrive(
        self, job_id: str, now: float, *, actor: str, seen: Job | None, tenant: str | None
    ) -> Write:
        """failed -> pending. `seen` None: with a fresh attempt budget. `seen` given (the
        job as just read): keeping its count, an exhausted budget grows by one."""
        values: Item = {
            ":pending": {"S": Status.PENDING},
            ":failed": {"S": Status.FAILED},
            ":live": {"S": PHASE_LIVE},
            ":iso": {"S": stored_time(now)},
            ":ev": {"L": [event("redriven", now, detail=actor, reset=seen is None)]},
        }
        if seen is None:
            budget = ", attempt = :zero"
            # Two operators redriving at once: only one resets the job.
            condition = "#s = :failed"
            values[":zero"] = {"N": "0"}
        else:
            budget = ", max_attempts = :max"
            # The budget is computed from the attempt count read just before.
            condition = "#s = :failed AND attempt = :seen"
            values[":seen"] = {"N": str(seen.attempt)}
            values[":max"] = {"N": str(max(seen.max_attempts, seen.attempt + 1))}
        return self._write(
            job_id,
            "redrive",
            tenant=tenant,
            update="SET #s = :pending, phase = :live, updated_at = :iso, "
            f"events = list_append(events, :ev){budget} REMOVE expires_at, lease_until, "
            "run_after, handoff, handoff_until, dead_lettered, finished_at",
            condition=condition,
            values=values,
        )

    def take_handoff(self, job_id: str, seen: str | None, *, handoff_until: float) -> Write:
        """A failed job's DLQ send that never got marked: take a new token and send again."""
        values: Item = {
            ":failed": {"S": Status.FAILED},
            ":handoff": {"S": uuid.uuid4().hex},
            ":handoff_until": {"N": repr(handoff_until)},
        }
        if seen is None:
            seen_condition = "attribute_not_exists(handoff)"
        else:
            seen_condition = "handoff = :seen"
            values[":seen"] = {"S": seen}
        return self._write(
            job_id,
            "take_handoff",
            update="SET handoff = :handoff, handoff_until = :handoff_until",
            # Two deliveries finding the same stale hand-off: one takes it, one sends.
            condition=f"#s = :failed AND attribute_not_exists(dead_lettered) AND {seen_condition}",
            values=values,
        )

    def mark_dead_lettered(self, job_id: str, handoff: str) -> Write:
        """The failed job's DLQ message (carrying `handoff`) was sent."""
        return self._write(
            job_id,
            "mark_dead_lettered",
            update="SET dead_lettered = :yes",
            # Only the holder of the current token: a stale sender must not mark for it.
            condition="#s = :failed AND handoff = :handoff",
            values={
                ":failed": {"S": Status.FAILED},
                ":handoff": {"S": handoff},
                ":yes": {"BOOL": True},
            },
        )

    def record_event(self, job_id: str, kind: str, detail: str, now: float) -> Write:
        """An audit note in the history; the status and everything else stay as they are."""
        return self._write(
            job_id,
            kind,
            update="SET events = list_append(events, :ev)",
            condition="attribute_exists(events)",
            values={":ev": {"L": [event(kind, now, detail=detail)]}},
        )

    def heartbeat(
        self,
        job_id: str,
        attempt: int,
        *,
        progress_json: str | None = None,
        lease_until: float | None = None,
    ) -> Write:
        """A running attempt's progress and/or a longer lease; no status change, no event.

        Fenced like a finish: a stale attempt (its lease lapsed, the job claimed again)
        cannot overwrite the newer attempt's progress nor stretch its lease. updated_at is
        left alone: it is the version the sweeper's re-send is conditional on. Only the
        changed attributes come back (UPDATED_NEW): the item may hold a large payload."""
        sets, values = [], {":running": {"S": Status.RUNNING}, ":attempt": {"N": str(attempt)}}
        if progress_json is not None:
            sets.append("progress = :progress")
            values[":progress"] = {"S": progress_json}
        if lease_until is not None:
            sets.append("lease_until = :lease")
            values[":lease"] = {"N": repr(lease_until)}
        if not sets:
            raise ValueError("a heartbeat writes progress, a lease, or both")
        write = self._write(
            job_id,
            "heartbeat",
            update="SET " + ", ".join(sets),
            condition="#s = :running AND attempt = :attempt",
            values=values,
        )
        write.request["ReturnValues"] = "UPDATED_NEW"
        return write

    def mark_requeued(self, job: Job, reason: str, now: float) -> Write:
        """The sweeper re-sent the job's message; no status change."""
        return self._write(
            job.id,
            "requeue",
            update="SET updated_at = :iso, events = list_append(events, :ev)",
            # The version the sweeper read: two sweepers running at once re-send a job
            # once, and a job that moved on meanwhile is left alone.
            condition="#s = :seen_status AND updated_at = :seen_at",
            values={
                ":seen_status": {"S": job.status},
                ":seen_at": {"S": job.updated_at.strftime(STORED_TIME_FORMAT)},
                ":iso": {"S": stored_time(now)},
                ":ev": {"L": [event("requeued", now, detail=reason)]},
            },
        )

    def backfill_phase(
        self, job_id: str, status: Status, phase: str, finished_at: float | None
    ) -> Write:
        """Upgrading a table made before the phase index: the job's phase, as its status
        read a moment ago implies (taskq.store.upgrade)."""
        values: Item = {":seen": {"S": status}, ":phase": {"S": phase}}
        update = "SET phase = :phase"
        if finished_at is not None:
            update += ", finished_at = :finished_at"
            values[":finished_at"] = {"N": repr(finished_at)}
        return self._write(
            job_id,
            "backfill_phase",
            update=update,
            # A job that moved on meanwhile, or that newer code gave its phase, is left alone.
            condition="#s = :seen AND attribute_not_exists(phase)",
            values=values,
        )

    # --- shared shapes ---------------------------------------------------------------

    def _ttl(self, now: float) -> Item:
        return {"N": str(expires_at(now, self.retention_days))}

    def _finish_attempt(
        self,
        job_id: str,
        attempt: int,
        name: str,
        status: Status,
        now: float,
        *,
        extra_set: str,
        values: Item,
        extra_remove: str = "",
        event_item: Item | None = None,
    ) -> Write:
        return self._write(
            job_id,
            name,
            update=f"SET #s = :to, updated_at = :iso, events = list_append(events, :ev), "
            f"{extra_set} REMOVE lease_until{extra_remove}",
            # The fencing token: a worker whose lease lapsed and whose job was claimed
            # again (attempt moved on) must not overwrite the newer attempt's outcome.
            condition="#s = :running AND attempt = :attempt",
            values={
                ":to": {"S": status},
                ":running": {"S": Status.RUNNING},
                ":attempt": {"N": str(attempt)},
                ":iso": {"S": stored_time(now)},
                ":ev": {"L": [event_item or event(status, now)]},
                **values,
            },
        )

    def _write(
        self,
        job_id: str,
        name: str,
        *,
        update: str,
        condition: str,
        values: Item,
        tenant: str | None = None,
    ) -> Write:
        write_id = uuid.uuid4().hex
        # A token per write, so a retried call can tell the item its first try wrote.
        if update.startswith("SET "):
            update = "SET write_id = :write, " + update.removeprefix("SET ")
        else:
            update = f"SET write_id = :write {update}"
        values = {**values, ":write": {"S": write_id}}
        if tenant is not None:
            # Part of the condition, so no read-then-write gap lets a caller touch
            # another tenant's job.
            condition = f"tenant = :tenant AND ({condition})"
            values[":tenant"] = {"S": tenant}
        names = {alias: n for alias, n in _RESERVED if alias in update or alias in condition}
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": key(job_id),
            "UpdateExpression": update,
            "ConditionExpression": f"attribute_exists(id) AND ({condition})",
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if names:
            request["ExpressionAttributeNames"] = names
        return Write(job_id, name, request, write_id, tenant)
