"""DLQ operations (taskq.dlq) against moto's SQS and DynamoDB (in-process).

Selection, classification, the redrive's order of steps and what each interruption
leaves behind. The same interruptions against a real moto server process, with the
real worker finishing the jobs, are in tests/acceptance/test_redrive_interrupted.py.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest

from taskq.config import Settings
from taskq.dlq import (
    HOLD_MARGIN_S,
    Action,
    AuditRecord,
    DeadEntry,
    DeadLetters,
    Kind,
    Selector,
)
from taskq.errors import BackendError
from taskq.models import Job, QueueMessage, Status
from taskq.queue import JobQueue
from taskq.store import JobStore, NewJob
from tests.unit.conftest import FakeClock

ACTOR = "tester@host"


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing on the way catches it."""


@pytest.fixture
def store(settings: Settings, dynamodb: Any) -> JobStore:
    # The real clock: DLQ ages compare job times with SQS's SentTimestamp.
    return JobStore(settings.table_name, dynamodb)


@pytest.fixture
def dead(store: JobStore, queue: JobQueue) -> DeadLetters:
    return DeadLetters(store, queue)


def body(job_id: str, task: str) -> str:
    return QueueMessage(job_id=job_id, task=task).model_dump_json()


def new_job(store: JobStore, task: str = "echo", max_attempts: int = 1) -> str:
    job_id = uuid.uuid4().hex
    store.create(NewJob(job_id=job_id, task=task, payload_json="{}", max_attempts=max_attempts))
    return job_id


def failed(
    store: JobStore, queue: JobQueue, task: str = "echo", error: str = "Boom: it broke"
) -> str:
    """A job failed and dead-lettered exactly as the worker does it."""
    job_id = new_job(store, task)
    job = store.claim(job_id, lease_until=time.time() + 30)
    store.fail(job_id, job.attempt, error)
    attrs = {"taskq-job-id": job_id, "taskq-task": task, "taskq-attempts": str(job.attempt)}
    queue.dead_letter(body(job_id, task), error, attrs)
    return job_id


def completed(store: JobStore, job_id: str) -> None:
    job = store.claim(job_id, lease_until=time.time() + 30)
    store.complete(job_id, job.attempt, "{}")


def main_queue(sqs: Any, queue: JobQueue) -> list[str]:
    """Job ids of the messages on the main queue (received and deleted)."""
    ids: list[str] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=queue.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not got:
            return sorted(ids)
        for message in got:
            ids.append(QueueMessage.model_validate_json(message["Body"]).job_id)
            sqs.delete_message(QueueUrl=queue.queue_url, ReceiptHandle=message["ReceiptHandle"])


def dlq_job_ids(queue: JobQueue, dead: DeadLetters) -> list[str]:
    """Job ids in the DLQ ("" for a malformed body); checks none was left hidden."""
    depth = queue.depth(dead=True)
    assert depth["in_flight"] == 0, "a DLQ message was left hidden"
    return sorted((e.job_id or "") for e in dead.list_messages().entries)


# --- listing -----------------------------------------------------------------------------


def test_list_classifies_every_message_and_leaves_none_hidden(
    store: JobStore, queue: JobQueue, dead: DeadLetters
) -> None:
    failed_id = failed(store, queue, error="Boom: once")
    done_id = failed(store, queue)
    store.redrive(done_id)
    completed(store, done_id)
    live_id = failed(store, queue)
    store.redrive(live_id)
    missing_id = uuid.uuid4().hex
    queue.dead_letter(body(missing_id, "echo"), f"job {missing_id} not found")
    queue.dead_letter("{not json", "malformed message: ...")

    scan = dead.list_messages()

    kinds = {e.job_id: e.kind for e in scan.entries}
    assert kinds == {
        failed_id: Kind.FAILED,
        done_id: Kind.STALE,
        live_id: Kind.LIVE,
        missing_id: Kind.ORPHAN,
        None: Kind.ORPHAN,
    }
    malformed = next(e for e in scan.entries if e.job_id is None)
    assert malformed.orphan_reason and malformed.orphan_reason.startswith("malformed body")
    first = next(e for e in scan.entries if e.job_id == failed_id)
    assert (first.task, first.attempts, first.error) == ("echo", 1, "Boom: once")
    assert scan.seen == 5 and not scan.truncated
    assert queue.depth(dead=True) == {"visible": 5, "in_flight": 0, "delayed": 0}


def test_list_filters_and_limits(store: JobStore, queue: JobQueue, dead: DeadLetters) -> None:
    alpha = [failed(store, queue, task="alpha") for _ in range(3)]
    failed(store, queue, task="beta", error="Timeout: slow")
    assert {e.job_id for e in dead.list_messages(Selector(task="alpha")).entries} == set(alpha)
    by_error = dead.list_messages(Selector(error_match=re.compile("Timeout")))
    assert [e.task for e in by_error.entries] == ["beta"]
    limited = dead.list_messages(limit=2)
    assert len(limited.entries) == 2 and limited.truncated
    assert dead.list_messages(Selector(older_than_s=3_600)).entries == []
    assert queue.depth(dead=True)["in_flight"] == 0


def test_show_finds_by_job_id_or_message_id(
    store: JobStore, queue: JobQueue, dead: DeadLetters
) -> None:
    job_id = failed(store, queue)
    found = dead.show(job_id)
    assert found is not None and found.job is not None and found.job.id == job_id
    again = dead.show(found.message_id)
    assert again is not None and again.job_id == job_id
    assert dead.show("f" * 32) is None
    assert queue.depth(dead=True)["in_flight"] == 0


def test_oldest_age(store: JobStore, queue: JobQueue, dead: DeadLetters) -> None:
    assert dead.oldest_age() == (None, True)
    failed(store, queue)
    age, exact = dead.oldest_age()
    assert age is not None and 0 <= age < 60 and exact


# --- redrive -----------------------------------------------------------------------------


def test_redrive_resets_then_sends_then_deletes(
    store: JobStore, queue: JobQueue, dead: DeadLetters, sqs: Any
) -> None:
    job_id = failed(store, queue)
    steps: list[str] = []
    dead.on_step = lambda step, e: steps.append(step)

    report = dead.redrive(Selector(everything=True), actor=ACTOR)

    assert [o.action for o in report.outcomes] == [Action.REDRIVEN]
    assert steps == ["reset", "sent", "deleted"]
    job = store.get(job_id)
    assert job.status == Status.PENDING and job.attempt == 0 and job.expires_at is None
    redriven = job.events[-1]
    assert redriven.kind == "redriven" and redriven.detail is not None
    assert redriven.detail.startswith(ACTOR) and report.outcomes[0].entry.message_id in (
        redriven.detail
    )
    assert main_queue(sqs, queue) == [job_id]
    assert dlq_job_ids(queue, dead) == []
    assert report.complete


def test_redrive_takes_only_the_selected_and_frees_the_rest_at_once(
    store: JobStore, queue: JobQueue, dead: DeadLetters, sqs: Any
) -> None:
    alpha = failed(store, queue, task="alpha")
    beta = failed(store, queue, task="beta")

    report = dead.redrive(Selector(task="alpha"), actor=ACTOR)

    assert [(o.entry.job_id, o.action) for o in report.outcomes] == [(alpha, Action.REDRIVEN)]
    assert store.get(beta).status == Status.FAILED
    # beta's message was received by the scan, and is visible again right away.
    assert queue.depth(dead=True) == {"visible": 1, "in_flight": 0, "delayed": 0}
    assert main_queue(sqs, queue) == [alpha]


def test_redrive_deletes_stale_requeues_live_and_leaves_orphans(
    store: JobStore, queue: JobQueue, dead: DeadLetters, sqs: Any
) -> None:
    done_id = failed(store, queue)
    store.redrive(done_id)
    completed(store, done_id)
    live_id = failed(store, queue)
    store.redrive(live_id)  # an earlier redrive stopped after its reset
    missing_id = uuid.uuid4().hex
    queue.dead_letter(body(missing_id, "echo"), "not found")
    queue.dead_letter("garbage", "malformed")

    report = dead.redrive(Selector(everything=True), actor=ACTOR)

    actions = {o.entry.job_id: o.action for o in report.outcomes}
    assert actions == {
        done_id: Action.CLEARED,
        live_id: Action.REQUEUED,
        missing_id: Action.ORPHAN,
        None: Action.ORPHAN,
    }
    assert store.get(done_id).status == Status.COMPLETED  # untouched
    assert main_queue(sqs, queue) == [live_id]  # nothing sent for a finished job
    assert dlq_job_ids(queue, dead) == ["", missing_id]  # orphans stay, visible
    assert report.complete  # orphans are reported, not a failure


def test_dry_run_changes_nothing(
    store: JobStore, queue: JobQueue, dead: DeadLetters, sqs: Any
) -> None:
    ids = sorted(failed(store, queue) for _ in range(3))
    queue.dead_letter("garbage", "malformed")

    report = dead.redrive(Selector(everything=True), actor=ACTOR, dry_run=True)

    assert report.dry_run
    assert report.counts()["redriven"] == 3 and report.counts()["orphan"] == 1
    assert all(store.get(i).status == Status.FAILED for i in ids)
    assert [e.kind for e in store.get(ids[0]).events][-1] == "failed"
    assert main_queue(sqs, queue) == []
    assert dlq_job_ids(queue, dead) == ["", *ids]


def test_keep_attempts_keeps_the_count_and_allows_one_more(
    store: JobStore, queue: JobQueue, dead: DeadLetters
) -> None:
    job_id = failed(store, queue)  # attempt 1 of 1
    dead.redrive(Selector(ids=frozenset({job_id})), actor=ACTOR, reset_attempts=False)
    job = store.get(job_id)
    assert (job.status, job.attempt, job.max_attempts) == (Status.PENDING, 1, 2)


def test_max_caps_the_messages_taken_not_the_orphans_reported(
    store: JobStore, queue: JobQueue, dead: DeadLetters, sqs: Any
) -> None:
    for _ in range(4):
        failed(store, queue)
    report = dead.redrive(Selector(everything=True), actor=ACTOR, max_messages=2)
    assert report.counts()["redriven"] == 2 and report.truncated
    assert len(main_queue(sqs, queue)) == 2
    assert len(dlq_job_ids(queue, dead)) == 2


def test_two_messages_for_one_job_send_it_once(
    store: JobStore, queue: JobQueue, dead: DeadLetters, sqs: Any
) -> None:
    job_id = failed(store, queue)
    queue.dead_letter(body(job_id, "echo"), "a duplicate delivery dead-lettered it again")

    report = dead.redrive(Selector(ids=frozenset({job_id})), actor=ACTOR)

    assert sorted(o.action for o in report.outcomes) == [Action.CLEARED, Action.REDRIVEN]
    assert main_queue(sqs, queue) == [job_id]
    assert dlq_job_ids(queue, dead) == []


def test_restricted_to_what_was_confirmed(
    store: JobStore, queue: JobQueue, dead: DeadLetters
) -> None:
    first = failed(store, queue)
    preview = dead.redrive(Selector(everything=True), actor=ACTOR, dry_run=True)
    confirmed = {o.entry.message_id for o in preview.outcomes}
    later = failed(store, queue)  # failed after the operator said yes

    report = dead.redrive(
        Selector(everything=True), actor=ACTOR, restrict_to=confirmed | {"vanished-message"}
    )

    done = {o.entry.job_id: o.action for o in report.outcomes if o.entry.job_id}
    assert done == {first: Action.REDRIVEN}
    skipped = [o for o in report.outcomes if o.action is Action.SKIPPED]
    assert [o.entry.message_id for o in skipped] == ["vanished-message"]
    assert not report.complete
    assert store.get(later).status == Status.FAILED


def test_a_job_redriven_by_someone_else_meanwhile_is_requeued(
    store: JobStore, queue: JobQueue, dead: DeadLetters, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = failed(store, queue)
    real = store.redrive

    def racing(job_id: str, **kwargs: Any) -> Job:
        monkeypatch.setattr(store, "redrive", real)
        real(job_id, actor="the other operator")  # wins the race
        return real(job_id, **kwargs)  # ours now fails its condition

    monkeypatch.setattr(store, "redrive", racing)
    report = dead.redrive(Selector(everything=True), actor=ACTOR)

    assert [o.action for o in report.outcomes] == [Action.REQUEUED]
    assert [e.kind for e in store.get(job_id).events].count("redriven") == 1
    assert main_queue(sqs, queue) == [job_id]
    assert dlq_job_ids(queue, dead) == []


def test_rate_paces_the_sends(store: JobStore, queue: JobQueue, dead: DeadLetters) -> None:
    for _ in range(3):
        failed(store, queue)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    dead.sleep = sleep
    dead.redrive(Selector(everything=True), actor=ACTOR, rate=4.0)
    assert len(slept) == 2 and all(0 < s <= 0.25 for s in slept)  # the first send is free


def test_a_long_run_extends_its_hold_on_the_messages(
    store: JobStore, queue: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(3):
        failed(store, queue)
    clock = FakeClock()
    clock.now = time.time()
    dead = DeadLetters(store, queue, clock=clock, visibility_s=60)
    held: list[int] = []
    real_hold = queue.hold_dead

    def hold(handles: Any, seconds: int) -> list[str]:
        held.append(seconds)
        return real_hold(handles, seconds)

    monkeypatch.setattr(queue, "hold_dead", hold)

    def slow(step: str, e: DeadEntry) -> None:
        if step == "deleted":
            clock.now += 60 - HOLD_MARGIN_S  # each message takes most of the visibility

    dead.on_step = slow
    report = dead.redrive(Selector(everything=True), actor=ACTOR)
    assert report.counts()["redriven"] == 3
    assert held == [60, 60]  # before the 2nd and the 3rd message


def test_a_message_whose_hold_lapsed_is_left_alone(
    store: JobStore, queue: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [failed(store, queue) for _ in range(2)]
    clock = FakeClock()
    clock.now = time.time()
    dead = DeadLetters(store, queue, clock=clock)
    scan = dead.scan

    def scan_then_stall(*args: Any, **kwargs: Any) -> Any:
        found = scan(*args, **kwargs)
        clock.now += 3_600  # the process stalled: the scan's visibility ran out
        return found

    monkeypatch.setattr(dead, "scan", scan_then_stall)
    monkeypatch.setattr(queue, "hold_dead", lambda handles, seconds: list(handles))

    report = dead.redrive(Selector(ids=frozenset(ids)), actor=ACTOR)

    assert [o.action for o in report.outcomes] == [Action.SKIPPED, Action.SKIPPED]
    assert all(store.get(i).status == Status.FAILED for i in ids)


# --- interrupted redrives: what each stopping point leaves behind --------------------------


def crash_after(step: str) -> Any:
    def hook(name: str, e: DeadEntry) -> None:
        if name == step:
            raise Crash(step)

    return hook


def test_stopped_after_the_reset_the_next_redrive_sends_it(
    store: JobStore, queue: JobQueue, dead: DeadLetters, sqs: Any
) -> None:
    job_id = failed(store, queue)
    dead.on_step = crash_after("reset")
    with pytest.raises(Crash):
        dead.redrive(Selector(everything=True), actor=ACTOR)

    assert store.get(job_id).status == Status.PENDING  # reset, never sent ...
    assert main_queue(sqs, queue) == []
    assert dlq_job_ids(queue, dead) == [job_id]  # ... so its DLQ message is still there

    dead.on_step = None
    report = dead.redrive(Selector(everything=True), actor=ACTOR)
    assert [o.action for o in report.outcomes] == [Action.REQUEUED]
    assert main_queue(sqs, queue) == [job_id]
    assert dlq_job_ids(queue, dead) == []


def test_stopped_after_the_send_the_job_is_queued_and_the_message_kept(
    store: JobStore, queue: JobQueue, dead: DeadLetters, sqs: Any
) -> None:
    first, second = failed(store, queue), failed(store, queue)
    dead.on_step = crash_after("sent")
    with pytest.raises(Crash):
        dead.redrive(Selector(everything=True), actor=ACTOR)

    queued = main_queue(sqs, queue)
    assert len(queued) == 1  # one job got as far as the send
    (sent,) = queued
    untouched = second if sent == first else first
    assert store.get(sent).status == Status.PENDING
    assert store.get(untouched).status == Status.FAILED
    assert dlq_job_ids(queue, dead) == sorted([first, second])  # both still in the DLQ

    completed(store, sent)  # the worker ran it meanwhile
    dead.on_step = None
    report = dead.redrive(Selector(everything=True), actor=ACTOR)
    assert {o.entry.job_id: o.action for o in report.outcomes} == {
        sent: Action.CLEARED,  # stale: deleted without sending it again
        untouched: Action.REDRIVEN,
    }
    assert main_queue(sqs, queue) == [untouched]
    assert dlq_job_ids(queue, dead) == []


def test_a_failed_send_leaves_the_message_for_the_next_redrive(
    store: JobStore, queue: JobQueue, dead: DeadLetters, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = failed(store, queue)

    def refuse(job_id: str, task: str, *args: object, **kwargs: object) -> str:
        raise BackendError("SQS send_message failed: ServiceUnavailable")

    monkeypatch.setattr(queue, "send", refuse)
    report = dead.redrive(Selector(everything=True), actor=ACTOR)
    assert [o.action for o in report.outcomes] == [Action.ERROR]
    assert "send failed" in report.outcomes[0].detail and not report.complete
    assert store.get(job_id).status == Status.PENDING
    assert dlq_job_ids(queue, dead) == [job_id]

    monkeypatch.undo()
    assert [o.action for o in dead.redrive(Selector(), actor=ACTOR).outcomes] == [Action.REQUEUED]
    assert main_queue(sqs, queue) == [job_id]


def test_a_failed_delete_leaves_a_stale_message_the_next_redrive_clears(
    store: JobStore, queue: JobQueue, dead: DeadLetters, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = failed(store, queue)

    def refuse(receipt_handle: str) -> None:
        raise BackendError("SQS delete_message failed: ServiceUnavailable")

    monkeypatch.setattr(queue, "delete_dead", refuse)
    report = dead.redrive(Selector(everything=True), actor=ACTOR)
    assert [o.action for o in report.outcomes] == [Action.ERROR]
    assert main_queue(sqs, queue) == [job_id]  # queued all the same
    monkeypatch.undo()
    assert dlq_job_ids(queue, dead) == [job_id]

    completed(store, job_id)
    report = dead.redrive(Selector(everything=True), actor=ACTOR)
    assert [o.action for o in report.outcomes] == [Action.CLEARED]
    assert main_queue(sqs, queue) == []
    assert dlq_job_ids(queue, dead) == []


def test_a_failed_reset_changes_nothing(
    store: JobStore, queue: JobQueue, dead: DeadLetters, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = failed(store, queue)

    def refuse(job_id: str, **kwargs: Any) -> Job:
        raise BackendError("DynamoDB update_item failed: InternalServerError")

    monkeypatch.setattr(store, "redrive", refuse)
    report = dead.redrive(Selector(everything=True), actor=ACTOR)
    assert [o.action for o in report.outcomes] == [Action.ERROR]
    monkeypatch.undo()
    assert store.get(job_id).status == Status.FAILED
    assert main_queue(sqs, queue) == []
    assert dlq_job_ids(queue, dead) == [job_id]


# --- purge -------------------------------------------------------------------------------


def test_purge_deletes_only_the_selected_with_an_audit_record(
    store: JobStore, queue: JobQueue, dead: DeadLetters
) -> None:
    keep = failed(store, queue, task="alpha")
    gone = failed(store, queue, task="beta")
    queue.dead_letter("garbage", "malformed")
    records: list[AuditRecord] = []

    report = dead.purge(Selector(task="beta"), actor=ACTOR, audit=records.append)

    assert [(o.entry.job_id, o.action) for o in report.outcomes] == [(gone, Action.PURGED)]
    assert [(r.actor, r.job_id, r.operation, r.job_status) for r in records] == [
        (ACTOR, gone, "purge", "failed")
    ]
    assert store.get(gone).status == Status.FAILED  # the job is not touched
    assert dlq_job_ids(queue, dead) == ["", keep]


def test_purge_can_remove_orphans_and_dry_run_removes_nothing(
    store: JobStore, queue: JobQueue, dead: DeadLetters
) -> None:
    keep = failed(store, queue)
    queue.dead_letter("garbage", "malformed")
    orphan = next(e for e in dead.list_messages().entries if e.job_id is None)
    selector = Selector(ids=frozenset({orphan.message_id}))
    records: list[AuditRecord] = []

    dry = dead.purge(selector, actor=ACTOR, audit=records.append, dry_run=True)
    assert [o.action for o in dry.outcomes] == [Action.PURGED] and records == []
    assert dlq_job_ids(queue, dead) == ["", keep]

    dead.purge(selector, actor=ACTOR, audit=records.append)
    assert [r.body for r in records] == ["garbage"]
    assert dlq_job_ids(queue, dead) == [keep]


# --- store reads the CLI relies on -----------------------------------------------------------


def test_count_jobs_and_find_many(store: JobStore, queue: JobQueue) -> None:
    ids = [new_job(store) for _ in range(3)]
    failed(store, queue)
    counts, exact = store.count_jobs()
    assert exact and counts[Status.PENDING] == 3 and counts[Status.FAILED] == 1
    assert counts[Status.COMPLETED] == 0 and counts[Status.RUNNING] == 0
    at_most_two, exact = store.count_jobs(max_live=2)
    assert not exact and at_most_two[Status.PENDING] == 2  # a lower bound, and said so
    found = store.find_many([*ids, "f" * 32, ids[0]])
    assert set(found) == set(ids)
    assert store.find_many([]) == {}
