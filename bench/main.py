"""The bench's sequence: cold start first (quietest), then the stack's runs, then the report."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import coldstart, compare, concurrency, cost, headline, logs, prices, report, runs
from bench.context import Context, Sizes
from bench.stack import ROOT, BenchStack


def progress(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        pages = 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(pages / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "moto": version("moto"),
        "boto3": version("boto3"),
        "load_before": _load(),
    }


def _load() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


@contextmanager
def stderr_to(path: Path):  # type: ignore[no-untyped-def]
    """Send fd 2 (the sandboxes' logs, which they inherit) to a file; restore it after."""
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def run(*, quick: bool, out: str, celery: bool) -> int:
    started = time.time()
    sizes = Sizes.quick() if quick else Sizes()
    out_dir = (ROOT / out).resolve()
    workdir = out_dir / "work"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "machine": machine(),
        "sizes": asdict(sizes),
        "prices": {"region": prices.REGION, "as_of": prices.AS_OF},
    }
    print(
        f"taskq bench{' (quick)' if quick else ''}: logs and scratch files in {workdir}", flush=True
    )
    progress("cold start: importing each handler in fresh interpreters")
    results["cold_start"] = coldstart.measure(repeats=2 if quick else 3)
    stack = BenchStack(workdir)
    ctx: Context | None = None
    try:
        with (
            stderr_to(workdir / "stack.log"),
            ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool,
        ):
            progress("starting moto and the stack")
            stack.start()
            twin = stack.provision_twin("c")
            ctx = Context(
                stack,
                pool,
                sizes,
                twin.tables["JobsTable"],
                twin.queue_urls["JobQueue"],
                progress=progress,
            )
            _measure(ctx, results, celery)
    except BaseException:
        print(f"bench failed; see {workdir}/stack.log and moto.log", file=sys.stderr)
        raise
    finally:
        stack.stop()
    results["machine"]["load_after"] = _load()
    results["duration_s"] = round(time.time() - started, 1)
    assert ctx is not None
    results["logs"] = logs.attribute(workdir / "stack.log", ctx.windows)
    results["cost"] = _cost(results, stack)
    results = {"headline": headline.compute(results), **results}
    written = report.write(results, out_dir)
    print()
    print(report.markdown(results))
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return 0


def _measure(ctx: Context, results: dict[str, Any], celery: bool) -> None:
    progress("warming up: every API and worker sandbox, the load generators")
    list(ctx.pool.map(time.sleep, [0.1, 0.1]))  # start both helper processes now
    runs.warm_up(ctx)
    results["item"] = {"bytes": ctx.item_bytes, "kb": ctx.item_kb}
    results["submit"] = runs.submit_throughput(ctx)

    sizes = ctx.sizes
    taskq_runs, ceiling_runs, celery_runs, celery_skipped = _end_to_end(ctx, celery)
    ratios = _paired_ratios(taskq_runs, ceiling_runs)
    spec = ctx.stack.template_sqs
    results["e2e"] = {
        "taskq": taskq_runs,
        "ceiling": ceiling_runs,
        "ratio": {"runs": ratios, "median": report.median(ratios)},
        "clients": sizes.e2e_concurrency,
        "poller": {
            "concurrency": spec.maximum_concurrency,
            "batch_size": spec.batch_size,
            "window_s": spec.max_batching_window_s,
        },
    }
    # The batching window's trade-off: the template's default against the other of 0 / 1 s.
    other = 1.0 if spec.max_batching_window_s == 0 else 0.0
    progress(f"end to end: taskq with a {other:g} s batching window, {sizes.e2e_jobs} jobs")
    other_window = runs.e2e_taskq(ctx, f"e2e-window{other:g}", sizes.e2e_jobs, window_s=other)
    ceiling_rate = statistics.median(c["jobs_per_s"] or 0 for c in ceiling_runs)
    other_window["ratio_to_ceiling"] = (
        round(other_window["jobs_per_s"] / ceiling_rate, 3)
        if other_window["jobs_per_s"] and ceiling_rate
        else None
    )
    other_window["window_s"] = other
    results["e2e"]["other_window"] = other_window
    best = statistics.median(t["jobs_per_s"] or 0 for t in taskq_runs)
    rate = max(1.0, min(sizes.paced_rate, 0.5 * best))
    progress(f"latency at a steady {rate:.0f} jobs/s: emulator ceiling, then taskq")
    results["e2e"]["paced"] = {
        "ceiling": runs.e2e_ceiling(ctx, "paced-ceiling", sizes.paced_jobs, 1 / rate),
        "taskq": runs.e2e_taskq(ctx, "paced", sizes.paced_jobs, 1 / rate),
        "taskq_other_window": runs.e2e_taskq(
            ctx, "paced-other-window", sizes.paced_jobs, 1 / rate, window_s=other
        ),
    }
    progress(f"one retry: {sizes.retry_jobs} jobs that fail once (1 s backoff)")
    results["retry"] = runs.retry_path(ctx)
    progress(f"a concurrency cap: {sizes.retry_jobs} no-op jobs under a cap of 5")
    results["capped"] = runs.capped_path(ctx)
    results["scaling"] = runs.scaling(ctx)
    drain = _template_row(results["scaling"], spec.maximum_concurrency, spec.batch_size)
    results["calls"] = {
        **({"happy path, backlog": _both(results["submit"]["single"], drain)} if drain else {}),
        "happy path, steady flow": taskq_runs[0]["calls"],
        "one retry": results["retry"]["calls"],
        "capped (cap 5)": results["capped"]["calls"],
        "emulator ceiling": ceiling_runs[0]["calls"],
    }
    if celery:
        results["celery"] = _celery_summary(celery_runs, taskq_runs, celery_skipped)
    # Last: it deploys the worker a second time (BatchConcurrency=1) next to the template's.
    bc_sizes = concurrency.Sizes.quick() if results["quick"] else concurrency.Sizes()
    try:
        results["batch_concurrency"] = concurrency.measure(ctx, bc_sizes)
    except Exception as exc:  # reported (and the rest of the report written), not fatal
        ctx.stack.stop_poller()
        results["batch_concurrency"] = {"skipped": f"failed: {type(exc).__name__}: {exc}"}
        progress(f"batch concurrency runs failed: {type(exc).__name__}: {exc}")


def _end_to_end(
    ctx: Context, celery: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], str]:
    """taskq, the emulator ceiling and Celery, alternated run by run so that drift on the
    machine hits all three alike; with why Celery did not run, if it did not."""
    sizes = ctx.sizes
    workers = ctx.stack.template_sqs.maximum_concurrency
    skipped = compare.unavailable() if celery else "not asked for"
    rig = compare.prepare(ctx) if not skipped else None
    taskq_runs, ceiling_runs, celery_runs = [], [], []
    for i in range(sizes.e2e_repeats):
        progress(f"end to end #{i + 1}: emulator ceiling, {sizes.e2e_jobs} jobs")
        ceiling_runs.append(runs.e2e_ceiling(ctx, f"ceiling-{i}", sizes.e2e_jobs))
        progress(f"end to end #{i + 1}: taskq, {sizes.e2e_jobs} jobs")
        taskq_runs.append(runs.e2e_taskq(ctx, f"e2e-{i}", sizes.e2e_jobs))
        if rig is None:
            continue
        progress(f"end to end #{i + 1}: Celery, {sizes.celery_jobs} jobs")
        try:
            celery_runs.append(compare.run(ctx, rig, sizes.celery_jobs, workers))
        except Exception as exc:  # a comparison that cannot run is reported, not fatal
            celery_runs.append({"skipped": f"Celery run failed: {type(exc).__name__}: {exc}"})
    return taskq_runs, ceiling_runs, celery_runs, skipped or ""


def _paired_ratios(
    taskq_runs: list[dict[str, Any]], others: list[dict[str, Any]]
) -> list[float | None]:
    """taskq run i's throughput ÷ the alternated run i's; None where either has none."""
    return [
        round(t["jobs_per_s"] / o["jobs_per_s"], 3)
        if t.get("jobs_per_s") and o.get("jobs_per_s")
        else None
        for t, o in zip(taskq_runs, others, strict=True)
    ]


def _celery_summary(
    celery_runs: list[dict[str, Any]], taskq_runs: list[dict[str, Any]], skipped: str
) -> dict[str, Any]:
    """The median Celery run (its latency is the one shown), every run's rate, and taskq ÷
    Celery for each alternated pair, with their median."""
    done = sorted((c for c in celery_runs if c.get("jobs_per_s")), key=lambda c: c["jobs_per_s"])
    if not done:
        failed = next((c["skipped"] for c in celery_runs if "skipped" in c), None)
        return {"skipped": skipped or failed or "no Celery run completed"}
    ratios = _paired_ratios(taskq_runs, celery_runs)
    return {
        **done[len(done) // 2],
        "jobs_per_s_runs": [c.get("jobs_per_s") for c in celery_runs],
        "ratio": {"runs": ratios, "median": report.median(ratios)},
        "taskq_jobs_per_s": report.median([t.get("jobs_per_s") for t in taskq_runs]),
        "taskq_ratio": report.median(ratios),
    }


def _template_row(
    rows: list[dict[str, Any]], concurrency: int, batch: int
) -> dict[str, Any] | None:
    """The scaling run with the template's settings (or the nearest one that ran)."""
    for row in rows:
        if row["concurrency"] == concurrency and row["batch_size"] == batch:
            return row
    return max(rows, key=lambda r: (r["batch_size"], r["concurrency"]), default=None)


def _both(single: list[dict[str, Any]], drain: dict[str, Any]) -> dict[str, Any]:
    """Submit side (POST /jobs) plus worker side (a backlog drained in full batches)."""
    api = max(single, key=lambda s: s["jobs"])["calls"]
    worker = drain["calls_worker"]
    per_job = dict(api["per_job"])
    for name, value in worker["per_job"].items():
        per_job[name] = round(per_job.get(name, 0) + value, 3)
    return {
        "per_job": per_job,
        "billable_per_job": round(api["billable_per_job"] + worker["billable_per_job"], 3),
        "billable_per_job_with_empty_receives": round(
            api["billable_per_job_with_empty_receives"]
            + worker["billable_per_job_with_empty_receives"],
            3,
        ),
        "retried_attempts": api["retried_attempts"] + worker["retried_attempts"],
        "errors": api["errors"] + worker["errors"],
    }


def _typical(run: dict[str, Any], group: str = "api") -> float:
    """Mean assumed AWS latency of one handler call of this run's mix (DynamoDB and SQS)."""
    per_job = run.get(f"calls_{group}", run.get("calls", {})).get("per_job", {})
    total = weight = 0.0
    for name, count in per_job.items():
        service = name.split(":", 1)[0]
        if name.endswith("(empty)") or "ReceiveMessage" in name or "DeleteMessageBatch" in name:
            continue  # the poller's, outside the handler
        total += count * cost.AWS_CALL_MS.get(service, 10.0)
        weight += count
    return total / weight if weight else cost.AWS_CALL_MS["dynamodb"]


def _cost(results: dict[str, Any], stack: BenchStack) -> dict[str, Any]:
    """Two modes priced from this run: single submits in a steady flow, and batch submits
    with the backlog drained at the template's poller settings."""
    settings = stack.settings
    spec = stack.template_sqs
    log_bytes = results["logs"]
    e2e = results["e2e"]["taskq"][0]
    batch = max(results["submit"]["batch"], key=lambda b: b["jobs"])
    drain = _template_row(results["scaling"], spec.maximum_concurrency, spec.batch_size) or e2e
    modes = {
        "POST /jobs, steady flow": (e2e, e2e, e2e["api"]["per_job"]),
        f"POST /jobs:batch ({batch['batch_size']}), backlog": (
            batch,
            drain,
            batch["api"]["per_job"],
        ),
    }
    out_modes = {
        name: _cost_mode(api_run, worker_run, http, log_bytes, settings)
        for name, (api_run, worker_run, http) in modes.items()
    }
    return {"modes": out_modes, "note": _cost_note(results, settings)}


def _cost_mode(
    api_run: dict[str, Any],
    worker_run: dict[str, Any],
    http: float,
    log_bytes: dict[str, Any],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """One mode's usage and price lines, as measured, at AWS call latency, and under the
    indexes as first built (the same calls; only the write units differ)."""
    measured = _usage(api_run, worker_run, http, log_bytes)
    lines = _priced(measured, settings)
    at_aws = _priced(_at_aws_latency(measured, api_run, worker_run), settings)
    lines["Lambda duration at AWS call latency (est.)"] = at_aws["Lambda duration"]
    lines["total at AWS call latency (est.)"] = at_aws["total"]
    first = dataclasses.replace(
        measured,
        dynamodb_wru=api_run["usage"]["api"].get("wru_first_design", 0.0)
        + worker_run["usage"]["worker"].get("wru_first_design", 0.0),
    )
    return {
        "usage": {k: round(v, 4) for k, v in cost.usage_dict(measured).items()},
        "per_million": {k: round(v, 4) for k, v in lines.items()},
        # the same calls under the indexes as first built (cost.FIRST_DESIGN_INDEXES)
        "wru_first_design": round(first.dynamodb_wru, 4),
        "per_million_first_design": {k: round(v, 4) for k, v in _priced(first, settings).items()},
    }


def _usage(
    api_run: dict[str, Any], worker_run: dict[str, Any], http: float, log_bytes: dict[str, Any]
) -> cost.Usage:
    """A job's usage: the API's side from one run, the worker's from another (they may
    differ: batch submits are drained by a separate backlog run)."""
    a, w = api_run["usage"]["api"], worker_run["usage"]["worker"]
    logged = log_bytes[api_run["window"]]["api"] / max(api_run["jobs"], 1) + log_bytes[
        worker_run["window"]
    ]["worker"] / max(worker_run["jobs"], 1)
    return cost.Usage(
        api_invocations=a["invocations"],
        api_billed_ms=a["billed_ms"],
        worker_invocations=w["invocations"],
        worker_billed_ms=w["billed_ms"],
        dynamodb_wru=a["wru"] + w["wru"],
        dynamodb_rru=a["rru"] + w["rru"],
        sqs_requests=a["sqs_requests"] + w["sqs_requests"],
        http_requests=http,
        log_bytes=logged,
    )


def _at_aws_latency(
    u: cost.Usage, api_run: dict[str, Any], worker_run: dict[str, Any]
) -> cost.Usage:
    """The same usage, the handlers' calls re-timed at AWS_CALL_MS instead of moto's."""
    a, w = api_run["usage"]["api"], worker_run["usage"]["worker"]
    api_ms = a["billed_ms"] - a["handler_call_ms"] + a["handler_calls"] * _typical(api_run)
    worker_ms = (
        w["billed_ms"] - w["handler_call_ms"] + w["handler_calls"] * _typical(worker_run, "worker")
    )
    return dataclasses.replace(
        u, api_billed_ms=max(api_ms, 0.0), worker_billed_ms=max(worker_ms, 0.0)
    )


def _priced(u: cost.Usage, settings: dict[str, Any]) -> dict[str, float]:
    """Per million jobs, at the template's memory sizes and architecture."""
    return cost.per_million(
        u,
        api_memory_mb=settings["api_memory_mb"],
        worker_memory_mb=settings["worker_memory_mb"],
        architecture=settings["architecture"],
    )


def _cost_note(results: dict[str, Any], settings: dict[str, Any]) -> str:
    """What the figures rest on, so a reader can tell measured from assumed."""
    return (
        f"Counted calls and measured handler durations from this run, priced at "
        f"{prices.REGION} list prices ({prices.AS_OF}; bench/prices.py), "
        f"{settings['architecture']}, {settings['api_memory_mb']} MB. DynamoDB writes are "
        f"capacity units: a job item of {results['item']['bytes']} bytes is "
        f"{results['item']['kb']} KB a write; the create is also written to the by_phase "
        "and by_task indexes, the finish to by_phase twice (a delete and a put: the phase "
        "moves from live to the outcome), and the claim to neither (it changes no key "
        "and nothing they project); each write as the probe saw it. Durations come from a "
        "loaded 2-core machine talking to moto, not from "
        "Lambda talking to DynamoDB. SQS requests include empty receives made while "
        "gathering batches. Logs are the functions' measured lines plus an estimate of "
        "Lambda's START/END/REPORT lines; X-Ray assumes 5% sampling. Free tiers left out. "
        "The two (est.) lines re-time each call the handlers made at an assumed in-region "
        f"latency (DynamoDB {cost.AWS_CALL_MS['dynamodb']:g} ms, SQS "
        f"{cost.AWS_CALL_MS['sqs']:g} ms) instead of moto's on this machine."
    )
