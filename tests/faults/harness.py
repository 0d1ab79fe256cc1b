"""The fault suite: thousands of jobs through the real local stack while everything misbehaves.

One run starts the stack from template.yaml on its own stage, with every AWS call of every
function (and of the SQS event-source poller) going through the chaos proxy, then drives jobs of
mixed behaviour (chaos_tasks) over real HTTP while injecting, all at once:

- SIGKILL of a worker sandbox mid-task every few seconds, and of every busy one now and then
  (new ones start on demand, as Lambda's do);
- duplicate messages, for jobs running at that moment and for finished ones;
- a visibility timeout shorter than some tasks (SQS redelivers while the first worker runs),
  and tasks stalled past their lease, so a second attempt runs beside the first and the
  attempt number (the fencing token) decides whose outcome counts;
- tasks stalled past the worker's function timeout (the invocation is killed);
- throttling, 500s, 503s and dropped connections on DynamoDB and SQS calls, a few of them on
  every retry so callers' own error paths run;
- a crash of the API between the DynamoDB write and the SQS send, left to the sweeper, which
  runs twice at once throughout.

Then it accounts for every job, from DynamoDB, the DLQ and the execution log (see `account`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import itertools
import json
import os
import queue
import random
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from infra.chaos_proxy import (
    KINDS,
    Action,
    Call,
    ChaosProxy,
    Drop,
    FaultRates,
    Forward,
    Respond,
)
from infra.local_cloud import LocalCloud
from infra.poller import PollerStats
from infra.sandbox import InvokeError, LocalFunction
from infra.template import FunctionSpec
from taskq.backoff import LEASE_GRACE_S
from taskq.models import TERMINAL, Job, QueueMessage, Status
from taskq.queue import parse_body
from taskq.store import to_job
from taskq.store.codec import is_job_item
from tests.faults import capacity, scheduling
from tests.faults.scheduling import ClockTally, delay_some
from tests.integration.http import Reply, call

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
LAYER_DIR = Path(__file__).resolve().parent / "layer"  # chaos_tasks.py, shipped as a layer

# The suite's clock. The template's values (visibility 190 s, worker timeout 30 s) are for
# production; the suite deploys a variant with these, consistent with one another:
VISIBILITY_S = 3  # the job queue's visibility timeout (set on the queue after provisioning)
TASK_TIMEOUT_S = 4.0  # chaos_tasks.TASK_TIMEOUT_S
LEASE_S = TASK_TIMEOUT_S + LEASE_GRACE_S  # a claim lasts this long (9 s)
WORKER_TIMEOUT_S = 15  # the worker function's timeout: above the overrun, below the hang
SLOW_S = VISIBILITY_S + 0.5  # past the visibility timeout, under the task timeout
OVERRUN_S = LEASE_S + 3.0  # past the lease, under the function timeout: fencing decides
HANG_S = WORKER_TIMEOUT_S + 10.0  # past the function timeout: the invocation is killed
STALE_S = 10  # TASKQ_STALE_AFTER_SECONDS for the sweeper (production: 300)
SWEEP_EVERY_S = 2.5
# each priority's job queue, as the stack's environment names it
_QUEUE_ENV = {
    "default": "TASKQ_QUEUE_URL",
    "high": "TASKQ_HIGH_QUEUE_URL",
    "low": "TASKQ_LOW_QUEUE_URL",
}
CHECKS_PER_PASS = 500  # jobs the wait for the end reads a second
assert VISIBILITY_S < SLOW_S < TASK_TIMEOUT_S < LEASE_S < OVERRUN_S < WORKER_TIMEOUT_S < HANG_S

TERMINAL_EVENTS = {str(Status.COMPLETED), str(Status.FAILED), str(Status.CANCELLED)}
ABANDONED = "lease expired"  # in the error of store.fail_abandoned's event


# --- the stack ---------------------------------------------------------------------------------


def deploy(endpoint_url: str, emulator_url: str, stage: str, log_path: Path) -> LocalCloud:
    """The template's stack on `endpoint_url` (the proxy, or the emulator), as the suite runs it.

    A variant deployment, production's template untouched: every function gets the chaos task
    layer (Lambda strips the working tree from sys.path; a layer is how code reaches it), the
    execution log's path and the suite's stale threshold; the worker its shorter timeout; the
    job queue its shorter visibility timeout (set on the queue, as an operator would).
    """

    def customize(spec: FunctionSpec) -> FunctionSpec:
        env = {
            **spec.environment,
            "TASKQ_CHAOS_LOG": str(log_path),
            "TASKQ_STALE_AFTER_SECONDS": str(STALE_S),
            **scheduling.ENV,
        }
        spec = dataclasses.replace(spec, layers=(*spec.layers, LAYER_DIR), environment=env)
        if spec.logical_id == "WorkerFunction":
            spec = dataclasses.replace(spec, timeout=WORKER_TIMEOUT_S)
        return spec

    cloud = LocalCloud(
        TEMPLATE, endpoint_url=endpoint_url, stage=stage, start_scheduler=False,
        parameters={
            "AuthMode": "off", "LogLevel": "WARNING",
            "TaskModules": "taskq.demo_tasks,chaos_tasks",
        },
        customize=customize,
    ).start()  # fmt: skip
    try:
        sqs = direct_client("sqs", emulator_url)
        for name in _QUEUE_ENV.values():
            # every priority's queue: a killed batch's records come back as soon on each
            sqs.set_queue_attributes(
                QueueUrl=cloud.env[name], Attributes={"VisibilityTimeout": str(VISIBILITY_S)}
            )
    except BaseException:
        cloud.stop()
        raise
    return cloud


def direct_client(service: str, emulator_url: str) -> Any:
    """A client straight to the emulator (no faults): tests' own reads and sends."""
    make: Any = boto3.client  # typed per service by the stubs; a variable here
    return make(
        service, endpoint_url=emulator_url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def scheduled_event() -> dict[str, Any]:
    """What EventBridge sends the sweeper."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-28T12:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {},
    }  # fmt: skip


# --- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobPlan:
    n: int
    kind: str  # ok, flaky, exhaust, permanent, slow, overrun, hang
    payload: dict[str, Any]
    max_attempts: int
    mode: str  # key (POST /jobs with Idempotency-Key), nokey, batch (POST /jobs:batch)
    cancel: bool = False
    lose_send: bool = False  # the API "crashes" between storing this job and sending it
    task: str = "chaos"  # or chaos_async: the same behaviour as an `async def` task
    delay_s: int = 0  # asked to run this much later (tests/faults/scheduling.py)
    priority: str | None = None  # high or low, or the default (tests/faults/capacity.py)

    @property
    def key(self) -> str | None:
        return f"chaos-{self.n}" if self.mode == "key" else None

    @property
    def planned(self) -> str:
        """The outcome without faults (and without a cancel)."""
        if self.kind in ("permanent", "exhaust"):
            return "failed"
        return "completed"

    @property
    def body(self) -> dict[str, Any]:
        body = {"task": self.task, "payload": self.payload, "max_attempts": self.max_attempts}
        if self.priority:
            body["priority"] = self.priority
        return {**body, "delay_s": self.delay_s} if self.delay_s else body


# kind, weight; at least two of each kind in any run so a small run covers every case
_KINDS: tuple[tuple[str, float], ...] = (
    ("ok", 0.698), ("flaky", 0.14), ("exhaust", 0.04), ("permanent", 0.05),
    ("slow", 0.03), ("overrun", 0.008), ("hang", 0.004), ("ok1", 0.03),
)  # fmt: skip


_SLOW_TO_RECOVER = ("overrun", "hang")
EARLY = 0.85  # these, and lost sends, only in the first 85% of a run, so it ends soon after


def make_plan(count: int, rng: random.Random) -> list[JobPlan]:
    kinds = rng.choices([k for k, _ in _KINDS], [w for _, w in _KINDS], k=count)
    cutoff = max(16, int(count * EARLY))
    kinds = [k if n < cutoff or k not in _SLOW_TO_RECOVER else "ok" for n, k in enumerate(kinds)]
    must = [kind for kind, _ in _KINDS for _ in range(2)]  # two of each kind in any run
    spots = rng.sample(range(min(cutoff, count)), min(len(must), count))
    for n, kind in zip(spots, must, strict=False):
        kinds[n] = kind
    plans = []
    for n, kind in enumerate(kinds):
        payload: dict[str, Any] = {"n": n}
        attempts = 3
        if kind == "ok" and rng.random() < 0.3:
            payload["sleep_s"] = round(rng.uniform(0.0, 0.05), 3)
        elif kind == "ok1":  # one attempt only: a lapsed lease fails it (fail_abandoned)
            kind, attempts = "ok", 1
        elif kind == "flaky":
            payload["fail_until"] = rng.choice((1, 1, 2))
        elif kind == "exhaust":
            attempts = rng.choice((2, 3))
            payload["fail_until"] = 100
        elif kind == "permanent":
            payload["permanent"] = True
        elif kind == "slow":
            payload["sleep_s"] = SLOW_S
        elif kind == "overrun":
            payload.update(stall_until=1, stall_s=OVERRUN_S)
        elif kind == "hang":
            payload.update(stall_until=1, stall_s=HANG_S)
        roll = rng.random()
        mode = "key" if roll < 0.7 else "nokey" if roll < 0.8 else "batch"
        cancel = kind in ("ok", "flaky") and rng.random() < 0.03
        lose_send = (rng.random() < 0.02 and n < cutoff) or n < 2  # at least two in any run
        if cancel or lose_send:
            mode = "key"
        # Stalls block the worker's event loop, as an async task stuck in C code would: its
        # timeout cannot fire (a plain task's thread is merely left behind at its timeout).
        task = "chaos_async" if kind in _SLOW_TO_RECOVER or rng.random() < 0.5 else "chaos"
        plans.append(
            JobPlan(n, kind, payload, attempts, mode, cancel, lose_send and not cancel, task)
        )
    return capacity.assign(delay_some(plans, rng, cutoff), rng)


# --- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SuiteConfig:
    jobs: int
    seed: int
    deadline_s: float  # everything terminal by then, or the suite fails
    rates: FaultRates
    kill_every_s: tuple[float, float] = (3.0, 7.0)  # one busy worker sandbox, mid-task
    kill_all_every_s: tuple[float, float] = (20.0, 30.0)  # every busy worker sandbox
    duplicate_every_s: float = 0.75
    clients: int = 4
    outstanding: int = 40  # accepted jobs not yet finished: the submitters wait above this
    batch_lost_per_mille: int = 20  # batch-sent messages lost (reported failed by SQS)

    @classmethod
    def from_env(cls, default_jobs: int) -> SuiteConfig:
        jobs = int(os.environ.get("TASKQ_FAULT_JOBS", default_jobs))
        seed = int(os.environ.get("TASKQ_FAULT_SEED", random.SystemRandom().randrange(10**6)))
        default_deadline = 90.0 + 0.27 * jobs
        deadline = float(os.environ.get("TASKQ_FAULT_DEADLINE_S", default_deadline))
        rates = FaultRates(
            throttle=0.005, error_500=0.005, error_503=0.005, drop_before=0.005,
            drop_after=0.005, persistent=0.003,
        )  # fmt: skip
        return cls(jobs=jobs, seed=seed, deadline_s=deadline, rates=rates)


# --- what happened -----------------------------------------------------------------------------


@dataclass
class Ledger:
    """Everything the drivers did, recorded as it happened (thread-safe)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: dict[str, int] = field(default_factory=dict)  # job id -> n (a 202 named it)
    modes: Counter[str] = field(default_factory=Counter)
    client_retries: Counter[str] = field(default_factory=Counter)  # by reason
    rejected: list[tuple[int, int, str]] = field(default_factory=list)  # n, status, detail
    cancels: dict[str, str] = field(default_factory=dict)  # job id -> cancelled/refused/unknown
    kills: list[tuple[float, int]] = field(default_factory=list)  # time, sandboxes killed
    duplicates: Counter[str] = field(default_factory=Counter)  # running / finished
    lost_sends: set[str] = field(default_factory=set)  # job ids whose first send was lost
    api_crashes: int = 0
    sweeps: Counter[str] = field(default_factory=Counter)
    sweep_errors: Counter[str] = field(default_factory=Counter)
    sweep_rounds: list[tuple[float, float]] = field(default_factory=list)  # start, end (s)
    errors: list[str] = field(default_factory=list)  # driver failures (fail the suite)

    def note(self, **increments: int) -> None:
        with self.lock:
            for name, value in increments.items():
                self.sweeps[name] += value


@dataclass(frozen=True)
class Execution:
    job_id: str
    attempt: int
    pid: int
    started: float
    ended: float | None = None
    outcome: str | None = None  # ok, retry, permanent, error; None: killed (no end line)


class ExecutionLog:
    """The side-effect log the chaos task appends to: `run`/`end` lines per (job, attempt)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._lock = threading.Lock()
        self.runs: dict[tuple[str, int], list[tuple[float, int]]] = defaultdict(list)
        self.ends: dict[tuple[str, int], tuple[float, str]] = {}

    def refresh(self) -> None:
        with self._lock:
            if not self.path.exists():
                return
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
            complete = data[: data.rfind(b"\n") + 1]
            self._offset += len(complete)
            for line in complete.decode().splitlines():
                parts = line.split()
                if parts[0] == "run":
                    _, job_id, attempt, at, pid = parts
                    self.runs[(job_id, int(attempt))].append((float(at), int(pid)))
                elif parts[0] == "end":
                    _, job_id, attempt, outcome, at, _pid = parts
                    self.ends[(job_id, int(attempt))] = (float(at), outcome)

    def open_runs(self) -> list[tuple[str, int, int]]:
        """(job id, attempt, pid) of executions with a run line and no end line yet."""
        with self._lock:
            return [
                (job_id, attempt, runs[-1][1])
                for (job_id, attempt), runs in self.runs.items()
                if (job_id, attempt) not in self.ends
            ]

    def finished_jobs(self) -> list[str]:
        with self._lock:
            return [job_id for (job_id, _), (_, outcome) in self.ends.items() if outcome == "ok"]

    def executions(self) -> dict[str, list[Execution]]:
        with self._lock:
            by_job: dict[str, list[Execution]] = defaultdict(list)
            for (job_id, attempt), runs in self.runs.items():
                end = self.ends.get((job_id, attempt))
                for started, pid in runs:
                    by_job[job_id].append(
                        Execution(job_id, attempt, pid, started, end[0] if end else None,
                                  end[1] if end else None)
                    )  # fmt: skip
            return by_job


# --- the run -----------------------------------------------------------------------------------


class FaultSuite:
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
        self._lose = {_keyed_id(p.key) for p in self.plans if p.lose_send and p.key}
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
        return {self.env[name] for name in _QUEUE_ENV.values()}

    def run(self) -> Report:
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.phases["stack up"] = 0.0
        self.proxy.start()
        try:
            self.cloud = deploy(self.proxy.url, self.endpoint_url, self.stage, self.log.path)
            try:
                return self._run()
            finally:
                self.stop.set()
                for second in (self.second_sweeper, self.second_clock):
                    if second is not None:
                        second.close()
                self.cloud.stop()
        finally:
            self.proxy.stop()

    def _run(self) -> Report:
        assert self.cloud is not None
        self.phases["stack up"] = time.monotonic() - self.started
        timeouts = {
            t["name"]: t["timeout_s"]
            for t in call("GET", f"{self.cloud.api_url}/tasks").json()
            if t["name"] in ("chaos", "chaos_async")
        }
        assert timeouts == dict.fromkeys(("chaos", "chaos_async"), TASK_TIMEOUT_S), (
            "chaos_tasks and harness disagree"
        )
        sweeper = self.cloud.functions["SweeperFunction"]
        self.second_sweeper = LocalFunction(sweeper.spec, extra_env=sweeper.extra_env)
        clock = self.cloud.functions["ClockFunction"]
        self.second_clock = LocalFunction(clock.spec, extra_env=clock.extra_env)
        self.proxy.hooks.append(self._crash_between_write_and_send)
        self.proxy.enabled = True
        for unit in self._units():
            self._work.put(unit)
        threads = [
            *(self._thread(self._submitter, f"submit-{i}") for i in range(self.config.clients)),
            self._thread(self._canceller, "cancel"),
            self._thread(self._killer, "kill"),
            self._thread(self._duplicator, "duplicate"),
            self._thread(self._sweeper, "sweep"),
            self._thread(self._clock, "clock"),
        ]
        deadline = self.started + self.config.deadline_s
        try:
            self._wait_terminal(deadline)
        finally:
            self.stop.set()
            self.stopped_at = time.time()
            for thread in threads:
                thread.join(30)
        self.proxy.enabled = False
        self._quiesce()
        self.phases["quiet"] = time.monotonic() - self.started
        self.poller_by_queue = {
            name.removeprefix("WorkerFunction."): p.stats
            for name, p in self.cloud.mappings.items()
            if name.startswith("WorkerFunction.")
        }
        self.poller_stats = _summed(self.poller_by_queue.values())
        self.final_depth = self.queue_depth()
        return account(self)

    def _thread(self, target: Callable[[], None], name: str) -> threading.Thread:
        def guarded() -> None:
            try:
                target()
            except Exception as exc:  # a driver failing is a suite failure, not a hang
                with self.ledger.lock:
                    self.ledger.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                self.stop.set()

        thread = threading.Thread(target=guarded, name=f"chaos-{name}", daemon=True)
        thread.start()
        return thread

    def _route_of(self, job_id: str) -> tuple[str, str] | None:
        """The task a job was submitted with and its priority's queue: a duplicate message
        names the task as the API did, on the queue SQS would deliver it again from. A job
        no 202 named (a ghost, a periodic fire) is read back for both."""
        with self.ledger.lock:
            n = self.ledger.accepted.get(job_id)
        if n is not None:
            task, priority = self.plans[n].task, self.plans[n].priority
        else:
            job = next(iter(self.read_jobs([job_id])), None)
            if job is None:
                return None
            task, priority = job.task, str(job.priority)
        return task, self.env[_QUEUE_ENV.get(priority or "default", "TASKQ_QUEUE_URL")]

    # submitting

    def _units(self) -> list[list[JobPlan]]:
        batch: list[JobPlan] = []
        units: list[list[JobPlan]] = []
        for plan in self.plans:
            if plan.mode == "batch":
                batch.append(plan)
                if len(batch) == 10:
                    units.append(batch)
                    batch = []
            else:
                units.append([plan])
        if batch:
            units.append(batch)
        self._remaining = self._units_total = len(units)
        return units

    def _submitter(self) -> None:
        while not self.stop.is_set():
            try:
                unit = self._work.get(timeout=0.2)
            except queue.Empty:
                continue
            while not self.stop.is_set() and self._outstanding >= self.config.outstanding:
                time.sleep(0.2)  # backpressure: keep the backlog near what the workers take
            if len(unit) > 1 or unit[0].mode == "batch":
                self._submit_batch(unit)
            else:
                self._submit_one(unit[0])
            with self.ledger.lock:
                self._remaining -= 1
                if self._remaining == 0:
                    self.phases["all submitted"] = time.monotonic() - self.started
                    self.submitted.set()

    def _post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Reply | None:
        """POST with a client's retries: on 5xx and connection errors, up to 8 tries."""
        assert self.cloud is not None
        for attempt in range(8):
            try:
                reply = call("POST", f"{self.cloud.api_url}{path}", body, headers=headers,
                             timeout=20)  # fmt: skip
            except (OSError, http.client.HTTPException) as exc:
                reason = f"connection ({type(exc).__name__})"
            else:
                if reply.status < 500:
                    return reply
                reason = str(reply.status)
            with self.ledger.lock:
                self.ledger.client_retries[reason] += 1
            time.sleep(min(2.0, 0.1 * 2**attempt) * (0.5 + self.rng.random()))
        return None

    def _submit_one(self, plan: JobPlan) -> None:
        headers = {"Idempotency-Key": plan.key} if plan.key else {}
        for _ in range(5):
            reply = self._post("/jobs", plan.body, headers)
            if reply is not None and reply.status == 409 and plan.mode == "nokey":
                # "job id collided; submit again": what the API tells a client to do. Random
                # ids never collide: the API misread its own retried write (a bug).
                with self.ledger.lock:
                    self.ledger.client_retries["409 collided"] += 1
                    self.ledger.errors.append(f"n={plan.n}: 409 on a submit without a key")
                continue
            break
        if reply is None or reply.status != 202:
            self._rejected(plan, reply)
            return
        job_id = str(reply.json()["id"])
        self._accept(job_id, plan)
        if plan.cancel:
            self._cancel_queue.put((time.monotonic() + self.rng.uniform(0.0, 1.5), job_id))

    def _submit_batch(self, plans: list[JobPlan]) -> None:
        pending = list(plans)
        for _ in range(5):
            reply = self._post("/jobs:batch", {"jobs": [p.body for p in pending]})
            if reply is None or reply.status not in (202, 422):
                continue
            again = []
            for item, plan in zip(reply.json()["items"], pending, strict=True):
                if item["status"] == 202:
                    self._accept(str(item["job"]["id"]), plan)
                elif item["status"] >= 500:
                    again.append(plan)
                else:
                    self._rejected(plan, reply)
            pending = again
            if not pending:
                return
        for plan in pending:
            self._rejected(plan, None)

    def _accept(self, job_id: str, plan: JobPlan) -> None:
        with self.ledger.lock:
            self.ledger.accepted[job_id] = plan.n
            self.ledger.modes[plan.mode] += 1
            self._outstanding += 1
            for attempt in range(1, int(plan.payload.get("stall_until", 0)) + 1):
                self._stalling.add((job_id, attempt))

    def _rejected(self, plan: JobPlan, reply: Reply | None) -> None:
        with self.ledger.lock:
            self.ledger.rejected.append(
                (plan.n, reply.status if reply else 0, reply.body[:200].decode() if reply else "")
            )

    def _canceller(self) -> None:
        while not self.stop.is_set():
            try:
                due, job_id = self._cancel_queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self.stop.wait(max(0.0, due - time.monotonic()))
            reply = self._post(f"/jobs/{job_id}/cancel", None)
            if reply is not None and reply.status == 200:
                outcome = "cancelled"
            elif reply is not None and reply.status == 409:
                # A retried cancel whose first try worked (response lost) says "it is cancelled".
                cancelled = "it is cancelled" in reply.json().get("detail", "")
                outcome = "cancelled" if cancelled else "refused"
            else:
                outcome = "unknown"
            with self.ledger.lock:
                self.ledger.cancels[job_id] = outcome

    # injecting

    def _killer(self) -> None:
        """SIGKILL one worker sandbox mid-task every few seconds (by the pid its execution
        logged; stalled attempts are spared so fencing gets its chance), and every busy one
        (kill_all) now and then. Lambda's runtime, like LocalFunction, starts new ones."""
        assert self.cloud is not None
        worker = self.cloud.functions["WorkerFunction"]
        next_all = time.monotonic() + self.rng.uniform(*self.config.kill_all_every_s)
        while not self.stop.wait(self.rng.uniform(*self.config.kill_every_s)):
            self.log.refresh()
            with self.ledger.lock:
                stalling = set(self._stalling)
            ours = worker.pids()
            running = [(job, attempt, pid) for job, attempt, pid in self.log.open_runs()
                       if pid in ours]  # fmt: skip
            # kill_all waits while a task stalls on purpose: its own timeout must end it.
            if time.monotonic() >= next_all and not any((j, a) in stalling for j, a, _ in running):
                next_all = time.monotonic() + self.rng.uniform(*self.config.kill_all_every_s)
                killed = worker.kill_all()
            else:
                pids = [pid for job, attempt, pid in running if (job, attempt) not in stalling]
                killed = 0
                if pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.rng.choice(pids), signal.SIGKILL)
                        killed = 1
            if killed:
                with self.ledger.lock:
                    self.ledger.kills.append((time.time(), killed))

    def _duplicator(self) -> None:
        sqs = self.direct("sqs")
        while not self.stop.wait(self.config.duplicate_every_s):
            self.log.refresh()
            with self.ledger.lock:
                lost = set(self.ledger.lost_sends)
            ours = self._worker_pids()
            running = [job_id for job_id, _, pid in self.log.open_runs() if pid in ours]
            for which, candidates in (("running", running), ("finished", self.log.finished_jobs())):
                candidates = [job_id for job_id in candidates if job_id not in lost]
                if not candidates or self.rng.random() < 0.5:
                    continue
                job_id = self.rng.choice(candidates)
                route = self._route_of(job_id)
                if route is None:
                    continue
                body = QueueMessage(job_id=job_id, task=route[0]).model_dump_json()
                sqs.send_message(QueueUrl=route[1], MessageBody=body)
                with self.ledger.lock:
                    self.ledger.duplicates[which] += 1

    def _crash_between_write_and_send(self, call: Call) -> Action | None:
        """The first send of a chosen job's message is lost, as if the API crashed after the
        DynamoDB write: SendMessage kills the API's busy sandboxes (the caller gets a 502),
        SendMessageBatch reports the chosen entries failed (the API answers 202 and logs)."""
        if call.service != "sqs" or call.operation not in ("SendMessage", "SendMessageBatch"):
            return None
        data = call.json
        # The API's send goes to the job's priority's queue. Watching only one queue let a
        # later send of another path (a capped job's wait) pass for the API's first send.
        if str(data.get("QueueUrl", "")) not in self._job_queue_urls:
            return None
        batch = call.operation == "SendMessageBatch"
        with self.ledger.lock:
            ids = call.job_ids()
            fresh = [j for j in ids if j not in self._seen_sends]
            self._seen_sends.update(ids)
            late = self._remaining < (1 - EARLY) * self._units_total
            per_mille = self.config.batch_lost_per_mille if batch and not late else 0
            chosen = [j for j in fresh if j in self._lose or int(j[:8], 16) % 1000 < per_mille]
            self.ledger.lost_sends.update(chosen)
        if not chosen:
            return None
        assert self.cloud is not None
        if call.operation == "SendMessage":
            with self.ledger.lock:
                self.ledger.api_crashes += 1
            self.cloud.functions["ApiFunction"].kill_all()
            return Drop()
        entries = data.get("Entries") or []
        lost_ids = {str(e["Id"]) for e in entries if _entry_job(e) in chosen}
        failed = [
            {"Id": i, "SenderFault": False, "Code": "InternalError", "Message": "chaos"}
            for i in sorted(lost_ids)
        ]
        kept = [e for e in entries if str(e["Id"]) not in lost_ids]
        if not kept:
            body = json.dumps({"Successful": [], "Failed": failed}).encode()
            return Respond(200, body)

        def rewrite(status: int, answer: bytes) -> bytes:
            if status != 200:
                return answer
            merged = json.loads(answer)
            merged["Failed"] = [*merged.get("Failed", []), *failed]
            return json.dumps(merged).encode()

        return Forward(json.dumps({**data, "Entries": kept}).encode(), rewrite)

    def _sweeper(self) -> None:
        """Two sweepers (two sandboxes) fired at the same moment, every few seconds; apart
        from the clocks, as EventBridge fires them, so a slow clock never delays a sweep."""
        assert self.cloud is not None and self.second_sweeper is not None
        sweepers = (self.cloud.functions["SweeperFunction"], self.second_sweeper)
        while not self.stop.wait(SWEEP_EVERY_S):
            started = time.monotonic() - self.started
            reports = _race(sweepers)
            with self.ledger.lock:
                self.ledger.sweep_rounds.append((started, time.monotonic() - self.started))
            for report in reports:
                if isinstance(report, dict):
                    self.ledger.note(
                        runs=1, skipped=int(report.get("skipped", 0)),
                        send_failures=int(report.get("send_failures", 0)),
                        **{f"requeued_{k}": int(v) for k, v in report.get("requeued", {}).items()},
                    )  # fmt: skip
                else:
                    self.ledger.note(runs=1, failed_runs=1)
                    with self.ledger.lock:
                        self.ledger.sweep_errors[str(report)[:160]] += 1

    def _clock(self) -> None:
        """Two clocks (two sandboxes) fired at the same moment, every few seconds."""
        assert self.cloud is not None and self.second_clock is not None
        clocks = (self.cloud.functions["ClockFunction"], self.second_clock)
        while not self.stop.wait(SWEEP_EVERY_S):
            for report in _race(clocks):
                self.clock_tally.add(report)

    # waiting

    def _wait_terminal(self, deadline: float) -> None:
        """Until every accepted job is terminal (and all were submitted), or the deadline.

        Reads at most CHECKS_PER_PASS unfinished jobs a second, oldest first, round robin:
        the emulator serves DynamoDB one request at a time, and reading every unfinished
        job each second slowed the stack under test in a 10,000-job run."""
        unfinished: dict[str, None] = {}  # insertion-ordered: the next to check first
        checked: set[str] = set()
        while time.monotonic() < deadline and not self.stop.is_set():
            with self.ledger.lock:
                new = [i for i in self.ledger.accepted if i not in checked]
            checked.update(new)
            unfinished.update(dict.fromkeys(new))
            batch = list(itertools.islice(unfinished, CHECKS_PER_PASS))
            done = {j.id for j in self.read_jobs(batch) if j.status in TERMINAL}
            for job_id in batch:
                del unfinished[job_id]
                if job_id not in done:
                    unfinished[job_id] = None  # to the back of the round
            with self.ledger.lock:
                self._outstanding = len(unfinished) + len(self.ledger.accepted) - len(checked)
            if self.submitted.is_set() and not unfinished:
                ghosts = [j for j in self.scan() if j.id not in checked]
                if all(j.status in TERMINAL for j in ghosts):
                    self.phases["all terminal"] = time.monotonic() - self.started
                    return
            time.sleep(1.0)

    def _worker_pids(self) -> set[int]:
        """The worker's live sandboxes: the only processes the suite signals or waits on."""
        assert self.cloud is not None
        return self.cloud.functions["WorkerFunction"].pids()

    def _quiesce(self) -> None:
        """Let executions still running (a stalled first attempt) end or die, and the job
        queue drain of duplicates; both bounded."""
        until = time.monotonic() + HANG_S + 5
        while time.monotonic() < until:
            self.log.refresh()
            ours = self._worker_pids()
            if not [pid for _, _, pid in self.log.open_runs() if pid in ours]:
                break
            time.sleep(0.5)
        until = time.monotonic() + 30
        while time.monotonic() < until and self.queue_depth() > 0:
            time.sleep(0.5)
        self.log.refresh()

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
        for name in _QUEUE_ENV.values():
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


def _summed(stats: Iterable[PollerStats]) -> PollerStats:
    """The worker's mappings' counters, added up (one poller per priority queue)."""
    total = PollerStats()
    for one in stats:
        for name, value in dataclasses.asdict(one).items():
            setattr(total, name, getattr(total, name) + value)
    return total


def _lost(suite: FaultSuite, job: Job, plan: JobPlan | None, faults: list[Any]) -> str:
    """A lost job, with what the report needs to tell why: its kind, its times in the
    suite's seconds, its history, the faults its calls met, and the sweeps after it."""
    created = job.created_at.timestamp() - suite.started_wall
    changed = job.updated_at.timestamp() - suite.started_wall
    with suite.ledger.lock:
        rounds = [r for r in suite.ledger.sweep_rounds if r[0] >= changed + STALE_S]
    return (
        f"lost: job {job.id} (n={plan.n if plan else '?'}, {plan.kind if plan else 'ghost'}, "
        f"task {job.task}) still {job.status}, attempt {job.attempt}; created at "
        f"{created:.1f} s, last changed at {changed:.1f} s; events "
        f"{[e.kind for e in job.events]}; faults met {[f'{op} {kind}' for _, op, kind in faults]};"
        f" lost send: {job.id in suite.ledger.lost_sends}; sweeper rounds once it was stale: "
        f"{len(rounds)}"
    )


def _longest_gap(rounds: list[tuple[float, float]], end: float) -> float:
    """The longest time without a sweep round starting (the end counts as a start)."""
    starts = [start for start, _ in rounds] + [end]
    return max((b - a for a, b in itertools.pairwise(starts)), default=0.0)


def _race(functions: Iterable[LocalFunction]) -> list[Any]:
    """Invoke the functions with a scheduled event at the same moment; their answers (or
    the InvokeError each raised), in order."""
    event = scheduled_event()
    targets = list(functions)
    reports: list[Any] = [None] * len(targets)

    def one(index: int, function: LocalFunction) -> None:
        try:
            reports[index] = function.invoke(event)
        except InvokeError as exc:
            reports[index] = exc

    threads = [
        threading.Thread(target=one, args=(i, f), daemon=True) for i, f in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return reports


def _keyed_id(key: str) -> str:
    """The job id taskq derives from an idempotency key (tenant "default": auth is off)."""
    return hashlib.sha256(f"idempotency:default:{key}".encode()).hexdigest()[:32]


def _entry_job(entry: dict[str, Any]) -> str:
    try:
        return str(json.loads(entry.get("MessageBody", "")).get("job_id", ""))
    except (ValueError, AttributeError):
        return ""


# --- the accounting ----------------------------------------------------------------------------


@dataclass
class Report:
    seconds: float
    config: SuiteConfig
    lines: list[str]
    violations: list[str]
    figures: dict[str, Any]

    def text(self) -> str:
        head = f"taskq fault suite: seed {self.config.seed}, {self.seconds:.1f} s"
        body = "\n".join(f"  {line}" for line in self.lines)
        tail = (
            "\n  VIOLATIONS:\n" + "\n".join(f"    - {v}" for v in self.violations[:40])
            if self.violations
            else "\n  no job lost, none completed twice, every failed job in the DLQ"
        )
        return f"{head}\n{body}{tail}"


def _other_dead_letter(message: dict[str, Any], jobs: dict[str, Job]) -> str:
    """Where a DLQ message that is no failed job's hand-off came from, and its job's end.

    Without taskq's reason, SQS moved it: a job message received maxReceiveCount times
    (kills, timeouts and live-lease returns each count a receive) while its job went on."""
    attributes = message.get("MessageAttributes", {})
    reason = attributes.get("taskq-reason", {}).get("StringValue")
    origin = f"taskq: {reason[:40]}" if reason else "moved by SQS's redrive policy"
    try:
        job = jobs.get(parse_body(message.get("Body", "")).job_id)
    except ValueError:
        return f"{origin}, not a job message"
    return f"{origin}, job {job.status if job else 'unknown'}"


def account(suite: FaultSuite) -> Report:
    """Every job, from DynamoDB, the DLQ and the execution log, against what was done to it.

    Violations (the suite fails on any): an accepted job not stored, or any stored job (ghosts
    included) not terminal (lost); a job with other than one terminal event, or two
    `completed` (completed twice); a completed job whose result is not its completing
    attempt's; a failed job without its message in the DLQ, or a DLQ message naming a job that
    is not failed; two executions under one attempt (fencing broken); an attempt recorded as
    finished (retrying, completed, failed) that never executed; a cancel answered yes on a job
    that is not cancelled, or a cancelled job no accepted cancel named; an outcome other than
    planned on a job none of whose attempts lapsed (extra executions and changed outcomes are
    only allowed where a worker was killed, timed out or lost its lease); a lost send the
    sweeper did not recover; a submission never accepted; the drivers failing; a kind of
    fault never injected.
    """
    ledger, config = suite.ledger, suite.config
    plans = {plan.n: plan for plan in suite.plans}
    jobs = {job.id: job for job in suite.scan()}
    executions = suite.log.executions()
    dlq = suite.dead_letters()
    stats = suite.proxy.stats
    touched = suite.proxy.faults_by_job()
    violations: list[str] = list(ledger.errors)

    dlq_by_job: Counter[str] = Counter()  # live copies: the job's current hand-off token
    stale_dlq: Counter[str] = Counter()  # a sender killed between its DLQ send and its mark
    resent_dlq: Counter[str] = Counter()  # the same token twice: a send retried by botocore
    other_dlq: Counter[str] = Counter()  # not a failed job's hand-off: where it came from
    for message in dlq:
        attributes = message.get("MessageAttributes", {})
        job_id = attributes.get("taskq-job-id", {}).get("StringValue")
        token = attributes.get("taskq-handoff", {}).get("StringValue")
        if not job_id:
            other_dlq[_other_dead_letter(message, jobs)] += 1
        elif job_id in jobs and token != jobs[job_id].handoff:
            stale_dlq[job_id] += 1
        elif dlq_by_job[job_id]:
            # SQS SendMessage is not idempotent: a send whose response was lost (a dropped
            # connection) and which botocore retried leaves two copies under one token.
            resent_dlq[job_id] += 1
        else:
            dlq_by_job[job_id] += 1

    accepted = dict(ledger.accepted)
    ghosts = {job_id for job_id, job in jobs.items() if job_id not in accepted and not job.schedule}
    for job_id in sorted(set(accepted) - set(jobs)):
        violations.append(f"lost: job {job_id} (n={accepted[job_id]}) accepted but not stored")
    for n, status, detail in ledger.rejected:
        violations.append(f"submission n={n} never accepted: {status} {detail}")

    waits: list[float] = []  # created -> first claim: time spent queued
    outcomes: Counter[str] = Counter()
    histogram: Counter[int] = Counter()
    lapse_causes: Counter[str] = Counter()
    changed: Counter[str] = Counter()
    fenced = burned = 0
    kills = ledger.kills
    for job_id, job in sorted(jobs.items()):
        n = int(job.payload.get("n", -1)) if isinstance(job.payload, dict) else -1
        plan = plans.get(n)
        runs = executions.get(job_id, [])
        histogram[len(runs)] += 1
        if job.status == Status.SCHEDULED and (job.run_at or 0) > suite.stopped_at:
            outcomes["not yet due"] += 1  # a periodic fire created ahead, due after the end
            continue
        if job.status not in TERMINAL:
            outcomes["lost"] += 1
            violations.append(_lost(suite, job, plan, touched.get(job_id, [])))
            continue
        outcomes[str(job.status)] += 1
        kinds = [e.kind for e in job.events]
        first = next((e.at for e in job.events if e.kind == Status.RUNNING), None)
        if first is not None:
            waits.append((first - job.created_at).total_seconds())
        if sum(kind in TERMINAL_EVENTS for kind in kinds) != 1 or kinds[-1] not in TERMINAL_EVENTS:
            violations.append(f"job {job_id}: terminal events {kinds}")
        if kinds.count(str(Status.COMPLETED)) > 1:
            outcomes["completed twice"] += 1
            violations.append(f"completed twice: job {job_id} {kinds}")
        closing = {
            e.attempt: e.kind for e in job.events
            if e.kind in (Status.RETRYING, Status.COMPLETED)
            or (e.kind == Status.FAILED and ABANDONED not in (e.error or ""))
        }  # fmt: skip
        started = {e.attempt for e in job.events if e.kind == Status.RUNNING}
        lapsed = started - set(closing)
        if job.status == Status.COMPLETED:
            result = job.result if isinstance(job.result, dict) else {}
            done_at = next(e.attempt for e in job.events if e.kind == Status.COMPLETED)
            if result.get("n") != n or result.get("attempt") != done_at:
                violations.append(f"job {job_id}: result {result} is not attempt {done_at}'s")
        if job.status == Status.FAILED and dlq_by_job[job_id] != 1:
            violations.append(
                f"job {job_id} failed with {dlq_by_job[job_id]} live DLQ messages, not one"
            )
        if job.status != Status.FAILED and dlq_by_job[job_id]:
            violations.append(f"job {job_id} is {job.status} yet in the DLQ as failed")
        per_attempt = Counter(run.attempt for run in runs)
        for attempt, count in per_attempt.items():
            if count > 1:
                violations.append(f"job {job_id}: attempt {attempt} executed {count} times")
        for attempt in closing:
            if attempt not in per_attempt:
                violations.append(f"job {job_id}: attempt {attempt} {closing[attempt]} unrun")
        burned += len(lapsed - set(per_attempt))
        for run in runs:
            if run.attempt in closing:
                continue
            if run.outcome == "ok":
                fenced += 1
            lapse_causes[_cause(run, plan, kills, touched.get(job_id, []))] += 1
        # outcome against the plan
        cancel = ledger.cancels.get(job_id)
        if cancel == "cancelled" and job.status != Status.CANCELLED:
            violations.append(f"job {job_id}: cancel answered yes, yet it is {job.status}")
        if cancel in ("refused", None) and job.status == Status.CANCELLED:
            violations.append(f"job {job_id}: cancelled, yet no cancel of it was accepted")
        if plan is not None and job.status != Status.CANCELLED and job.status != plan.planned:
            if lapsed:
                changed[f"{plan.planned} -> {job.status}"] += 1
            else:
                violations.append(
                    f"job {job_id} (n={n}, {plan.kind}) is {job.status}, planned {plan.planned}, "
                    f"and no attempt of it lapsed: {kinds}"
                )
    for job_id in sorted(ledger.lost_sends):
        lost = jobs.get(job_id)
        if lost is not None and "requeued" not in [e.kind for e in lost.events]:
            violations.append(f"job {job_id}: its send was lost and no sweeper re-sent it")
    exercised = {
        "kills": sum(k for _, k in kills), "duplicates": sum(ledger.duplicates.values()),
        "lost sends": len(ledger.lost_sends), "function timeouts": lapse_causes["function timeout"],
        "leases overrun": lapse_causes["overran its lease"],
        **{f"fault {kind}": stats.faults[kind] for kind in KINDS},
    }  # fmt: skip
    for name, count in exercised.items():
        if count == 0:
            violations.append(f"never exercised: {name}")

    first_runs = {
        job_id: min(r.started for r in runs) for job_id, runs in executions.items() if runs
    }
    timing_lines, timing_violations = scheduling.account_scheduling(
        jobs, first_runs, suite.stopped_at, suite.clock_tally
    )
    violations += timing_violations
    capacity_lines, capacity_violations = capacity.account_capacity(
        jobs, TASK_TIMEOUT_S + LEASE_GRACE_S
    )
    violations += capacity_violations
    timing_lines += capacity_lines
    seconds = time.monotonic() - suite.started
    total_runs = sum(len(r) for r in executions.values())
    calls = sum(stats.calls.values())
    sweeps = ledger.sweeps
    lines = [
        f"jobs          planned {config.jobs}; accepted {len(accepted)} "
        f"(key {ledger.modes['key']}, no key {ledger.modes['nokey']}, "
        f"batched {ledger.modes['batch']}); stored {len(jobs)} "
        f"(ghosts {len(ghosts)}: stored, the client saw an error and resubmitted)",
        f"outcomes      completed {outcomes['completed']}, failed {outcomes['failed']}, "
        f"cancelled {outcomes['cancelled']}, lost {outcomes['lost']}, "
        f"completed twice {outcomes['completed twice']}",
        f"DLQ           {sum(dlq_by_job.values())} live messages for {len(dlq_by_job)} failed jobs"
        f" ({sum(stale_dlq.values())} stale: a sender killed between its send and its mark; "
        f"{sum(resent_dlq.values())} resent: a DLQ send retried after its response was lost); "
        f"{sum(other_dlq.values())} other {dict(other_dlq)}; "
        f"job queue left with {suite.final_depth} messages",
        f"vs plan       as planned {len(jobs) - outcomes['lost'] - sum(changed.values())}; "
        f"changed by faults {dict(changed) or 0}; cancels {dict(Counter(ledger.cancels.values()))}",
        f"AWS faults    {sum(stats.faults.values())} of {calls} calls: "
        + ", ".join(f"{k} {stats.faults[k]}" for k in KINDS)
        + f"; calls given up after all retries {stats.gave_up}",
        f"kills         {len(kills)} rounds, {sum(k for _, k in kills)} worker sandboxes "
        f"SIGKILLed; worker invocations failed whole (killed or timed out) "
        f"{suite.poller_stats.invocation_errors} of {suite.poller_stats.batches}",
        "pollers       "
        + "; ".join(
            f"{name} {stats.batches} batches, {stats.records} records"
            for name, stats in suite.poller_by_queue.items()
        ),
        f"duplicates    {sum(ledger.duplicates.values())} injected (while running "
        f"{ledger.duplicates['running']}, after finishing {ledger.duplicates['finished']})",
        f"lost sends    {len(ledger.lost_sends)} (API crashes between write and send "
        f"{ledger.api_crashes}; the rest lost from batch sends)",
        f"sweeper       {sweeps['runs']} runs, two at a time ({sweeps['failed_runs']} failed); "
        f"re-sent pending {sweeps['requeued_pending']}, running {sweeps['requeued_running']}, "
        f"retrying {sweeps['requeued_retrying']}; skipped {sweeps['skipped']}; longest "
        f"round {max((b - a for a, b in ledger.sweep_rounds), default=0):.1f} s, longest gap "
        f"{_longest_gap(ledger.sweep_rounds, suite.stopped_at - suite.started_wall):.1f} s"
        + (f"; failures: {dict(ledger.sweep_errors)}" if ledger.sweep_errors else ""),
        f"client        retries {dict(ledger.client_retries)}",
        *timing_lines,
        f"executions    {total_runs}; per job "
        + " | ".join(f"{k}: {histogram[k]}" for k in sorted(histogram)),
        f"queue wait    created -> first claim: {_percentiles(waits)}",
        "time          " + ", ".join(f"{name} at {at:.1f} s" for name, at in suite.phases.items()),
        f"lapsed runs   {sum(lapse_causes.values())} executions in attempts that lost their "
        f"lease: {dict(lapse_causes)}; results fenced off {fenced}; attempts burned unrun "
        f"{burned}",
    ]
    figures = {
        "accepted": len(accepted), "stored": len(jobs), "ghosts": len(ghosts),
        "outcomes": dict(outcomes), "executions": total_runs, "histogram": dict(histogram),
        "faults": dict(stats.faults), "kills": sum(k for _, k in kills),
        "duplicates": dict(ledger.duplicates), "lost_sends": len(ledger.lost_sends),
        "lapse_causes": dict(lapse_causes), "seconds": round(seconds, 1),
    }  # fmt: skip
    return Report(seconds, config, lines, violations, figures)


def _percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    pick = [ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.5, 0.9, 0.99)]
    return f"p50 {pick[0]:.1f} s, p90 {pick[1]:.1f} s, p99 {pick[2]:.1f} s, max {ordered[-1]:.1f} s"


def _cause(
    run: Execution,
    plan: JobPlan | None,
    kills: list[tuple[float, int]],
    faults: list[tuple[float, str, str]],
) -> str:
    """Why an execution's attempt lost its lease (best attribution, for the report)."""
    if plan is not None and run.attempt <= int(plan.payload.get("stall_until", 0)):
        return "function timeout" if plan.kind == "hang" else "overran its lease"
    # A run outlives neither its function's timeout nor, by long, its lease.
    until = (run.ended or run.started + WORKER_TIMEOUT_S) + LEASE_S
    if any(run.started <= at <= until for at, _ in kills):
        return "killed"
    if any(run.started - LEASE_S <= at <= until for at, _, _ in faults):
        return "AWS error"
    return "lapsed (slow worker)"
