"""Upgrading a table made before the phase index: `taskq upgrade phases` gives each job
the phase its status implies, through the legacy status index (moto's in-process mock)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.provision import provision
from infra.template import Stack
from taskq.errors import ConfigError
from taskq.models import Status
from taskq.store import JobStore, NewJob
from taskq.store.codec import new_item
from taskq.store.upgrade import backfill_phases
from taskq.text import stored_time
from tests.unit.conftest import REGION, ROOT, FakeClock, use_fake_aws_env


def _legacy_store(monkeypatch: pytest.MonkeyPatch, clock: FakeClock, keep: str) -> JobStore:
    use_fake_aws_env(monkeypatch)
    stack = Stack.from_file(
        ROOT / "template.yaml", parameters={"Stage": "unit", "KeepStatusIndex": keep}
    )
    tables = provision(stack, endpoint_url=None, region=REGION).tables
    db = boto3.client("dynamodb", region_name=REGION)
    return JobStore(tables["JobsTable"], db, retention_days=14, clock=clock)


@pytest.fixture
def legacy(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> Iterator[JobStore]:
    with mock_aws():
        yield _legacy_store(monkeypatch, clock, "true")


def _put_as_before(store: JobStore, job_id: str, clock: FakeClock, **changes: Any) -> None:
    """A job item as the code before the phase index wrote it: no phase, no finished_at."""
    wakes_by_clock = changes.pop("wakes_by_clock", False)
    run_at = clock() + 86_400 if wakes_by_clock else None
    new = NewJob(job_id, "echo", "{}", 3, run_at=run_at, wakes_by_clock=wakes_by_clock)
    item = new_item(new, clock())
    del item["phase"]
    item.update(changes)
    store.db.put_item(TableName=store.table, Item=item)


def test_every_job_gets_the_phase_its_status_implies(legacy: JobStore, clock: FakeClock) -> None:
    finished = clock() - 600
    _put_as_before(legacy, "a" * 32, clock)
    _put_as_before(legacy, "b" * 32, clock, wakes_by_clock=True)
    _put_as_before(
        legacy,
        "c" * 32,
        clock,
        status={"S": Status.COMPLETED},
        updated_at={"S": stored_time(finished)},
        expires_at={"N": str(int(clock() + 86_400))},
    )
    # Before: the phase index holds none of them, so listings and counts miss them.
    assert legacy.list_jobs(status=Status.COMPLETED) == ([], None)

    report = backfill_phases(legacy)

    assert (report.updated, report.left) == (3, 0)
    assert [j.id for j in legacy.list_jobs(status=Status.PENDING)[0]] == ["a" * 32]
    assert [j.id for j in legacy.list_jobs(status=Status.SCHEDULED)[0]] == ["b" * 32]
    assert [j.id for j in legacy.list_jobs(status=Status.COMPLETED)[0]] == ["c" * 32]
    done = legacy.db.get_item(TableName=legacy.table, Key={"id": {"S": "c" * 32}})["Item"]
    assert float(done["finished_at"]["N"]) == pytest.approx(finished, abs=1e-3)
    counts, exact = legacy.count_jobs()
    assert exact and (counts[Status.PENDING], counts[Status.SCHEDULED]) == (1, 1)
    # A second run finds nothing left to do.
    assert backfill_phases(legacy).updated == 0


def test_a_job_that_moved_on_meanwhile_is_left_alone(legacy: JobStore, clock: FakeClock) -> None:
    _put_as_before(legacy, "a" * 32, clock)
    write = legacy.transitions.backfill_phase("a" * 32, Status.RUNNING, "live", None)
    with pytest.raises(Exception, match="backfill_phase"):
        legacy.apply(write)  # the status read is not the job's status any more


def test_a_table_without_the_status_index_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    with mock_aws():
        store = _legacy_store(monkeypatch, clock, "false")
        with pytest.raises(ConfigError, match="KeepStatusIndex=true"):
            backfill_phases(store)
