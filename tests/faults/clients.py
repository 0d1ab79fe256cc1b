"""The fault suite's clients: submitters posting every planned job over real HTTP (one at
a time, with or without an idempotency key, or in batches) and a canceller, each retrying
as a client would, and each recording in the ledger what the API answered."""

from __future__ import annotations

import http.client
import queue
import time
from typing import Any

from tests.faults.plan import JobPlan
from tests.faults.suite_state import SuiteState
from tests.integration.http import Reply, call


class ClientDrivers(SuiteState):
    """The suite's submitting and cancelling threads' loops (FaultSuite starts them)."""

    def _units(self) -> list[list[JobPlan]]:
        batch: list[JobPlan] = []
        units: list[list[JobPlan]] = []
        for plan in self.plans:
            if plan.mode == "batch":
                batch.append(plan)
                if len(batch) == 10:
                    units.append(batch)
                    batch = []
            else:
                units.append([plan])
        if batch:
            units.append(batch)
        self._remaining = self._units_total = len(units)
        return units

    def _submitter(self) -> None:
        while not self.stop.is_set():
            try:
                unit = self._work.get(timeout=0.2)
            except queue.Empty:
                continue
            while not self.stop.is_set() and self._outstanding >= self.config.outstanding:
                time.sleep(0.2)  # backpressure: keep the backlog near what the workers take
            if len(unit) > 1 or unit[0].mode == "batch":
                self._submit_batch(unit)
            else:
                self._submit_one(unit[0])
            with self.ledger.lock:
                self._remaining -= 1
                if self._remaining == 0:
                    self.phases["all submitted"] = time.monotonic() - self.started
                    self.submitted.set()

    def _post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Reply | None:
        """POST with a client's retries: on 5xx and connection errors, up to 8 tries."""
        assert self.cloud is not None
        for attempt in range(8):
            try:
                reply = call("POST", f"{self.cloud.api_url}{path}", body, headers=headers,
                             timeout=20)  # fmt: skip
            except (OSError, http.client.HTTPException) as exc:
                reason = f"connection ({type(exc).__name__})"
            else:
                if reply.status < 500:
                    return reply
                reason = str(reply.status)
            with self.ledger.lock:
                self.ledger.client_retries[reason] += 1
            time.sleep(min(2.0, 0.1 * 2**attempt) * (0.5 + self.rng.random()))
        return None

    def _submit_one(self, plan: JobPlan) -> None:
        headers = {"Idempotency-Key": plan.key} if plan.key else {}
        for _ in range(5):
            reply = self._post("/jobs", plan.body, headers)
            if reply is not None and reply.status == 409 and plan.mode == "nokey":
                # "job id collided; submit again": what the API tells a client to do. Random
                # ids never collide: the API misread its own retried write (a bug).
                with self.ledger.lock:
                    self.ledger.client_retries["409 collided"] += 1
                    self.ledger.errors.append(f"n={plan.n}: 409 on a submit without a key")
                continue
            break
        if reply is None or reply.status != 202:
            self._rejected(plan, reply)
            return
        job_id = str(reply.json()["id"])
        self._accept(job_id, plan)
        if plan.cancel:
            self._cancel_queue.put((time.monotonic() + self.rng.uniform(0.0, 1.5), job_id))

    def _submit_batch(self, plans: list[JobPlan]) -> None:
        pending = list(plans)
        for _ in range(5):
            reply = self._post("/jobs:batch", {"jobs": [p.body for p in pending]})
            if reply is None or reply.status not in (202, 422):
                continue
            again = []
            for item, plan in zip(reply.json()["items"], pending, strict=True):
                if item["status"] == 202:
                    self._accept(str(item["job"]["id"]), plan)
                elif item["status"] >= 500:
                    again.append(plan)
                else:
                    self._rejected(plan, reply)
            pending = again
            if not pending:
                return
        for plan in pending:
            self._rejected(plan, None)

    def _accept(self, job_id: str, plan: JobPlan) -> None:
        with self.ledger.lock:
            self.ledger.accepted[job_id] = plan.n
            self.ledger.modes[plan.mode] += 1
            self._outstanding += 1
            for attempt in range(1, int(plan.payload.get("stall_until", 0)) + 1):
                self._stalling.add((job_id, attempt))

    def _rejected(self, plan: JobPlan, reply: Reply | None) -> None:
        with self.ledger.lock:
            self.ledger.rejected.append(
                (plan.n, reply.status if reply else 0, reply.body[:200].decode() if reply else "")
            )

    def _canceller(self) -> None:
        while not self.stop.is_set():
            try:
                due, job_id = self._cancel_queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self.stop.wait(max(0.0, due - time.monotonic()))
            reply = self._post(f"/jobs/{job_id}/cancel", None)
            if reply is not None and reply.status == 200:
                outcome = "cancelled"
            elif reply is not None and reply.status == 409:
                # A retried cancel whose first try worked (response lost) says "it is cancelled".
                cancelled = "it is cancelled" in reply.json().get("detail", "")
                outcome = "cancelled" if cancelled else "refused"
            else:
                outcome = "unknown"
            with self.ledger.lock:
                self.ledger.cancels[job_id] = outcome
