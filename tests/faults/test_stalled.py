"""Stalled work that SQS will never bring back, found by the real sweeper Lambda; and two
sweepers at the same moment, which must re-send each stalled job once.

tests/integration/test_recovery.py covers a job stored but never sent and a lapsed lease, with
one sweeper at a time; here: a retry whose message was lost, a last attempt whose worker died
(it must end failed, in the DLQ, not run again), and many stalled jobs of every kind with two
sweepers racing over them.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from infra.emulator import MotoServer
from infra.local_cloud import LocalCloud
from infra.sandbox import LocalFunction
from taskq.models import Job
from taskq.store import JobStore, NewJob
from tests.faults.ledger import ExecutionLog
from tests.faults.stack import deploy, direct_client, scheduled_event
from tests.faults.timing import STALE_S

pytestmark = pytest.mark.integration

PAST_S = 10 * STALE_S  # "a while ago": well past the sweeper's stale threshold


class Stack:
    def __init__(self, cloud: LocalCloud, emulator: str, log: ExecutionLog) -> None:
        self.cloud = cloud
        self.log = log
        self.sqs = direct_client("sqs", emulator)
        ddb = direct_client("dynamodb", emulator)
        table = cloud.env["TASKQ_TABLE"]
        self.store = JobStore(table, ddb)
        self.past = JobStore(table, ddb, clock=lambda: time.time() - PAST_S)

    def stalled(self, kind: str, *, attempts: int = 3, fail_until: int = 0) -> str:
        """A job left, a while ago, in a state SQS will not recover: its message is gone.

        pending: stored, then the API died before the send. running: claimed, then its
        worker died and the message was deleted. retrying: attempt 1 failed, the retry's
        message was lost. last-attempt: like running, on the job's last attempt.
        """
        job_id = uuid.uuid4().hex
        payload = f'{{"n": 0, "fail_until": {fail_until}}}'
        self.past.create(NewJob(job_id, "chaos", payload, max_attempts=attempts))
        lapsed = time.time() - PAST_S + 1
        if kind == "pending":
            return job_id
        self.past.claim(job_id, lease_until=lapsed)
        if kind == "retrying":
            self.past.retry(job_id, 1, "RetryableError: planned", delay_s=1)
        elif kind == "last-attempt":
            for attempt in range(1, attempts):
                self.past.retry(job_id, attempt, "RetryableError: planned", delay_s=0)
                self.past.claim(job_id, lease_until=lapsed)
        return job_id

    def sweep(self, function: LocalFunction | None = None) -> dict[str, Any]:
        report: dict[str, Any] = (function or self.cloud.functions["SweeperFunction"]).invoke(
            scheduled_event()
        )
        return report

    def wait(self, job_ids: list[str], statuses: set[str], timeout: float = 30.0) -> list[Job]:
        deadline = time.monotonic() + timeout
        while True:
            jobs = [self.store.get(job_id) for job_id in job_ids]
            if all(job.status in statuses for job in jobs):
                return jobs
            if time.monotonic() > deadline:
                raise AssertionError([(j.id, j.status, j.attempt) for j in jobs])
            time.sleep(0.3)

    def runs(self, job_id: str) -> int:
        self.log.refresh()
        return len(self.log.executions().get(job_id, []))


@pytest.fixture(scope="module")
def stack(fault_emulator: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log = tmp_path_factory.mktemp("stalled") / "executions.log"
    cloud = deploy(fault_emulator.url, fault_emulator.url, f"st{uuid.uuid4().hex[:8]}", log)
    try:
        yield Stack(cloud, fault_emulator.url, ExecutionLog(log))
    finally:
        cloud.stop()


def test_a_retry_whose_message_was_lost_is_re_sent(stack: Stack) -> None:
    job_id = stack.stalled("retrying", fail_until=1)
    report = stack.sweep()
    assert report["requeued"]["retrying"] >= 1
    (done,) = stack.wait([job_id], {"completed", "failed"})
    assert done.status == "completed" and done.attempt == 2
    assert [e.kind for e in done.events].count("requeued") == 1
    assert stack.runs(job_id) == 1  # attempt 1 is history made up above; attempt 2 ran


def test_a_last_attempt_whose_worker_died_ends_failed_in_the_dlq(stack: Stack) -> None:
    job_id = stack.stalled("last-attempt", attempts=2)
    assert stack.store.get(job_id).attempt == 2
    stack.sweep()
    (done,) = stack.wait([job_id], {"completed", "failed"})
    assert done.status == "failed" and "lease expired" in (done.error or "")
    assert stack.runs(job_id) == 0  # no attempt left: it must not run again
    dlq = stack.cloud.env["TASKQ_DLQ_URL"]
    found = False
    for _ in range(10):
        for message in stack.sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
            WaitTimeSeconds=1, VisibilityTimeout=1,
        ).get("Messages", []):  # fmt: skip
            attrs = message.get("MessageAttributes", {})
            found |= attrs.get("taskq-job-id", {}).get("StringValue") == job_id
        if found:
            break
    assert found, "failed, but not in the DLQ"


def test_two_sweepers_at_once_re_send_each_stalled_job_once(stack: Stack) -> None:
    sweeper = stack.cloud.functions["SweeperFunction"]
    second = LocalFunction(sweeper.spec, extra_env=sweeper.extra_env)
    try:
        # Warm both sandboxes (before there is work), so the two runs below start together
        # rather than a cold start apart; then release them at one instant, twice over.
        stack.sweep(sweeper), stack.sweep(second)
        kinds = ["pending", "running", "retrying"] * 20
        job_ids = [stack.stalled(k, fail_until=1 if k == "retrying" else 0) for k in kinds]
        reports: list[dict[str, Any]] = []
        for _ in range(2):
            start = threading.Barrier(2)

            def run(function: LocalFunction, start: threading.Barrier = start) -> None:
                start.wait(10)
                reports.append(stack.sweep(function))

            pair = [threading.Thread(target=run, args=(f,)) for f in (sweeper, second)]
            for thread in pair:
                thread.start()
            for thread in pair:
                thread.join(60)
    finally:
        second.close()
    assert len(reports) == 4
    # They did race: each saw jobs the other had just re-sent (and left them alone).
    assert sum(r["skipped"] for r in reports) > 0, reports
    requeued = sum(sum(r["requeued"].values()) for r in reports)
    assert requeued == len(job_ids), reports  # each once, by whichever sweeper won it
    assert sum(r["send_failures"] for r in reports) == 0
    jobs = stack.wait(job_ids, {"completed", "failed"}, timeout=60)
    for job in jobs:
        assert job.status == "completed", (job.id, job.status, job.error)
        assert [e.kind for e in job.events].count("requeued") == 1, job.events
        assert [e.kind for e in job.events].count("completed") == 1
