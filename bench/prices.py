"""AWS list prices the cost figures use: one table, its region and its date.

Region us-east-1, on-demand list prices, free tiers left out. As published on AWS's
pricing pages in 2025 and repeated by third-party summaries dated 2025-2026 (DynamoDB
on-demand after its November 2024 halving); not re-checked against aws.amazon.com from
the machine that wrote this (it has no internet). Check them before relying on a figure.
"""

from __future__ import annotations

REGION = "us-east-1"
AS_OF = "2025 (unverified here)"

# USD per unit.
LAMBDA_REQUEST = 0.20 / 1e6
LAMBDA_GB_SECOND = {"arm64": 0.0000133334, "x86_64": 0.0000166667}  # first tier
DYNAMODB_WRITE_REQUEST_UNIT = 0.625 / 1e6  # on-demand: 1 KB of item per write, per index
DYNAMODB_READ_REQUEST_UNIT = 0.125 / 1e6  # on-demand: 4 KB strongly consistent read
SQS_REQUEST = 0.40 / 1e6  # standard queue; each 64 KB of payload is one request
HTTP_API_REQUEST = 1.00 / 1e6  # API Gateway HTTP API, first 300 M a month, per 512 KB
LOGS_INGESTED_GB = 0.50  # CloudWatch Logs, standard class
XRAY_TRACE_RECORDED = 5.00 / 1e6

# Not prices, but what the log estimate adds per invocation: Lambda's own START, END and
# REPORT lines (with an X-Ray trace id when tracing is on). An estimate, not measured.
LAMBDA_PLATFORM_LOG_BYTES = 350
# X-Ray's default sampling rule: the first request each second, then 5 %; at volume ~5 %.
XRAY_SAMPLED_SHARE = 0.05
