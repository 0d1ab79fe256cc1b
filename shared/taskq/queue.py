"""SQS: the job queues (one per priority) and the dead-letter queue they share. Messages
carry only the job id and task; a job's priority picks its queue."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from taskq.aio import AsyncCaller, ThreadedClient
from taskq.aws import call
from taskq.backoff import visibility_timeout
from taskq.models import Priority, QueueMessage

SEND_BATCH_MAX = 10  # SendMessageBatch / DeleteMessageBatch take at most 10 entries
SQS_DELAY_MAX_S = 900  # the longest DelaySeconds SQS accepts on a message


class Outgoing(NamedTuple):
    """One job's message to send: to its priority's queue, after `delay_s` (0-900)."""

    job_id: str
    task: str
    delay_s: int = 0
    priority: Priority = Priority.DEFAULT


class QueueUrls:
    """The job queue of each priority (the default's stands in for one not configured)."""

    def __init__(self, default: str, others: Mapping[Priority, str] | None = None) -> None:
        self.default = default
        self.by_priority = {p: (others or {}).get(p) or default for p in Priority}
        self.by_priority[Priority.DEFAULT] = default

    def __getitem__(self, priority: Priority) -> str:
        return self.by_priority[priority]

    def for_source(self, arn: str | None) -> str:
        """The URL of the queue an SQS record came from (its eventSourceARN)."""
        name = (arn or "").rpartition(":")[2]
        for url in self.by_priority.values():
            if name and url.rstrip("/").rpartition("/")[2] == name:
                return url
        return self.default


@dataclass(frozen=True)
class DeadLetter:
    """A message as it sits in the DLQ; its attributes hold the reason taskq put it there
    (taskq-reason), if taskq did."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]


class JobQueue:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        dlq_url: str,
        priority_urls: Mapping[Priority, str] | None = None,
    ) -> None:
        self.sqs = sqs
        self.urls = QueueUrls(queue_url, priority_urls)
        self.queue_url = queue_url  # the default priority's
        self.dlq_url = dlq_url

    def send(
        self, job_id: str, task: str, delay_s: int = 0, priority: Priority = Priority.DEFAULT
    ) -> str:
        """Queue a job's message on its priority's queue; `delay_s` (at most SQS's 900)
        hides it until then."""
        body = QueueMessage(job_id=job_id, task=task).model_dump_json()
        response = self._call(
            "send_message", QueueUrl=self.urls[priority], MessageBody=body, **_delay(delay_s)
        )
        return str(response["MessageId"])

    def send_many(self, jobs: Sequence[Outgoing]) -> list[str]:
        """Send several jobs' messages, each to its priority's queue; returns the ids of
        jobs whose send failed."""
        failed: list[str] = []
        for priority in Priority:
            mine = [job for job in jobs if job.priority == priority]
            for start in range(0, len(mine), SEND_BATCH_MAX):
                chunk = mine[start : start + SEND_BATCH_MAX]
                entries = [
                    {
                        "Id": str(i),
                        "MessageBody": QueueMessage(
                            job_id=job.job_id, task=job.task
                        ).model_dump_json(),
                        **_delay(job.delay_s),
                    }
                    for i, job in enumerate(chunk)
                ]
                response = self._call(
                    "send_message_batch", QueueUrl=self.urls[priority], Entries=entries
                )
                failed.extend(chunk[int(f["Id"])].job_id for f in response.get("Failed", []))
        return failed

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

    def depth(self, dead: bool = False, priority: Priority = Priority.DEFAULT) -> dict[str, int]:
        response = self._call(
            "get_queue_attributes",
            QueueUrl=self.dlq_url if dead else self.urls[priority],
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

    def __init__(
        self,
        sqs: AsyncCaller,
        queue_url: str,
        dlq_url: str,
        priority_urls: Mapping[Priority, str] | None = None,
    ) -> None:
        self.sqs = sqs
        self.urls = QueueUrls(queue_url, priority_urls)
        self.dlq_url = dlq_url

    @classmethod
    def beside(cls, queue: JobQueue) -> AsyncJobQueue:
        """The same queues as a sync JobQueue, its client run in threads."""
        return cls(
            ThreadedClient("SQS", queue.sqs),
            queue.queue_url,
            queue.dlq_url,
            queue.urls.by_priority,
        )

    async def delay(self, receipt_handle: str, seconds: int, source_arn: str | None = None) -> None:
        """Hide a received message for `seconds`: SQS then redelivers it (the retry). The
        message's own queue (`source_arn`: the record's eventSourceARN) takes the call."""
        request = delay_request(self.urls.for_source(source_arn), receipt_handle, seconds)
        await self.sqs.call("change_message_visibility", request)

    async def requeue(self, body: str, delay_s: int, source_arn: str | None) -> None:
        """Send a received message's body again, to its own queue, after `delay_s`: a fresh
        message, so waiting does not count towards the queue's maxReceiveCount."""
        request = {
            "QueueUrl": self.urls.for_source(source_arn),
            "MessageBody": body,
            **_delay(delay_s),
        }
        await self.sqs.call("send_message", request)

    async def dead_letter(
        self, body: str, reason: str, attributes: dict[str, str] | None = None
    ) -> None:
        await self.sqs.call(
            "send_message", dead_letter_request(self.dlq_url, body, reason, attributes)
        )


def parse_body(body: str) -> QueueMessage:
    """Parse a job message body; raises ValueError (pydantic's or json's) if it is not one."""
    return QueueMessage.model_validate(json.loads(body))
