"""Upgrading a jobs table made before the phase index (2026-12-03): every job gets the
phase that index is keyed on, and a finished job its finished_at.

During the upgrade the table still has by_status (the stack deployed with
KeepStatusIndex=true), which holds every job under its status: each status is one paged
Query, never a Scan. Each write is conditional on the status read and on the job having no
phase yet, so a job that moved on meanwhile, or that the new code already gave its phase,
is left alone, and a second run changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from taskq.errors import BackendError, ConfigError, InvalidTransition, JobNotFound
from taskq.models import TERMINAL, Status
from taskq.store.codec import PHASE_LIVE, PHASE_WAITING, WAKE_BY_CLOCK, Item
from taskq.store.jobstore import JobStore
from taskq.text import parse_stored_time

LEGACY_INDEX = "by_status"
_NO_INDEX = ("ValidationException", "ResourceNotFoundException")


@dataclass
class UpgradeReport:
    updated: int = 0  # jobs given their phase
    left: int = 0  # had one already, or moved on between the read and the write


def phase_of(item: Item) -> tuple[str, float | None]:
    """The phase a job item made before the phase index belongs in, and its finish time."""
    status = Status(item["status"]["S"])
    if status in TERMINAL:
        return str(status), parse_stored_time(item["updated_at"]["S"]).timestamp()
    if status == Status.SCHEDULED and item.get("wake", {}).get("S") == WAKE_BY_CLOCK:
        return PHASE_WAITING, None
    return PHASE_LIVE, None


def backfill_phases(store: JobStore) -> UpgradeReport:
    """Give every job without a phase the one its status implies."""
    report = UpgradeReport()
    for status in Status:
        for item in _without_phase(store, status):
            phase, finished_at = phase_of(item)
            write = store.transitions.backfill_phase(item["id"]["S"], status, phase, finished_at)
            try:
                store.apply(write)
            except (InvalidTransition, JobNotFound):
                report.left += 1
                continue
            report.updated += 1
    return report


def _without_phase(store: JobStore, status: Status) -> Iterator[Item]:
    args: dict[str, Any] = {
        "TableName": store.table,
        "IndexName": LEGACY_INDEX,
        "KeyConditionExpression": "#s = :s",
        "FilterExpression": "attribute_not_exists(phase)",
        "ProjectionExpression": "id, #s, updated_at, wake",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": str(status)}},
    }
    try:
        for page in store.query_pages(args):
            yield from page.get("Items", [])
    except BackendError as failed:
        # DynamoDB answers ValidationException for a missing index; moto, not found.
        if not any(code in str(failed) for code in _NO_INDEX):
            raise
        raise ConfigError(
            f"the jobs table has no {LEGACY_INDEX} index: deploy once with "
            "KeepStatusIndex=true first, or the upgrade is done already"
        ) from None
