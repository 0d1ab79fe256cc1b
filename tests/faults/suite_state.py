"""What one fault-suite run holds, shared by its drivers, its wait for the end and its
accounting, and its reads of the stack straight from the emulator (around the chaos proxy,
so that the suite's own view of the jobs and queues never meets a fault)."""

from __future__ import annotations

import queue
import random
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from infra.chaos_proxy import ChaosProxy
from infra.local_cloud import LocalCloud
from infra.poller import PollerStats
from infra.sandbox import LocalFunction
from taskq.models import Job
from taskq.store import to_job
from taskq.store.codec import is_job_item
from tests.faults.ledger import ExecutionLog, Ledger
from tests.faults.plan import JobPlan, SuiteConfig, make_plan
from tests.faults.scheduling import ClockTally
from tests.faults.stack import QUEUE_ENV, direct_client, keyed_job_id


class SuiteState:
    """The plan, the ledger, the stack and the drivers' shared counters of one run."""

    def __init__(self, endpoint_url: str, workdir: Path, config: SuiteConfig) -> None:
        self.endpoint_url = endpoint_url  # the emulator itself; the stack talks to the proxy
        self.config = config
        self.rng = random.Random(config.seed)
        self.plans = make_plan(config.jobs, self.rng)
        self.log = ExecutionLog(workdir / "executions.log")
        self.ledger = Ledger()
        self.stop = threading.Event()
        self.submitted = threading.Event()
        self.proxy = ChaosProxy(endpoint_url, rates=config.rates, seed=config.seed)
        self.stage = f"chaos{uuid.uuid4().hex[:8]}"
        self.cloud: LocalCloud | None = None
        self.second_sweeper: LocalFunction | None = None
        self.second_clock: LocalFunction | None = None
        self.clock_tally = ClockTally()
        self.stopped_at = float("inf")  # when the drivers stopped (epoch s)
        self.started_wall = time.time()  # the suite's start (epoch s), set again by run()
        self._direct: dict[str, Any] = {}
        self._cancel_queue: queue.Queue[tuple[float, str]] = queue.Queue()
        self._work: queue.Queue[list[JobPlan]] = queue.Queue()
        self._remaining = self._units_total = 0  # submission units (left, in all)
        self._seen_sends: set[str] = set()  # job ids whose message the API tried to send
        # Keyed jobs' ids are known before they exist (derived from the key, as jobs.py does).
        self._lose = {keyed_job_id(p.key) for p in self.plans if p.lose_send and p.key}
        self._stalling: set[tuple[str, int]] = set()  # (job id, attempt) that stall on purpose
        self._outstanding = 0  # accepted jobs not yet terminal
        self.started = 0.0
        self.phases: dict[str, float] = {}  # seconds from the start
        self.poller_stats = PollerStats()
        self.poller_by_queue: dict[str, PollerStats] = {}  # the worker's event sources
        self.final_depth = 0  # job-queue messages left at the end (visible, in flight, delayed)

    # stack

    def direct(self, service: str) -> Any:
        """A client straight to the emulator (no faults): the suite's own reads and sends."""
        if service not in self._direct:
            self._direct[service] = direct_client(service, self.endpoint_url)
        return self._direct[service]

    @property
    def env(self) -> dict[str, str]:
        assert self.cloud is not None
        return self.cloud.env

    @property
    def _job_queue_urls(self) -> set[str]:
        return {self.env[name] for name in QUEUE_ENV.values()}

    def _worker_pids(self) -> set[int]:
        """The worker's live sandboxes: the only processes the suite signals or waits on."""
        assert self.cloud is not None
        return self.cloud.functions["WorkerFunction"].pids()

    # reading back

    def read_jobs(self, ids: Iterable[str]) -> list[Job]:
        wanted = sorted(ids)
        jobs: list[Job] = []
        ddb = self.direct("dynamodb")
        table = self.env["TASKQ_TABLE"]
        for start in range(0, len(wanted), 100):
            keys: Any = {
                table: {"Keys": [{"id": {"S": i}} for i in wanted[start : start + 100]],
                        "ConsistentRead": True}
            }  # fmt: skip
            while keys:
                answer = ddb.batch_get_item(RequestItems=keys)
                jobs += [to_job(item) for item in answer["Responses"].get(table, [])]
                keys = answer.get("UnprocessedKeys") or None
        return jobs

    def scan(self) -> list[Job]:
        ddb = self.direct("dynamodb")
        args: dict[str, Any] = {"TableName": self.env["TASKQ_TABLE"], "ConsistentRead": True}
        jobs: list[Job] = []
        while True:
            page = ddb.scan(**args)
            jobs += [to_job(i) for i in page.get("Items", []) if is_job_item(i)]
            if "LastEvaluatedKey" not in page:
                return jobs
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def queue_depth(self) -> int:
        """Messages in the job queues (every priority's), visible, in flight or delayed."""
        depth = 0
        for name in QUEUE_ENV.values():
            attrs = self.direct("sqs").get_queue_attributes(
                QueueUrl=self.env[name],
                AttributeNames=[
                    "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]  # fmt: skip
            depth += sum(int(v) for v in attrs.values())
        return depth

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every DLQ message (received and kept hidden until the suite ends)."""
        sqs = self.direct("sqs")
        seen: dict[str, dict[str, Any]] = {}
        empty = 0
        for _ in range(2000):
            batch = sqs.receive_message(
                QueueUrl=self.env["TASKQ_DLQ_URL"], MaxNumberOfMessages=10,
                MessageAttributeNames=["All"], VisibilityTimeout=600, WaitTimeSeconds=0,
            ).get("Messages", [])  # fmt: skip
            if not batch:
                empty += 1
                if empty >= 2:
                    break
                continue
            empty = 0
            for message in batch:
                seen[message["MessageId"]] = message
        return list(seen.values())
