"""One lost response at a time: the write happened, the caller never heard (the connection
dropped after the service applied it), botocore retried it, and the retry met the write's own
result. Each transition must come out as if the response had arrived.

The random suite meets these too, but rarely; here each is made certain, on the real stack,
by the chaos proxy losing exactly one chosen response.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.chaos_proxy import Action, Call, ChaosProxy, Drop
from infra.emulator import MotoServer
from infra.local_cloud import LocalCloud
from taskq.models import QueueMessage
from taskq.store import JobStore, NewJob
from tests.faults.ledger import ExecutionLog
from tests.faults.stack import deploy, direct_client, keyed_job_id
from tests.integration.http import Reply, call

pytestmark = pytest.mark.integration

WAIT_S = 25.0  # a lease (9 s) and a visibility timeout (3 s) with room to spare


class Stack:
    def __init__(self, cloud: LocalCloud, proxy: ChaosProxy, emulator: str, log: Path) -> None:
        self.cloud = cloud
        self.proxy = proxy
        self.emulator = emulator
        self.log = ExecutionLog(log)
        self.sqs = direct_client("sqs", emulator)
        self.store = JobStore(cloud.env["TASKQ_TABLE"], direct_client("dynamodb", emulator))

    def lose_once(self, matches: Callable[[Call], bool]) -> list[Call]:
        """Lose the response of the first call that `matches` (forwarded, then dropped)."""
        lost: list[Call] = []

        def hook(call: Call) -> Action | None:
            if lost or not matches(call):
                return None
            lost.append(call)
            return Drop(after=True)

        self.proxy.hooks.append(hook)
        return lost

    def submit(self, payload: dict[str, Any], key: str | None = None, attempts: int = 3) -> Reply:
        body = {"task": "chaos", "payload": payload, "max_attempts": attempts}
        headers = {"Idempotency-Key": key} if key else {}
        return call("POST", f"{self.cloud.api_url}/jobs", body, headers=headers)

    def wait(self, job_id: str, statuses: set[str], timeout: float = WAIT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            job = call("GET", f"{self.cloud.api_url}/jobs/{job_id}").json()
            if job.get("status") in statuses:
                return job
            time.sleep(0.25)
        raise AssertionError(f"job {job_id} still {job.get('status')} after {timeout} s: {job}")

    def kinds(self, job_id: str) -> list[str]:
        events = call("GET", f"{self.cloud.api_url}/jobs/{job_id}/events").json()["events"]
        return [str(e["kind"]) for e in events]

    def executions(self, job_id: str) -> int:
        self.log.refresh()
        return len(self.log.executions().get(job_id, []))

    def dead_letters(self, job_id: str, timeout: float = 10.0) -> int:
        """DLQ messages carrying this job's id (looked at, then made visible again)."""
        url = self.cloud.env["TASKQ_DLQ_URL"]
        deadline = time.monotonic() + timeout
        mine: dict[str, str] = {}
        while time.monotonic() < deadline:
            for message in self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                VisibilityTimeout=2, WaitTimeSeconds=1,
            ).get("Messages", []):  # fmt: skip
                attrs = message.get("MessageAttributes", {})
                if attrs.get("taskq-job-id", {}).get("StringValue") == job_id:
                    mine[message["MessageId"]] = message["ReceiptHandle"]
            if mine:
                break
        return len(mine)


@pytest.fixture(scope="module")
def stack(fault_emulator: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log = tmp_path_factory.mktemp("lost") / "executions.log"
    with ChaosProxy(fault_emulator.url) as proxy:
        cloud = deploy(proxy.url, fault_emulator.url, f"lost{uuid.uuid4().hex[:8]}", log)
        proxy.enabled = True  # no random faults: only the hooks below
        try:
            yield Stack(cloud, proxy, fault_emulator.url, log)
        finally:
            cloud.stop()


def update_of(job_id: str, to: str) -> Callable[[Call], bool]:
    """An UpdateItem of this job that moves it to `to` (claim: "running")."""

    def matches(call: Call) -> bool:
        data = call.json
        if call.operation != "UpdateItem" or data.get("Key", {}).get("id", {}).get("S") != job_id:
            return False
        values = data.get("ExpressionAttributeValues", {})
        if to == "running":  # the claim
            return "attempt = attempt + :one" in str(data.get("UpdateExpression", ""))
        if to == "cancelled":
            return ":cancelled" in values
        return bool(values.get(":to", {}).get("S") == to)

    return matches


def fresh_key() -> str:
    return f"lost-{uuid.uuid4().hex}"


def test_a_lost_put_on_submit_still_answers_202_and_runs_once(stack: Stack) -> None:
    n = uuid.uuid4().int % 10**9

    def put_of_n(call: Call) -> bool:
        stored = call.json.get("Item", {}).get("payload", {}).get("S", "{}")
        return call.operation == "PutItem" and json.loads(stored).get("n") == n

    lost = stack.lose_once(put_of_n)
    reply = stack.submit({"n": n}, None)
    assert lost, "the proxy never saw the PutItem"
    # The retried PutItem met the job its first try created: that is this request's job, not
    # a collision with someone else's (uuid4 ids do not collide). Telling the client to
    # "submit again" would make a second job.
    assert reply.status == 202, reply.body
    job_id = reply.json()["id"]
    assert stack.wait(job_id, {"completed"})["attempts"] == 1
    assert stack.executions(job_id) == 1


def test_a_lost_claim_does_not_burn_the_only_attempt(stack: Stack) -> None:
    key = fresh_key()
    job_id = keyed_job_id(key)
    lost = stack.lose_once(update_of(job_id, "running"))
    assert stack.submit({"n": 2}, key, attempts=1).status == 202
    done = stack.wait(job_id, {"completed", "failed"})
    assert lost, "the proxy never saw the claim"
    assert done["status"] == "completed", done  # not "worker stopped before finishing"
    assert done["attempts"] == 1
    assert stack.executions(job_id) == 1


def test_a_lost_completion_is_not_run_again(stack: Stack) -> None:
    key = fresh_key()
    job_id = keyed_job_id(key)
    lost = stack.lose_once(update_of(job_id, "completed"))
    assert stack.submit({"n": 3}, key).status == 202
    done = stack.wait(job_id, {"completed", "failed"})
    assert lost and done["status"] == "completed" and done["attempts"] == 1
    assert stack.kinds(job_id).count("completed") == 1
    assert stack.executions(job_id) == 1


def test_a_lost_retry_still_schedules_the_retry(stack: Stack) -> None:
    key = fresh_key()
    job_id = keyed_job_id(key)
    lost = stack.lose_once(update_of(job_id, "retrying"))
    assert stack.submit({"n": 4, "fail_until": 1}, key).status == 202
    # Backoff is 1-2 s: without the sweeper (not running here) the retry must still come.
    done = stack.wait(job_id, {"completed", "failed"})
    assert lost and done["status"] == "completed" and done["attempts"] == 2
    assert stack.executions(job_id) == 2


def test_a_lost_failure_still_puts_the_message_in_the_dlq(stack: Stack) -> None:
    key = fresh_key()
    job_id = keyed_job_id(key)
    lost = stack.lose_once(update_of(job_id, "failed"))
    assert stack.submit({"n": 5, "permanent": True}, key).status == 202
    done = stack.wait(job_id, {"completed", "failed"})
    assert lost and done["status"] == "failed"
    assert stack.dead_letters(job_id) >= 1, "failed, but its message is not in the DLQ"
    assert stack.executions(job_id) == 1


def test_a_lost_cancel_answers_200(stack: Stack) -> None:
    job_id = uuid.uuid4().hex  # stored, never sent: it stays pending for the cancel
    stack.store.create(NewJob(job_id, "chaos", '{"n":6}', max_attempts=3))
    lost = stack.lose_once(update_of(job_id, "cancelled"))
    reply = call("POST", f"{stack.cloud.api_url}/jobs/{job_id}/cancel")
    assert lost, "the proxy never saw the cancel"
    assert reply.status == 200, reply.body
    assert stack.kinds(job_id) == ["pending", "cancelled"]


def test_a_lost_send_on_submit_runs_the_job_once(stack: Stack) -> None:
    key = fresh_key()
    job_id = keyed_job_id(key)
    lost = stack.lose_once(lambda c: c.operation == "SendMessage" and job_id in c.job_ids())
    assert stack.submit({"n": 7}, key).status == 202
    done = stack.wait(job_id, {"completed"})
    assert lost and done["attempts"] == 1  # two messages (the retry's too), one run
    assert stack.executions(job_id) == 1


def test_a_lost_dead_letter_send_is_not_lost(stack: Stack) -> None:
    key = fresh_key()
    job_id = keyed_job_id(key)
    body = QueueMessage(job_id=job_id, task="chaos").model_dump_json()
    lost = stack.lose_once(
        lambda c: c.operation == "SendMessage" and c.json.get("MessageBody") == body
        and str(c.json.get("QueueUrl", "")).endswith("-dlq")
    )  # fmt: skip
    assert stack.submit({"n": 8, "permanent": True}, key).status == 202
    assert stack.wait(job_id, {"failed"})
    assert lost
    assert stack.dead_letters(job_id) >= 1
