"""Regenerate (or --check) the Lambda events in this folder with `sam local generate-event`.

    python tests/events/generate.py [--sam .venv-sam/bin/sam] [--check]     (make events)

Each file is what the SAM CLI prints, as is, except where PATCHES says otherwise:

- the POST events get a `content-type: application/json` header, which the generator never
  writes: FastAPI reads a body without it as no JSON at all (422, "Input should be a valid
  dictionary"), as it would from a real client that leaves the header out;
- the generated SQS event with a taskq message: the generator pastes `--body` into its
  JSON unescaped (a JSON body breaks the document), so it is generated with a placeholder
  body, which is then replaced by a queue message and `md5OfBody` recomputed. Its job id
  is all zeros: tests put the id of a job they created there.

Left unpatched on purpose, since the handlers must take them as they come: `--path`
given without its leading `/` (the generator adds one), base64 bodies, HTTP API events
with `routeKey: $default`, the sample query strings, cookies and headers, the SQS
sample's `Hello from SQS!` body (not a taskq message: it is dead-lettered).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ZERO_JOB_ID = "0" * 32
JOB_MESSAGE = json.dumps({"v": 1, "job_id": ZERO_JOB_ID, "task": "echo"}, separators=(",", ":"))
SUBMIT_BODY = json.dumps({"task": "echo", "payload": {"message": "hi from sam"}})

# file name -> the generate-event arguments
EVENTS: dict[str, list[str]] = {
    "apigw-http-get-healthz.json": ["apigateway", "http-api-proxy", "--method", "GET",
                                    "--path", "healthz"],
    "apigw-http-post-jobs.json": ["apigateway", "http-api-proxy", "--method", "POST",
                                  "--path", "jobs", "--body", SUBMIT_BODY],
    "apigw-rest-get-healthz.json": ["apigateway", "aws-proxy", "--method", "GET",
                                    "--path", "healthz"],
    "apigw-rest-post-jobs.json": ["apigateway", "aws-proxy", "--method", "POST",
                                  "--path", "jobs", "--body", SUBMIT_BODY],
    "sqs-receive-message.json": ["sqs", "receive-message"],
    "sqs-job-message.json": ["sqs", "receive-message", "--body", "PLACEHOLDER"],
}  # fmt: skip


def _job_message(event: dict[str, Any]) -> dict[str, Any]:
    for record in event["Records"]:
        record["body"] = JOB_MESSAGE
        record["md5OfBody"] = hashlib.md5(JOB_MESSAGE.encode(), usedforsecurity=False).hexdigest()
    return event


def _json_content_type(event: dict[str, Any]) -> dict[str, Any]:
    event["headers"]["content-type"] = "application/json"
    if "multiValueHeaders" in event:  # REST (1.0) events carry both forms
        event["multiValueHeaders"]["content-type"] = ["application/json"]
    return event


PATCHES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "apigw-http-post-jobs.json": _json_content_type,
    "apigw-rest-post-jobs.json": _json_content_type,
    "sqs-job-message.json": _job_message,
}


def generate(sam: str) -> dict[str, str]:
    """File name -> its text, freshly generated (and patched)."""
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    texts = {}
    for name, args in EVENTS.items():
        out = subprocess.run(
            [sam, "local", "generate-event", *args],
            check=True, capture_output=True, text=True, env=env, timeout=120,
        ).stdout  # fmt: skip
        event = json.loads(out)
        patch = PATCHES.get(name)
        if patch is not None:
            event = patch(event)
        texts[name] = json.dumps(event, indent=2) + "\n"
    return texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", default=str(ROOT / ".venv-sam" / "bin" / "sam"))
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args()
    stale = []
    for name, text in generate(args.sam).items():
        path = HERE / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date (run make events): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
