"""The fault suite's accounting: every job, from DynamoDB, the DLQ and the execution log,
against what the drivers did to it. Any violation fails the suite (see `account`)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from infra.chaos_proxy import KINDS, ProxyStats
from taskq.models import TERMINAL, Job, Status
from tests.faults import capacity, scheduling
from tests.faults.evidence import Evidence, Faults, JobTally, gather
from tests.faults.ledger import Execution, Ledger
from tests.faults.plan import JobPlan
from tests.faults.report import Report, execution_lines, fault_lines, figures, outcome_lines
from tests.faults.suite_state import SuiteState
from tests.faults.timing import ABANDONED, LEASE_S, STALE_S, WORKER_TIMEOUT_S

TERMINAL_EVENTS = {str(Status.COMPLETED), str(Status.FAILED), str(Status.CANCELLED)}


@dataclass(frozen=True)
class JobRecord:
    """One stored job beside what its plan, the execution log and the proxy say of it."""

    job: Job
    n: int  # its plan's number (-1: none)
    plan: JobPlan | None
    runs: list[Execution]
    faults: Faults

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.job.events]

    @property
    def closing(self) -> dict[int, str]:
        """Attempts recorded as finished (retrying, completed, or failed by its worker)."""
        return {
            e.attempt: e.kind for e in self.job.events
            if e.kind in (Status.RETRYING, Status.COMPLETED)
            or (e.kind == Status.FAILED and ABANDONED not in (e.error or ""))
        }  # fmt: skip

    @property
    def lapsed(self) -> set[int]:
        """Attempts that started and never finished: they lost their lease."""
        started = {e.attempt for e in self.job.events if e.kind == Status.RUNNING}
        return started - set(self.closing)


def account(suite: SuiteState) -> Report:
    """Every job, from DynamoDB, the DLQ and the execution log, against what was done to it.

    Violations (the suite fails on any): an accepted job not stored, or any stored job (ghosts
    included) not terminal (lost); a job with other than one terminal event, or two
    `completed` (completed twice); a completed job whose result is not its completing
    attempt's; a failed job without its message in the DLQ, or a DLQ message naming a job that
    is not failed; two executions under one attempt (fencing broken); an attempt recorded as
    finished (retrying, completed, failed) that never executed; a cancel answered yes on a job
    that is not cancelled, or a cancelled job no accepted cancel named; an outcome other than
    planned on a job none of whose attempts lapsed (extra executions and changed outcomes are
    only allowed where a worker was killed, timed out or lost its lease); a lost send the
    sweeper did not recover; a submission never accepted; the drivers failing; a kind of
    fault never injected.
    """
    evidence = gather(suite)
    ledger = suite.ledger
    violations: list[str] = list(ledger.errors)
    violations += _unaccepted(ledger, evidence)
    tally = JobTally()
    for record in _records(evidence):
        violations += _check_job(suite, evidence, record, tally)
    violations += _unrecovered_sends(ledger, evidence.jobs)
    violations += _never_exercised(ledger, evidence.stats, tally.lapse_causes)
    feature_lines, feature_violations = _account_features(suite, evidence)
    violations += feature_violations
    seconds = time.monotonic() - suite.started
    lines = [
        *outcome_lines(suite, evidence, tally),
        *fault_lines(suite, evidence),
        *feature_lines,
        *execution_lines(suite, evidence, tally),
    ]
    numbers = figures(ledger, evidence, tally, seconds)
    return Report(seconds, suite.config, lines, violations, numbers)


def _records(evidence: Evidence) -> list[JobRecord]:
    """Every stored job, in id order, beside its plan, executions and faults."""
    records = []
    for job_id, job in sorted(evidence.jobs.items()):
        n = int(job.payload.get("n", -1)) if isinstance(job.payload, dict) else -1
        records.append(
            JobRecord(
                job, n, evidence.plans.get(n), evidence.executions.get(job_id, []),
                evidence.touched.get(job_id, []),
            )
        )  # fmt: skip
    return records


# --- the checks ------------------------------------------------------------------------------


def _unaccepted(ledger: Ledger, evidence: Evidence) -> list[str]:
    """Accepted jobs that were never stored, and submissions never accepted."""
    accepted = evidence.accepted
    violations = [
        f"lost: job {job_id} (n={accepted[job_id]}) accepted but not stored"
        for job_id in sorted(set(accepted) - set(evidence.jobs))
    ]
    for n, status, detail in ledger.rejected:
        violations.append(f"submission n={n} never accepted: {status} {detail}")
    return violations


def _check_job(
    suite: SuiteState, evidence: Evidence, record: JobRecord, tally: JobTally
) -> list[str]:
    """One job's violations, counting it in the tally as it goes."""
    job = record.job
    tally.histogram[len(record.runs)] += 1
    if job.status == Status.SCHEDULED and (job.run_at or 0) > suite.stopped_at:
        tally.outcomes["not yet due"] += 1  # a periodic fire created ahead, due after the end
        return []
    if job.status not in TERMINAL:
        tally.outcomes["lost"] += 1
        return [_lost(suite, job, record.plan, record.faults)]
    tally.outcomes[str(job.status)] += 1
    first = next((e.at for e in job.events if e.kind == Status.RUNNING), None)
    if first is not None:
        tally.waits.append((first - job.created_at).total_seconds())
    return [
        *_check_events(record, tally),
        *_check_dead_letter(job, evidence.dead_letters.live[job.id]),
        *_check_executions(record, suite.ledger.kills, tally),
        *_check_against_plan(record, suite.ledger.cancels.get(job.id), tally),
    ]


def _check_events(record: JobRecord, tally: JobTally) -> list[str]:
    """One terminal event, last; never completed twice; the result is its completer's."""
    job, kinds = record.job, record.kinds
    violations = []
    if sum(kind in TERMINAL_EVENTS for kind in kinds) != 1 or kinds[-1] not in TERMINAL_EVENTS:
        violations.append(f"job {job.id}: terminal events {kinds}")
    if kinds.count(str(Status.COMPLETED)) > 1:
        tally.outcomes["completed twice"] += 1
        violations.append(f"completed twice: job {job.id} {kinds}")
    if job.status == Status.COMPLETED:
        result = job.result if isinstance(job.result, dict) else {}
        done_at = next(e.attempt for e in job.events if e.kind == Status.COMPLETED)
        if result.get("n") != record.n or result.get("attempt") != done_at:
            violations.append(f"job {job.id}: result {result} is not attempt {done_at}'s")
    return violations


def _check_dead_letter(job: Job, live_copies: int) -> list[str]:
    """A failed job has exactly one live DLQ message; no other job has any."""
    if job.status == Status.FAILED and live_copies != 1:
        return [f"job {job.id} failed with {live_copies} live DLQ messages, not one"]
    if job.status != Status.FAILED and live_copies:
        return [f"job {job.id} is {job.status} yet in the DLQ as failed"]
    return []


def _check_executions(
    record: JobRecord, kills: list[tuple[float, int]], tally: JobTally
) -> list[str]:
    """Fencing: one execution per attempt, and every finished attempt executed. Executions
    of attempts that lapsed are counted by cause (and fenced results among them)."""
    closing, job_id = record.closing, record.job.id
    violations = []
    per_attempt = Counter(run.attempt for run in record.runs)
    for attempt, count in per_attempt.items():
        if count > 1:
            violations.append(f"job {job_id}: attempt {attempt} executed {count} times")
    for attempt in closing:
        if attempt not in per_attempt:
            violations.append(f"job {job_id}: attempt {attempt} {closing[attempt]} unrun")
    tally.burned += len(record.lapsed - set(per_attempt))
    for run in record.runs:
        if run.attempt in closing:
            continue
        if run.outcome == "ok":
            tally.fenced += 1
        tally.lapse_causes[_cause(run, record.plan, kills, record.faults)] += 1
    return violations


def _check_against_plan(record: JobRecord, cancel: str | None, tally: JobTally) -> list[str]:
    """Cancels as answered, and the planned outcome unless a lapsed attempt explains it."""
    job, plan = record.job, record.plan
    violations = []
    if cancel == "cancelled" and job.status != Status.CANCELLED:
        violations.append(f"job {job.id}: cancel answered yes, yet it is {job.status}")
    if cancel in ("refused", None) and job.status == Status.CANCELLED:
        violations.append(f"job {job.id}: cancelled, yet no cancel of it was accepted")
    if plan is not None and job.status != Status.CANCELLED and job.status != plan.planned:
        if record.lapsed:
            tally.changed[f"{plan.planned} -> {job.status}"] += 1
        else:
            violations.append(
                f"job {job.id} (n={record.n}, {plan.kind}) is {job.status}, planned "
                f"{plan.planned}, and no attempt of it lapsed: {record.kinds}"
            )
    return violations


def _unrecovered_sends(ledger: Ledger, jobs: dict[str, Job]) -> list[str]:
    violations = []
    for job_id in sorted(ledger.lost_sends):
        lost = jobs.get(job_id)
        if lost is not None and "requeued" not in [e.kind for e in lost.events]:
            violations.append(f"job {job_id}: its send was lost and no sweeper re-sent it")
    return violations


def _never_exercised(ledger: Ledger, stats: ProxyStats, lapse_causes: Counter[str]) -> list[str]:
    """A run that never met a kind of fault proves nothing about it."""
    exercised = {
        "kills": sum(k for _, k in ledger.kills), "duplicates": sum(ledger.duplicates.values()),
        "lost sends": len(ledger.lost_sends), "function timeouts": lapse_causes["function timeout"],
        "leases overrun": lapse_causes["overran its lease"],
        **{f"fault {kind}": stats.faults[kind] for kind in KINDS},
    }  # fmt: skip
    return [f"never exercised: {name}" for name, count in exercised.items() if count == 0]


def _account_features(suite: SuiteState, evidence: Evidence) -> tuple[list[str], list[str]]:
    """(report lines, violations) of delayed and periodic jobs, priorities and the cap."""
    first_runs = {
        job_id: min(r.started for r in runs) for job_id, runs in evidence.executions.items() if runs
    }
    lines, violations = scheduling.account_scheduling(
        evidence.jobs, first_runs, suite.stopped_at, suite.clock_tally
    )
    capacity_lines, capacity_violations = capacity.account_capacity(evidence.jobs, LEASE_S)
    return lines + capacity_lines, violations + capacity_violations


def _cause(
    run: Execution,
    plan: JobPlan | None,
    kills: list[tuple[float, int]],
    faults: Faults,
) -> str:
    """Why an execution's attempt lost its lease (best attribution, for the report)."""
    if plan is not None and run.attempt <= int(plan.payload.get("stall_until", 0)):
        return "function timeout" if plan.kind == "hang" else "overran its lease"
    # A run outlives neither its function's timeout nor, by long, its lease.
    until = (run.ended or run.started + WORKER_TIMEOUT_S) + LEASE_S
    if any(run.started <= at <= until for at, _ in kills):
        return "killed"
    if any(run.started - LEASE_S <= at <= until for at, _, _ in faults):
        return "AWS error"
    return "lapsed (slow worker)"


def _lost(suite: SuiteState, job: Job, plan: JobPlan | None, faults: Faults) -> str:
    """A lost job, with what the report needs to tell why: its kind, its times in the
    suite's seconds, its history, the faults its calls met, and the sweeps after it."""
    created = job.created_at.timestamp() - suite.started_wall
    changed = job.updated_at.timestamp() - suite.started_wall
    with suite.ledger.lock:
        rounds = [r for r in suite.ledger.sweep_rounds if r[0] >= changed + STALE_S]
    return (
        f"lost: job {job.id} (n={plan.n if plan else '?'}, {plan.kind if plan else 'ghost'}, "
        f"task {job.task}) still {job.status}, attempt {job.attempt}; created at "
        f"{created:.1f} s, last changed at {changed:.1f} s; events "
        f"{[e.kind for e in job.events]}; faults met {[f'{op} {kind}' for _, op, kind in faults]};"
        f" lost send: {job.id in suite.ledger.lost_sends}; sweeper rounds once it was stale: "
        f"{len(rounds)}"
    )
