"""Every transition, and every illegal one refused, against moto's DynamoDB (in-process)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskq.errors import InvalidRequest, InvalidTransition, JobNotFound
from taskq.models import Job, Priority, Status
from taskq.store import JobStore, NewJob, decode_cursor, encode_cursor
from tests.unit.conftest import FakeClock

JOB_ID = "0" * 31 + "1"


def make(store: JobStore, job_id: str = JOB_ID, max_attempts: int = 3, **kwargs: str) -> Job:
    job, created = store.create(
        NewJob(
            job_id=job_id,
            task=kwargs.get("task", "echo"),
            payload_json=json.dumps({"n": 1}),
            max_attempts=max_attempts,
            request_hash=kwargs.get("request_hash"),
        )
    )
    assert created
    return job


def test_create_stores_a_pending_job_with_its_first_event(store: JobStore) -> None:
    job = make(store)
    assert job.status == Status.PENDING and job.attempt == 0
    read = store.get(JOB_ID)
    assert read == job
    assert [e.kind for e in read.events] == ["pending"]


def test_create_with_an_existing_id_returns_the_existing_job(store: JobStore) -> None:
    first = make(store, request_hash="a")
    again, created = store.create(NewJob(JOB_ID, "echo", "{}", 3, request_hash="b"))
    assert not created
    assert again.request_hash == first.request_hash == "a"


def test_happy_path_claim_then_complete(store: JobStore, clock: FakeClock) -> None:
    make(store)
    running = store.claim(JOB_ID, lease_until=clock() + 30)
    assert running.status == Status.RUNNING and running.attempt == 1
    done = store.complete(JOB_ID, 1, json.dumps({"ok": True}))
    assert done.status == Status.COMPLETED
    assert done.result == {"ok": True}
    assert done.expires_at is not None and done.expires_at > clock()
    assert done.lease_until is None
    assert [(e.kind, e.attempt) for e in done.events] == [
        ("pending", 0), ("running", 1), ("completed", 1),
    ]  # fmt: skip


def test_a_finished_job_cannot_be_claimed_or_completed_again(
    store: JobStore, clock: FakeClock
) -> None:
    make(store)
    store.claim(JOB_ID, clock() + 30)
    store.complete(JOB_ID, 1, "1")
    with pytest.raises(InvalidTransition) as info:
        store.claim(JOB_ID, clock() + 30)
    assert info.value.current == "completed"
    with pytest.raises(InvalidTransition):
        store.complete(JOB_ID, 1, "2")
    assert store.get(JOB_ID).result == 1


def test_a_live_lease_blocks_a_second_claim_and_a_lapsed_one_allows_it(
    store: JobStore, clock: FakeClock
) -> None:
    make(store)
    store.claim(JOB_ID, clock() + 30)
    with pytest.raises(InvalidTransition):
        store.claim(JOB_ID, clock() + 30)
    clock.advance(31)
    second = store.claim(JOB_ID, clock() + 30)
    assert second.attempt == 2


def test_the_attempt_number_fences_a_stale_worker(store: JobStore, clock: FakeClock) -> None:
    make(store)
    store.claim(JOB_ID, clock() + 30)
    clock.advance(31)
    store.claim(JOB_ID, clock() + 30)  # attempt 2 takes over
    for stale in (
        lambda: store.complete(JOB_ID, 1, "1"),
        lambda: store.retry(JOB_ID, 1, "boom", 5),
        lambda: store.fail(JOB_ID, 1, "boom"),
    ):
        with pytest.raises(InvalidTransition):
            stale()
    assert store.complete(JOB_ID, 2, "2").result == 2


def test_retry_waits_for_its_delay_before_the_next_claim(store: JobStore, clock: FakeClock) -> None:
    make(store)
    store.claim(JOB_ID, clock() + 30)
    retrying = store.retry(JOB_ID, 1, "RetryableError: once", 10)
    assert retrying.status == Status.RETRYING
    assert retrying.run_after == pytest.approx(clock() + 10)
    assert retrying.events[-1].delay_s == 10 and retrying.events[-1].error
    with pytest.raises(InvalidTransition):
        store.claim(JOB_ID, clock() + 30)  # too early
    clock.advance(10)
    assert store.claim(JOB_ID, clock() + 30).attempt == 2


def test_no_claim_beyond_the_attempt_budget(store: JobStore, clock: FakeClock) -> None:
    make(store, max_attempts=1)
    store.claim(JOB_ID, clock() + 30)
    clock.advance(60)  # the worker died: lease lapsed, but no attempts remain
    with pytest.raises(InvalidTransition):
        store.claim(JOB_ID, clock() + 30)
    failed = store.fail_abandoned(JOB_ID, 1)
    assert failed.status == Status.FAILED and "lease expired" in (failed.error or "")


def test_fail_abandoned_refuses_a_live_lease(store: JobStore, clock: FakeClock) -> None:
    make(store, max_attempts=1)
    store.claim(JOB_ID, clock() + 30)
    with pytest.raises(InvalidTransition):
        store.fail_abandoned(JOB_ID, 1)


def test_cancel_only_from_pending_or_retrying(store: JobStore, clock: FakeClock) -> None:
    make(store)
    assert store.cancel(JOB_ID).status == Status.CANCELLED
    with pytest.raises(InvalidTransition):
        store.cancel(JOB_ID)
    with pytest.raises(InvalidTransition):
        store.claim(JOB_ID, clock() + 30)

    other = "0" * 31 + "2"
    make(store, other)
    store.claim(other, clock() + 30)
    with pytest.raises(InvalidTransition) as info:
        store.cancel(other)
    assert info.value.current == "running"
    store.retry(other, 1, "x", 5)
    assert store.cancel(other).status == Status.CANCELLED


def test_redrive_resets_a_failed_job(store: JobStore, clock: FakeClock) -> None:
    make(store, max_attempts=1)
    with pytest.raises(InvalidTransition):
        store.redrive(JOB_ID)  # only failed jobs
    store.claim(JOB_ID, clock() + 30)
    failed = store.fail(JOB_ID, 1, "PermanentError: no")
    assert failed.expires_at is not None
    pending = store.redrive(JOB_ID, actor="alice")
    assert pending.status == Status.PENDING and pending.attempt == 0
    assert pending.expires_at is None
    assert pending.events[-1].kind == "redriven" and pending.events[-1].detail == "alice"
    with pytest.raises(InvalidTransition):
        store.redrive(JOB_ID)  # a second operator loses the race
    again = store.claim(JOB_ID, clock() + 30)
    assert again.attempt == 1
    assert [e.attempt for e in again.events] == [0, 1, 1, 0, 1]


def test_redrive_keeping_attempts_grants_one_more(store: JobStore, clock: FakeClock) -> None:
    make(store, max_attempts=2)
    for attempt in (1, 2):
        store.claim(JOB_ID, clock() + 30)
        if attempt == 1:
            store.retry(JOB_ID, 1, "x", 1)
            clock.advance(2)
    store.fail(JOB_ID, 2, "x (attempts exhausted)")
    pending = store.redrive(JOB_ID, reset_attempts=False)
    assert (pending.attempt, pending.max_attempts) == (2, 3)
    assert store.claim(JOB_ID, clock() + 30).attempt == 3


def test_transitions_on_a_missing_job(store: JobStore, clock: FakeClock) -> None:
    with pytest.raises(JobNotFound):
        store.claim(JOB_ID, clock() + 30)
    with pytest.raises(JobNotFound):
        store.cancel(JOB_ID)
    with pytest.raises(JobNotFound):
        store.get(JOB_ID)


def test_expired_jobs_read_as_gone_and_their_id_can_be_reused(
    store: JobStore, clock: FakeClock
) -> None:
    make(store)
    store.claim(JOB_ID, clock() + 30)
    done = store.complete(JOB_ID, 1, "1")
    assert done.expires_at is not None
    clock.now = done.expires_at + 1  # moto never deletes: reads must check
    assert store.find(JOB_ID) is None
    with pytest.raises(JobNotFound):
        store.cancel(JOB_ID)
    jobs, _ = store.list_jobs(status=Status.COMPLETED)
    assert jobs == []
    assert make(store).status == Status.PENDING


def test_list_pages_newest_first_with_a_cursor(store: JobStore, clock: FakeClock) -> None:
    ids = [f"{n:032x}" for n in range(1, 8)]
    for job_id in ids:
        make(store, job_id, task="echo")
        clock.advance(1)
    make(store, "f" * 32, task="other")
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page, cursor = store.list_jobs(task="echo", limit=3, cursor=cursor)
        assert len(page) <= 3
        seen += [j.id for j in page]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    both, _ = store.list_jobs(status=Status.PENDING, task="other")
    assert [j.id for j in both] == ["f" * 32]


def test_listing_by_task_reads_whole_jobs_through_a_keys_only_index(
    store: JobStore, dynamodb: Any, clock: FakeClock
) -> None:
    """The task index holds keys only (so later writes skip it): a page still returns whole,
    current jobs, leaves out expired ones and other priorities, and pages by its cursor."""
    table = store.table
    (index,) = [
        i
        for i in dynamodb.describe_table(TableName=table)["Table"]["GlobalSecondaryIndexes"]
        if i["IndexName"] == "by_task"
    ]
    assert index["Projection"]["ProjectionType"] == "KEYS_ONLY"
    ids = [f"{n:032x}" for n in range(1, 6)]
    for job_id in ids:
        make(store, job_id, task="echo")
        clock.advance(1)
    running = store.claim(ids[0], clock.now + 30)
    page, cursor = store.list_jobs(task="echo", limit=10)
    assert [j.id for j in page] == list(reversed(ids)) and cursor is None
    assert page[-1] == running  # the item as it is now, not as it was indexed
    assert page[0].payload == {"n": 1}
    dynamodb.update_item(
        TableName=table,
        Key={"id": {"S": ids[2]}},
        UpdateExpression="SET expires_at = :t, priority = :p",
        ExpressionAttributeValues={":t": {"N": "1"}, ":p": {"S": "high"}},
    )
    page, _ = store.list_jobs(task="echo", limit=10)
    assert ids[2] not in [j.id for j in page]  # expired: reads as gone
    dynamodb.update_item(
        TableName=table,
        Key={"id": {"S": ids[3]}},
        UpdateExpression="SET priority = :p",
        ExpressionAttributeValues={":p": {"S": "high"}},
    )
    high, _ = store.list_jobs(task="echo", priority=Priority.HIGH)
    assert [j.id for j in high] == [ids[3]]
    default, _ = store.list_jobs(task="echo", priority=Priority.DEFAULT)
    assert ids[3] not in [j.id for j in default] and ids[4] in [j.id for j in default]


def test_list_needs_a_filter(store: JobStore) -> None:
    with pytest.raises(InvalidRequest):
        store.list_jobs()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64 !!",
        "e30",
        "x" * 2000,
        encode_cursor("by_task", {"id": {"S": "a"}}),
        encode_cursor("by_phase", {"phase": {"S": "live"}}),  # a partition not listed
        encode_cursor("by_phase", {"phase": {"S": "completed"}, "id": {"S": "a"}}),
    ],
)
def test_hostile_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidRequest):
        decode_cursor(cursor or "=", "by_phase", "phase", partitions=["failed"])


def test_a_cursor_round_trips() -> None:
    key = {"id": {"S": "a"}, "phase": {"S": "live"}, "tenant_created": {"S": "acme#t"}}
    cursor = encode_cursor("by_phase", key)
    assert decode_cursor(cursor, "by_phase", "phase", partitions=["live"]) == key
    assert decode_cursor(cursor, "by_phase", "phase", tenant="acme", partitions=["live"]) == key
    with pytest.raises(InvalidRequest):  # another tenant's position is not a valid cursor
        decode_cursor(cursor, "by_phase", "phase", tenant="evil", partitions=["live"])
    start_of_next = encode_cursor("by_phase", {"phase": {"S": "live"}})
    assert decode_cursor(start_of_next, "by_phase", "phase", partitions=["waiting", "live"]) == {
        "phase": {"S": "live"}
    }


def test_a_listing_by_status_reads_every_phase_that_holds_it(
    store: JobStore, clock: FakeClock
) -> None:
    """Scheduled jobs sit in two phases (the clock's, and live once within SQS's delay):
    one listing pages through both, a cursor crossing from one to the other."""
    far = NewJob(job_id="f" * 32, task="echo", payload_json="{}", max_attempts=3,
                 run_at=clock() + 86_400, wakes_by_clock=True)  # fmt: skip
    near = NewJob(job_id="e" * 32, task="echo", payload_json="{}", max_attempts=3,
                  run_at=clock() + 60)  # fmt: skip
    store.create(far)
    store.create(near)
    make(store)  # pending: in the live phase too, left out of this listing
    first, cursor = store.list_jobs(status=Status.SCHEDULED, limit=1)
    assert [j.id for j in first] == [far.job_id] and cursor
    second, cursor = store.list_jobs(status=Status.SCHEDULED, limit=1, cursor=cursor)
    assert [j.id for j in second] == [near.job_id]
    rest, cursor = store.list_jobs(status=Status.SCHEDULED, limit=1, cursor=cursor)
    assert rest == [] and cursor is None


def test_the_sweepers_read_skips_each_tenants_jobs_newer_than_its_window(
    store: JobStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def new(n: int, tenant: str) -> str:
        job_id = f"{n:032x}"
        store.create(NewJob(job_id, "echo", "{}", 3, tenant=tenant))
        return job_id

    old = [new(1, "acme"), new(2, "beta"), new(3, "acme-eu")]
    store.claim(old[2], lease_until=clock() + 30)  # running: its lease lapses below
    clock.advance(600)
    fresh = [new(10 + n, tenant) for n, tenant in enumerate(["acme", "beta", "acme"] * 3)]
    read: list[str] = []
    original = store._send

    def spy(operation: str, kwargs: dict[str, Any]) -> Any:
        if operation == "batch_get_item":
            read.extend(k["id"]["S"] for k in kwargs["RequestItems"][store.table]["Keys"])
        return original(operation, kwargs)

    monkeypatch.setattr(store, "_send", spy)
    stalled = store.stalled(before=clock() - 300)
    assert sorted(j.id for j in stalled) == sorted(old)
    assert {j.status for j in stalled} == {Status.PENDING, Status.RUNNING}
    assert not set(read) & set(fresh)  # only the jobs older than the window were read
    assert store.stalled(before=clock() - 300, limit=1) == stalled[:1]


def test_stalled_and_requeue_marks_once(store: JobStore, clock: FakeClock) -> None:
    make(store)
    assert store.stalled(before=clock() - 300) == []
    clock.advance(301)
    [stale] = store.stalled(before=clock() - 300)
    assert stale.status == Status.PENDING
    store.mark_requeued(stale, "pending and never claimed")
    with pytest.raises(InvalidTransition):
        store.mark_requeued(stale, "a second sweeper with the same read")
    assert store.stalled(before=clock() - 300) == []
    assert store.get(JOB_ID).events[-1].kind == "requeued"


def test_create_many_in_batches(store: JobStore) -> None:
    news = [NewJob(f"{n:032x}", "echo", "{}", 3) for n in range(1, 61)]
    jobs = store.create_many(news)
    assert [j.id for j in jobs] == [n.job_id for n in news]
    assert all(store.get(n.job_id).status == Status.PENDING for n in news[::10])
    with pytest.raises(ValueError):
        store.create_many([NewJob("f" * 32, "echo", "{}", 3, idempotency_key="k")])


def test_tenants_see_only_their_own_jobs(store: JobStore, clock: FakeClock) -> None:
    mine, theirs = "a" * 32, "b" * 32
    store.create(NewJob(mine, "echo", "{}", 3, tenant="acme"))
    store.create(NewJob(theirs, "echo", "{}", 3, tenant="globex"))
    assert store.get(mine, tenant="acme").tenant == "acme"
    assert store.find(theirs, tenant="acme") is None
    with pytest.raises(JobNotFound):
        store.cancel(theirs, tenant="acme")  # not "conflict": existence is not revealed
    assert store.get(theirs).status == Status.PENDING
    listed, _ = store.list_jobs(tenant="acme", status=Status.PENDING)
    assert [j.id for j in listed] == [mine]
    listed, _ = store.list_jobs(tenant="acme", task="echo")
    assert [j.id for j in listed] == [mine]
    everyone, _ = store.list_jobs(status=Status.PENDING)  # operators see all tenants
    assert {j.id for j in everyone} == {mine, theirs}
    store.claim(theirs, clock() + 30)
    store.fail(theirs, 1, "x")
    with pytest.raises(JobNotFound):
        store.redrive(theirs, tenant="acme")
    assert store.cancel(mine, tenant="acme").status == Status.CANCELLED


def test_a_retried_put_knows_its_own_job_even_after_the_sweeper_touched_it(
    store: JobStore, clock: FakeClock
) -> None:
    """botocore's retries of a put whose response was lost can outlast the sweeper's
    window: the job this put created has been re-sent (a new write_id) when the retry
    meets it. Still ours: a submit without a key must not answer "collided" (the 10,000-job
    fault run, seed 383620, found it)."""
    new = NewJob(job_id="9" * 32, task="echo", payload_json="{}", max_attempts=3)
    put = store.transitions.create(new, clock())
    store.db.put_item(**put.request)  # applied; its response "lost"
    clock.advance(301)
    [stale] = store.stalled(before=clock() - 300)
    store.mark_requeued(stale, "pending and never claimed")  # a new write_id
    assert store.get(new.job_id).events[-1].kind == "requeued"
    current = store.db.get_item(TableName=store.table, Key={"id": {"S": new.job_id}})["Item"]
    job, created = put.refused(current)
    assert created and job.id == new.job_id
    # Another put for the same id (another request) is not ours.
    other = store.transitions.create(new, clock())
    assert other.refused(current)[1] is False
