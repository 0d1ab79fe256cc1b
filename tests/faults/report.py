"""The fault suite's report: what a run met, line by line (faults injected, outcomes, the
DLQ, timings), so that a pass shows what it exercised and a failure where to look."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Any

from infra.chaos_proxy import KINDS
from tests.faults.evidence import Evidence, JobTally
from tests.faults.ledger import Ledger
from tests.faults.plan import SuiteConfig
from tests.faults.suite_state import SuiteState


@dataclass
class Report:
    seconds: float
    config: SuiteConfig
    lines: list[str]
    violations: list[str]
    figures: dict[str, Any]

    def text(self) -> str:
        head = f"taskq fault suite: seed {self.config.seed}, {self.seconds:.1f} s"
        body = "\n".join(f"  {line}" for line in self.lines)
        tail = (
            "\n  VIOLATIONS:\n" + "\n".join(f"    - {v}" for v in self.violations[:40])
            if self.violations
            else "\n  no job lost, none completed twice, every failed job in the DLQ"
        )
        return f"{head}\n{body}{tail}"


def outcome_lines(suite: SuiteState, evidence: Evidence, tally: JobTally) -> list[str]:
    """The jobs, their outcomes, the DLQ and the outcomes against the plan."""
    ledger, jobs, outcomes = suite.ledger, evidence.jobs, tally.outcomes
    dlq, changed = evidence.dead_letters, tally.changed
    return [
        f"jobs          planned {suite.config.jobs}; accepted {len(evidence.accepted)} "
        f"(key {ledger.modes['key']}, no key {ledger.modes['nokey']}, "
        f"batched {ledger.modes['batch']}); stored {len(jobs)} "
        f"(ghosts {len(evidence.ghosts)}: stored, the client saw an error and resubmitted)",
        f"outcomes      completed {outcomes['completed']}, failed {outcomes['failed']}, "
        f"cancelled {outcomes['cancelled']}, lost {outcomes['lost']}, "
        f"completed twice {outcomes['completed twice']}",
        f"DLQ           {sum(dlq.live.values())} live messages for {len(dlq.live)} failed jobs"
        f" ({sum(dlq.stale.values())} stale: a sender killed between its send and its mark; "
        f"{sum(dlq.resent.values())} resent: a DLQ send retried after its response was lost); "
        f"{sum(dlq.other.values())} other {dict(dlq.other)}; "
        f"job queue left with {suite.final_depth} messages",
        f"vs plan       as planned {len(jobs) - outcomes['lost'] - sum(changed.values())}; "
        f"changed by faults {dict(changed) or 0}; cancels {dict(Counter(ledger.cancels.values()))}",
    ]


def fault_lines(suite: SuiteState, evidence: Evidence) -> list[str]:
    """What was done to the stack: AWS faults, kills, duplicates, lost sends, the racing
    sweepers, and what the clients retried."""
    ledger, stats, kills = suite.ledger, evidence.stats, suite.ledger.kills
    return [
        f"AWS faults    {sum(stats.faults.values())} of {sum(stats.calls.values())} calls: "
        + ", ".join(f"{k} {stats.faults[k]}" for k in KINDS)
        + f"; calls given up after all retries {stats.gave_up}",
        f"kills         {len(kills)} rounds, {sum(k for _, k in kills)} worker sandboxes "
        f"SIGKILLed; worker invocations failed whole (killed or timed out) "
        f"{suite.poller_stats.invocation_errors} of {suite.poller_stats.batches}",
        "pollers       "
        + "; ".join(
            f"{name} {poller.batches} batches, {poller.records} records"
            for name, poller in suite.poller_by_queue.items()
        ),
        f"duplicates    {sum(ledger.duplicates.values())} injected (while running "
        f"{ledger.duplicates['running']}, after finishing {ledger.duplicates['finished']})",
        f"lost sends    {len(ledger.lost_sends)} (API crashes between write and send "
        f"{ledger.api_crashes}; the rest lost from batch sends)",
        _sweeper_line(suite),
        f"client        retries {dict(ledger.client_retries)}",
    ]


def _sweeper_line(suite: SuiteState) -> str:
    ledger, sweeps = suite.ledger, suite.ledger.sweeps
    return (
        f"sweeper       {sweeps['runs']} runs, two at a time ({sweeps['failed_runs']} failed); "
        f"re-sent pending {sweeps['requeued_pending']}, running {sweeps['requeued_running']}, "
        f"retrying {sweeps['requeued_retrying']}; skipped {sweeps['skipped']}; longest "
        f"round {max((b - a for a, b in ledger.sweep_rounds), default=0):.1f} s, longest gap "
        f"{_longest_gap(ledger.sweep_rounds, suite.stopped_at - suite.started_wall):.1f} s"
        + (f"; failures: {dict(ledger.sweep_errors)}" if ledger.sweep_errors else "")
    )


def execution_lines(suite: SuiteState, evidence: Evidence, tally: JobTally) -> list[str]:
    """The executions, the time jobs queued, the run's phases, and the lapsed attempts."""
    histogram, lapse_causes = tally.histogram, tally.lapse_causes
    return [
        f"executions    {evidence.execution_count}; per job "
        + " | ".join(f"{k}: {histogram[k]}" for k in sorted(histogram)),
        f"queue wait    created -> first claim: {_percentiles(tally.waits)}",
        "time          " + ", ".join(f"{name} at {at:.1f} s" for name, at in suite.phases.items()),
        f"lapsed runs   {sum(lapse_causes.values())} executions in attempts that lost their "
        f"lease: {dict(lapse_causes)}; results fenced off {tally.fenced}; attempts burned "
        f"unrun {tally.burned}",
    ]


def figures(ledger: Ledger, evidence: Evidence, tally: JobTally, seconds: float) -> dict[str, Any]:
    """The report's numbers, for a caller that compares runs rather than reads them."""
    return {
        "accepted": len(evidence.accepted), "stored": len(evidence.jobs),
        "ghosts": len(evidence.ghosts), "outcomes": dict(tally.outcomes),
        "executions": evidence.execution_count, "histogram": dict(tally.histogram),
        "faults": dict(evidence.stats.faults), "kills": sum(k for _, k in ledger.kills),
        "duplicates": dict(ledger.duplicates), "lost_sends": len(ledger.lost_sends),
        "lapse_causes": dict(tally.lapse_causes), "seconds": round(seconds, 1),
    }  # fmt: skip


def _percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    pick = [ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.5, 0.9, 0.99)]
    return f"p50 {pick[0]:.1f} s, p90 {pick[1]:.1f} s, p99 {pick[2]:.1f} s, max {ordered[-1]:.1f} s"


def _longest_gap(rounds: list[tuple[float, float]], end: float) -> float:
    """The longest time without a sweep round starting (the end counts as a start)."""
    starts = [start for start, _ in rounds] + [end]
    return max((b - a for a, b in itertools.pairwise(starts)), default=0.0)
