"""The measured runs. Each returns plain data for the report, and records its time window
(for the log accounting) and the AWS calls made inside it.

Every run is bounded by a job count and a deadline; a run that hits its deadline reports
what it completed and says so (`complete: false`).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bench import loadgen
from bench.calls import Call
from bench.context import (
    Context,
    Phase,
    calls_summary,
    invocation_summary,
    stats_ms,
    usage_parts,
)
from bench.cost import capacity, item_size
from bench.stack import API, WORKER, BenchStack

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
NOOP = json.dumps({"task": "noop", "payload": {}}).encode()


# --- helpers --------------------------------------------------------------------------------


def noop_batches(n: int, size: int) -> list[bytes]:
    """POST /jobs:batch bodies holding n no-op jobs, `size` a request."""
    counts = [min(size, n - start) for start in range(0, n, size)]
    return [json.dumps({"jobs": [{"task": "noop", "payload": {}}] * c}).encode() for c in counts]


def submit(
    ctx: Context, path: str, bodies: list[bytes], concurrency: int, interval_s: float = 0.0
) -> list[loadgen.Sent]:
    future = ctx.pool.submit(
        loadgen.http_submit,
        ctx.stack.api_url,
        path,
        bodies,
        concurrency,
        ctx.sizes.deadline_s,
        interval_s,
    )
    return future.result(timeout=ctx.sizes.deadline_s + 30)


def wait_deleted(ctx: Context, base: int, n: int, timeout: float) -> bool:
    """Until the poller has deleted n more messages (each after its job finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ctx.stack.poller.stats.deleted >= base + n:
            return True
        time.sleep(0.02)
    return False


def wait_done(ctx: Context, base: int, ids: list[str], timeout: float) -> bool:
    """Until every job in `ids` is completed. The poller's delete count says when to look
    (it costs the emulator nothing); the jobs' items are then read to be sure, since a
    message delivered twice (SQS, and moto, may) is deleted twice."""
    deadline = time.monotonic() + timeout
    if not wait_deleted(ctx, base, len(ids), timeout):
        return False
    while time.monotonic() < deadline:
        if len(finished(ctx, ids)) >= len(ids):
            return True
        time.sleep(0.25)
    return False


def finished(ctx: Context, ids: Iterable[str]) -> dict[str, dict[str, float]]:
    """Per job: submitted/claimed/completed times from its stored events (completed only)."""
    ddb = ctx.stack.client("dynamodb")
    table = ctx.stack.env["TASKQ_TABLE"]
    wanted = list(dict.fromkeys(ids))
    out: dict[str, dict[str, float]] = {}
    for start in range(0, len(wanted), 100):
        request: dict[str, Any] = {
            table: {
                "Keys": [{"id": {"S": i}} for i in wanted[start : start + 100]],
                "ProjectionExpression": "id, events",
                "ConsistentRead": True,
            }
        }
        for _ in range(10):
            reply = ddb.batch_get_item(RequestItems=request)
            for item in reply.get("Responses", {}).get(table, []):
                times = _event_times(item)
                if "completed" in times:
                    out[item["id"]["S"]] = times
            request = reply.get("UnprocessedKeys") or {}
            if not request:
                break
    return out


def _event_times(item: dict[str, Any]) -> dict[str, float]:
    times: dict[str, float] = {}
    for raw in item.get("events", {}).get("L", []):
        entry = raw["M"]
        at = datetime.strptime(entry["at"]["S"], TIME_FORMAT).replace(tzinfo=UTC).timestamp()
        kind = entry["kind"]["S"]
        times.setdefault(f"first_{kind}", at)
        times[kind] = at
    return times


def measure_item(ctx: Context, job_id: str) -> None:
    """The size of a finished job's item: what each write of it is billed on."""
    ddb = ctx.stack.client("dynamodb")
    item = ddb.get_item(TableName=ctx.stack.env["TASKQ_TABLE"], Key={"id": {"S": job_id}})
    if "Item" in item:
        ctx.item_bytes = item_size(item["Item"])
        ctx.item_kb = max(1, math.ceil(ctx.item_bytes / 1024))


def purge(ctx: Context, *queue_urls: str) -> None:
    """Empty queues by receiving and deleting (PurgeQueue is allowed once a minute)."""
    sqs = ctx.stack.client("sqs")
    for url in queue_urls:
        for _ in range(1000):
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                break
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )


def capacity_per_job(ctx: Context, calls: list[Call], jobs: int) -> dict[str, float]:
    wru, rru = capacity(calls, ctx.item_kb, ctx.stack.settings["gsi"])
    return {"wru": round(wru / max(jobs, 1), 3), "rru": round(rru / max(jobs, 1), 3)}


# --- warm-up --------------------------------------------------------------------------------


def warm_up(ctx: Context) -> None:
    """Start every sandbox the runs will use, so no run pays a cold start (measured apart)."""
    stack = ctx.stack
    mark = stack.calls.mark()
    stack.run_poller(stack.template_sqs.maximum_concurrency, stack.template_sqs.batch_size)
    base = stack.poller.stats.deleted
    sent = 0
    for concurrency in (1, 2, 4, 4):  # the API function has 4 sandboxes; at most 2 start at once
        replies = submit(ctx, "/jobs", [NOOP] * concurrency * 2, concurrency)
        sent += sum(1 for r in replies if r[2] == 202)
    wait_deleted(ctx, base, sent, 60)
    stack.stop_poller()
    seen = {c.source for c in stack.calls.since(mark)}
    if not {stack.function_name(API), stack.function_name(WORKER)} <= seen:
        raise RuntimeError(
            "the probe counted no AWS call of the functions' own clients (saw only "
            f"{sorted(seen)}): does taskq.wiring still make them with taskq.aws.client"
            "(service, region, endpoint_url)? See bench/probe_layer/taskq_bench_probe.py"
        )
    job_id = next(r[3][0] for r in replies if r[3])
    measure_item(ctx, job_id)
    # The worker: invoke it with a record of a finished job (acknowledged, nothing runs), a
    # few more at a time, until every sandbox the scaling runs use has started.
    event = {"Records": [_record(stack, job_id)]}
    worker = stack.cloud.functions[WORKER] if stack.cloud else None
    assert worker is not None
    for concurrency in range(2, stack.max_concurrency + 1, 2):
        threads = [
            threading.Thread(target=worker.invoke, args=(event,)) for _ in range(concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)


def _record(stack: BenchStack, job_id: str) -> dict[str, Any]:
    body = json.dumps({"job_id": job_id, "task": "noop"})
    return {
        "messageId": f"warm-{job_id}",
        "receiptHandle": "warm-up",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "2"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:warm-up",
        "awsRegion": "us-east-1",
    }


# --- submit throughput ------------------------------------------------------------------------


def submit_throughput(ctx: Context) -> dict[str, Any]:
    """POST /jobs at several concurrencies, POST /jobs:batch, and the raw calls at the same
    concurrency; the worker is stopped (its queue is purged after)."""
    sizes, stack = ctx.sizes, ctx.stack
    stack.stop_poller()
    single = []
    queue = stack.env["TASKQ_QUEUE_URL"]
    for level in sizes.submit_levels:
        ctx.progress(f"submit: POST /jobs x{sizes.submit_jobs} at concurrency {level}")
        purge(ctx, queue, ctx.twin_queue)  # moto's SendMessage slows as its queue grows
        phase = Phase(ctx, f"submit-{level}")
        replies = submit(ctx, "/jobs", [NOOP] * sizes.submit_jobs, level)
        data = phase.end()
        accepted = sum(len(r[3]) for r in replies)
        raw = _raw_submit(ctx, sizes.submit_jobs, level)
        row = {
            "concurrency": level,
            "jobs": accepted,
            "errors": sum(1 for r in replies if r[2] != 202),
            **_rate(replies, accepted),
            "latency_ms": stats_ms([r[1] - r[0] for r in replies]),
            "calls": calls_summary(data.group(stack, "api"), accepted),
            "api": invocation_summary(data.invocations[API], accepted),
            "ceiling_jobs_per_s": raw,
            "cpu_ms_per_job": data.cpu_ms_per_job(accepted),
        }
        row["ratio_to_ceiling"] = (
            round(row["jobs_per_s"] / raw, 3) if raw and row.get("jobs_per_s") else None
        )
        single.append(row)
    batch = []
    for level in sizes.batch_levels:
        ctx.progress(
            f"submit: POST /jobs:batch x{sizes.batch_requests} of {sizes.batch_size} "
            f"at concurrency {level}"
        )
        body = json.dumps({"jobs": [{"task": "noop", "payload": {}}] * sizes.batch_size}).encode()
        replies = []
        phase = Phase(ctx, f"batch-{level}")
        for _ in range(max(1, sizes.batch_requests // level)):  # rounds of `level` requests
            purge(ctx, queue)
            replies += submit(ctx, "/jobs:batch", [body] * level, level)
        data = phase.end()
        accepted = sum(len(r[3]) for r in replies)
        batch.append(
            {
                "concurrency": level,
                "batch_size": sizes.batch_size,
                "requests": len(replies),
                "jobs": accepted,
                "errors": sum(1 for r in replies if r[2] != 202),
                "jobs_per_s": round(
                    accepted
                    / sum(_span(replies[i : i + level]) for i in range(0, len(replies), level)),
                    1,
                )
                if replies
                else None,
                "request_latency_ms": stats_ms([r[1] - r[0] for r in replies]),
                "calls": calls_summary(data.group(stack, "api"), accepted),
                "capacity_per_job": capacity_per_job(ctx, data.group(stack, "api"), accepted),
                "cpu_ms_per_job": data.cpu_ms_per_job(accepted),
                "api": invocation_summary(data.invocations[API], accepted),
                "usage": usage_parts(ctx, data, accepted),
                "window": f"batch-{level}",
            }
        )
    purge(ctx, queue, ctx.twin_queue)
    time.sleep(1.0)
    return {"single": single, "batch": batch}


def _span(replies: list[loadgen.Sent]) -> float:
    return max(r[1] for r in replies) - min(r[0] for r in replies)


def _rate(replies: list[loadgen.Sent], accepted: int) -> dict[str, Any]:
    if not replies:
        return {"jobs_per_s": None}
    span = max(r[1] for r in replies) - min(r[0] for r in replies)
    return {
        "jobs_per_s": round(accepted / span, 1) if span > 0 else None,
        "seconds": round(span, 2),
    }


def _raw_submit(ctx: Context, n: int, concurrency: int) -> float | None:
    """PutItem + SendMessage per job, nothing else, at the same concurrency."""
    done = ctx.pool.submit(
        loadgen.ceiling_produce, ctx.target(), n, concurrency, ctx.sizes.deadline_s
    ).result(timeout=ctx.sizes.deadline_s + 30)
    if not done:
        return None
    span = max(e for _, _, e in done) - min(s for _, s, _ in done)
    return round(len(done) / span, 1) if span > 0 else None


# --- end to end -------------------------------------------------------------------------------


def e2e_taskq(
    ctx: Context, name: str, n: int, interval_s: float = 0.0, window_s: float | None = None
) -> dict[str, Any]:
    """n no-op jobs through the HTTP API and the worker (the template's poller settings,
    or another batching window)."""
    stack, sizes = ctx.stack, ctx.sizes
    spec = stack.template_sqs
    window = spec.max_batching_window_s if window_s is None else window_s
    stack.run_poller(spec.maximum_concurrency, spec.batch_size, window)
    base = stack.poller.stats.deleted
    phase = Phase(ctx, name)
    replies = submit(ctx, "/jobs", [NOOP] * n, sizes.e2e_concurrency, interval_s)
    accepted = [(r[0], r[3][0]) for r in replies if r[3]]
    complete = wait_done(ctx, base, [i for _, i in accepted], sizes.deadline_s)
    data = phase.end()
    stack.stop_poller()
    times = finished(ctx, [i for _, i in accepted])
    submitted = {job_id: t for t, job_id in accepted}
    latencies = [times[i]["completed"] - submitted[i] for i in times]
    waits = [times[i]["first_running"] - submitted[i] for i in times if "first_running" in times[i]]
    first = min(submitted.values()) if submitted else 0.0
    last = max((t["completed"] for t in times.values()), default=first)
    jobs = len(times)
    worker_calls = data.group(stack, "worker")
    api_calls = data.group(stack, "api")
    return {
        "jobs": jobs,
        "submitted": len(accepted),
        "complete": complete and jobs == len(accepted),
        "concurrency": sizes.e2e_concurrency,
        "poller": {
            "concurrency": spec.maximum_concurrency,
            "batch_size": spec.batch_size,
            "window_s": window,
        },
        "offered_jobs_per_s": round(1 / interval_s, 1) if interval_s else None,
        "jobs_per_s": round(jobs / (last - first), 1) if last > first else None,
        "seconds": round(last - first, 2),
        "latency_ms": stats_ms(latencies),
        "wait_before_claim_ms": stats_ms(waits),
        "calls": calls_summary(data.calls, jobs),
        "calls_api": calls_summary(api_calls, jobs),
        "calls_worker": calls_summary(worker_calls, jobs),
        "capacity_per_job": capacity_per_job(ctx, data.calls, jobs),
        "api": invocation_summary(data.invocations[API], jobs),
        "worker": invocation_summary(data.invocations[WORKER], jobs),
        "usage": usage_parts(ctx, data, jobs),
        "cpu_ms_per_job": data.cpu_ms_per_job(jobs),
        "window": name,
    }


def e2e_ceiling(ctx: Context, name: str, n: int, interval_s: float = 0.0) -> dict[str, Any]:
    """The same jobs' calls from a minimal client: producers as many as the API's clients,
    consumers as many as the poller's, batches as large, on the same emulator (the twin
    table and queue: same keys, indexes and attributes)."""
    sizes, spec = ctx.sizes, ctx.stack.template_sqs
    target = ctx.target()
    purge(ctx, ctx.twin_queue)
    phase = Phase(ctx, name)
    consumer = ctx.pool.submit(
        loadgen.ceiling_consume,
        target,
        n,
        spec.maximum_concurrency,
        spec.batch_size,
        sizes.deadline_s,
    )
    producer = ctx.pool.submit(
        loadgen.ceiling_produce, target, n, sizes.e2e_concurrency, sizes.deadline_s, interval_s
    )
    produced = producer.result(timeout=sizes.deadline_s + 30)
    done = consumer.result(timeout=sizes.deadline_s + 30)
    data = phase.end()
    submitted = {job_id: started for job_id, started, _ in produced}
    latencies = [t - submitted[i] for i, t in done if i in submitted]
    first = min(submitted.values()) if submitted else 0.0
    last = max((t for _, t in done), default=first)
    jobs = len(done)
    return {
        "jobs": jobs,
        "complete": jobs >= n,
        "producers": sizes.e2e_concurrency,
        "consumers": spec.maximum_concurrency,
        "batch_size": spec.batch_size,
        "offered_jobs_per_s": round(1 / interval_s, 1) if interval_s else None,
        "jobs_per_s": round(jobs / (last - first), 1) if last > first else None,
        "seconds": round(last - first, 2),
        "latency_ms": stats_ms(latencies),
        "calls": calls_summary(data.calls, jobs),
        "cpu_ms_per_job": data.cpu_ms_per_job(jobs),
    }


# --- one retry --------------------------------------------------------------------------------


def retry_path(ctx: Context) -> dict[str, Any]:
    """Jobs that fail once, then succeed (the demo task `fail` with times=1; backoff 1 s)."""
    return batch_path(ctx, "retry", {"task": "fail", "payload": {"times": 1}})


def capped_path(ctx: Context) -> dict[str, Any]:
    """No-op jobs under a concurrency cap of 5 (the probe's `noop_capped`): what a cap's
    slot (read, take, give back) and its waits add to a job's calls."""
    return batch_path(ctx, "capped", {"task": "noop_capped", "payload": {}})


def batch_path(ctx: Context, name: str, job: dict[str, Any]) -> dict[str, Any]:
    """`sizes.retry_jobs` copies of `job` in one POST /jobs:batch, drained by the worker
    with the template's poller settings; their calls per job."""
    stack, sizes = ctx.stack, ctx.sizes
    spec = stack.template_sqs
    stack.run_poller(spec.maximum_concurrency, spec.batch_size)
    phase = Phase(ctx, name)
    body = json.dumps({"jobs": [job] * sizes.retry_jobs}).encode()
    replies = submit(ctx, "/jobs:batch", [body], 1)
    ids = [i for r in replies for i in r[3]]
    deadline = time.monotonic() + sizes.deadline_s
    times: dict[str, dict[str, float]] = {}
    while time.monotonic() < deadline:
        time.sleep(1.0)  # a read per job a second: small next to the calls being counted
        times = finished(ctx, ids)
        if len(times) >= len(ids):
            break
    time.sleep(0.5)  # the last batch's delete follows its completion
    data = phase.end()
    stack.stop_poller()
    jobs = len(times)
    own = data.calls
    return {
        "jobs": jobs,
        "complete": jobs == len(ids),
        "submit": "POST /jobs:batch",
        "calls": calls_summary(own, jobs),
        "calls_worker": calls_summary(data.group(stack, "worker"), jobs),
        "capacity_per_job": capacity_per_job(ctx, own, jobs),
        "usage": usage_parts(ctx, data, jobs),
        "window": name,
        "latency_ms": stats_ms([t["completed"] - t["pending"] for t in times.values()]),
    }


# --- scaling ----------------------------------------------------------------------------------


def scaling(ctx: Context) -> list[dict[str, Any]]:
    """Drain a backlog of no-op jobs with each poller setting: throughput of the worker side."""
    stack, sizes = ctx.stack, ctx.sizes
    rows = []
    for batch in sizes.scaling_batch:
        for concurrency in sizes.scaling_concurrency:
            if ctx.over_budget():
                ctx.progress(f"scaling: {concurrency} x {batch} skipped (time budget spent)")
                continue
            ctx.progress(
                f"scaling: drain {sizes.scaling_jobs} jobs, poller {concurrency} x {batch}"
            )
            stack.stop_poller()
            purge(ctx, stack.env["TASKQ_QUEUE_URL"])  # only this run's jobs in the queue
            bodies = noop_batches(sizes.scaling_jobs, sizes.batch_size)
            replies = submit(ctx, "/jobs:batch", bodies, 1)
            ids = [i for r in replies for i in r[3]]
            base = stack.poller.stats.deleted
            phase = Phase(ctx, f"scale-{concurrency}x{batch}")
            started = time.time()
            stack.run_poller(concurrency, batch)
            complete = wait_done(ctx, base, ids, sizes.deadline_s)
            data = phase.end()
            stack.stop_poller()
            times = finished(ctx, ids)
            last = max((t["completed"] for t in times.values()), default=started)
            jobs = len(times)
            worker_calls = data.group(stack, "worker")
            rows.append(
                {
                    "concurrency": concurrency,
                    "batch_size": batch,
                    "jobs": jobs,
                    "complete": complete and jobs == len(ids),
                    "jobs_per_s": round(jobs / (last - started), 1) if last > started else None,
                    "seconds": round(last - started, 2),
                    "calls_worker": calls_summary(worker_calls, jobs),
                    "capacity_per_job": capacity_per_job(ctx, worker_calls, jobs),
                    "worker": invocation_summary(data.invocations[WORKER], jobs),
                    "usage": usage_parts(ctx, data, jobs),
                    "cpu_ms_per_job": data.cpu_ms_per_job(jobs),
                    "window": f"scale-{concurrency}x{batch}",
                }
            )
    return rows
