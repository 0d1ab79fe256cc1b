"""Concurrency inside one invocation: the worker with BatchConcurrency=1 (a batch's records
one after another) next to the template's default (records at once), in the same run.

- I/O-bound: jobs whose task waits 1 s, `sleep_async` (awaited on the worker's event loop)
  and `sleep` (blocking, in the worker's thread pool), each run with the template's poller
  settings: end-to-end throughput and billed worker milliseconds per job.
- CPU-bound: the end-to-end no-op run (runs.e2e_taskq) with both settings, alternated.

The serial worker is a second deployment of the worker function (BenchStack.add_worker: the
template resolved again with BatchConcurrency=1, so the parameter reaches its environment as
it would on AWS), with sandboxes of its own, warmed before it is measured; the poller is
pointed at one deployment or the other between runs.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from typing import Any

from bench import runs
from bench.context import Context, Phase, calls_summary, invocation_summary, stats_ms
from bench.report import _goal, _lat, _n, _table, median
from bench.stack import WORKER

SERIAL, CONCURRENT = "serial", "concurrent"
GOAL_IO_RATIO = 8.0  # billed worker time per job and throughput, serial ÷ concurrent
GOAL_NOOP_RATIO = 0.95  # no-op throughput, concurrent ÷ serial
TASKS = {"sleep_async": "awaits (event loop)", "sleep": "blocks (thread pool)"}


@dataclass
class Sizes:
    io_jobs: int = 100  # sleep_async
    thread_jobs: int = 50  # sleep: fewer, the serial run is the bench's slowest per job
    io_seconds: float = 1.0
    noop_pairs: int = 1  # no-op runs with each setting, alternated

    @classmethod
    def quick(cls) -> Sizes:
        return cls(io_jobs=20, thread_jobs=20)

    def jobs(self, task: str) -> int:
        return self.thread_jobs if task == "sleep" else self.io_jobs


def measure(ctx: Context, sizes: Sizes) -> dict[str, Any]:
    stack = ctx.stack
    spec = stack.template_sqs
    job_id = _finished_job(ctx)
    ctx.progress("batch concurrency: a second worker deployment with BatchConcurrency=1")
    changed = stack.add_worker(SERIAL, {"BatchConcurrency": "1"})
    stack.use_worker(SERIAL)
    _warm(ctx, job_id, spec.maximum_concurrency)
    out: dict[str, Any] = {
        "sizes": asdict(sizes),
        "environment": {
            SERIAL: changed,
            CONCURRENT: stack.worker_environment(stack.TEMPLATE_WORKER, changed),
        },
        "poller": {
            "concurrency": spec.maximum_concurrency,
            "batch_size": spec.batch_size,
            "window_s": spec.max_batching_window_s,
        },
    }
    noop: dict[str, list[dict[str, Any]]] = {SERIAL: [], CONCURRENT: []}
    io: dict[str, dict[str, Any]] = {task: {} for task in TASKS}
    n = ctx.sizes.e2e_jobs
    # Serial first, then the template's worker, each side's I/O runs after its first no-op
    # run; further pairs of no-op runs (noop_pairs > 1) alternate the two again.
    for i in range(sizes.noop_pairs):
        ctx.progress(f"batch concurrency 1: no-op end to end #{i + 1}, {n} jobs")
        noop[SERIAL].append(runs.e2e_taskq(ctx, f"noop-serial-{i}", n))
        if i == 0:
            for task in TASKS:
                io[task][SERIAL] = _io_run(ctx, task, sizes, SERIAL)
        stack.use_worker(stack.TEMPLATE_WORKER)
        ctx.progress(f"batch concurrency default: no-op end to end #{i + 1}, {n} jobs")
        noop[CONCURRENT].append(runs.e2e_taskq(ctx, f"noop-concurrent-{i}", n))
        if i == 0:
            for task in TASKS:
                io[task][CONCURRENT] = _io_run(ctx, task, sizes, CONCURRENT)
        if i + 1 < sizes.noop_pairs:
            stack.use_worker(SERIAL)
    stack.use_worker(stack.TEMPLATE_WORKER)
    for rows in io.values():
        s, c = rows[SERIAL], rows[CONCURRENT]
        rows["billed_ratio"] = _ratio(
            s["worker"]["billed_ms_per_job"], c["worker"]["billed_ms_per_job"]
        )
        rows["throughput_ratio"] = _ratio(c["jobs_per_s"], s["jobs_per_s"])
        rows["worker_throughput_ratio"] = _ratio(c["worker_jobs_per_s"], s["worker_jobs_per_s"])
    ratios = [
        _ratio(c["jobs_per_s"], s["jobs_per_s"])
        for s, c in zip(noop[SERIAL], noop[CONCURRENT], strict=True)
    ]
    out["io"] = io
    out["noop"] = {**noop, "jobs": n, "ratio": {"runs": ratios, "median": median(ratios)}}
    return out


def _finished_job(ctx: Context) -> str:
    """A completed job, for warm-up records (the worker acknowledges it, nothing runs)."""
    stack = ctx.stack
    spec = stack.template_sqs
    stack.run_poller(spec.maximum_concurrency, spec.batch_size)
    base = stack.poller.stats.deleted
    replies = runs.submit(ctx, "/jobs", [runs.NOOP], 1)
    ids = [i for r in replies for i in r[3]]
    if not ids or not runs.wait_done(ctx, base, ids, ctx.sizes.deadline_s):
        raise RuntimeError("batch concurrency: a no-op job did not complete")
    stack.stop_poller()
    return ids[0]


def _warm(ctx: Context, job_id: str, sandboxes: int) -> None:
    """Start `sandboxes` sandboxes of the poller's function at once, each then making an AWS
    call (its aioboto3 import and first client), so no measured invocation pays for them."""
    worker = ctx.stack.poller.function
    event = {"Records": [runs._record(ctx.stack, job_id)]}
    for _ in range(2):  # the second round finds them all warm
        threads = [threading.Thread(target=worker.invoke, args=(event,)) for _ in range(sandboxes)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)


def _io_run(ctx: Context, task: str, sizes: Sizes, label: str) -> dict[str, Any]:
    """`sizes.jobs(task)` jobs of `task` (waits io_seconds) in one POST /jobs:batch while
    the worker runs with the template's poller settings; submit → last completion."""
    stack = ctx.stack
    spec = stack.template_sqs
    n = sizes.jobs(task)
    ctx.progress(f"batch concurrency {label}: {n} jobs of {task} ({TASKS[task]})")
    runs.purge(ctx, stack.env["TASKQ_QUEUE_URL"])
    stack.run_poller(spec.maximum_concurrency, spec.batch_size)
    base = stack.poller.stats.deleted
    name = f"io-{task}-{label}"
    job = {"task": task, "payload": {"seconds": sizes.io_seconds}}
    bodies = [
        json.dumps({"jobs": [job] * min(ctx.sizes.batch_size, n - start)}).encode()
        for start in range(0, n, ctx.sizes.batch_size)
    ]
    phase = Phase(ctx, name)
    replies = runs.submit(ctx, "/jobs:batch", bodies, 1)
    ids = [i for r in replies for i in r[3]]
    complete = runs.wait_done(ctx, base, ids, ctx.sizes.deadline_s)
    data = phase.end()
    stack.stop_poller()
    times = runs.finished(ctx, ids)
    jobs = len(times)
    first = min((r[0] for r in replies), default=0.0)
    last = max((t["completed"] for t in times.values()), default=first)
    claimed = min((t["first_running"] for t in times.values() if "first_running" in t), default=0)
    invocations = data.invocations[WORKER]
    own = [c for c in data.calls if c.source == stack.function_name(WORKER)]
    return {
        "task": task,
        "jobs": jobs,
        "complete": complete and jobs == len(ids),
        "seconds": round(last - first, 2),
        "jobs_per_s": round(jobs / (last - first), 2) if last > first else None,
        # From the first claim: without the submit request and the first batching window.
        "worker_jobs_per_s": (
            round(jobs / (last - claimed), 2) if claimed and last > claimed else None
        ),
        "completed_after_ms": stats_ms([t["completed"] - first for t in times.values()]),
        "worker": invocation_summary(invocations, jobs),
        # Records the worker was handed per job: above 1 when records were given back.
        "records_per_job": round(sum(i.records for i in invocations) / max(jobs, 1), 2),
        "calls_worker": calls_summary(data.group(stack, "worker"), jobs),
        # The worker's own AWS calls as it waited for them (moto takes DynamoDB requests one
        # at a time, so a batch's concurrent claims and completions queue there).
        "handler_call_ms_per_job": round(sum(max(c.ms, 0.0) for c in own) / max(jobs, 1), 1),
        "dynamodb_call_ms": stats_ms(
            [c.ms / 1000 for c in own if c.service == "dynamodb" and c.ms >= 0]
        ),
        # Every DynamoDB request moto served in the run (the API's, the worker's) per second.
        "dynamodb_per_s": round(
            sum(1 for c in data.calls if c.service == "dynamodb")
            / max(data.ended - data.started, 1e-3),
            1,
        ),
        "cpu_ms_per_job": data.cpu_ms_per_job(jobs),
        "window": name,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


# --- report -----------------------------------------------------------------------------------


def markdown(bc: dict[str, Any]) -> list[str]:
    """The report's section: the I/O-bound pairs, then the no-op pair."""
    return [*_io_table(bc), *_io_goals(bc), *_noop(bc)]


def _io_table(bc: dict[str, Any]) -> list[str]:
    """Each I/O-bound task with each setting: throughput, billed time and why."""
    poller = bc["poller"]
    out = [
        "## Batch concurrency: BatchConcurrency=1 (serial) vs the default (concurrent)",
        "",
        f"The template's poller settings ({poller['concurrency']} concurrent batches of "
        f"{poller['batch_size']}, {poller['window_s']:g} s batching window); the serial "
        f"worker is the same function deployed with {bc['environment'][SERIAL]}, the "
        f"concurrent one has {bc['environment'][CONCURRENT]}.",
        "",
    ]
    rows = []
    for task, pair in bc["io"].items():
        for label in (SERIAL, CONCURRENT):
            r = pair[label]
            rows.append(
                [
                    f"{task}, {label}",
                    r["jobs"],
                    r["jobs_per_s"],
                    r["worker_jobs_per_s"],
                    r["worker"]["billed_ms_per_job"],
                    r["worker"]["invocations"],
                    r["worker"]["mean_batch"],
                    r["records_per_job"],
                    _n(r["dynamodb_call_ms"].get("p50")),
                    r["dynamodb_per_s"],
                ]
            )
    out += _table(
        [
            "task (waits 1 s), worker",
            "jobs",
            "jobs/s end to end",
            "jobs/s from 1st claim",
            "billed worker ms/job",
            "invocations",
            "mean batch",
            "records/job",
            "worker's DynamoDB call ms p50",
            "DynamoDB req/s (all)",
        ],
        rows,
    )
    return out


def _io_goals(bc: dict[str, Any]) -> list[str]:
    """The I/O goals judged per task, and how the table's billed time is counted."""
    out = [""]
    for task, pair in bc["io"].items():
        billed, rate = pair["billed_ratio"], pair["throughput_ratio"]
        out.append(
            f"- **{task}** ({TASKS[task]}): billed worker time per job serial ÷ concurrent "
            f"**{_n(billed, 2)}x** (goal ≥ {GOAL_IO_RATIO:g}x: "
            f"{_goal(billed >= GOAL_IO_RATIO if billed else None)}); throughput concurrent ÷ "
            f"serial **{_n(rate, 2)}x** (goal ≥ {GOAL_IO_RATIO:g}x: "
            f"{_goal(rate >= GOAL_IO_RATIO if rate else None)}; from the first claim "
            f"{_n(pair['worker_throughput_ratio'], 2)}x)."
        )
    out += [
        "",
        "Billed: the sum of the worker's invocation durations, each rounded up to 1 ms, ÷ jobs. "
        "records/job above 1: records given back to the queue (the worker does not start a task "
        "its invocation could not finish within the task's timeout) and run by a later batch. "
        "The DynamoDB calls (a claim and a completion per job) are timed as the worker awaited "
        "them: the local moto server takes DynamoDB requests one at a time, so a concurrent "
        "batch's calls queue there, and every such millisecond is billed; on AWS they overlap.",
        "",
    ]
    return out


def _noop(bc: dict[str, Any]) -> list[str]:
    """CPU-bound no-op jobs: concurrency must not cost throughput when there is no wait."""
    noop = bc["noop"]
    ratio = noop["ratio"]
    out = [
        f"No-op jobs end to end ({noop['jobs']} jobs from {noop[SERIAL][0]['concurrency']} "
        "HTTP clients, as the end-to-end runs above), alternated:",
        "",
    ]
    out += _table(
        ["worker", "jobs/s per run", "latency ms p50/p95/p99 (run #1)", "billed worker ms/job"],
        [
            [
                label,
                ", ".join(_n(r["jobs_per_s"]) for r in noop[label]),
                _lat(noop[label][0]["latency_ms"]) if noop[label] else "-",
                ", ".join(_n(r["worker"]["billed_ms_per_job"]) for r in noop[label]),
            ]
            for label in (SERIAL, CONCURRENT)
        ],
    )
    med = ratio["median"]
    out += [
        "",
        f"**No-op throughput concurrent ÷ serial: {_n(med, 2)}** (runs: "
        f"{', '.join(_n(x, 2) for x in ratio['runs'])}); goal ≥ {GOAL_NOOP_RATIO}: "
        f"{_goal(med >= GOAL_NOOP_RATIO if med is not None else None)}.",
        "",
    ]
    return out
