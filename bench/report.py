"""The bench's output: a JSON file with every figure, a markdown summary, a PNG chart (drawn
by bench.chart), and the same summary on the console."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench import headline, prices

GOAL_RATIO = 0.8
GOAL_CALLS = 4.5
GOAL_IMPORT_MS = 300.0
GOAL_DEPS_RATIO = 1.15  # a handler's import ÷ its dependencies' import


def _n(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += [
        "| " + " | ".join(_n(c) if not isinstance(c, str) else c for c in row) + " |"
        for row in rows
    ]
    return lines


def _lat(stats: dict[str, float] | None) -> str:
    if not stats:
        return "-"
    return f"{stats['p50']:,.0f} / {stats['p95']:,.0f} / {stats['p99']:,.0f}"


def _goal(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "NOT met")


def markdown(r: dict[str, Any]) -> str:
    """The summary, section by section; a section whose figures are missing is left out."""
    sections = (
        _intro,
        _headline,
        _submit,
        _end_to_end,
        _calls_per_job,
        _cost_per_million,
        _cold_start,
        _batch_concurrency,
        _scaling,
        _celery_comparison,
    )
    return "\n".join(line for section in sections for line in section(r)) + "\n"


def _intro(r: dict[str, Any]) -> list[str]:
    """The machine and its load: every figure is only comparable within one run."""
    m = r["machine"]
    out = [
        "# taskq benchmark",
        "",
        f"Run {r['started']} in {r['duration_s']:.0f} s on {m['cpu']} ({m['cores']} cores, "
        f"{m['memory_gb']:.0f} GB), {m['os']}, Python {m['python']}, moto {m['moto']}. "
        f"Load average {m['load_before']} before, {m['load_after']} after "
        f"(other work on the machine makes every figure noisier; ratios are measured in the "
        f"same run, side by side).",
        "",
    ]
    if r.get("quick"):
        out += ["**Quick run (--quick): tiny counts, figures are not meaningful.**", ""]
    return out


def _headline(r: dict[str, Any]) -> list[str]:
    """The goals' figures first, for a reader who reads no further."""
    if not r.get("headline"):
        return []
    out = ["## Headline (`headline` in bench.json)", ""]
    out += _table(
        ["figure", "value", "goal", "", "runs (spread)", "note"], headline.rows(r["headline"])
    )
    out.append("")
    return out


def _submit(r: dict[str, Any]) -> list[str]:
    """The API alone (worker stopped), against a bare client making the same calls."""
    sub = r.get("submit")
    if not sub:
        return []
    out = ["## Submit throughput (HTTP, local API gateway; worker stopped)", ""]
    out += _table(
        [
            "endpoint",
            "clients",
            "jobs/s",
            "request ms p50/p95/p99",
            "raw calls jobs/s",
            "ratio",
            "calls/job",
            "CPU ms/job",
        ],
        [
            [
                "POST /jobs",
                s["concurrency"],
                s["jobs_per_s"],
                _lat(s["latency_ms"]),
                s["ceiling_jobs_per_s"],
                s["ratio_to_ceiling"],
                s["calls"]["billable_per_job"],
                s["cpu_ms_per_job"].get("total"),
            ]
            for s in sub["single"]
        ]
        + [
            [
                f"POST /jobs:batch ({b['batch_size']})",
                b["concurrency"],
                b["jobs_per_s"],
                _lat(b["request_latency_ms"]),
                None,
                None,
                b["calls"]["billable_per_job"],
                b.get("cpu_ms_per_job", {}).get("total"),
            ]
            for b in sub["batch"]
        ],
    )
    out += [
        "",
        "raw calls: the same PutItem + SendMessage per job from a minimal boto3 client at "
        "the same concurrency. Request latency of the batch endpoint is per request (100 "
        "jobs). The queue is purged before each level: moto's SendMessage recomputes the "
        "queue's attributes over every message it holds, so it slows as a queue fills. "
        "CPU ms/job: all processes together (moto, gateway, sandboxes, client).",
        "",
    ]
    return out


def _end_to_end(r: dict[str, Any]) -> list[str]:
    """taskq against the emulator ceiling (and Celery): saturated, then at a steady rate."""
    e2e = r.get("e2e")
    if not e2e:
        return []
    out = ["## End to end: submit → completed (no-op jobs)", ""]
    out += _table(
        ["run", "jobs", "jobs/s", "latency ms p50/p95/p99", "calls/job"],
        _e2e_rows(e2e, r.get("celery")),
    )
    return [*out, *_e2e_ratio(e2e), *_e2e_cpu(e2e), *_e2e_paced(e2e)]


def _e2e_rows(e2e: dict[str, Any], celery: dict[str, Any] | None) -> list[list[Any]]:
    """The runs alternated pair by pair, so drift on the machine shows beside its pair."""
    rows: list[list[Any]] = []
    for i, (t, c) in enumerate(zip(e2e["taskq"], e2e["ceiling"], strict=False), 1):
        rows.append(
            [
                f"taskq #{i}",
                t["jobs"],
                t["jobs_per_s"],
                _lat(t["latency_ms"]),
                t["calls"]["billable_per_job"],
            ]
        )
        rows.append(
            [
                f"emulator ceiling #{i}",
                c["jobs"],
                c["jobs_per_s"],
                _lat(c["latency_ms"]),
                c["calls"]["billable_per_job"],
            ]
        )
    nw = e2e.get("other_window")
    if nw:
        rows.append(
            [
                f"taskq, batching window {nw['window_s']:g} s",
                nw["jobs"],
                nw["jobs_per_s"],
                _lat(nw["latency_ms"]),
                nw["calls"]["billable_per_job"],
            ]
        )
    if celery and "jobs_per_s" in celery:
        rows.append(
            [
                "Celery (SQS broker)",
                celery["jobs"],
                celery["jobs_per_s"],
                _lat(celery["latency_ms"]),
                None,
            ]
        )
    return rows


def _e2e_ratio(e2e: dict[str, Any]) -> list[str]:
    """The goal's ratio, and what the ceiling is: the same requests with nothing else."""
    ratio = e2e["ratio"]
    nw = e2e.get("other_window")
    return [
        "",
        f"**taskq ÷ emulator ceiling: {_n(ratio['median'], 2)}** "
        f"(runs: {', '.join(_n(x, 2) for x in ratio['runs'])}); goal ≥ {GOAL_RATIO}: "
        f"{_goal(ratio['median'] >= GOAL_RATIO if ratio['median'] is not None else None)}.",
        "",
        *(
            [
                f"With a {nw['window_s']:g} s batching window (MaximumBatchingWindowInSeconds)"
                f" taskq ÷ ceiling is {_n(nw.get('ratio_to_ceiling'), 2)}, with "
                f"{_n(nw['calls']['billable_per_job'])} billable calls per job.",
                "",
            ]
            if nw
            else []
        ),
        f"{e2e['clients']} HTTP clients submit as fast as the API answers while the worker "
        f"runs with the template's settings ({e2e['poller']}); latencies at this "
        "saturation include queueing. The ceiling is a minimal client making exactly "
        "one job's calls (conditional PutItem, SendMessage, ReceiveMessage of up to 10, "
        "claim and complete UpdateItems, DeleteMessageBatch) with as many producer and "
        "consumer threads, on the same emulator; its DynamoDB and SQS requests are built by "
        "taskq's own store and queue classes, so they are the very same requests, and "
        "nothing else of taskq runs.",
        "",
    ]


def _e2e_cpu(e2e: dict[str, Any]) -> list[str]:
    """Where the CPU went, by process: the cores are shared, so this explains the ratio."""
    cpu_t, cpu_c = (
        e2e["taskq"][0].get("cpu_ms_per_job"),
        e2e["ceiling"][0].get("cpu_ms_per_job"),
    )
    if not (cpu_t and cpu_c):
        return []
    names = sorted(set(cpu_t) | set(cpu_c), key=lambda k: (k == "total", k))
    out = [
        "CPU milliseconds per job, by process (run #1; both cores are shared by all):",
        "",
    ]
    out += _table(
        ["process", "taskq", "emulator ceiling"],
        [[n, cpu_t.get(n), cpu_c.get(n)] for n in names],
    )
    return [*out, ""]


def _e2e_paced(e2e: dict[str, Any]) -> list[str]:
    """Latency below saturation, where the batching window, not queueing, dominates."""
    paced = e2e.get("paced")
    if not paced:
        return []
    t, c = paced["taskq"], paced["ceiling"]
    w = paced.get("taskq_other_window")
    out = [
        f"Latency at a steady {_n(t['offered_jobs_per_s'])} jobs/s (below saturation):",
        "",
    ]
    out += _table(
        ["run", "jobs", "latency ms p50/p95/p99", "of which waiting to be claimed p50"],
        [
            [
                "taskq",
                t["jobs"],
                _lat(t["latency_ms"]),
                _n(t["wait_before_claim_ms"].get("p50")),
            ],
            *(
                [
                    [
                        f"taskq, batching window {e2e['other_window']['window_s']:g} s",
                        w["jobs"],
                        _lat(w["latency_ms"]),
                        _n(w["wait_before_claim_ms"].get("p50")),
                    ]
                ]
                if w and e2e.get("other_window")
                else []
            ),
            ["emulator ceiling", c["jobs"], _lat(c["latency_ms"]), "-"],
        ],
    )
    out += [
        "",
        "A batching window (MaximumBatchingWindowInSeconds; the template's "
        f"BatchingWindow is {e2e['poller']['window_s']:g} s) holds a batch open until "
        f"it has {e2e['poller']['batch_size']} records or the window ends: at low "
        "rates it is most of a job's latency, on AWS as here; at saturation batches "
        "fill before it ends, and a window only saves receives and invocations.",
        "",
    ]
    return out


def _calls_per_job(r: dict[str, Any]) -> list[str]:
    """Billable AWS calls per job by operation: the cost's main driver."""
    calls = r.get("calls")
    if not calls:
        return []
    out = ["## AWS calls per job", ""]
    names = sorted({k for v in calls.values() for k in v["per_job"]})
    out += _table(
        ["operation", *calls.keys()],
        [[n, *(_n(v["per_job"].get(n), 2) for v in calls.values())] for n in names]
        + [
            [
                "**billable (without empty receives)**",
                *(_n(v["billable_per_job"], 2) for v in calls.values()),
            ],
            [
                "with empty receives",
                *(_n(v["billable_per_job_with_empty_receives"], 2) for v in calls.values()),
            ],
        ],
    )
    out += [
        "",
        _calls_goal(calls) + " Counted with botocore event hooks on every client of the "
        "API and worker sandboxes and of the poller. Empty receives are long polls that "
        "found nothing: on AWS the event source mapping makes them too, whether or not "
        "jobs flow.",
        "",
    ]
    return out


def _cost_per_million(r: dict[str, Any]) -> list[str]:
    """Each mode's bill per million jobs, line by line, then before/after the index change."""
    cost = r.get("cost")
    if not cost:
        return []
    out = [f"## Cost per million jobs (USD, {prices.REGION} list prices, {prices.AS_OF})", ""]
    modes = list(cost["modes"])
    lines = list(next(iter(cost["modes"].values()))["per_million"])
    out += _table(
        ["line", *modes],
        [
            [line, *(f"{cost['modes'][m]['per_million'][line]:,.2f}" for m in modes)]
            for line in lines
        ],
    )
    out += ["", cost["note"], ""]
    out += _cost_before_after(cost["modes"])
    return out


def _cold_start(r: dict[str, Any]) -> list[str]:
    """Import time and memory of each handler, with and without the X-Ray SDK."""
    cold = r.get("cold_start")
    if not cold:
        return []
    out = ["## Cold start (import of the handler module, fresh interpreter)", ""]
    rows = []
    for key in ("api:local", "worker:local", "api:aws", "worker:aws"):
        c = cold[key]
        rows.append(
            [
                key,
                c["import_ms"],
                _goal(c["import_ms"] <= GOAL_IMPORT_MS),
                c["peak_rss_mb"],
                c["modules"],
            ]
        )
    out += _table(
        [
            "function:variant",
            "import ms (median)",
            f"≤ {GOAL_IMPORT_MS:.0f} ms",
            "peak RSS MB",
            "modules",
        ],
        rows,
    )
    out += [
        "",
        "local: as the sandboxes run it (no X-Ray daemon, so taskq's tracer is off); aws: "
        "with AWS_XRAY_DAEMON_ADDRESS set, as `Tracing: Active` does on Lambda (imports "
        f"the X-Ray SDK). Interpreter alone: {cold['api:local']['interpreter_rss_mb']} MB.",
        "",
        "Heaviest imports (cumulative ms): "
        + "; ".join(
            f"{fn}: " + ", ".join(f"{i['module']} {i['cumulative_ms']:.0f}" for i in items[:6])
            for fn, items in cold["slowest_imports"].items()
        ),
        "",
    ]
    out += _against_dependencies(cold.get("dependencies") or {})
    return out


def _batch_concurrency(r: dict[str, Any]) -> list[str]:
    """Serial against concurrent records in a batch; bench.concurrency writes the section."""
    bc = r.get("batch_concurrency")
    if not bc:
        return []
    from bench import concurrency  # it imports this module's helpers

    if "skipped" in bc:
        return ["## Batch concurrency", "", f"Skipped: {bc['skipped']}", ""]
    return concurrency.markdown(bc)


def _scaling(r: dict[str, Any]) -> list[str]:
    """The worker alone draining a backlog, for each poller setting tried."""
    scaling = r.get("scaling")
    if not scaling:
        return []
    out = ["## Scaling: draining a backlog with each poller setting", ""]
    out += _table(
        ["max concurrency", "batch size", "jobs", "jobs/s", "mean batch", "calls/job"],
        [
            [
                s["concurrency"],
                s["batch_size"],
                s["jobs"],
                s["jobs_per_s"],
                s["worker"]["mean_batch"],
                s["calls_worker"]["billable_per_job"],
            ]
            for s in scaling
        ],
    )
    out += [
        "",
        "Worker side only (jobs submitted beforehand); calls/job counts the worker's and "
        "the poller's calls.",
        "",
    ]
    return out


def _celery_comparison(r: dict[str, Any]) -> list[str]:
    """taskq against Celery on the same emulator, with what differs in the work each does."""
    celery = r.get("celery")
    if not celery:
        return []
    out = ["## Comparison: Celery with its SQS broker", ""]
    if "skipped" in celery:
        return [*out, f"Skipped: {celery['skipped']}", ""]
    return [
        *out,
        f"{celery['what']}; {celery['clients']} client threads, "
        f"{celery['worker_processes']} worker processes, same emulator, same run.",
        "",
        f"**taskq ÷ Celery end-to-end throughput: {_n(celery.get('taskq_ratio'), 2)}** "
        f"(median of each taskq run over the Celery run after it: "
        f"{_runs(_dig_ratio(celery))}; taskq {_n(celery.get('taskq_jobs_per_s'))} "
        f"jobs/s, Celery {_runs(celery.get('jobs_per_s_runs', [celery['jobs_per_s']]), 1)}"
        " jobs/s). Celery's clients send to SQS directly "
        "(no HTTP API, no Lambda hop) and it stores nothing before the send; taskq's "
        "jobs go through the API Lambda and are stored before they are queued.",
        "",
    ]


def _calls_goal(calls: dict[str, Any]) -> str:
    """The goal judged as the headline judges it (a steady flow), the backlog beside it."""
    steady = calls.get("happy path, steady flow") or next(iter(calls.values()))
    backlog = calls.get("happy path, backlog")
    per_job = steady["billable_per_job"]
    text = (
        f"Goal ≤ {GOAL_CALLS} billable calls per job on the happy path: "
        f"{_goal(per_job <= GOAL_CALLS)} in a steady flow ({_n(per_job, 2)}: batches of one "
        "or two records, so each job carries most of a receive and a delete)"
    )
    if backlog:
        text += f"; draining a backlog in full batches of 10, {_n(backlog['billable_per_job'], 2)}"
    return text + "."


def _cost_before_after(modes: dict[str, Any]) -> list[str]:
    """Each mode's lines priced under the indexes as first built and as they are, from the
    same counted calls (only DynamoDB's write units differ)."""
    if not all("per_million_first_design" in m for m in modes.values()):
        return []
    out = ["Before (indexes as first built, both projecting every attribute) and after:", ""]
    header = ["line", *(f"{name}: {when}" for name in modes for when in ("before", "after"))]
    first = next(iter(modes.values()))
    rows = []
    for line in first["per_million"]:
        if line not in first["per_million_first_design"]:
            continue
        row = [line]
        for mode in modes.values():
            row += [
                f"{mode['per_million_first_design'][line]:,.2f}",
                f"{mode['per_million'][line]:,.2f}",
            ]
        rows.append(row)
    wru = ["DynamoDB write units a job"]
    for mode in modes.values():
        wru += [_n(mode["wru_first_design"], 2), _n(mode["usage"]["dynamodb_wru"], 2)]
    return [*out, *_table(header, [*rows, wru]), ""]


def _against_dependencies(deps: dict[str, Any]) -> list[str]:
    if not deps:
        return []
    out = [
        "The handler's import against its own dependencies' (fresh interpreters, local "
        "variant, alternated, medians):",
        "",
    ]
    out += _table(
        [
            "function",
            "import ms",
            "dependencies ms",
            f"ratio (goal ≤ {GOAL_DEPS_RATIO})",
            "with their stdlib ms",
            "ratio",
        ],
        [
            [
                fn,
                d["import_ms"],
                d["dependencies_ms"],
                f"{_n(d['ratio'], 2)}: "
                + _goal(d["ratio"] <= GOAL_DEPS_RATIO if d["ratio"] else None),
                d["with_stdlib_ms"],
                _n(d["ratio_with_stdlib"], 2),
            ]
            for fn, d in deps.items()
        ],
    )
    out += [
        "",
        "Dependencies: the third-party imports the function's own code executes during "
        "`import app`, recorded by watching its import statements, imported alone and in the "
        "same order; 'with their stdlib' adds the standard-library modules that code imports.",
        "",
    ]
    for fn, d in deps.items():
        out.append(f"- {fn}: " + "; ".join(d["dependencies"]))
    first = deps.get("worker", {}).get("first_batch")
    if first:
        out += [
            "",
            f"The worker imports aioboto3 on its first AWS call, so every new sandbox's first "
            f"batch pays it: aioboto3 import {_n(first['aioboto3_import_ms'])} ms, then opening "
            f"the first aioboto3 client {_n(first['first_client_ms'])} ms; import + first batch's "
            f"client: **{_n(first['import_plus_first_batch_ms'])} ms** (not in the import "
            "figures above; Lambda bills it in that first invocation's duration).",
        ]
    return [*out, ""]


def write(r: dict[str, Any], out_dir: Path) -> dict[str, str]:
    from bench.chart import chart  # it imports this module's helpers

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "bench.json",
        "markdown": out_dir / "bench.md",
        "png": out_dir / "bench.png",
    }
    paths["json"].write_text(json.dumps(r, indent=2, sort_keys=False) + "\n")
    paths["markdown"].write_text(markdown(r))
    why_not = chart(r, paths["png"])
    written = {k: str(v) for k, v in paths.items()}
    if why_not:
        written["png"] = f"not written: {why_not}"
    return written


def _runs(values: Sequence[float | None], digits: int = 2) -> str:
    return ", ".join(_n(v, digits) for v in values)


def _dig_ratio(row: dict[str, Any]) -> list[float | None]:
    return list((row.get("ratio") or {}).get("runs") or [row.get("taskq_ratio")])


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None
