"""JobService's thin reads and notes (find, list_newest, record_event) over moto's DynamoDB."""

from __future__ import annotations

import pytest

from taskq.errors import JobNotFound
from taskq.jobs import JobService
from taskq.models import JobRequest, Status
from taskq.queue import JobQueue
from taskq.store import JobStore
from taskq.wiring import Services
from tests.unit.conftest import FakeClock


@pytest.fixture
def jobs(store: JobStore, queue: JobQueue, services: Services) -> JobService:
    """The service over the clock-driven store, so creation times are distinct."""
    return JobService(store, queue, services.registry)


def submit(jobs: JobService, tenant: str = "default") -> str:
    return jobs.submit(JobRequest(task="echo", payload={}), tenant=tenant).job.id


def test_find_returns_the_job_or_none(jobs: JobService) -> None:
    job_id = submit(jobs)
    found = jobs.find(job_id)
    assert found is not None and found.id == job_id
    assert jobs.find("f" * 32) is None
    assert jobs.find(job_id, tenant="other") is None  # another tenant's job is not found


def test_list_newest_merges_every_status_newest_first(
    jobs: JobService, store: JobStore, clock: FakeClock
) -> None:
    ids = []
    for _ in range(3):
        ids.append(submit(jobs))
        clock.advance(1)
    jobs.cancel(ids[0])
    store.claim(ids[1], lease_until=clock() + 30)
    assert {j.status for j in jobs.list_newest()} == {
        Status.CANCELLED,
        Status.RUNNING,
        Status.PENDING,
    }
    assert [j.id for j in jobs.list_newest()] == ids[::-1]
    assert [j.id for j in jobs.list_newest(limit=2)] == [ids[2], ids[1]]
    assert jobs.list_newest(tenant="other") == []


def test_record_event_appends_to_the_history_and_keeps_the_status(jobs: JobService) -> None:
    job_id = submit(jobs)
    noted = jobs.record_event(job_id, "dlq-purged", "ops; dlq message m-1")
    assert noted.status == Status.PENDING
    last = noted.events[-1]
    assert (last.kind, last.detail) == ("dlq-purged", "ops; dlq message m-1")
    assert jobs.get(job_id).events == noted.events
    with pytest.raises(JobNotFound):
        jobs.record_event("f" * 32, "dlq-purged", "ops")
