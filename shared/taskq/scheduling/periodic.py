"""Periodic schedules at work: the clock's fires, and the operators' ls/pause/resume/trigger.

Exactly one job per fire time. A fire's job id is derived from the schedule's name and
the fire time (as an idempotency key is), and the store's create is conditional: when
two clocks race, a tick is retried, or a fire is recomputed after a crash, the second
create finds the job and adds nothing. No lock, no leader.

Each tick handles the fire times after the schedule's watermark (the time up to which
an earlier tick handled them) up to now + the lookahead, and then moves the watermark:

- upcoming fires (after now) are created `scheduled` at their exact time, so SQS wakes
  them to the second, like any delayed job;
- missed fires (the clock was down): only the latest, and only if it is at most the
  schedule's `catch_up_s` old, runs (at once); older ones are skipped and logged;
- a paused schedule fires nothing, and its watermark still moves: resuming does not
  replay the pause;
- `overlap=False`: a fire is created only when due (not ahead), and skipped while the
  schedule's latest job is unfinished, so such fires start up to one clock period late.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from taskq.errors import Conflict, IdempotencyConflict, JobNotFound
from taskq.jobs import JobService, Submitted
from taskq.log import logger
from taskq.models import DEFAULT_TENANT, TERMINAL, Job, JobRequest
from taskq.scheduling.declared import PeriodicSchedule
from taskq.scheduling.state import ScheduleState, ScheduleStates
from taskq.tasks import TaskRegistry


@dataclass
class FireReport:
    fired: int = 0  # jobs created by this tick
    existing: int = 0  # fires whose job another tick (or clock) had created
    missed: int = 0  # missed fires skipped by the catch-up rule
    overlapping: int = 0  # fires skipped because the previous run was unfinished
    paused: int = 0  # schedules paused
    lost_race: int = 0  # another clock moved a watermark first (harmless)


@dataclass(frozen=True)
class ScheduleView:
    """A schedule as operators see it (`taskq schedules ls`, the dashboard)."""

    schedule: PeriodicSchedule
    state: ScheduleState
    next_fires: tuple[float, ...]


class ScheduleService:
    def __init__(
        self,
        jobs: JobService,
        states: ScheduleStates,
        registry: TaskRegistry,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = jobs
        self.states = states
        self.registry = registry
        self.clock = clock

    # --- the clock ---------------------------------------------------------------------

    def fire_due(self, lookahead_s: float) -> FireReport:
        """One tick: create the jobs of every schedule's fires up to now + lookahead."""
        report = FireReport()
        now = self.clock()
        schedules = self.registry.schedules()
        states = self.states.read([s.name for s in schedules])
        for schedule in schedules:
            self._fire_one(schedule, states[schedule.name], now, lookahead_s, report)
        return report

    def _fire_one(
        self,
        schedule: PeriodicSchedule,
        state: ScheduleState,
        now: float,
        lookahead_s: float,
        report: FireReport,
    ) -> None:
        horizon = now + lookahead_s if schedule.overlap else now
        # A schedule seen for the first time starts now: nothing before it is "missed".
        since = now if state.watermark is None else state.watermark
        if horizon <= since and state.watermark is not None:
            return  # nothing new since the last tick
        last_job = state.last_job
        if state.paused:
            report.paused += 1
        else:
            oldest = now - schedule.catch_up_s
            missed_before_window = since < oldest
            fires = schedule.expression.fires_between(max(since, oldest), horizon)
            past = [f for f in fires if f <= now]
            chosen = past[-1:] + [f for f in fires if f > now]
            if past[:-1] or missed_before_window:
                report.missed += len(past) - 1
                logger.warning(
                    "missed fires skipped (catch-up runs only the latest)",
                    extra={"schedule": schedule.name, "skipped_in_window": len(past) - 1},
                )
            for fire_at in chosen:
                if not schedule.overlap and self._unfinished(last_job):
                    report.overlapping += 1
                    logger.info(
                        "fire skipped: the previous run is unfinished",
                        extra={"schedule": schedule.name, "job_id": last_job},
                    )
                    continue
                submitted = self.submit_fire(schedule, fire_at)
                report.fired += not submitted.replayed
                report.existing += submitted.replayed
                last_job = submitted.job.id
        if not self.states.advance(state, horizon, last_job):
            report.lost_race += 1

    def _unfinished(self, job_id: str | None) -> bool:
        job = None if job_id is None else self.jobs.find(job_id)
        return job is not None and job.status not in TERMINAL

    def submit_fire(self, schedule: PeriodicSchedule, fire_at: float) -> Submitted:
        """The one job of this fire time: created, or found if it exists already."""
        key = fire_key(schedule, fire_at)
        request = self._request(schedule, datetime.fromtimestamp(fire_at, UTC))
        try:
            return self.jobs.submit(request, key, DEFAULT_TENANT, schedule=schedule.name)
        except (IdempotencyConflict, Conflict):
            # The fire's job exists, made from another payload (a deploy changed it): the
            # fire is done all the same.
            existing = self.jobs.find_by_key(key, DEFAULT_TENANT)
            if existing is None:
                raise
            return Submitted(existing, replayed=True)

    # --- operators -----------------------------------------------------------------------

    def views(self, upcoming: int = 3) -> list[ScheduleView]:
        """Every schedule, its state and its next fire times."""
        now = self.clock()
        schedules = self.registry.schedules()
        states = self.states.read([s.name for s in schedules])
        views = []
        for schedule in schedules:
            fires: list[float] = []
            at: float | None = now
            while at is not None and len(fires) < upcoming:
                at = schedule.expression.next_after(at)
                if at is not None:
                    fires.append(at)
            views.append(ScheduleView(schedule, states[schedule.name], tuple(fires)))
        return views

    def pause(self, name: str, actor: str) -> list[str]:
        """Stop firing; the jobs already created for its coming fires are cancelled.
        Returns their ids."""
        schedule = self.registry.schedule(name)
        self.states.set_paused(name, True, actor)
        state = self.states.read([name])[name]
        now = self.clock()
        cancelled = []
        if state.watermark is not None and state.watermark > now:
            for fire_at in schedule.expression.fires_between(now, state.watermark):
                job = self.jobs.find_by_key(fire_key(schedule, fire_at), DEFAULT_TENANT)
                if job is not None and self._cancel(job):
                    cancelled.append(job.id)
        return cancelled

    def resume(self, name: str, actor: str) -> None:
        """Fire again from now on; the fires missed while paused are not run."""
        self.registry.schedule(name)
        self.states.set_paused(name, False, actor, watermark=self.clock())

    def trigger(self, name: str, actor: str) -> Job:
        """Run the schedule's task now, once, with its payload (paused or not)."""
        schedule = self.registry.schedule(name)
        request = self._request(schedule, None)
        job = self.jobs.submit(request, None, DEFAULT_TENANT, schedule=schedule.name).job
        self.states.note_job(name, job.id)
        # Who ran it by hand, in its history (the job may already be running: no status).
        return self.jobs.record_event(job.id, "triggered", actor)

    def _cancel(self, job: Job) -> bool:
        try:
            self.jobs.cancel(job.id)
        except (Conflict, JobNotFound):
            return False
        return True

    @staticmethod
    def _request(schedule: PeriodicSchedule, run_at: datetime | None) -> JobRequest:
        return JobRequest(task=schedule.task, payload=schedule.payload, run_at=run_at)


def fire_key(schedule: PeriodicSchedule, fire_at: float) -> str:
    """The idempotency key of a fire: its job's id derives from it, one job per fire."""
    stamp = datetime.fromtimestamp(fire_at, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"schedule:{schedule.name}:{stamp}"
