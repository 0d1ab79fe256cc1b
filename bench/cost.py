"""Cost per million jobs on AWS list prices, from counted calls and measured durations.

DynamoDB bills capacity units, not calls: a write takes one write unit per KB of the item
(the larger of before and after), and the same again in every global secondary index it
touches; a write that moves an item to another index key (a finish, on the phase index)
is a delete plus a put there, two units (the DynamoDB guide's "Provisioned
throughput considerations for GSIs"); a keys-only index is not written when a write leaves
its keys alone. A failed conditional write still takes one unit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from bench import prices
from bench.calls import Call

# The jobs table's indexes as first built (2026-11-28): keyed on the status and the task,
# both projecting every attribute, so every write also went to both (11 write units a job).
# The bench prices the run's own calls under these too: the "before" of README's cost
# section, from the same calls.
FIRST_DESIGN_INDEXES: tuple[Mapping[str, Any], ...] = (
    {"name": "by_status", "keys": ["status", "tenant_created"], "projection": "ALL"},
    {"name": "by_task", "keys": ["task", "tenant_created"], "projection": "ALL"},
)
# On every job item the happy path makes (the sparse indexes' keys, wake and wake_at, are
# on delayed jobs only).
ALWAYS_PRESENT = frozenset({"status", "phase", "task", "tenant_created"})


def on_update(gsi: Mapping[str, Any], touched: frozenset[str]) -> int:
    """Write units (per KB) an UpdateItem that sets or removes `touched` takes in one index
    that holds the item: a changed key moves it (a delete and a put); a changed projected
    attribute rewrites it; anything else leaves it alone."""
    keys = set(gsi["keys"])
    if touched & keys:
        return 2
    projection = gsi.get("projection")
    if projection == "ALL":
        return 1
    if projection == "INCLUDE" and touched & set(gsi.get("attributes", [])):
        return 1
    return 0


def item_size(item: Mapping[str, Any]) -> int:
    """Bytes of a DynamoDB item (low-level form) by DynamoDB's sizing rules."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Mapping[str, Any]) -> int:
    ((kind, v),) = value.items()
    if kind == "S":
        return len(str(v).encode())
    if kind == "N":
        digits = Decimal(str(v)).normalize().as_tuple().digits
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(x) for x in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(x) for k, x in v.items())
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: x}) for x in v)
    raise ValueError(f"unknown DynamoDB type {kind}")


def capacity(
    calls: Iterable[Call], item_kb: int, indexes: Sequence[Mapping[str, Any]]
) -> tuple[float, float]:
    """(write units, read units) the DynamoDB calls took, for items of `item_kb` (rounded up).

    A new job item has the keys of the always-present indexes, not the sparse ones' (the
    wake index holds only delayed jobs, and the happy path's updates only remove its keys
    from items that never had them). An UpdateItem writes each always-present index as
    `on_update` says for the attributes the probe saw it set or remove.
    """
    dense = [gsi for gsi in indexes if set(gsi["keys"]) <= ALWAYS_PRESENT]
    put = 1 + len(dense)
    wru = rru = 0.0
    for call in calls:
        if call.service != "dynamodb":
            continue
        failed = call.status >= 400
        move = 1 + sum(on_update(gsi, call.touched) for gsi in dense)
        if call.operation == "PutItem":
            wru += item_kb * (1 if failed else put)
        elif call.operation == "BatchWriteItem":
            wru += item_kb * put * call.items
        elif call.operation == "UpdateItem":
            wru += item_kb * (1 if failed else move)
        elif call.operation == "TransactWriteItems":
            # Only concurrency caps' slots (items no index holds); a transaction costs double.
            wru += 2 * item_kb * call.items
        elif call.operation in ("GetItem", "Query"):
            rru += max(1, math.ceil(item_kb / 4))
        elif call.operation == "BatchGetItem":
            rru += call.items * max(1, math.ceil(item_kb / 4))
    return wru, rru


# Assumed, not measured: a typical in-region call from Lambda. Used only for the line that
# re-prices Lambda duration as if each call took this long instead of the emulator's time.
AWS_CALL_MS = {"dynamodb": 6.0, "sqs": 10.0}


@dataclass(frozen=True)
class Usage:
    """What one job uses, on average."""

    api_invocations: float
    api_billed_ms: float
    worker_invocations: float
    worker_billed_ms: float
    dynamodb_wru: float
    dynamodb_rru: float
    sqs_requests: float
    http_requests: float
    log_bytes: float  # measured (the functions' own lines)


def per_million(
    usage: Usage, *, api_memory_mb: int, worker_memory_mb: int, architecture: str
) -> dict[str, float]:
    """USD per million jobs, by line."""
    gb_seconds = (
        (usage.api_billed_ms * api_memory_mb + usage.worker_billed_ms * worker_memory_mb)
        / 1024
        / 1000
    )
    invocations = usage.api_invocations + usage.worker_invocations
    log_bytes = usage.log_bytes + invocations * prices.LAMBDA_PLATFORM_LOG_BYTES
    million = 1e6
    lines = {
        "Lambda requests": invocations * prices.LAMBDA_REQUEST,
        "Lambda duration": gb_seconds * prices.LAMBDA_GB_SECOND[architecture],
        "DynamoDB writes": usage.dynamodb_wru * prices.DYNAMODB_WRITE_REQUEST_UNIT,
        "DynamoDB reads": usage.dynamodb_rru * prices.DYNAMODB_READ_REQUEST_UNIT,
        "SQS requests": usage.sqs_requests * prices.SQS_REQUEST,
        "API Gateway (HTTP API)": usage.http_requests * prices.HTTP_API_REQUEST,
        "CloudWatch Logs": log_bytes / 1e9 * prices.LOGS_INGESTED_GB,
        "X-Ray traces (est.)": invocations * prices.XRAY_SAMPLED_SHARE * prices.XRAY_TRACE_RECORDED,
    }
    out = {name: value * million for name, value in lines.items()}
    out["total"] = sum(out.values())
    return out


def usage_dict(usage: Usage) -> dict[str, float]:
    return asdict(usage)
