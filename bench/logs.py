"""The functions' own log lines (JSON logs and EMF metrics), attributed to runs by time.

The sandboxes write to the bench's stderr, which the bench sends to a file. Their stdout
may be block-buffered, so the file is read once the stack has stopped, and each line is
put in the run whose time window holds the timestamp inside it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

Window = tuple[float, float]


def attribute(path: Path, windows: Mapping[str, Window]) -> dict[str, dict[str, int]]:
    """Bytes of log lines per run and per function ("api", "worker")."""
    out: dict[str, dict[str, int]] = {name: {"api": 0, "worker": 0} for name in windows}
    if not path.exists():
        return out
    with open(path, "rb") as fh:
        for raw in fh:
            found = _when_and_who(raw)
            if found is None:
                continue
            at, who = found
            for name, (start, end) in windows.items():
                if start <= at <= end:
                    out[name][who] += len(raw)
                    break
    return out


def _when_and_who(raw: bytes) -> tuple[float, str] | None:
    try:
        line = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(line, dict):
        return None
    if "_aws" in line:  # an EMF metrics line: the metric says which function wrote it
        at = float(line["_aws"].get("Timestamp", 0)) / 1000
        return at, "api" if "JobsSubmitted" in line else "worker"
    stamp, name = line.get("timestamp"), str(line.get("function_name", ""))
    if not isinstance(stamp, str):
        return None
    try:
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f%z").timestamp()
    except ValueError:
        return None
    return at, "api" if name.endswith("-api") else "worker"
