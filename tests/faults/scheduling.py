"""The fault suite's delayed jobs and periodic fires: what it adds to the plan, the clocks
it races, and how it accounts for them.

Some jobs ask for a delay of 1 to 5 s; with the direct-delay limit at 2 s, the longer ones
wait in the wake index for the clock. Two clocks tick at once beside the two sweepers.
`chaos_beat` (chaos_tasks.py) fires every minute. On top of the suite's checks for every
job (none lost, none completed twice), these must hold: no delayed job and no fire started
before its time; exactly one job per schedule and fire time; every fire due before the
drivers stopped finished.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from taskq.models import TERMINAL, Job

DIRECT_MAX_S = 2  # TASKQ_DELAY_DIRECT_MAX_SECONDS: longer delays go through the clock
LOOKAHEAD_S = 3  # TASKQ_CLOCK_LOOKAHEAD_SECONDS
DELAYS_S = (1, 2, 3, 5)
DELAYED_SHARE = 0.1  # of the jobs that run normally (ok, flaky)
BEAT_SCHEDULE = "chaos_beat"
EARLY_SLACK_S = 0.01  # clock differences between the stored times and the run lines

ENV = {
    "TASKQ_DELAY_DIRECT_MAX_SECONDS": str(DIRECT_MAX_S),
    "TASKQ_CLOCK_LOOKAHEAD_SECONDS": str(LOOKAHEAD_S),
}


def delay_some(plans: list[Any], rng: random.Random, cutoff: int) -> list[Any]:
    """A share of the well-behaved jobs, delayed (at least two of each path in any run)."""
    candidates = [p.n for p in plans if p.kind in ("ok", "flaky") and p.n < cutoff]
    chosen = {n for n in candidates if rng.random() < DELAYED_SHARE}
    chosen |= set(rng.sample(candidates, min(4, len(candidates))))
    ordered = sorted(chosen)
    out = []
    for plan in plans:
        if plan.n in chosen:
            # the first two by the message's DelaySeconds, the next two by the clock
            index = ordered.index(plan.n)
            delay = (
                (DIRECT_MAX_S, DIRECT_MAX_S + 3)[index % 2] if index < 4 else rng.choice(DELAYS_S)
            )
            plan = dataclasses.replace(plan, delay_s=delay)
        out.append(plan)
    return out


@dataclasses.dataclass
class ClockTally:
    """What the racing clocks reported, summed."""

    ticks: int = 0
    failed: int = 0
    promoted: int = 0
    fired: int = 0
    existing: int = 0
    lost_race: int = 0

    def add(self, report: Any) -> None:
        self.ticks += 1
        if not isinstance(report, dict):
            self.failed += 1
            return
        self.promoted += int(report["delayed"]["promoted"])
        self.fired += int(report["periodic"]["fired"])
        self.existing += int(report["periodic"]["existing"])
        self.lost_race += int(report["periodic"]["lost_race"])


def account_scheduling(
    jobs: dict[str, Job],
    first_runs: dict[str, float],
    stopped_at: float,
    tally: ClockTally,
) -> tuple[list[str], list[str]]:
    """(report lines, violations) for the delayed jobs and the periodic fires.

    `first_runs`: each job's earliest execution start (the chaos log's `run` lines).
    """
    violations: list[str] = []
    delayed = [j for j in jobs.values() if j.run_at is not None and j.schedule is None]
    fires = [j for j in jobs.values() if j.schedule == BEAT_SCHEDULE and j.run_at is not None]
    lateness: list[float] = []
    for job in (*delayed, *fires):
        started = first_runs.get(job.id)
        if started is None:
            continue
        if started < (job.run_at or 0) - EARLY_SLACK_S:
            violations.append(
                f"job {job.id} started {(job.run_at or 0) - started:.3f} s before its run_at"
            )
        lateness.append(started - (job.run_at or 0))
    per_fire = Counter((j.schedule, j.run_at) for j in fires)
    violations += [f"fire {key} made {count} jobs" for key, count in per_fire.items() if count > 1]
    due = [j for j in fires if (j.run_at or 0) <= stopped_at]
    for job in due:
        if job.status not in TERMINAL:
            violations.append(f"fire job {job.id} due before the end is still {job.status}")
    by_clock = sum(1 for j in delayed if _woken_by_clock(j))
    if not delayed:
        violations.append("never exercised: delayed jobs")
    if tally.promoted == 0:
        violations.append("never exercised: delayed jobs woken by the clock")
    done = Counter(str(j.status) for j in fires)
    lines = [
        f"delayed       {len(delayed)} jobs ({by_clock} beyond the {DIRECT_MAX_S} s message "
        f"limit, woken by the clock); started after their time by {_spread(lateness)}",
        f"periodic      {len(fires)} fires of {BEAT_SCHEDULE} ({dict(done)}), "
        f"{len(per_fire)} distinct fire times; clocks: {tally.ticks} ticks, two at a time "
        f"({tally.failed} failed), fired {tally.fired}, found existing {tally.existing}, "
        f"lost the watermark race {tally.lost_race}, woke {tally.promoted} delayed jobs",
    ]
    return lines, violations


def _woken_by_clock(job: Job) -> bool:
    created = job.created_at.timestamp()
    return (job.run_at or 0) - created > DIRECT_MAX_S


def _spread(values: Iterable[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "n/a"
    median = ordered[len(ordered) // 2]
    return f"min {ordered[0]:.2f} s, median {median:.2f} s, max {ordered[-1]:.2f} s"
