"""The CLI's argument parsing and configuration, without AWS."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from taskq.cli.context import settings_from
from taskq.cli.options import make_selector, parse_duration, parse_payload
from taskq.cli.render import age_span
from taskq.errors import BackendError, ConfigError, UsageError

ENV = {
    "TASKQ_TABLE": "jobs",
    "TASKQ_QUEUE_URL": "http://localhost/q",
    "TASKQ_DLQ_URL": "http://localhost/dlq",
}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7_200), ("7d", 604_800), ("1h30m", 5_400), ("0s", 0),
     ("2H", 7_200), (" 5m ", 300)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "1.5h", "-3m", "5m1h", "1 h", "ms"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a duration \(use 30s, 15m, 2h or 7d\)"):
        parse_duration(text)


def test_payload_inline_file_and_stdin(tmp_path: Path) -> None:
    assert parse_payload(None) == {}
    assert parse_payload('{"times": 3}') == {"times": 3}
    file = tmp_path / "payload.json"
    file.write_text('{"message": "hi"}')
    assert parse_payload(f"@{file}") == {"message": "hi"}
    assert parse_payload("@-", stdin=lambda: '{"n": 1}') == {"n": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{nope", "is not JSON"),
        ("[1, 2]", "must be a JSON object, got list"),
        ('"text"', "must be a JSON object, got str"),
        ("@/no/such/file.json", "cannot read --payload file"),
    ],
)
def test_bad_payloads(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_payload(text)


def selector(**kwargs: Any) -> Any:
    args: dict[str, Any] = {
        "ids": [],
        "task": None,
        "error_match": None,
        "older_than": None,
        "newer_than": None,
        "everything": False,
        "required": True,
    }
    args.update(kwargs)
    required = args.pop("required")
    return make_selector(*args.values(), required=required)


def test_a_changing_command_must_say_which_messages() -> None:
    with pytest.raises(UsageError, match="say which messages"):
        selector()
    assert selector(required=False).has_criteria is False  # listing: everything
    assert selector(everything=True).everything
    assert selector(task="fail").task == "fail"
    assert selector(older_than=0.0).older_than_s == 0.0


def test_all_is_not_combined_with_filters() -> None:
    with pytest.raises(UsageError, match="--all"):
        selector(everything=True, task="fail")


def test_ids_are_job_ids_or_message_ids() -> None:
    job_id = "a" * 32
    message_id = "0b1c6a3e-6a43-4f4a-a0b4-0f6e5c1d2e3f"
    assert selector(ids=[job_id, message_id]).ids == {job_id, message_id}
    with pytest.raises(UsageError, match="neither a job id nor a DLQ message id"):
        selector(ids=["../etc/passwd"])


def test_an_empty_age_window_is_refused() -> None:
    with pytest.raises(UsageError, match="--newer-than must be longer"):
        selector(older_than=7_200.0, newer_than=3_600.0)
    window = selector(older_than=60.0, newer_than=3_600.0)
    assert (window.older_than_s, window.newer_than_s) == (60.0, 3_600.0)


def test_missing_variables_are_named_with_what_to_do() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from({"TASKQ_QUEUE_URL": "x"})
    assert str(caught.value).startswith(
        "missing environment variable(s): TASKQ_TABLE, TASKQ_DLQ_URL (run make dev, or export "
        "the names from its banner"
    )
    settings = settings_from({**ENV, "AWS_ENDPOINT_URL": "http://127.0.0.1:5000"})
    assert (settings.table_name, settings.endpoint_url) == ("jobs", "http://127.0.0.1:5000")


class FakeCloudFormation:
    def __init__(self, outputs: dict[str, str] | None = None, error: str | None = None) -> None:
        self.outputs = outputs or {}
        self.error = error
        self.asked: list[str] = []

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        self.asked.append(StackName)
        if self.error:
            raise ClientError(
                {
                    "Error": {
                        "Code": self.error,
                        "Message": f"Stack with id {StackName} does not exist",
                    }
                },
                "DescribeStacks",
            )
        outputs = [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]
        return {"Stacks": [{"StackName": StackName, "Outputs": outputs}]}


def test_a_stack_names_the_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCloudFormation(
        {
            "JobsTableName": "taskq-prod-jobs",
            "ApiKeysTableName": "taskq-prod-api-keys",
            "JobQueueUrl": "https://sqs/q",
            "DeadLetterQueueUrl": "https://sqs/dlq",
            "ApiUrl": "https://api",
        }
    )
    monkeypatch.setattr("taskq.aws.client", lambda *args: fake)
    settings = settings_from({"AWS_REGION": "eu-west-1"}, stack="taskq-prod")
    assert (settings.table_name, settings.queue_url, settings.dlq_url) == (
        "taskq-prod-jobs",
        "https://sqs/q",
        "https://sqs/dlq",
    )
    assert settings.keys_table == "taskq-prod-api-keys"
    assert fake.asked == ["taskq-prod"]


def test_a_stack_that_is_missing_or_incomplete_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        "taskq.aws.client", lambda *args: FakeCloudFormation(error="ValidationError")
    )
    with pytest.raises(ConfigError, match="does not exist"):
        settings_from({}, stack="nope")
    monkeypatch.setattr("taskq.aws.client", lambda *args: FakeCloudFormation({"ApiUrl": "x"}))
    with pytest.raises(ConfigError, match="has no output"):
        settings_from({}, stack="other")
    monkeypatch.setattr("taskq.aws.client", lambda *args: FakeCloudFormation(error="Throttling"))
    with pytest.raises(BackendError):
        settings_from({}, stack="busy")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (60, "1m"), (3_599, "59m"), (3_660, "1h01m"), (90_000, "1d01h")],
)
def test_ages_for_people(seconds: float, text: str) -> None:
    assert age_span(seconds) == text
