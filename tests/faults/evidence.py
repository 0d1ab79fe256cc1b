"""What the fault suite's accounting reads once the drivers have stopped (the stored jobs,
the execution log, the DLQ, the proxy's faults) and what its checks count: read once, so
that every check and every report line sees the same picture."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from infra.chaos_proxy import ProxyStats
from taskq.models import Job
from taskq.queue import parse_body
from tests.faults.ledger import Execution
from tests.faults.plan import JobPlan
from tests.faults.suite_state import SuiteState

Faults = list[tuple[float, str, str]]  # (time, "service operation", kind) its calls met


@dataclass
class DeadLetters:
    """The DLQ's messages by what they are. Only a failed job's live hand-off is demanded
    (exactly one each); the others are explained in the report, not failed on."""

    live: Counter[str] = field(default_factory=Counter)  # the job's current hand-off token
    stale: Counter[str] = field(default_factory=Counter)  # sender killed after send, pre-mark
    resent: Counter[str] = field(default_factory=Counter)  # one token twice: botocore retried
    other: Counter[str] = field(default_factory=Counter)  # no failed job's: where it came from


@dataclass(frozen=True)
class Evidence:
    """What the accounting reads once the drivers have stopped, so every check sees the
    same picture: the stored jobs, the execution log, the DLQ and the proxy's faults."""

    plans: dict[int, JobPlan]  # by n
    jobs: dict[str, Job]  # by id
    executions: dict[str, list[Execution]]  # by job id
    dead_letters: DeadLetters
    stats: ProxyStats
    touched: dict[str, Faults]  # by job id
    accepted: dict[str, int]  # job id -> n (a 202 named it)

    @property
    def ghosts(self) -> set[str]:
        """Stored jobs no 202 named (the client saw an error and resubmitted)."""
        return {
            job_id
            for job_id, job in self.jobs.items()
            if job_id not in self.accepted and not job.schedule
        }

    @property
    def execution_count(self) -> int:
        return sum(len(runs) for runs in self.executions.values())


@dataclass
class JobTally:
    """What the per-job checks count, for the report."""

    outcomes: Counter[str] = field(default_factory=Counter)
    histogram: Counter[int] = field(default_factory=Counter)  # executions per job
    lapse_causes: Counter[str] = field(default_factory=Counter)
    changed: Counter[str] = field(default_factory=Counter)  # "planned -> actual" by faults
    waits: list[float] = field(default_factory=list)  # created -> first claim: time queued
    fenced: int = 0  # results of lapsed attempts the attempt number refused
    burned: int = 0  # attempts that lapsed without running


def gather(suite: SuiteState) -> Evidence:
    """Read once: the DLQ's messages are received (hidden), so a second read finds none."""
    jobs = {job.id: job for job in suite.scan()}
    executions = suite.log.executions()
    dlq = suite.dead_letters()
    return Evidence(
        plans={plan.n: plan for plan in suite.plans},
        jobs=jobs,
        executions=executions,
        dead_letters=_sort_dead_letters(dlq, jobs),
        stats=suite.proxy.stats,
        touched=suite.proxy.faults_by_job(),
        accepted=dict(suite.ledger.accepted),
    )


def _sort_dead_letters(messages: list[dict[str, Any]], jobs: dict[str, Job]) -> DeadLetters:
    """Each message to its kind, by its job's id and hand-off token (see DeadLetters)."""
    tally = DeadLetters()
    for message in messages:
        attributes = message.get("MessageAttributes", {})
        job_id = attributes.get("taskq-job-id", {}).get("StringValue")
        token = attributes.get("taskq-handoff", {}).get("StringValue")
        if not job_id:
            tally.other[_other_dead_letter(message, jobs)] += 1
        elif job_id in jobs and token != jobs[job_id].handoff:
            tally.stale[job_id] += 1
        elif tally.live[job_id]:
            # SQS SendMessage is not idempotent: a send whose response was lost (a dropped
            # connection) and which botocore retried leaves two copies under one token.
            tally.resent[job_id] += 1
        else:
            tally.live[job_id] += 1
    return tally


def _other_dead_letter(message: dict[str, Any], jobs: dict[str, Job]) -> str:
    """Where a DLQ message that is no failed job's hand-off came from, and its job's end.

    Without taskq's reason, SQS moved it: a job message received maxReceiveCount times
    (kills, timeouts and live-lease returns each count a receive) while its job went on."""
    attributes = message.get("MessageAttributes", {})
    reason = attributes.get("taskq-reason", {}).get("StringValue")
    origin = f"taskq: {reason[:40]}" if reason else "moved by SQS's redrive policy"
    try:
        job = jobs.get(parse_body(message.get("Body", "")).job_id)
    except ValueError:
        return f"{origin}, not a job message"
    return f"{origin}, job {job.status if job else 'unknown'}"
