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

Then it accounts for every job, from DynamoDB, the DLQ and the execution log (see
tests/faults/accounting.py). The suite's clock is tests/faults/timing.py, its plan
tests/faults/plan.py; its threads' loops are in tests/faults/clients.py and
tests/faults/injectors.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Iterable

from infra.poller import PollerStats
from infra.sandbox import LocalFunction
from taskq.models import TERMINAL
from tests.faults.accounting import account
from tests.faults.clients import ClientDrivers
from tests.faults.injectors import FaultInjectors
from tests.faults.report import Report
from tests.faults.stack import deploy
from tests.faults.timing import HANG_S, TASK_TIMEOUT_S
from tests.integration.http import call

CHECKS_PER_PASS = 500  # jobs the wait for the end reads a second


class FaultSuite(ClientDrivers, FaultInjectors):
    """One run: the stack up, the drivers started, every job waited for, then accounted."""

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
            "chaos_tasks and tests/faults/timing.py disagree"
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


def _summed(stats: Iterable[PollerStats]) -> PollerStats:
    """The worker's mappings' counters, added up (one poller per priority queue)."""
    total = PollerStats()
    for one in stats:
        for name, value in dataclasses.asdict(one).items():
            setattr(total, name, getattr(total, name) + value)
    return total
