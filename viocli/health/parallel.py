"""Concurrency for the status check: every collector at once, every node at once, each value once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def fan_out(items: Sequence[T], work: Callable[[T], R]) -> list[R]:
    """``work(item)`` for every item, all at once (one thread each); results in the items' order."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=len(items), thread_name_prefix="viocli-node") as pool:
        return list(pool.map(work, items))


class Once(Generic[T]):
    """A value computed by the first thread that asks; the others wait for it and share it.

    An exception raised while computing is kept and raised again to every caller.
    """

    def __init__(self, compute: Callable[[], T]):
        self._compute = compute
        self._lock = threading.Lock()
        self._done = False
        self._value: T | None = None
        self._error: BaseException | None = None

    def get(self) -> T:
        with self._lock:
            if not self._done:
                try:
                    self._value = self._compute()
                except Exception as error:
                    self._error = error
                self._done = True
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def within(seconds: float, work: Callable[[], T], what: str) -> T:
    """``work()``, or TimeoutError naming ``what`` after ``seconds``.

    For calls that have no timeout of their own (a vCenter login): the work runs in a daemon thread,
    so one that hangs is left behind and never keeps viocli from exiting.
    """
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target, name=f"viocli-{what}", daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"{what} did not answer within {time.monotonic() - started:.0f} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
