"""The `taskq` commands run in-process (taskq.cli.main_with_exit_code) against moto's mock:
output and exit codes.

The same command as a subprocess against a real moto server process and the real worker
is in tests/acceptance/.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest

from taskq.cli import EXIT_CODES, main_with_exit_code
from taskq.config import Settings
from taskq.models import QueueMessage, Status
from taskq.queue import JobQueue
from taskq.store import JobStore


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("TASKQ_TABLE", settings.table_name)
    monkeypatch.setenv("TASKQ_QUEUE_URL", settings.queue_url)
    monkeypatch.setenv("TASKQ_DLQ_URL", settings.dlq_url)
    monkeypatch.setenv("TASKQ_ACTOR", "unit-test")
    for name in ("TASKQ_STACK", "TASKQ_AUTH", "TASKQ_KEYS_TABLE"):
        monkeypatch.delenv(name, raising=False)
    return settings


@pytest.fixture
def store(settings: Settings, dynamodb: Any) -> JobStore:
    return JobStore(settings.table_name, dynamodb)


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def taskq(env: Settings, capsys: pytest.CaptureFixture[str]) -> Any:
    def call(*argv: str, stdin: str | None = None) -> Result:
        capsys.readouterr()
        if stdin is not None:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr("sys.stdin", io.StringIO(stdin))
                code = main_with_exit_code(list(argv))
        else:
            code = main_with_exit_code(list(argv))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return call


def one_error_line(result: Result) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("taskq: error: ")
    assert "Traceback" not in result.err
    return lines[0]


def failed_job(taskq: Any, store: JobStore, queue: JobQueue, error: str = "Boom") -> str:
    job_id: str = taskq("submit", "echo", "--json").json()["id"]
    job = store.claim(job_id, lease_until=time.time() + 30)
    store.fail(job_id, job.attempt, error)
    queue.dead_letter(
        QueueMessage(job_id=job_id, task="echo").model_dump_json(),
        error,
        {"taskq-job-id": job_id, "taskq-task": "echo", "taskq-attempts": "1"},
    )
    return job_id


def test_help_lists_the_commands_and_the_exit_codes(taskq: Any) -> None:
    result = taskq("--help")
    assert result.code == 0
    for command in ("submit", "status", "events", "jobs", "cancel", "stats", "dlq"):
        assert command in result.out
    assert " ".join(EXIT_CODES.split()[:4]) in " ".join(result.out.split())
    assert taskq("dlq", "--help").code == 0


def test_submit_status_events_list_cancel(taskq: Any) -> None:
    submitted = taskq("submit", "echo", "--payload", '{"message": "hi"}', "--json")
    assert submitted.code == 0, submitted.err
    job = submitted.json()
    assert (job["task"], job["status"], job["payload"]) == ("echo", "pending", {"message": "hi"})

    status = taskq("status", job["id"], "--json")
    assert status.code == 0 and status.json()["id"] == job["id"]
    human = taskq("status", job["id"])
    assert job["id"] in human.out and "pending" in human.out

    events = taskq("events", job["id"], "--json").json()
    assert [e["kind"] for e in events["events"]] == ["pending"]

    listed = taskq("jobs", "ls", "--status", "pending", "--json").json()
    assert [j["id"] for j in listed["items"]] == [job["id"]]
    assert [j["id"] for j in taskq("jobs", "ls", "--json").json()["items"]] == [job["id"]]

    cancelled = taskq("cancel", job["id"], "--json")
    assert cancelled.code == 0 and cancelled.json()["status"] == "cancelled"
    again = taskq("cancel", job["id"])
    assert again.code == 1
    assert one_error_line(again).endswith("it is cancelled")


def test_idempotent_submit_returns_the_same_job(taskq: Any) -> None:
    first = taskq("submit", "echo", "--idempotency-key", "order-7", "--json").json()
    again = taskq("submit", "echo", "--idempotency-key", "order-7")
    assert again.code == 0 and first["id"] in again.out and "earlier submit" in again.out
    conflict = taskq("submit", "echo", "-p", '{"n": 2}', "--idempotency-key", "order-7")
    assert conflict.code == 1 and "Idempotency-Key" in one_error_line(conflict)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["submit", "nope"], 2, "unknown task 'nope'"),
        (["submit", "fail", "-p", '{"times": "many"}'], 2, "payload.times"),
        (["submit", "echo", "-p", "[1]"], 2, "must be a JSON object"),
        (["submit", "echo", "--idempotency-key", "has space"], 2, "--idempotency-key"),
        (["submit", "echo", "--max-attempts", "11"], 2, "--max-attempts"),
        (["status", "abc"], 2, "is not a job id"),
        (["status", "f" * 32], 1, f"job {'f' * 32} not found"),
        (["events", "f" * 32], 1, "not found"),
        (["cancel", "f" * 32], 1, "not found"),
        (["jobs", "ls", "--status", "lost"], 2, "--status"),
        (["jobs", "ls", "--cursor", "abc"], 2, "--cursor continues a listing"),
        (["jobs", "ls", "--status", "pending", "--cursor", "garbage"], 2, "invalid cursor"),
        (["dlq", "ls", "--older-than", "5x"], 2, "'5x' is not a duration"),
        (["dlq", "ls", "--error-match", "("], 2, "not a regular expression"),
        (["dlq", "redrive"], 2, "say which messages"),
        (["dlq", "redrive", "--all", "--task", "echo"], 2, "--all"),
        (["dlq", "redrive", "--all", "--rate", "0"], 2, "--rate"),
        (["dlq", "purge", "--max", "0", "--all"], 2, "--max"),
        (["dlq", "show", "../x"], 2, "neither a job id nor a DLQ message id"),
        (["dlq", "show", "f" * 32], 1, "no DLQ message or job"),
        (["dlq", "bogus"], 2, "No such command"),
        (["status", "--bogus"], 2, "No such option"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    taskq: Any, argv: list[str], code: int, message: str
) -> None:
    result = taskq(*argv)
    assert result.code == code
    assert message in one_error_line(result)


def test_missing_configuration(taskq: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKQ_TABLE")
    result = taskq("stats")
    assert result.code == 2
    assert one_error_line(result) == (
        "taskq: error: missing environment variable(s): TASKQ_TABLE (run make dev, or export "
        "the names from its banner; or pass --stack NAME)"
    )
    assert taskq("--help").code == 0  # help never needs the environment


def test_dlq_ls_show_and_stats(taskq: Any, store: JobStore, queue: JobQueue) -> None:
    job_id = failed_job(taskq, store, queue, error="Boom: disk full")
    queue.dead_letter("not json", "malformed message")

    listed = taskq("dlq", "ls", "--json")
    assert listed.code == 0
    rows = {m["job_id"]: m for m in listed.json()["messages"]}
    assert rows[job_id]["error"] == "Boom: disk full" and rows[job_id]["orphan"] is False
    assert rows[None]["orphan"] is True
    human = taskq("dlq", "ls")
    assert job_id in human.out and "orphan" in human.out
    assert (
        taskq("dlq", "ls", "--error-match", "disk", "--json").json()["messages"][0]["job_id"]
        == job_id
    )
    assert taskq("dlq", "ls", "--older-than", "1h", "--json").json()["messages"] == []

    shown = taskq("dlq", "show", job_id, "--json")
    assert shown.code == 0
    detail = shown.json()
    assert detail["message"]["body"]["job_id"] == job_id
    assert detail["message"]["attributes"]["taskq-reason"] == "Boom: disk full"
    assert [e["kind"] for e in detail["events"]] == ["pending", "running", "failed"]

    stats = taskq("stats", "--json").json()
    assert stats["jobs"]["failed"] == 1 and stats["dlq"]["visible"] == 2
    assert stats["oldest_dlq_age_s"] is not None
    assert "DLQ oldest message" in taskq("stats").out


def test_redrive_asks_first_and_does_nothing_on_no(
    taskq: Any, store: JobStore, queue: JobQueue
) -> None:
    job_id = failed_job(taskq, store, queue)
    for answer in ("n\n", ""):  # a "no", and no answer at all (stdin closed)
        result = taskq("dlq", "redrive", "--task", "echo", stdin=answer)
        assert result.code == 1
        assert "would redrive" in result.err  # the preview is shown before the question
        assert result.err.strip().endswith("taskq: error: aborted; nothing was changed")
        assert store.get(job_id).status == Status.FAILED

    result = taskq("dlq", "redrive", "--task", "echo", stdin="y\n")
    assert result.code == 0, result.err
    assert "redrive: 1 redriven" in result.out
    assert store.get(job_id).status == Status.PENDING


def test_redrive_dry_run_and_json(taskq: Any, store: JobStore, queue: JobQueue) -> None:
    job_id = failed_job(taskq, store, queue)
    dry = taskq("dlq", "redrive", "--all", "--dry-run", "--json")
    assert dry.code == 0
    assert dry.json()["dry_run"] is True and dry.json()["counts"]["redriven"] == 1
    assert store.get(job_id).status == Status.FAILED

    done = taskq("dlq", "redrive", "--id", job_id, "--yes", "--keep-attempts", "--json")
    assert done.code == 0
    report = done.json()
    assert report["counts"]["redriven"] == 1
    assert report["messages"][0]["action"] == "redriven"
    job = store.get(job_id)
    assert (job.status, job.attempt) == (Status.PENDING, 1)  # the count is kept
    assert job.events[-1].detail and job.events[-1].detail.startswith("unit-test")


def test_nothing_to_redrive_is_not_an_error(taskq: Any) -> None:
    result = taskq("dlq", "redrive", "--all")
    assert result.code == 0 and "nothing selected" in result.out


def test_purge_deletes_the_selected_and_logs_an_audit_record(
    taskq: Any, store: JobStore, queue: JobQueue
) -> None:
    keep = failed_job(taskq, store, queue)
    gone = failed_job(taskq, store, queue, error="Bad: purge me")
    result = taskq("dlq", "purge", "--error-match", "purge me", "--yes")
    assert result.code == 0, result.err
    assert "purge: 1 purged" in result.out
    audit = [json.loads(line) for line in result.err.splitlines() if '"audit"' in line]
    assert [(a["audit"]["job_id"], a["audit"]["actor"]) for a in audit] == [(gone, "unit-test")]
    remaining = [m["job_id"] for m in taskq("dlq", "ls", "--json").json()["messages"]]
    assert remaining == [keep]
    purged = store.get(gone)
    assert purged.status == Status.FAILED  # the job itself is not changed ...
    assert purged.events[-1].kind == "dlq-purged"  # ... but its history says what happened
    assert purged.events[-1].detail and purged.events[-1].detail.startswith("unit-test")
    assert store.get(keep).events[-1].kind == "failed"


def test_keys_create_ls_revoke(
    taskq: Any, aws: Any, monkeypatch: pytest.MonkeyPatch, dynamodb: Any
) -> None:
    assert "TASKQ_KEYS_TABLE" in one_error_line(taskq("keys", "ls"))
    monkeypatch.setenv("TASKQ_KEYS_TABLE", aws.tables["ApiKeysTable"])
    created = taskq("keys", "create", "--tenant", "acme", "--name", "ci", "--json")
    assert created.code == 0, created.err
    key, key_id = created.json()["key"], created.json()["key_id"]
    assert key.startswith(f"tq_{key_id}_")
    listed = taskq("keys", "ls", "--json").json()
    assert [(k["key_id"], k["tenant"], k["revoked_at"]) for k in listed] == [(key_id, "acme", None)]
    assert key not in taskq("keys", "ls").out  # the key itself is never shown again
    assert taskq("keys", "revoke", key_id).code == 0
    assert taskq("keys", "ls", "--json").json()[0]["revoked_at"] is not None
    again = taskq("keys", "revoke", key_id)
    assert again.code == 1 and "revoked already" in one_error_line(again)
    assert taskq("keys", "revoke", "nope").code == 2
    bad = taskq("keys", "create", "--tenant", "Not Valid", "--name", "x")
    assert bad.code == 2 and "tenant" in one_error_line(bad)
