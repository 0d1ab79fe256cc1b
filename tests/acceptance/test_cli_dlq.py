"""An operator's session with the DLQ, through the real `taskq` command and the real worker.

The tests are the steps of one session, in order, on one stack: jobs fail into the DLQ,
`dlq ls` lists them (orphans too), a dry run changes nothing, a filtered redrive takes
only what it selects and the `fail` jobs with times=3 then complete, a redrive by task
gives a fresh budget and leaves orphans in place, and a purge removes only what it
selects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from taskq.models import Status
from tests.acceptance.conftest import Ran, Stack, completed_once_after_redrive, kinds

pytestmark = pytest.mark.integration  # a real moto server process and the real worker

MISSING_JOB = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class Failed:
    a: str  # fail, times=3
    b: str  # fail, times=3
    c: str  # fail, times=5
    echo: str  # completed: never in the DLQ


@pytest.fixture(scope="module")
def failed(stack: Stack) -> Failed:
    ids = Failed(
        a=stack.submit("fail", {"times": 3}),
        b=stack.submit("fail", {"times": 3}),
        c=stack.submit("fail", {"times": 5}),
        echo=stack.submit("echo", {"hello": "world"}),
    )
    stack.wait_status([ids.a, ids.b, ids.c], Status.FAILED)
    stack.wait_status([ids.echo], Status.COMPLETED)
    # What else ends up in a DLQ: a body that is no job message, and a job that is gone.
    stack.dead_letter_raw("this is not a job message")
    stack.dead_letter_raw(f'{{"v": 1, "job_id": "{MISSING_JOB}", "task": "fail"}}')
    return ids


def rows(taskq: Callable[..., Ran], *selectors: str) -> dict[str | None, dict[str, Any]]:
    ran = taskq("dlq", "ls", "--json", *selectors)
    assert ran.code == 0, ran.err
    return {m["job_id"]: m for m in ran.json()["messages"]}


def dlq_rows(stack: Stack) -> dict[str | None, dict[str, Any]]:
    """The DLQ read in-process, to check what a command did (not the command under test)."""
    return {e.job_id: e.to_dict() for e in stack.dead.list_messages().entries}


def test_dlq_ls_lists_failed_jobs_and_orphans(taskq: Callable[..., Ran], failed: Failed) -> None:
    listed = rows(taskq)
    assert set(listed) == {failed.a, failed.b, failed.c, MISSING_JOB, None}
    a = listed[failed.a]
    assert (a["task"], a["attempts"], a["status"], a["orphan"]) == ("fail", 3, "failed", False)
    assert a["error"] == "RetryableError: planned failure 3 of 3 (attempts exhausted)"
    assert a["failed_at"] and a["message_id"]
    assert listed[MISSING_JOB]["orphan"] and "not found" in listed[MISSING_JOB]["orphan_reason"]
    assert listed[None]["orphan"] and "malformed" in listed[None]["orphan_reason"]

    table = taskq("dlq", "ls")  # for people: one row per message
    assert table.code == 0
    for job_id in (failed.a, failed.b, failed.c, MISSING_JOB):
        assert job_id in table.out
    assert table.out.count("orphan") == 2

    assert set(rows(taskq, "--error-match", "of 5", "--newer-than", "1h")) == {failed.c}
    assert rows(taskq, "--older-than", "1h") == {}


def test_dry_run_changes_nothing(taskq: Callable[..., Ran], stack: Stack, failed: Failed) -> None:
    ran = taskq("dlq", "redrive", "--all", "--dry-run", "--json")
    assert ran.code == 0, ran.err
    report = ran.json()
    assert report["dry_run"] and report["counts"]["redriven"] == 3
    assert report["counts"]["orphan"] == 2
    for job_id in (failed.a, failed.b, failed.c):
        job = stack.store.get(job_id)
        assert job.status == Status.FAILED and kinds(job)[-1] == "failed"
    assert stack.queue.depth() == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert stack.dlq_depth() == {"visible": 5, "in_flight": 0, "delayed": 0}


def test_show_and_stats(taskq: Callable[..., Ran], failed: Failed) -> None:
    shown = taskq("dlq", "show", failed.c, "--json")
    assert shown.code == 0, shown.err
    detail = shown.json()
    assert detail["message"]["body"] == {"v": 1, "job_id": failed.c, "task": "fail"}
    assert detail["message"]["attributes"]["taskq-attempts"] == "3"
    assert detail["job"]["status"] == "failed"
    assert [e["kind"] for e in detail["events"]].count("running") == 3

    stats = taskq("stats", "--json").json()
    assert stats["jobs"]["failed"] == 3 and stats["jobs"]["completed"] == 1
    assert stats["dlq"]["visible"] == 5 and stats["queue"]["in_flight"] == 0
    assert stats["oldest_dlq_age_s"] is not None and stats["oldest_dlq_age_s"] >= 0


def test_a_filtered_redrive_moves_only_the_selected_and_they_complete(
    taskq: Callable[..., Ran], stack: Stack, failed: Failed
) -> None:
    ran = taskq("dlq", "redrive", "--error-match", r"failure \d of 3\b", "--keep-attempts", "-y")
    assert ran.code == 0, ran.err
    assert "redrive: 2 redriven" in ran.out

    # The `fail` task with times=3 completes on its 4th attempt, once.
    done = stack.wait_status([failed.a, failed.b], Status.COMPLETED)
    for job in done.values():
        assert completed_once_after_redrive(job)
        assert job.result == {"succeeded_on_attempt": 4}
        redriven = next(e for e in job.events if e.kind == "redriven")
        assert redriven.detail and redriven.detail.startswith("acceptance; dlq message")
    assert stack.store.get(failed.c).status == Status.FAILED  # not selected: untouched
    assert set(dlq_rows(stack)) == {failed.c, MISSING_JOB, None}


def test_redrive_by_task_gives_a_fresh_budget_and_leaves_orphans(
    taskq: Callable[..., Ran], stack: Stack, failed: Failed
) -> None:
    ran = taskq("dlq", "redrive", "--task", "fail", "--yes", "--json")
    assert ran.code == 0, ran.err
    report = ran.json()
    assert [m["job_id"] for m in report["messages"] if m["action"] == "redriven"] == [failed.c]
    orphans = [m["job_id"] for m in report["messages"] if m["action"] == "orphan"]
    assert orphans == [MISSING_JOB]  # its body names task fail: selected, reported, left

    # A fresh budget: attempts counted from 1 again. The demo task counts every attempt
    # the job ever made, so times=5 fails twice more and succeeds on its 6th (3rd of 3).
    c = stack.wait_status([failed.c], Status.COMPLETED)[failed.c]
    after = c.events[kinds(c).index("redriven") + 1 :]
    assert after[0].kind == "running" and after[0].attempt == 1
    assert c.attempt == 3 and c.result == {"succeeded_on_attempt": 6}
    assert set(dlq_rows(stack)) >= {MISSING_JOB, None}


def test_purge_removes_only_the_selected(
    taskq: Callable[..., Ran], stack: Stack, failed: Failed
) -> None:
    orphan_ids = [m["message_id"] for m in dlq_rows(stack).values() if m["orphan"]]
    assert len(orphan_ids) == 2
    job_before = stack.store.get(failed.c)
    selectors = [arg for message_id in orphan_ids for arg in ("--id", message_id)]
    refused = taskq("dlq", "purge", *selectors)  # no --yes, no answer: nothing happens
    assert refused.code == 1 and "aborted" in refused.err
    assert len([m for m in dlq_rows(stack).values() if m["orphan"]]) == 2

    ran = taskq("dlq", "purge", *selectors, "--yes")
    assert ran.code == 0, ran.err
    assert "purge: 2 purged" in ran.out
    assert ran.err.count('"audit"') == 2 and '"actor":"acceptance"' in ran.err.replace(" ", "")
    assert not [m for m in dlq_rows(stack).values() if m["orphan"]]
    assert stack.store.get(failed.c) == job_before  # a job's record is not touched
