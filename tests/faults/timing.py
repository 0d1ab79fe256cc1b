"""The fault suite's clock, in one place because its values only work together.

The template's values (visibility 190 s, worker timeout 30 s) are for production; the suite
deploys a variant with these, so that every kind of lateness (past the visibility timeout,
past the lease, past the function timeout) happens within seconds.
"""

from __future__ import annotations

from taskq.backoff import LEASE_GRACE_S

VISIBILITY_S = 3  # the job queue's visibility timeout (set on the queue after provisioning)
TASK_TIMEOUT_S = 4.0  # chaos_tasks.TASK_TIMEOUT_S
LEASE_S = TASK_TIMEOUT_S + LEASE_GRACE_S  # a claim lasts this long (9 s)
WORKER_TIMEOUT_S = 15  # the worker function's timeout: above the overrun, below the hang
SLOW_S = VISIBILITY_S + 0.5  # past the visibility timeout, under the task timeout
OVERRUN_S = LEASE_S + 3.0  # past the lease, under the function timeout: fencing decides
HANG_S = WORKER_TIMEOUT_S + 10.0  # past the function timeout: the invocation is killed
STALE_S = 10  # TASKQ_STALE_AFTER_SECONDS for the sweeper (production: 300)
SWEEP_EVERY_S = 2.5
# In the error of store.fail_abandoned's event: written by whoever found the last attempt's
# lease lapsed, at that moment, not by the attempt (which ended by its lease).
ABANDONED = "lease expired"
assert VISIBILITY_S < SLOW_S < TASK_TIMEOUT_S < LEASE_S < OVERRUN_S < WORKER_TIMEOUT_S < HANG_S
