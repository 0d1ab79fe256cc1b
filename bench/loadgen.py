"""Load generators, run in a helper process of their own (the stack's gateway and poller
live in the bench's main process; a client there would compete with them for one GIL).

Every loop is bounded by a count and a deadline. Times are wall-clock (time.time()) so they
compare with the timestamps the worker writes into a job's events.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3

from bench.probe_layer.taskq_bench_probe import CallRecorder
from infra.clients import credentials_env
from taskq.aws import CLIENT_CONFIG
from taskq.errors import TaskqError
from taskq.queue import JobQueue
from taskq.store import JobStore, NewJob

# (started, ended, HTTP status, ids of the jobs accepted)
Sent = tuple[float, float, int, list[str]]


def _run_threads(concurrency: int, target: Callable[[], None]) -> None:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class _Counter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.value = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self.value >= self.limit:
                return None
            self.value += 1
            return self.value - 1


def http_submit(
    base_url: str,
    path: str,
    bodies: list[bytes],
    concurrency: int,
    deadline_s: float,
    interval_s: float = 0.0,
) -> list[Sent]:
    """POST each body once, from `concurrency` keep-alive connections.

    interval_s > 0 paces the requests (body i is sent at start + i * interval_s) instead
    of sending as fast as the API answers.
    """
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    counter = _Counter(len(bodies))
    results: list[Sent] = []
    lock = threading.Lock()
    start = time.time() + 0.05
    deadline = time.monotonic() + deadline_s

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            while time.monotonic() < deadline:
                index = counter.take()
                if index is None:
                    return
                if interval_s:
                    time.sleep(max(0.0, start + index * interval_s - time.time()))
                sent = _post(conn, path, bodies[index])
                if sent[2] == 0:  # the connection broke: a fresh one for the next request
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=30)
                with lock:
                    results.append(sent)
        finally:
            conn.close()

    _run_threads(concurrency, worker)
    return results


def _post(conn: http.client.HTTPConnection, path: str, body: bytes) -> Sent:
    started = time.time()
    try:
        conn.request("POST", path, body=body, headers={"content-type": "application/json"})
        response = conn.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException):
        return (started, time.time(), 0, [])
    ended = time.time()
    ids: list[str] = []
    if response.status == 202:
        reply = json.loads(data)
        if "items" in reply:
            ids = [i["job"]["id"] for i in reply["items"] if i.get("status") == 202]
        else:
            ids = [reply["id"]]
    return (started, ended, response.status, ids)


# --- the emulator's ceiling: one job's calls, and nothing else ---------------------------


@dataclass(frozen=True)
class Target:
    endpoint_url: str
    region: str
    table: str
    queue_url: str
    calls_file: str  # where this process's calls are recorded (source "ceiling")


def _clients(target: Target) -> tuple[Any, Any]:
    creds = credentials_env()
    session: Any = boto3.session.Session(
        aws_access_key_id=creds.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=creds.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=creds.get("AWS_SESSION_TOKEN"),
        region_name=target.region,
    )
    recorder = CallRecorder(Path(target.calls_file), "ceiling")
    made = []
    for service in ("dynamodb", "sqs"):
        c = session.client(service, endpoint_url=target.endpoint_url, config=CLIENT_CONFIG)
        recorder.attach(c)
        made.append(c)
    return made[0], made[1]


def _store_and_queue(target: Target) -> tuple[JobStore, JobQueue, Any]:
    """taskq's own store and queue classes over plain clients: the requests are then the
    very ones taskq sends (same items, expressions, return values), and nothing else of
    taskq runs (no HTTP, no Lambda runtime, no logging or metrics)."""
    ddb, sqs = _clients(target)
    return JobStore(target.table, ddb), JobQueue(sqs, target.queue_url, target.queue_url), sqs


def ceiling_produce(
    target: Target, n: int, concurrency: int, deadline_s: float, interval_s: float = 0.0
) -> list[tuple[str, float, float]]:
    """Submit n jobs as taskq does: the conditional PutItem of the job, then SendMessage.
    Returns (job id, submit started, submit ended)."""
    store, queue, _ = _store_and_queue(target)
    counter = _Counter(n)
    out: list[tuple[str, float, float]] = []
    lock = threading.Lock()
    start = time.time() + 0.05
    deadline = time.monotonic() + deadline_s

    def worker() -> None:
        while time.monotonic() < deadline:
            index = counter.take()
            if index is None:
                return
            if interval_s:
                time.sleep(max(0.0, start + index * interval_s - time.time()))
            started = time.time()
            job_id = uuid.uuid4().hex
            store.create(NewJob(job_id, "noop", "{}", 3, request_hash=uuid.uuid4().hex * 2))
            queue.send(job_id, "noop")
            with lock:
                out.append((job_id, started, time.time()))

    _run_threads(concurrency, worker)
    return out


def ceiling_consume(
    target: Target, n: int, concurrency: int, batch_size: int, deadline_s: float
) -> list[tuple[str, float]]:
    """Receive up to batch_size (as the poller asks), claim and complete each job (taskq's
    two conditional UpdateItems), delete the batch. Returns (job id, completion time, taken
    just before the complete call, as taskq's own timestamp is)."""
    store, _, sqs = _store_and_queue(target)
    done: list[tuple[str, float]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + deadline_s

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                if len(done) >= n:
                    return
            messages = sqs.receive_message(
                QueueUrl=target.queue_url,
                MaxNumberOfMessages=batch_size,
                WaitTimeSeconds=1,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            finished = []
            for message in messages:
                job_id = json.loads(message["Body"])["job_id"]
                try:
                    job = store.claim(job_id, time.time() + 35)
                except TaskqError:
                    continue  # a duplicate delivery: already claimed
                now = time.time()
                store.complete(job_id, job.attempt, "null")
                finished.append((job_id, now))
            if messages:
                sqs.delete_message_batch(
                    QueueUrl=target.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )
                with lock:
                    done.extend(finished)

    _run_threads(concurrency, worker)
    return done


# --- the comparison: Celery's client --------------------------------------------------------


def celery_submit(
    env: dict[str, str], n: int, concurrency: int, deadline_s: float
) -> list[tuple[str, float]]:
    """Send n `noop` tasks from `concurrency` threads. Returns (task id, time sending began)."""
    import os

    os.environ.update(env)
    from bench.celery_app import noop

    counter = _Counter(n)
    out: list[tuple[str, float]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + deadline_s

    def worker() -> None:
        while time.monotonic() < deadline and counter.take() is not None:
            started = time.time()
            result = noop.apply_async()
            with lock:
                out.append((result.id, started))

    _run_threads(concurrency, worker)
    return out
