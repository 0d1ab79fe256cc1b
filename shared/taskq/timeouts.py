"""Run a task under its own timeout.

Lambda runs the handler on the main thread, where SIGALRM can interrupt the task
(sleeping and most pure-Python work). Elsewhere (a thread) we can only stop waiting.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from taskq.errors import TaskTimeout

T = TypeVar("T")


def run_with_timeout(fn: Callable[[], T], seconds: float) -> T:
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        return _with_alarm(fn, seconds)
    return _in_thread(fn, seconds)


def _with_alarm(fn: Callable[[], T], seconds: float) -> T:
    def on_alarm(signum: int, frame: Any) -> None:
        raise TaskTimeout(f"task timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _in_thread(fn: Callable[[], T], seconds: float) -> T:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskq-task")
    try:
        return pool.submit(fn).result(timeout=seconds)
    except FutureTimeout:
        raise TaskTimeout(f"task timed out after {seconds:g} s") from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
