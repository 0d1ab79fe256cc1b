"""SQS: the job queue and its dead-letter queue. Messages carry only the job id and task."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from taskq.aio import AsyncCaller, ThreadedClient
from taskq.aws import call
from taskq.backoff import visibility_timeout
from taskq.models import QueueMessage

SEND_BATCH_MAX = 10  # SendMessageBatch / DeleteMessageBatch take at most 10 entries
SQS_DELAY_MAX_S = 900  # the longest DelaySeconds SQS accepts on a message


@dataclass(frozen=True)
class DeadLetter:
    """A message as it sits in the DLQ; its attributes hold the reason taskq put it there
    (taskq-reason), if taskq did."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]


class JobQueue:
    def __init__(self, sqs: Any, queue_url: str, dlq_url: str) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.dlq_url = dlq_url

    def send(self, job_id: str, task: str, delay_s: int = 0) -> str:
        """Queue a job's message; `delay_s` (at most SQS's 900) hides it until then."""
        body = QueueMessage(job_id=job_id, task=task).model_dump_json()
        response = self._call(
            "send_message", QueueUrl=self.queue_url, MessageBody=body, **_delay(delay_s)
        )
        return str(response["MessageId"])

    def send_many(self, jobs: Sequence[tuple[str, str, int]]) -> list[str]:
        """Send several jobs' messages, each (job id, task, delay_s); returns the ids of
        jobs whose send failed."""
        failed: list[str] = []
        for start in range(0, len(jobs), SEND_BATCH_MAX):
            chunk = jobs[start : start + SEND_BATCH_MAX]
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": QueueMessage(job_id=j, task=t).model_dump_json(),
                    **_delay(d),
                }
                for i, (j, t, d) in enumerate(chunk)
            ]
            response = self._call("send_message_batch", QueueUrl=self.queue_url, Entries=entries)
            failed.extend(chunk[int(f["Id"])][0] for f in response.get("Failed", []))
        return failed

    def delay(self, receipt_handle: str, seconds: int) -> None:
        """Hide a received message for `seconds`: SQS then redelivers it (the retry)."""
        self._call(
            "change_message_visibility", **delay_request(self.queue_url, receipt_handle, seconds)
        )

    def dead_letter(self, body: str, reason: str, attributes: dict[str, str] | None = None) -> None:
        """Put a message in the DLQ with the reason taskq gave up on it."""
        self._call("send_message", **dead_letter_request(self.dlq_url, body, reason, attributes))

    def receive_dead(
        self, *, max_messages: int = 10, visibility_s: int = 60, wait_s: int = 0
    ) -> list[DeadLetter]:
        response = self._call(
            "receive_message",
            QueueUrl=self.dlq_url,
            MaxNumberOfMessages=max(1, min(max_messages, 10)),
            VisibilityTimeout=visibility_s,
            WaitTimeSeconds=wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return [_dead_letter(m) for m in response.get("Messages", [])]

    def release_dead(self, receipt_handles: Iterable[str]) -> None:
        """Make DLQ messages we looked at but did not take visible again right away."""
        self.hold_dead(receipt_handles, 0)  # those SQS refuses are visible already

    def delete_dead(self, receipt_handle: str) -> None:
        self._call("delete_message", QueueUrl=self.dlq_url, ReceiptHandle=receipt_handle)

    def hold_dead(self, receipt_handles: Iterable[str], seconds: int) -> list[str]:
        """Keep received DLQ messages hidden `seconds` more, because an operation on them
        (a rate-limited redrive) outlasts the visibility they were received with.

        Returns the handles SQS refused (the message became visible and may have been
        received elsewhere): the caller no longer holds those and must leave them be.
        """
        handles = list(receipt_handles)
        refused: list[str] = []
        for start in range(0, len(handles), SEND_BATCH_MAX):
            chunk = handles[start : start + SEND_BATCH_MAX]
            response = self._call(
                "change_message_visibility_batch",
                QueueUrl=self.dlq_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": h,
                        "VisibilityTimeout": visibility_timeout(seconds),
                    }
                    for i, h in enumerate(chunk)
                ],
            )
            refused.extend(chunk[int(f["Id"])] for f in response.get("Failed", []))
        return refused

    def depth(self, dead: bool = False) -> dict[str, int]:
        response = self._call(
            "get_queue_attributes",
            QueueUrl=self.dlq_url if dead else self.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )
        attrs = response.get("Attributes", {})
        return {
            "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
            "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
        }

    def _call(self, operation: str, **kwargs: Any) -> Any:
        return call(self.sqs, "SQS", operation, kwargs)


def _dead_letter(message: dict[str, Any]) -> DeadLetter:
    attrs = {
        name: value.get("StringValue", "")
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return DeadLetter(
        message_id=message["MessageId"],
        receipt_handle=message["ReceiptHandle"],
        body=message.get("Body", ""),
        attributes={**message.get("Attributes", {}), **attrs},
    )


def _delay(seconds: int) -> dict[str, Any]:
    """SendMessage's DelaySeconds, only when there is one: SQS takes 0 to 900."""
    if not 0 <= seconds <= SQS_DELAY_MAX_S:
        raise ValueError(f"an SQS delay is 0 to {SQS_DELAY_MAX_S} seconds, not {seconds}")
    return {"DelaySeconds": seconds} if seconds else {}


def delay_request(queue_url: str, receipt_handle: str, seconds: int) -> dict[str, Any]:
    return {
        "QueueUrl": queue_url,
        "ReceiptHandle": receipt_handle,
        "VisibilityTimeout": visibility_timeout(seconds),
    }


def dead_letter_request(
    dlq_url: str, body: str, reason: str, attributes: dict[str, str] | None = None
) -> dict[str, Any]:
    """The DLQ send: the original body, and why taskq gave up on it (taskq-reason)."""
    attrs = {"taskq-reason": reason[:1000], **(attributes or {})}
    return {
        "QueueUrl": dlq_url,
        "MessageBody": body,
        "MessageAttributes": {
            name: {"DataType": "String", "StringValue": value or "-"}
            for name, value in attrs.items()
        },
    }


class AsyncJobQueue:
    """The worker's queue calls, awaited: the same requests as JobQueue's."""

    def __init__(self, sqs: AsyncCaller, queue_url: str, dlq_url: str) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.dlq_url = dlq_url

    @classmethod
    def beside(cls, queue: JobQueue) -> AsyncJobQueue:
        """The same queues as a sync JobQueue, its client run in threads."""
        return cls(ThreadedClient("SQS", queue.sqs), queue.queue_url, queue.dlq_url)

    async def delay(self, receipt_handle: str, seconds: int) -> None:
        """Hide a received message for `seconds`: SQS then redelivers it (the retry)."""
        request = delay_request(self.queue_url, receipt_handle, seconds)
        await self.sqs.call("change_message_visibility", request)

    async def dead_letter(
        self, body: str, reason: str, attributes: dict[str, str] | None = None
    ) -> None:
        await self.sqs.call(
            "send_message", dead_letter_request(self.dlq_url, body, reason, attributes)
        )


def parse_body(body: str) -> QueueMessage:
    """Parse a job message body; raises ValueError (pydantic's or json's) if it is not one."""
    return QueueMessage.model_validate(json.loads(body))
