"""Redrives stopped between their steps lose nothing and complete nothing twice.

The order per message is: reset the job (failed -> pending) -> send a new message ->
delete the DLQ message. Each test stops a redrive at one point, against a real moto
server process with the real worker running, then checks that every job is still in
the DLQ or queued, that one more redrive finishes the work, and that every job then
completes exactly once.

- in-process (taskq.dlq): a step hook raises, as if the process died right after that
  step; the `finally` of a run makes untaken messages visible again;
- a child process that os._exit()s after a step: no cleanup at all, the messages come
  back only when their visibility runs out;
- the real `taskq` command interrupted by SIGINT (Ctrl-C) in the middle of a rate-limited
  redrive.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import pytest

from taskq.dlq import Action, DeadEntry, DeadLetters, Selector
from taskq.models import Status
from tests.acceptance.conftest import (
    Ran,
    Stack,
    base_env,
    completed_once_after_redrive,
    taskq_command,
)

pytestmark = pytest.mark.integration  # a real moto server process and the real worker


class Crash(BaseException):
    """The process dying at this point: nothing on the way catches it."""


LIVE = (Status.PENDING, Status.RUNNING, Status.COMPLETED)


def failed_jobs(stack: Stack, count: int) -> list[str]:
    """`fail` jobs that fail on their only attempt: a keep-attempts redrive completes them."""
    ids = [stack.submit("fail", {"times": 1}, max_attempts=1) for _ in range(count)]
    stack.wait_status(ids, Status.FAILED)
    # The worker records the failure, then sends the DLQ message: wait for the messages too.
    deadline = time.monotonic() + 20
    while not set(ids) <= in_dlq(stack):
        assert time.monotonic() < deadline, f"not all in the DLQ: {set(ids) - in_dlq(stack)}"
        time.sleep(0.2)
    return ids


def in_dlq(stack: Stack) -> set[str]:
    return {e.job_id or "" for e in stack.dead.list_messages().entries}


def accounted_for(stack: Stack, ids: list[str]) -> None:
    """No job lost: each is still in the DLQ, or queued (pending, running or completed)."""
    waiting = in_dlq(stack)
    for job_id in ids:
        status = stack.store.get(job_id).status
        assert job_id in waiting or status in LIVE, (job_id, status)


def finish(stack: Stack, ids: list[str]) -> None:
    """One more redrive (in-process, keeping attempts), then every job completes once."""
    report = stack.dead.redrive(Selector(ids=frozenset(ids)), actor="retry", reset_attempts=False)
    assert report.complete, report.to_dict()
    stack.wait_status(ids, Status.COMPLETED)
    time.sleep(1.0)  # let any duplicate message reach the worker, which must not run it
    for job_id in ids:
        job = stack.store.get(job_id)
        assert completed_once_after_redrive(job), [
            (e.kind, e.attempt, e.detail, e.error) for e in job.events
        ]
    assert not in_dlq(stack) & set(ids)


def test_stopped_after_each_step(stack: Stack) -> None:
    ids = failed_jobs(stack, 6)
    pairs = {"reset": ids[0:2], "sent": ids[2:4], "deleted": ids[4:6]}
    first: dict[str, str] = {}  # step -> the job that got as far as that step
    for step, pair in pairs.items():

        def crash(name: str, entry: DeadEntry, step: str = step) -> None:
            if name == step:
                assert entry.job_id is not None
                first[step] = entry.job_id
                raise Crash(step)

        dead = DeadLetters(stack.store, stack.queue, on_step=crash)
        with pytest.raises(Crash):
            dead.redrive(Selector(ids=frozenset(pair)), actor="crashing", reset_attempts=False)

    waiting = in_dlq(stack)  # also: nothing left hidden (the run's finally released it)
    for step, pair in pairs.items():
        (other,) = set(pair) - {first[step]}
        assert stack.store.get(other).status == Status.FAILED and other in waiting
    # After the reset: pending, never sent, and its DLQ message still there.
    assert stack.store.get(first["reset"]).status == Status.PENDING
    assert first["reset"] in waiting
    # After the send: queued (the worker may already run it), the DLQ message kept.
    assert stack.store.get(first["sent"]).status in LIVE
    assert first["sent"] in waiting
    # After the delete: done with; only the worker has it now.
    assert stack.store.get(first["deleted"]).status in LIVE
    assert first["deleted"] not in waiting
    accounted_for(stack, ids)
    finish(stack, ids)


def test_a_run_killed_outright_leaves_its_messages_to_come_back(
    taskq: Callable[..., Ran], stack: Stack
) -> None:
    ids = failed_jobs(stack, 3)
    driver = textwrap.dedent(
        f"""
        import os, boto3
        from taskq.dlq import DeadLetters, Selector
        from taskq.queue import JobQueue
        from taskq.store import JobStore

        env = os.environ
        sqs = boto3.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"])
        ddb = boto3.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL"])
        sends = 0

        def die_after_second_send(step, entry):
            global sends
            if step == "sent":
                sends += 1
                if sends == 2:
                    os._exit(9)  # no finally, no cleanup: a SIGKILL at this point

        DeadLetters(
            JobStore(env["TASKQ_TABLE"], ddb),
            JobQueue(sqs, env["TASKQ_QUEUE_URL"], env["TASKQ_DLQ_URL"]),
            visibility_s=2,
            on_step=die_after_second_send,
        ).redrive(Selector(ids=frozenset({sorted(ids)!r})), actor="doomed", reset_attempts=False)
        """
    )
    child = subprocess.run(
        [sys.executable, "-c", driver],
        env=base_env() | stack.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert child.returncode == 9, child.stderr

    # Two messages were left hidden (the 2nd job's, sent but not deleted; the 3rd, not
    # reached): they are back once the dead run's visibility of 2 s runs out.
    stack.wait_dlq_visible(2, timeout=10)
    accounted_for(stack, ids)
    ran = taskq("dlq", "redrive", *[a for i in ids for a in ("--id", i)], "--keep-attempts",
                "--yes", "--json")  # fmt: skip
    assert ran.code == 0, ran.err
    actions = sorted(m["action"] for m in ran.json()["messages"])
    assert actions in (["cleared", "redriven"], ["redriven", "requeued"])
    stack.wait_status(ids, Status.COMPLETED)
    time.sleep(1.0)
    for job_id in ids:
        assert completed_once_after_redrive(stack.store.get(job_id))
    assert not in_dlq(stack) & set(ids)


def test_ctrl_c_in_the_middle_of_a_redrive(taskq: Callable[..., Ran], stack: Stack) -> None:
    ids = failed_jobs(stack, 6)
    selectors = [a for i in ids for a in ("--id", i)]
    process = subprocess.Popen(
        [*taskq_command(), "dlq", "redrive", *selectors, "--keep-attempts", "--rate", "1",
         "--yes"],
        env=base_env() | stack.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C's default, even when this run was started in the background of a
        # non-interactive shell, which starts its jobs with SIGINT ignored (inherited).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while sum(stack.store.get(i).status != Status.FAILED for i in ids) < 2:
            assert time.monotonic() < deadline, "the redrive never started"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("taskq: error: interrupted")
    assert "Traceback" not in err

    accounted_for(stack, ids)
    untouched = [i for i in ids if stack.store.get(i).status == Status.FAILED]
    assert untouched, "the rate limit should have left some jobs for later"
    # What the interrupted run had not taken is visible again at once, not in 60 s.
    assert stack.dlq_depth()["in_flight"] == 0
    assert set(untouched) <= in_dlq(stack)
    finish(stack, ids)


def test_orphans_survive_any_redrive(stack: Stack) -> None:
    stack.dead_letter_raw("{broken")
    report = stack.dead.redrive(Selector(everything=True), actor="orphan-check")
    assert [o.action for o in report.outcomes if o.entry.job_id is None] == [Action.ORPHAN]
    assert "" in in_dlq(stack)
