"""What happened during a fault-suite run, as its drivers saw it (the ledger) and as the
chaos task's executions logged it: the accounting checks the stored jobs against both."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Ledger:
    """Everything the drivers did, recorded as it happened (thread-safe)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: dict[str, int] = field(default_factory=dict)  # job id -> n (a 202 named it)
    modes: Counter[str] = field(default_factory=Counter)
    client_retries: Counter[str] = field(default_factory=Counter)  # by reason
    rejected: list[tuple[int, int, str]] = field(default_factory=list)  # n, status, detail
    cancels: dict[str, str] = field(default_factory=dict)  # job id -> cancelled/refused/unknown
    kills: list[tuple[float, int]] = field(default_factory=list)  # time, sandboxes killed
    duplicates: Counter[str] = field(default_factory=Counter)  # running / finished
    lost_sends: set[str] = field(default_factory=set)  # job ids whose first send was lost
    api_crashes: int = 0
    sweeps: Counter[str] = field(default_factory=Counter)
    sweep_errors: Counter[str] = field(default_factory=Counter)
    sweep_rounds: list[tuple[float, float]] = field(default_factory=list)  # start, end (s)
    errors: list[str] = field(default_factory=list)  # driver failures (fail the suite)

    def note(self, **increments: int) -> None:
        with self.lock:
            for name, value in increments.items():
                self.sweeps[name] += value


@dataclass(frozen=True)
class Execution:
    job_id: str
    attempt: int
    pid: int
    started: float
    ended: float | None = None
    outcome: str | None = None  # ok, retry, permanent, error; None: killed (no end line)


class ExecutionLog:
    """The side-effect log the chaos task appends to: `run`/`end` lines per (job, attempt)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._lock = threading.Lock()
        self.runs: dict[tuple[str, int], list[tuple[float, int]]] = defaultdict(list)
        self.ends: dict[tuple[str, int], tuple[float, str]] = {}

    def refresh(self) -> None:
        with self._lock:
            if not self.path.exists():
                return
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
            complete = data[: data.rfind(b"\n") + 1]
            self._offset += len(complete)
            for line in complete.decode().splitlines():
                parts = line.split()
                if parts[0] == "run":
                    _, job_id, attempt, at, pid = parts
                    self.runs[(job_id, int(attempt))].append((float(at), int(pid)))
                elif parts[0] == "end":
                    _, job_id, attempt, outcome, at, _pid = parts
                    self.ends[(job_id, int(attempt))] = (float(at), outcome)

    def open_runs(self) -> list[tuple[str, int, int]]:
        """(job id, attempt, pid) of executions with a run line and no end line yet."""
        with self._lock:
            return [
                (job_id, attempt, runs[-1][1])
                for (job_id, attempt), runs in self.runs.items()
                if (job_id, attempt) not in self.ends
            ]

    def finished_jobs(self) -> list[str]:
        with self._lock:
            return [job_id for (job_id, _), (_, outcome) in self.ends.items() if outcome == "ok"]

    def executions(self) -> dict[str, list[Execution]]:
        with self._lock:
            by_job: dict[str, list[Execution]] = defaultdict(list)
            for (job_id, attempt), runs in self.runs.items():
                end = self.ends.get((job_id, attempt))
                for started, pid in runs:
                    by_job[job_id].append(
                        Execution(job_id, attempt, pid, started, end[0] if end else None,
                                  end[1] if end else None)
                    )  # fmt: skip
            return by_job
