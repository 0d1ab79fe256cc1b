"""Reading back the AWS calls the probe hooks recorded, one file per process.

A phase takes a mark (every file's size) when it starts and reads only what was appended
after it, so phases that follow each other share the files without resetting them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

Mark = dict[str, int]


@dataclass(frozen=True)
class Call:
    at: float
    source: str  # the function's name, "poller", or a bench client ("ceiling")
    service: str  # "dynamodb" or "sqs"
    operation: str
    status: int  # HTTP status; 0 when no response came back
    retries: int  # botocore's retry attempts inside this call
    items: int  # entries the request carried (batches), else 1
    returned: int  # messages a ReceiveMessage got back; -1 for other operations
    ms: float  # how long the call took (retries included); -1 when unknown
    touched: frozenset[str] = frozenset()  # attributes an UpdateItem set or removed

    @property
    def empty_receive(self) -> bool:
        return self.operation == "ReceiveMessage" and self.returned == 0

    @property
    def label(self) -> str:
        """Operation name, with empty receives told apart from receives that got messages."""
        if self.operation == "ReceiveMessage":
            return "ReceiveMessage (empty)" if self.returned == 0 else "ReceiveMessage"
        return self.operation


class CallLog:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def mark(self) -> Mark:
        return {p.name: p.stat().st_size for p in self._files()}

    def since(self, mark: Mark) -> list[Call]:
        calls: list[Call] = []
        for path in self._files():
            with open(path, "rb") as fh:
                fh.seek(mark.get(path.name, 0))
                data = fh.read()
            complete = data[: data.rfind(b"\n") + 1]  # a line being written is left for later
            calls.extend(parse(line) for line in complete.decode("ascii").splitlines() if line)
        return sorted(calls, key=lambda c: c.at)

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("*.calls")) if self.directory.is_dir() else []


def parse(line: str) -> Call:
    at, source, service, operation, status, retries, items, returned, ms, *rest = line.split(" ")
    touched = frozenset(rest[0].split(",")) if rest and rest[0] != "-" else frozenset()
    return Call(
        float(at),
        source,
        service,
        operation,
        int(status),
        int(retries),
        int(items),
        int(returned),
        float(ms),
        touched,
    )


def per_job(calls: Iterable[Call], jobs: int) -> dict[str, float]:
    """Calls per job by operation ("sqs:SendMessage": 1.0 …), empty receives apart."""
    counts = Counter(f"{c.service}:{c.label}" for c in calls)
    return {name: counts[name] / max(jobs, 1) for name in sorted(counts)}


def billable_per_job(table: Mapping[str, float], *, with_empty_receives: bool = False) -> float:
    """DynamoDB and SQS requests per job (each is billed); empty receives only if asked."""
    return sum(v for k, v in table.items() if with_empty_receives or not k.endswith("(empty)"))


def retried(calls: Iterable[Call]) -> int:
    """HTTP attempts botocore repeated (throttling, 5xx, connection errors)."""
    return sum(c.retries for c in calls)
