"""What the fault suite will do: each job's planned behaviour, and the run's settings.

The plan is drawn from the run's seed alone, so TASKQ_FAULT_SEED replays a run's jobs; a
small run still holds at least two jobs of each kind, so every case is met every time.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

from infra.chaos_proxy import FaultRates
from tests.faults import capacity
from tests.faults.scheduling import delay_some
from tests.faults.timing import HANG_S, OVERRUN_S, SLOW_S


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
