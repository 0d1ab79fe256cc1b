"""A local SQS event source mapping that behaves like Lambda's.

Long polling, batch size and batching window, maximum concurrency, the SQS event shape and the
ReportBatchItemFailures rules all follow AWS: what the function did not acknowledge is left
on the queue to come back after its visibility timeout.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from infra.clients import client
from infra.sandbox import Invocable, InvokeError
from infra.service import WorkerThreads
from infra.template import SqsEventSpec

log = logging.getLogger(__name__)

WAIT_TIME_S = 1  # long-poll wait per receive: short, so stop() is prompt
_RETRY_SLEEP_S = 1.0


@dataclass
class PollerStats:
    """Counters for the dev banner and benchmarks."""

    batches: int = 0
    records: int = 0
    invocation_errors: int = 0
    failed_records: int = 0  # reported in batchItemFailures, or in a batch that failed whole
    deleted: int = 0


class EventSourcePoller:
    """`maximum_concurrency` threads, each receiving a batch, invoking, then deleting successes."""

    def __init__(
        self,
        function: Invocable,
        queue_url: str,
        queue_arn: str,
        spec: SqsEventSpec,
        *,
        endpoint_url: str | None,
        region: str,
    ) -> None:
        self.function = function
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.spec = spec
        self.region = region
        self._sqs = client("sqs", endpoint_url=endpoint_url, region=region)
        self._workers = WorkerThreads()
        self._stop = self._workers.stopping  # set by stop(): every loop here watches it
        self._lock = threading.Lock()
        self._stats = PollerStats()

    @property
    def stats(self) -> PollerStats:
        with self._lock:
            return dataclasses.replace(self._stats)

    def start(self) -> EventSourcePoller:
        self._workers.start(
            (f"poller-{self.function.name}-{i}", self._run)
            for i in range(self.spec.maximum_concurrency)
        )
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling; waits up to `timeout` for invocations in flight."""
        self._workers.stop(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll_once()
            except Exception:  # never let one bad round (emulator down, bug) end the poller
                log.exception("%s: polling %s failed; retrying", self.function.name, self.queue_url)
                self._stop.wait(_RETRY_SLEEP_S)

    def _poll_once(self) -> None:
        messages = self._gather()
        if not messages or self._stop.is_set():
            return  # received but not invoked: they come back after the visibility timeout
        event = {"Records": [self._record(m) for m in messages]}
        self._count(batches=1, records=len(messages))
        try:
            response = self.function.invoke(event)
        except InvokeError as exc:
            log.warning("%s: batch of %d failed: %s", self.function.name, len(messages), exc)
            self._count(invocation_errors=1, failed_records=len(messages))
            return  # nothing deleted, as on AWS
        ids = {m["MessageId"] for m in messages}
        failed = failed_message_ids(
            response, ids, report_failures=self.spec.report_batch_item_failures
        )
        if failed is None:
            log.warning("%s: invalid partial batch response: %.200r", self.function.name, response)
        done = [m for m in messages if failed is not None and m["MessageId"] not in failed]
        self._count(failed_records=len(messages) - len(done))
        self._delete(done)

    def _gather(self) -> list[dict[str, Any]]:
        """Up to batch_size messages, waiting at most the batching window after the first."""
        messages = self._receive(WAIT_TIME_S)
        deadline = time.monotonic() + self.spec.max_batching_window_s
        seen = {m["MessageId"] for m in messages}
        while messages and len(messages) < self.spec.batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for message in self._receive(min(WAIT_TIME_S, math.ceil(remaining)), len(messages)):
                if message["MessageId"] not in seen:
                    seen.add(message["MessageId"])
                    messages.append(message)
        return messages

    def _receive(self, wait: int, have: int = 0) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(10, self.spec.batch_size - have),
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
            ]
            for attempt in range(3):
                try:
                    result = self._sqs.delete_message_batch(
                        QueueUrl=self.queue_url, Entries=entries
                    )
                    break
                except Exception as exc:  # logged and retried; undeleted messages come back
                    log.warning(
                        "%s: delete failed (%s), attempt %d", self.function.name, exc, attempt + 1
                    )
                    time.sleep(0.2)
            else:
                continue
            for failure in result.get("Failed", []):
                log.warning("%s: could not delete a message: %s", self.function.name, failure)
            self._count(deleted=len(result.get("Successful", [])))

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        """One record of Lambda's SQS event."""
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {
                name: _message_attribute(value)
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        }

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + value)


def failed_message_ids(response: Any, ids: set[str], *, report_failures: bool) -> set[str] | None:
    """Message ids the function did not process; None when the whole batch counts as failed.

    Without ReportBatchItemFailures any return is success. With it (AWS's rules): None, {},
    a missing or empty batchItemFailures list mean success; an identifier that is missing,
    empty or not in the batch, or any other shape, fails the whole batch.
    """
    if not report_failures or response is None:
        return set()
    if not isinstance(response, dict):
        return None
    items = response.get("batchItemFailures")
    if items is None:
        return set()
    if not isinstance(items, list):
        return None
    failed = set()
    for item in items:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or ident not in ids:
            return None
        failed.add(ident)
    return failed


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """SQS's MessageAttributeValue in the shape Lambda's event uses (camelCase, base64 binary)."""
    out: dict[str, Any] = {}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    out["stringListValues"] = list(value.get("StringListValues", []))
    out["binaryListValues"] = [
        base64.b64encode(b).decode() for b in value.get("BinaryListValues", [])
    ]
    out["dataType"] = value["DataType"]
    return out
