"""A part of the local cloud that starts and stops: `with Part(...) as part:` does both."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Service:
    """Subclasses define start() (returning self) and stop(); stop() runs even on error."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
