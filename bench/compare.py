"""Celery with its SQS broker, on the same emulator, in the same run, the same way measured:
n no-op jobs submitted from as many client threads as taskq's run used, a worker with as
many processes as taskq's poller has concurrent batches, submit-to-completed latency from
the backend's own completion timestamp.

What differs, and is reported with the figures: Celery has no HTTP API (its clients send to
SQS themselves), and it stores no job before it is sent (its first write is `started`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.context import Context, stats_ms
from bench.stack import ROOT


def unavailable() -> str | None:
    """Why the comparison cannot run here, or None."""
    try:
        import celery  # noqa: F401
        import kombu.transport.SQS  # noqa: F401
        import pycurl  # noqa: F401
    except ImportError as exc:
        return f"Celery with SQS is not installed ({exc}); pip install -e '.[bench]'"
    return None


@dataclass(frozen=True)
class Rig:
    """The queue and result table every Celery run of one bench shares, and the worker's
    environment: made once, so each run alternated with taskq's starts only a worker."""

    env: dict[str, str]
    table: str


def prepare(ctx: Context) -> Rig:
    stack = ctx.stack
    port = stack.moto.port
    queue = f"{stack.stage}-celery"
    table = f"{stack.stage}-celery-results"
    url = stack.client("sqs").create_queue(
        QueueName=queue, Attributes={"VisibilityTimeout": "190"}
    )["QueueUrl"]
    # The results table as the backend would create it (its first clients would race to).
    stack.client("dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    env = {
        "BENCH_CELERY_BROKER": f"sqs://testing:testing@127.0.0.1:{port}",
        "BENCH_CELERY_BACKEND": f"dynamodb://testing:testing@127.0.0.1:{port}/{table}",
        "BENCH_CELERY_QUEUE": queue,
        "BENCH_CELERY_QUEUE_URL": url,
    }
    return Rig(env, table)


def run(ctx: Context, rig: Rig, n: int, workers: int) -> dict[str, Any]:
    """One measured run: a fresh worker (stopped after, so it polls nothing during taskq's
    runs), warmed, then n jobs."""
    env, table = rig.env, rig.table
    worker = _start_worker(env, workers, ctx.stack.workdir / "celery.log")
    try:
        ctx.progress("celery: warming up the worker")
        warm = _submit(ctx, env, 2 * workers)
        _wait(ctx, table, [t for t, _ in warm], 60)
        clients = ctx.sizes.e2e_concurrency
        ctx.progress(f"celery: {n} no-op jobs, {clients} clients, {workers} worker processes")
        sent = _submit(ctx, env, n)
        done = _wait(ctx, table, [t for t, _ in sent], ctx.sizes.deadline_s)
    finally:
        _stop(worker)
    submitted = dict(sent)
    latencies = [done[i] - submitted[i] for i in done if i in submitted]
    first = min(submitted.values()) if submitted else 0.0
    last = max(done.values(), default=first)
    return {
        "what": "Celery 5 + kombu SQS transport (long polling) + DynamoDB result backend, "
        "task_track_started, prefork pool",
        "jobs": len(done),
        "complete": len(done) == len(sent),
        "clients": ctx.sizes.e2e_concurrency,
        "worker_processes": workers,
        "jobs_per_s": round(len(done) / (last - first), 1) if last > first else None,
        "seconds": round(last - first, 2),
        "latency_ms": stats_ms(latencies),
        "versions": _versions(),
    }


def _start_worker(env: dict[str, str], workers: int, log_path: Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.celery_app",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(workers),
        "--loglevel",
        "WARNING",
        "--without-heartbeat",
        "--without-mingle",
        "--without-gossip",
        "-Q",
        env["BENCH_CELERY_QUEUE"],
        "-n",
        f"bench{os.getpid()}@localhost",
    ]
    log = open(log_path, "ab")  # noqa: SIM115 - the child holds it; closed with the child
    try:
        return subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    finally:
        log.close()


def _stop(worker: subprocess.Popen[bytes]) -> None:
    """Warm shutdown by its own pid (its pool children go with it), then kill its group."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)  # its own session: only its processes
            worker.wait(timeout=5)


def _submit(ctx: Context, env: dict[str, str], n: int) -> list[tuple[str, float]]:
    future = ctx.pool.submit(
        loadgen.celery_submit, env, n, ctx.sizes.e2e_concurrency, ctx.sizes.deadline_s
    )
    return future.result(timeout=ctx.sizes.deadline_s + 60)


def _wait(ctx: Context, table: str, ids: list[str], timeout: float) -> dict[str, float]:
    """Task id -> the time its SUCCESS was written (the backend's own timestamp)."""
    ddb = ctx.stack.client("dynamodb")
    deadline = time.monotonic() + timeout
    done: dict[str, float] = {}
    while time.monotonic() < deadline:
        pending = [i for i in ids if i not in done]
        for start in range(0, len(pending), 50):
            keys = [{"id": {"S": key}} for i in pending[start : start + 50] for key in _keys(i)]
            request: dict[str, Any] = {table: {"Keys": keys}}
            for _ in range(5):
                try:
                    reply = ddb.batch_get_item(RequestItems=request)
                except ddb.exceptions.ResourceNotFoundException:
                    reply = {}
                for item in reply.get("Responses", {}).get(table, []):
                    meta = json.loads(item["result"]["B"])
                    if meta.get("status") == "SUCCESS":
                        done[meta["task_id"]] = float(item["timestamp"]["N"])
                request = reply.get("UnprocessedKeys") or {}
                if not request:
                    break
        if len(done) >= len(ids):
            break
        time.sleep(1.0)  # the completion times are the backend's; polling only says when to stop
    return done


def _keys(task_id: str) -> tuple[str, str]:
    """The backend's item key: Celery 5.x stores str() of its bytes key ("b'celery-…'")."""
    key = f"celery-task-meta-{task_id}"
    return key, f"b'{key}'"


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("celery", "kombu", "pycurl")}
