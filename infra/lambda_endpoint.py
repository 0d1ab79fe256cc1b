"""A function invoked through a Lambda Invoke endpoint: `sam local start-lambda` (`make sam-api`).

The local SQS poller and schedules call `invoke(event)` as they would on a local sandbox;
here that is Lambda's Invoke API (RequestResponse) against SAM's endpoint on loopback, which
runs the handler in a Lambda container. A handler's error comes back as Lambda reports it
(the X-Amz-Function-Error header and the error's JSON), and is raised as FunctionError, so
the poller treats it as on AWS: the whole batch fails and nothing is deleted.

`sam local start-lambda` sets that header only when the error's JSON has exactly the keys
it expects (aws/aws-sam-cli#1404, #1148); awslambdaric adds `requestId`, so SAM answers a
raised exception with a plain 200 (seen with SAM 1.170). The error's shape is therefore
recognised as well: nothing else a handler of taskq's returns looks like it.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from infra.clients import credentials_env
from infra.sandbox import FunctionError, InvokeError
from infra.template import FunctionSpec

COLD_START_ALLOWANCE_S = 60  # a container's start and the handler's imports, on a busy machine


class LambdaEndpointFunction:
    """One function of the template behind a Lambda Invoke endpoint (thread-safe)."""

    def __init__(self, spec: FunctionSpec, endpoint_url: str, region: str) -> None:
        self.spec = spec
        creds = credentials_env()
        session = boto3.session.Session(
            aws_access_key_id=creds.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=creds.get("AWS_SECRET_ACCESS_KEY", "testing"),
            region_name=region,
        )
        # One attempt: a retried Invoke could run the batch twice (SQS redelivers it instead).
        config = Config(
            retries={"total_max_attempts": 1},
            connect_timeout=5,
            read_timeout=spec.timeout + COLD_START_ALLOWANCE_S,
            max_pool_connections=20,
        )
        make: Any = session.client
        self._lambda = make("lambda", endpoint_url=endpoint_url, config=config)

    @property
    def name(self) -> str:
        return self.spec.function_name

    def invoke(self, event: Any) -> Any:
        """Invoke the function with `event` and return its JSON-decoded result."""
        try:
            response = self._lambda.invoke(
                FunctionName=self.spec.logical_id, Payload=json.dumps(event).encode()
            )
            payload = response["Payload"].read()
        except (BotoCoreError, ClientError) as exc:
            raise InvokeError(f"{self.name}: invoke failed: {exc}") from exc
        try:
            result = json.loads(payload) if payload else None
        except ValueError as exc:
            raise InvokeError(f"{self.name}: the answer is not JSON: {payload[:200]!r}") from exc
        if response.get("FunctionError") or _is_error(result):
            error = result if isinstance(result, dict) else {}
            raise FunctionError(
                str(error.get("errorType") or response.get("FunctionError") or "Unhandled"),
                str(error.get("errorMessage", "")),
                "".join(str(line) for line in error.get("stackTrace") or []),
            )
        return result

    def close(self) -> None:
        self._lambda.close()


_ERROR_KEYS = frozenset({"errorType", "errorMessage", "stackTrace", "requestId"})


def _is_error(result: Any) -> bool:
    """Lambda's JSON for a raised exception: errorType and errorMessage, and nothing else but
    the trace and the request id."""
    return (
        isinstance(result, dict)
        and {"errorType", "errorMessage"} <= result.keys()
        and result.keys() <= _ERROR_KEYS
    )
