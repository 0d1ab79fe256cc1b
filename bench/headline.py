"""The bench's headline: the few figures the cost-and-latency goals are judged by, each
next to its goal, taken from the run's own results (nothing measured twice).

Ratios come from runs alternated within this one bench run; each figure says how many runs
it rests on and, where there are several, their spread (min, max). A figure this machine
cannot give is None with the reason in `notes`, never a guess.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

SINGLE_MODE = "POST /jobs, steady flow"
BATCH_MODE_PREFIX = "POST /jobs:batch"
IO_TASK = "sleep_async"  # the async issue's I/O-bound job: awaits 1 s


@dataclass(frozen=True)
class Goal:
    """`value <op> target`; `op` is ">=" or "<="."""

    op: str
    target: float

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.target if self.op == ">=" else value <= self.target

    def __str__(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {self.target:g}"


GOALS: dict[str, Goal | None] = {
    "ratio_to_ceiling": Goal(">=", 0.9),
    "ratio_to_celery": Goal(">=", 1.0),
    "calls_per_job": Goal("<=", 4.5),
    "wru_per_job": Goal("<=", 5.0),
    "usd_per_million_single": Goal("<=", 5.0),
    "usd_per_million_batch": Goal("<=", 3.0),
    "steady_p50_s": None,  # shown beside p99, which carries the goal
    "steady_p99_s": Goal("<=", 0.5),
    "api_cold_ratio_to_deps": Goal("<=", 1.15),
    "worker_cold_ratio_to_deps": Goal("<=", 1.15),
    "io_bound_speedup": Goal(">=", 8.0),
}


@dataclass(frozen=True)
class Figure:
    value: float | None
    runs: Sequence[float] = ()
    note: str = ""


def _median(values: Sequence[float | None]) -> Figure:
    kept = [v for v in values if v is not None]
    if not kept:
        return Figure(None, note="no run gave it")
    return Figure(round(statistics.median(kept), 3), kept)


def _dig(r: dict[str, Any], *path: str) -> Any:
    node: Any = r
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _ceiling(r: dict[str, Any]) -> Figure:
    return _median(_dig(r, "e2e", "ratio", "runs") or [])


def _celery(r: dict[str, Any]) -> Figure:
    celery = r.get("celery") or {}
    if celery.get("skipped"):
        return Figure(None, note=f"Celery not run: {celery['skipped']}")
    if not celery.get("jobs_per_s"):
        return Figure(None, note="Celery not run (make bench runs it; --no-celery skips it)")
    paired = _dig(celery, "ratio", "runs")
    if paired:
        figure = _median(paired)
        return Figure(figure.value, figure.runs, "taskq run i ÷ Celery run i, alternated")
    # A results file from before the runs were alternated: one Celery run.
    taskq = [t["jobs_per_s"] for t in _dig(r, "e2e", "taskq") or [] if t.get("jobs_per_s")]
    ratios = [round(t / celery["jobs_per_s"], 3) for t in taskq]
    figure = _median(ratios)
    return Figure(figure.value, figure.runs, "each taskq end-to-end run against the one Celery run")


def _per_taskq_run(r: dict[str, Any], pick: Callable[[dict[str, Any]], Any]) -> Figure:
    return _median([pick(run) for run in _dig(r, "e2e", "taskq") or []])


def _cost(r: dict[str, Any], batch: bool) -> Figure:
    modes = _dig(r, "cost", "modes") or {}
    for name, mode in modes.items():
        wanted = name.startswith(BATCH_MODE_PREFIX) if batch else name == SINGLE_MODE
        if wanted:
            total = _dig(mode, "per_million", "total")
            return Figure(round(total, 2) if total is not None else None, note=name)
    return Figure(None, note="no cost mode in this run")


def _steady(r: dict[str, Any], quantile: str) -> Figure:
    paced = _dig(r, "e2e", "paced", "taskq") or {}
    ms = _dig(paced, "latency_ms", quantile)
    rate = paced.get("offered_jobs_per_s")
    return Figure(
        round(ms / 1000, 3) if ms is not None else None,
        note=f"one run of {paced.get('jobs', '?')} jobs at {rate} jobs/s, template defaults",
    )


def _cold(r: dict[str, Any], function: str) -> Figure:
    deps = _dig(r, "cold_start", "dependencies", function) or {}
    if deps.get("ratio") is None:
        return Figure(None, note="cold start not measured")
    pairs = zip(deps.get("import_ms_all", []), deps.get("dependencies_ms_all", []), strict=False)
    per_run = [round(a / d, 3) for a, d in pairs if d]
    return Figure(deps["ratio"], per_run, "medians of alternated fresh imports")


def _io(r: dict[str, Any]) -> Figure:
    io = _dig(r, "batch_concurrency", "io", IO_TASK) or {}
    skipped = _dig(r, "batch_concurrency", "skipped")
    if io.get("billed_ratio") is None:
        return Figure(None, note=f"not measured{': ' + skipped if skipped else ''}")
    return Figure(
        io["billed_ratio"],
        note="billed worker ms per job, serial ÷ concurrent, one pair of runs; moto serves "
        "DynamoDB one request at a time, which caps it here (README, Benchmarks)",
    )


def compute(r: dict[str, Any]) -> dict[str, Any]:
    """The headline block: each key a number (or None), then goals, met, spread, runs, notes."""
    figures = {
        "ratio_to_ceiling": _ceiling(r),
        "ratio_to_celery": _celery(r),
        "calls_per_job": _per_taskq_run(r, lambda t: _dig(t, "calls", "billable_per_job")),
        "wru_per_job": _per_taskq_run(r, lambda t: _dig(t, "capacity_per_job", "wru")),
        "usd_per_million_single": _cost(r, batch=False),
        "usd_per_million_batch": _cost(r, batch=True),
        "steady_p50_s": _steady(r, "p50"),
        "steady_p99_s": _steady(r, "p99"),
        "api_cold_ratio_to_deps": _cold(r, "api"),
        "worker_cold_ratio_to_deps": _cold(r, "worker"),
        "io_bound_speedup": _io(r),
    }
    block: dict[str, Any] = {key: figure.value for key, figure in figures.items()}
    block["goals"] = {key: str(goal) for key, goal in GOALS.items() if goal is not None}
    block["met"] = {
        key: goal.met(figures[key].value) for key, goal in GOALS.items() if goal is not None
    }
    block["runs"] = {key: max(1, len(f.runs)) for key, f in figures.items() if f.value is not None}
    block["spread"] = {
        key: [min(f.runs), max(f.runs)] for key, f in figures.items() if len(f.runs) > 1
    }
    block["notes"] = {key: f.note for key, f in figures.items() if f.note}
    return block


def rows(block: dict[str, Any]) -> list[list[str]]:
    """The block as table rows: figure, value, goal, met, runs (spread), note."""
    out = []
    for key in GOALS:
        value = block.get(key)
        met = block["met"].get(key)
        spread = block["spread"].get(key)
        runs = block["runs"].get(key)
        out.append(
            [
                f"`{key}`",
                "n/a" if value is None else f"{value:g}",
                block["goals"].get(key, ""),
                {True: "met", False: "**not met**", None: ""}[met],
                (f"{runs} ({spread[0]:g}-{spread[1]:g})" if spread else str(runs or "")),
                block["notes"].get(key, ""),
            ]
        )
    return out
