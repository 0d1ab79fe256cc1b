"""The fault suite's injectors: they kill worker sandboxes, send duplicate messages, lose
the API's sends, and fire two sweepers and two clocks at once, while the clients submit."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterable
from typing import Any

from infra.chaos_proxy import Action, Call, Drop, Forward, Respond
from infra.sandbox import InvokeError, LocalFunction
from taskq.models import QueueMessage
from tests.faults.plan import EARLY
from tests.faults.stack import QUEUE_ENV, scheduled_event
from tests.faults.suite_state import SuiteState
from tests.faults.timing import SWEEP_EVERY_S


class FaultInjectors(SuiteState):
    """The suite's injecting threads' loops (FaultSuite starts them) and the proxy's hook."""

    def _killer(self) -> None:
        """SIGKILL one worker sandbox mid-task every few seconds (by the pid its execution
        logged; stalled attempts are spared so fencing gets its chance), and every busy one
        (kill_all) now and then. Lambda's runtime, like LocalFunction, starts new ones."""
        assert self.cloud is not None
        worker = self.cloud.functions["WorkerFunction"]
        next_all = time.monotonic() + self.rng.uniform(*self.config.kill_all_every_s)
        while not self.stop.wait(self.rng.uniform(*self.config.kill_every_s)):
            self.log.refresh()
            with self.ledger.lock:
                stalling = set(self._stalling)
            ours = worker.pids()
            running = [(job, attempt, pid) for job, attempt, pid in self.log.open_runs()
                       if pid in ours]  # fmt: skip
            # kill_all waits while a task stalls on purpose: its own timeout must end it.
            if time.monotonic() >= next_all and not any((j, a) in stalling for j, a, _ in running):
                next_all = time.monotonic() + self.rng.uniform(*self.config.kill_all_every_s)
                killed = worker.kill_all()
            else:
                pids = [pid for job, attempt, pid in running if (job, attempt) not in stalling]
                killed = 0
                if pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.rng.choice(pids), signal.SIGKILL)
                        killed = 1
            if killed:
                with self.ledger.lock:
                    self.ledger.kills.append((time.time(), killed))

    def _duplicator(self) -> None:
        sqs = self.direct("sqs")
        while not self.stop.wait(self.config.duplicate_every_s):
            self.log.refresh()
            with self.ledger.lock:
                lost = set(self.ledger.lost_sends)
            ours = self._worker_pids()
            running = [job_id for job_id, _, pid in self.log.open_runs() if pid in ours]
            for which, candidates in (("running", running), ("finished", self.log.finished_jobs())):
                candidates = [job_id for job_id in candidates if job_id not in lost]
                if not candidates or self.rng.random() < 0.5:
                    continue
                job_id = self.rng.choice(candidates)
                route = self._route_of(job_id)
                if route is None:
                    continue
                body = QueueMessage(job_id=job_id, task=route[0]).model_dump_json()
                sqs.send_message(QueueUrl=route[1], MessageBody=body)
                with self.ledger.lock:
                    self.ledger.duplicates[which] += 1

    def _route_of(self, job_id: str) -> tuple[str, str] | None:
        """The task a job was submitted with and its priority's queue: a duplicate message
        names the task as the API did, on the queue SQS would deliver it again from. A job
        no 202 named (a ghost, a periodic fire) is read back for both."""
        with self.ledger.lock:
            n = self.ledger.accepted.get(job_id)
        if n is not None:
            task, priority = self.plans[n].task, self.plans[n].priority
        else:
            job = next(iter(self.read_jobs([job_id])), None)
            if job is None:
                return None
            task, priority = job.task, str(job.priority)
        return task, self.env[QUEUE_ENV.get(priority or "default", "TASKQ_QUEUE_URL")]

    def _crash_between_write_and_send(self, call: Call) -> Action | None:
        """The first send of a chosen job's message is lost, as if the API crashed after the
        DynamoDB write: SendMessage kills the API's busy sandboxes (the caller gets a 502),
        SendMessageBatch reports the chosen entries failed (the API answers 202 and logs)."""
        if call.service != "sqs" or call.operation not in ("SendMessage", "SendMessageBatch"):
            return None
        data = call.json
        # The API's send goes to the job's priority's queue. Watching only one queue let a
        # later send of another path (a capped job's wait) pass for the API's first send.
        if str(data.get("QueueUrl", "")) not in self._job_queue_urls:
            return None
        batch = call.operation == "SendMessageBatch"
        with self.ledger.lock:
            ids = call.job_ids()
            fresh = [j for j in ids if j not in self._seen_sends]
            self._seen_sends.update(ids)
            late = self._remaining < (1 - EARLY) * self._units_total
            per_mille = self.config.batch_lost_per_mille if batch and not late else 0
            chosen = [j for j in fresh if j in self._lose or int(j[:8], 16) % 1000 < per_mille]
            self.ledger.lost_sends.update(chosen)
        if not chosen:
            return None
        assert self.cloud is not None
        if call.operation == "SendMessage":
            with self.ledger.lock:
                self.ledger.api_crashes += 1
            self.cloud.functions["ApiFunction"].kill_all()
            return Drop()
        entries = data.get("Entries") or []
        lost_ids = {str(e["Id"]) for e in entries if _entry_job(e) in chosen}
        failed = [
            {"Id": i, "SenderFault": False, "Code": "InternalError", "Message": "chaos"}
            for i in sorted(lost_ids)
        ]
        kept = [e for e in entries if str(e["Id"]) not in lost_ids]
        if not kept:
            body = json.dumps({"Successful": [], "Failed": failed}).encode()
            return Respond(200, body)

        def rewrite(status: int, answer: bytes) -> bytes:
            if status != 200:
                return answer
            merged = json.loads(answer)
            merged["Failed"] = [*merged.get("Failed", []), *failed]
            return json.dumps(merged).encode()

        return Forward(json.dumps({**data, "Entries": kept}).encode(), rewrite)

    def _sweeper(self) -> None:
        """Two sweepers (two sandboxes) fired at the same moment, every few seconds; apart
        from the clocks, as EventBridge fires them, so a slow clock never delays a sweep."""
        assert self.cloud is not None and self.second_sweeper is not None
        sweepers = (self.cloud.functions["SweeperFunction"], self.second_sweeper)
        while not self.stop.wait(SWEEP_EVERY_S):
            started = time.monotonic() - self.started
            reports = _race(sweepers)
            with self.ledger.lock:
                self.ledger.sweep_rounds.append((started, time.monotonic() - self.started))
            for report in reports:
                if isinstance(report, dict):
                    self.ledger.note(
                        runs=1, skipped=int(report.get("skipped", 0)),
                        send_failures=int(report.get("send_failures", 0)),
                        **{f"requeued_{k}": int(v) for k, v in report.get("requeued", {}).items()},
                    )  # fmt: skip
                else:
                    self.ledger.note(runs=1, failed_runs=1)
                    with self.ledger.lock:
                        self.ledger.sweep_errors[str(report)[:160]] += 1

    def _clock(self) -> None:
        """Two clocks (two sandboxes) fired at the same moment, every few seconds."""
        assert self.cloud is not None and self.second_clock is not None
        clocks = (self.cloud.functions["ClockFunction"], self.second_clock)
        while not self.stop.wait(SWEEP_EVERY_S):
            for report in _race(clocks):
                self.clock_tally.add(report)


def _race(functions: Iterable[LocalFunction]) -> list[Any]:
    """Invoke the functions with a scheduled event at the same moment; their answers (or
    the InvokeError each raised), in order."""
    event = scheduled_event()
    targets = list(functions)
    reports: list[Any] = [None] * len(targets)

    def one(index: int, function: LocalFunction) -> None:
        try:
            reports[index] = function.invoke(event)
        except InvokeError as exc:
            reports[index] = exc

    threads = [
        threading.Thread(target=one, args=(i, f), daemon=True) for i, f in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return reports


def _entry_job(entry: dict[str, Any]) -> str:
    try:
        return str(json.loads(entry.get("MessageBody", "")).get("job_id", ""))
    except (ValueError, AttributeError):
        return ""
