"""Acceptance fixtures: the `taskq` command as an operator runs it.

A real moto server process, the stack from template.yaml on it with the real worker
(LocalCloud: the local SQS event-source poller invoking the worker Lambda handler),
and the installed `taskq` console script run in a subprocess. Each test module gets
its own stage (table and queues), so modules cannot see each other's DLQ.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.emulator import MotoServer
from infra.local_cloud import LocalCloud
from taskq.config import DEFAULT_TASK_MODULES
from taskq.dlq import DeadLetters
from taskq.jobs import JobService
from taskq.models import Job, JobRequest, Status
from taskq.queue import JobQueue
from taskq.store import JobStore
from taskq.tasks import load_tasks

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 20.0  # the longest any test waits for a job to change
CLI_TIMEOUT_S = 30.0


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@dataclass
class Stack:
    """The running stack, the environment an operator would export, and direct clients."""

    cloud: LocalCloud
    env: dict[str, str]
    store: JobStore
    queue: JobQueue
    sqs: Any

    @property
    def dead(self) -> DeadLetters:
        return DeadLetters(self.store, self.queue)

    def wait_for(
        self, job_ids: list[str], done: Callable[[Job], bool], timeout: float = WAIT_S
    ) -> dict[str, Job]:
        """Poll the store until every job satisfies `done` (bounded in time)."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = {job_id: self.store.get(job_id) for job_id in job_ids}
            if all(done(job) for job in jobs.values()):
                return jobs
            if time.monotonic() > deadline:
                states = {i: (j.status, j.attempt) for i, j in jobs.items()}
                raise AssertionError(f"jobs not done after {timeout} s: {states}")
            time.sleep(0.2)

    def wait_status(self, job_ids: list[str], status: Status) -> dict[str, Job]:
        return self.wait_for(job_ids, lambda job: job.status == status)

    def dlq_depth(self) -> dict[str, int]:
        return self.queue.depth(dead=True)

    def wait_dlq_visible(self, count: int, timeout: float = WAIT_S) -> None:
        """Wait until `count` DLQ messages are visible (a crashed run's holds run out)."""
        deadline = time.monotonic() + timeout
        while self.dlq_depth()["visible"] < count:
            assert time.monotonic() < deadline, f"DLQ still {self.dlq_depth()} after {timeout} s"
            time.sleep(0.25)

    def submit(self, task: str, payload: dict[str, Any], max_attempts: int | None = None) -> str:
        """Submit in-process (where the test is not about `taskq submit` itself)."""
        service = JobService(self.store, self.queue, load_tasks(DEFAULT_TASK_MODULES))
        request = JobRequest(task=task, payload=payload, max_attempts=max_attempts)
        return service.submit(request).job.id

    def dead_letter_raw(self, body: str) -> None:
        """A message put in the DLQ by something other than taskq (no attributes)."""
        self.sqs.send_message(QueueUrl=self.env["TASKQ_DLQ_URL"], MessageBody=body)


@pytest.fixture(scope="module")
def stack(moto_server: MotoServer) -> Iterator[Stack]:
    with open_stack(moto_server) as running:
        yield running


@contextlib.contextmanager
def open_stack(moto_server: MotoServer, **parameters: str) -> Iterator[Stack]:
    """The stack on its own stage, with template parameters such as TaskModules."""
    stage = f"acc{uuid.uuid4().hex[:8]}"
    # The scheduled sweeper would also rescue a job left pending, after 5 minutes; it is
    # off so that these tests show the redrive alone loses nothing.
    with LocalCloud(
        ROOT / "template.yaml",
        endpoint_url=moto_server.url,
        stage=stage,
        start_scheduler=False,
        parameters=parameters or None,
    ) as cloud:
        env = {k: v for k, v in cloud.env.items() if k.startswith(("TASKQ_", "AWS_"))}
        session = boto3.session.Session(
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", "testing"),
            region_name=cloud.region,
        )
        dynamodb = session.client("dynamodb", endpoint_url=cloud.endpoint_url)
        sqs = session.client("sqs", endpoint_url=cloud.endpoint_url)
        yield Stack(
            cloud=cloud,
            env=env,
            store=JobStore(env["TASKQ_TABLE"], dynamodb),
            queue=JobQueue(sqs, env["TASKQ_QUEUE_URL"], env["TASKQ_DLQ_URL"]),
            sqs=sqs,
        )


def taskq_command() -> list[str]:
    """The installed console script next to this interpreter (what `pip install` made)."""
    script = Path(sys.executable).parent / "taskq"
    return [str(script)] if script.exists() else [sys.executable, "-m", "taskq.cli"]


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def error_line(self) -> str:
        """The one line an expected failure prints (and nothing like a traceback)."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("taskq: error: "), self.err
        return lines[0]


def base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    return {k: os.environ[k] for k in keep if k in os.environ} | {"TASKQ_ACTOR": "acceptance"}


def run_taskq(
    *argv: str, env: dict[str, str], stdin: str | None = None, timeout: float = CLI_TIMEOUT_S
) -> Ran:
    done = subprocess.run(
        [*taskq_command(), *argv],
        env=base_env() | env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def taskq(stack: Stack) -> Callable[..., Ran]:
    def call(*argv: str, stdin: str | None = None, timeout: float = CLI_TIMEOUT_S) -> Ran:
        return run_taskq(*argv, env=stack.env, stdin=stdin, timeout=timeout)

    return call


def kinds(job: Job) -> list[str]:
    return [event.kind for event in job.events]


def completed_once_after_redrive(job: Job) -> bool:
    """Completed, exactly once, by the one run that started after the last redrive.

    (The emulator serialises DynamoDB writes, as DynamoDB applies each item write
    atomically, so two deliveries of the re-sent message cannot both claim the job.)
    """
    history = kinds(job)
    since = history[len(history) - 1 - history[::-1].index("redriven") :]
    return (
        job.status == Status.COMPLETED
        and history.count("completed") == 1
        and since.count("running") == 1
    )
