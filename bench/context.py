"""What every measured run shares: how big the runs are (Sizes), the stack and helpers they
use (Context), and the marks a run takes at its start and reads at its end (Phase): the
calls, invocations, CPU and AWS usage inside its time window, summarised per job.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from bench import loadgen
from bench.calls import Call, billable_per_job, per_job, retried
from bench.cost import FIRST_DESIGN_INDEXES, capacity
from bench.cpu import CpuMeter, delta
from bench.stack import API, WORKER, BenchStack, Invocation


@dataclass
class Sizes:
    """How big each run is; `quick` shrinks them for a smoke run of the bench itself."""

    submit_levels: tuple[int, ...] = (1, 2, 4, 8)
    submit_jobs: int = 120
    batch_levels: tuple[int, ...] = (1, 2)
    batch_requests: int = 4
    batch_size: int = 100
    e2e_jobs: int = 240
    e2e_concurrency: int = 4
    e2e_repeats: int = 3  # the headline's ratios are medians of at least three
    paced_jobs: int = 60
    paced_rate: float = 20.0
    retry_jobs: int = 30
    scaling_concurrency: tuple[int, ...] = (1, 2, 5, 10)
    scaling_batch: tuple[int, ...] = (1, 10)
    scaling_jobs: int = 120
    celery_jobs: int = 240
    deadline_s: float = 60.0  # for any one run
    budget_s: float = 300.0  # for the runs after start-up: later ones are skipped past it

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            submit_levels=(1, 4),
            submit_jobs=30,
            batch_levels=(2,),
            batch_requests=2,
            e2e_jobs=40,
            e2e_repeats=1,
            paced_jobs=20,
            retry_jobs=5,
            scaling_concurrency=(1, 5),
            scaling_batch=(1, 10),
            scaling_jobs=30,
            celery_jobs=40,
            deadline_s=40.0,
        )


@dataclass
class Context:
    stack: BenchStack
    pool: Executor  # helper processes that generate load
    sizes: Sizes
    twin_table: str
    twin_queue: str
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    item_kb: int = 1
    item_bytes: int = 0
    progress: Callable[[str], None] = print
    started: float = field(default_factory=time.monotonic)

    def over_budget(self) -> bool:
        return time.monotonic() - self.started > self.sizes.budget_s

    def target(self) -> loadgen.Target:
        return loadgen.Target(
            self.stack.moto.url,
            "us-east-1",
            self.twin_table,
            self.twin_queue,
            str(self.stack.calls_dir / f"ceiling-{time.monotonic_ns()}.calls"),
        )


class Phase:
    """Marks calls, invocations and time at the start; reads what happened since at the end."""

    def __init__(self, ctx: Context, name: str) -> None:
        self.ctx = ctx
        self.name = name
        self.calls_mark = ctx.stack.calls.mark()
        self.inv_marks = {lid: t.mark() for lid, t in ctx.stack.timers.items()}
        self.labels = ctx.stack.process_labels()
        self.cpu = CpuMeter().snapshot(self.labels)
        self.started = time.time()

    def end(self) -> PhaseData:
        ended = time.time()
        cpu = delta(self.cpu, CpuMeter().snapshot(self.labels))
        self.ctx.windows[self.name] = (self.started, ended)
        time.sleep(0.2)  # let the last lines of the call files land
        calls = self.ctx.stack.calls.since(self.calls_mark)
        invocations = {
            lid: t.since(self.inv_marks[lid]) for lid, t in self.ctx.stack.timers.items()
        }
        return PhaseData(calls, invocations, self.started, ended, cpu)


@dataclass
class PhaseData:
    calls: list[Call]
    invocations: dict[str, list[Invocation]]
    started: float
    ended: float
    cpu: dict[str, float]  # CPU seconds by component

    def cpu_ms_per_job(self, jobs: int) -> dict[str, float]:
        rows = {k: round(v * 1000 / max(jobs, 1), 2) for k, v in sorted(self.cpu.items()) if v > 0}
        rows["total"] = round(sum(rows.values()), 2)
        return rows

    def group(self, stack: BenchStack, group: str) -> list[Call]:
        return [c for c in self.calls if stack.source_group(c.source) == group]


def stats_ms(values: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99, mean and max of seconds, in milliseconds."""
    if not values:
        return {}
    ms = sorted(v * 1000 for v in values)
    q = [ms[0]] * 99 if len(ms) == 1 else statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "p50": round(q[49], 1),
        "p95": round(q[94], 1),
        "p99": round(q[98], 1),
        "mean": round(statistics.fmean(ms), 1),
        "max": round(ms[-1], 1),
    }


def calls_summary(calls: list[Call], jobs: int) -> dict[str, Any]:
    table = per_job(calls, jobs)
    return {
        "per_job": {k: round(v, 3) for k, v in table.items()},
        "billable_per_job": round(billable_per_job(table), 3),
        "billable_per_job_with_empty_receives": round(
            billable_per_job(table, with_empty_receives=True), 3
        ),
        "retried_attempts": retried(calls),
        "errors": sum(1 for c in calls if c.status == 0 or c.status >= 500),
    }


def invocation_summary(invocations: list[Invocation], jobs: int) -> dict[str, Any]:
    durations = [i.duration_s for i in invocations]
    records = [i.records for i in invocations if i.records]
    return {
        "invocations": len(invocations),
        "per_job": round(len(invocations) / max(jobs, 1), 4),
        "duration_ms": stats_ms(durations),
        "billed_ms_per_job": round(sum(math.ceil(d * 1000) for d in durations) / max(jobs, 1), 2),
        "mean_batch": round(statistics.fmean(records), 2) if records else None,
        "errors": sum(1 for i in invocations if not i.ok),
    }


def usage_parts(ctx: Context, data: PhaseData, jobs: int) -> dict[str, dict[str, float]]:
    """Per job, for the API side and the worker side apart: what the cost model needs."""
    stack = ctx.stack
    out = {}
    for group, lid in (("api", API), ("worker", WORKER)):
        calls = data.group(stack, group)
        wru, rru = capacity(calls, ctx.item_kb, stack.settings["gsi"])
        wru_first_design, _ = capacity(calls, ctx.item_kb, FIRST_DESIGN_INDEXES)
        invocations = data.invocations[lid]
        in_handler = [c for c in calls if c.source == stack.function_name(lid)]
        out[group] = {
            # Calls the handler made (not the poller's): their count and time, to re-price
            # the duration with other call latencies.
            "handler_calls": len(in_handler) / max(jobs, 1),
            "handler_call_ms": sum(max(c.ms, 0.0) for c in in_handler) / max(jobs, 1),
            "invocations": len(invocations) / max(jobs, 1),
            "billed_ms": sum(math.ceil(i.duration_s * 1000) for i in invocations) / max(jobs, 1),
            "wru": wru / max(jobs, 1),
            "wru_first_design": wru_first_design / max(jobs, 1),
            "rru": rru / max(jobs, 1),
            "sqs_requests": sum(1 for c in calls if c.service == "sqs") / max(jobs, 1),
            "sqs_empty_receives": sum(1 for c in calls if c.empty_receive) / max(jobs, 1),
        }
    return out
