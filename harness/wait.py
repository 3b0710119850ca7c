"""Waits that poll with a deadline; a test never sleeps a fixed time and hopes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Timeout(AssertionError):
    pass


async def wait_until(
    check: Callable[[], Awaitable[T | None]],
    *,
    within: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Await `check()` until it returns a truthy value; raise Timeout after `within` s."""
    deadline = time.monotonic() + within
    last: T | None = None
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {within}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)


def wait_until_sync(
    check: Callable[[], T | None],
    *,
    within: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    deadline = time.monotonic() + within
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {within}s waiting for {what} (last: {last!r})")
        time.sleep(interval)
