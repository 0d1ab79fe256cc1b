"""X-Ray tracing (Powertools Tracer): one shared instance, on only where an X-Ray daemon runs.

Lambda gives a traced function (template.yaml: `Tracing: Active`) the daemon's address in
AWS_XRAY_DAEMON_ADDRESS. The local sandboxes, `sam local` (AWS_SAM_LOCAL) and tests have no
daemon: there the tracer is disabled with a do-nothing provider, so the X-Ray SDK is not even
imported (its import builds AWS clients: about 150 ms of cold start for nothing).
POWERTOOLS_TRACE_DISABLED=true turns tracing off anywhere.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Generator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "taskq"
_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})


def tracing_enabled(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if env.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in _TRUE:
        return False
    if env.get("AWS_SAM_LOCAL"):
        return False
    return bool(env.get("LAMBDA_TASK_ROOT") and env.get("AWS_XRAY_DAEMON_ADDRESS"))


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None:
        pass

    def add_subsegment(self, subsegment: Any) -> None:
        pass

    def remove_subsegment(self, subsegment: Any) -> None:
        pass

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        pass


class _NoTracing(BaseProvider):
    """The provider of a disabled tracer: every call does nothing."""

    @contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Generator[BaseSegment, None, None]:
        yield _NoSegment()

    @asynccontextmanager
    async def in_subsegment_async(
        self, name: Any = None, **kwargs: Any
    ) -> AsyncGenerator[BaseSegment, None]:
        yield _NoSegment()

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Sequence[str]) -> None:
        pass

    def patch_all(self) -> None:
        pass


def _tracer() -> Tracer:
    if tracing_enabled():
        return Tracer(service=SERVICE)  # X-Ray; patches boto3 so AWS calls show as subsegments
    return Tracer(service=SERVICE, disabled=True, provider=_NoTracing())


tracer = _tracer()
