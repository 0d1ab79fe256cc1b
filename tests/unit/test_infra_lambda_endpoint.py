"""How an answer of `sam local start-lambda` is read (infra/lambda_endpoint.py).

SAM leaves out X-Amz-Function-Error for awslambdaric's error JSON, so the shape decides; a
handler's own results (API responses, partial batch responses) must never read as errors.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.lambda_endpoint import _is_error


@pytest.mark.parametrize(
    "answer",
    [
        {"errorType": "RuntimeError", "errorMessage": "boom"},
        {"errorType": "E", "errorMessage": "m", "stackTrace": ["  File ..."], "requestId": "r"},
    ],
)
def test_lambdas_error_json_is_an_error(answer: dict[str, Any]) -> None:
    assert _is_error(answer)


@pytest.mark.parametrize(
    "answer",
    [
        {"batchItemFailures": []},
        {"statusCode": 500, "body": '{"errorType": "x", "errorMessage": "y"}'},
        {"errorType": "E", "errorMessage": "m", "statusCode": 200},
        {"errorMessage": "only the message"},
        None,
        ["errorType", "errorMessage"],
    ],
)
def test_a_handlers_own_result_is_not(answer: Any) -> None:
    assert not _is_error(answer)
