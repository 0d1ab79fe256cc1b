"""The worker's async side of AWS: one event loop per process, aioboto3 clients on it.

Lambda keeps a process warm between invocations, and an aioboto3 client is bound to the
event loop that opened it; so the process keeps one loop (`run`) and its clients open
across invocations, rather than `asyncio.run` making (and closing) a loop per batch.
That is also why the worker does not use Powertools' async batch processor: outside
Lambda's own runtime it runs each batch under a fresh `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from taskq import aws

T = TypeVar("T")
_loop: asyncio.AbstractEventLoop | None = None
_opened: list[AioClient] = []  # closed by shutdown(), on the loop that opened them
_aio_session: Any = None  # one aioboto3 session for all the clients (`_session`)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on the process's loop (made on first use)."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    return _loop.run_until_complete(coro)


@atexit.register
def shutdown() -> None:
    """Close the process's aioboto3 clients and its loop (at exit, or when a test resets
    the process's caches), so no aiohttp session is left unclosed."""
    global _loop, _aio_session
    _aio_session = None
    if _loop is not None and not _loop.is_closed():
        mine = [c for c in _opened if c.loop is _loop]
        _loop.run_until_complete(_close_all(mine))
        _loop.close()
    _loop = None
    _opened.clear()


async def _close_all(clients: list[AioClient]) -> None:
    await asyncio.gather(*(client.close() for client in clients))


def _session() -> Any:
    """The process's one aioboto3 session, for all its clients (as `aws.client`'s)."""
    global _aio_session
    if _aio_session is None:
        import aioboto3  # the async path's cost is paid where it is used

        _aio_session = aioboto3.Session()
    return _aio_session


class AsyncCaller(Protocol):
    """What the async store and queue send their requests through."""

    service: str

    async def call(self, operation: str, kwargs: dict[str, Any]) -> Any: ...


class AioClient:
    """An aioboto3 client, opened on first use on the running loop and kept open.

    Opened again if the loop changes (a test's fresh loop); on Lambda it never does.
    """

    def __init__(self, service: str, region: str, endpoint_url: str | None = None) -> None:
        self.service = service
        self.region = region
        self.endpoint_url = endpoint_url
        self._client: Any = None
        self._context: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None

    async def call(self, operation: str, kwargs: dict[str, Any]) -> Any:
        return await aws.acall(await self._open(), self.service, operation, kwargs)

    async def close(self) -> None:
        if self._context is not None:
            context, self._context, self._client = self._context, None, None
            await context.__aexit__(None, None, None)

    async def _open(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is not None and self.loop is loop:
            return self._client
        if self._opening is None or self.loop is not loop:
            self._opening, self.loop, self._client = asyncio.Lock(), loop, None
        async with self._opening:  # ten records' first calls open one client, not ten
            if self._client is None:
                self._context = _session().client(
                    self.service,
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=aws.CLIENT_CONFIG,
                )
                self._client = await self._context.__aenter__()
                _opened.append(self)
            return self._client


class ThreadedClient:
    """A sync botocore client behind the async interface (calls run in threads): for
    moto's in-process mock in unit tests, which patches botocore but not aiobotocore."""

    def __init__(self, service: str, client: Any) -> None:
        self.service = service
        self.client = client

    async def call(self, operation: str, kwargs: dict[str, Any]) -> Any:
        return await asyncio.to_thread(aws.call, self.client, self.service, operation, kwargs)
