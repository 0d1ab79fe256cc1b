"""A token bucket: `burst` at once, refilled at `rate` per second.

Used by the DLQ redrive (--rate) and by the local API gateway's throttling. Bounded, so
a pause (a slow call, an operator at a prompt) does not bank a flood.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take a token if there is one (0.0); else the seconds until one is free."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate

    def acquire(self) -> float:
        """Take a token, sleeping until there is one; returns the seconds slept."""
        slept = 0.0
        while wait := self.take():
            self._sleep(wait)
            slept += wait
        return slept
