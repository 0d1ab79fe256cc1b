"""Where the CPU goes: CPU seconds per component of the local stack, read from /proc.

On two cores everything (emulator, gateway, sandboxes, load generator) competes for the
same CPUs, so a run's throughput is set by the CPU each job costs all of them together.
Linux only; elsewhere the figures are simply absent.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _children(parent: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] == parent:
                kids.append(int(entry.name))
    return kids


class CpuMeter:
    """Snapshots of every process the bench started (and itself), by component."""

    def __init__(self, name_of: dict[int, str] | None = None) -> None:
        self.name_of = name_of or {}

    def snapshot(self, labels: dict[int, str]) -> dict[int, tuple[str, float]]:
        if not Path("/proc/self/stat").exists():
            return {}
        me = os.getpid()
        pids = {me, *_children(me)}
        out = {}
        for pid in pids:
            stat = _stat(pid)
            if stat is not None:
                label = (
                    "bench process (gateway, poller)"
                    if pid == me
                    else labels.get(pid, "load generator, helpers")
                )
                out[pid] = (label, stat[1])
        return out


def delta(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds used between two snapshots, summed by component."""
    used: dict[str, float] = defaultdict(float)
    for pid, (label, seconds) in after.items():
        used[label] += seconds - before.get(pid, (label, 0.0))[1]
    return dict(used)
