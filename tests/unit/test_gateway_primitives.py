"""`Flag` and `Mailbox` behave like the `asyncio.Event` and `asyncio.Queue` they stand in for.

uvicorn's WebSocket protocol calls them as it would call asyncio's (services/api/gateway/
protocol.py), so what matters is asyncio's behaviour: who wakes, in which order, and that a
cancelled waiter neither loses an item nor keeps another waiter asleep.
"""

from __future__ import annotations

import asyncio

import pytest

from services.api.gateway.connects import ConnectBudget
from services.api.gateway.primitives import Flag, Mailbox


async def settle() -> None:
    """Let every task that can run, run (a handful of loop turns, no clock involved)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_set_flag_lets_waiters_through_until_it_is_cleared() -> None:
    flag = Flag()
    assert not flag.is_set()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await settle()
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert await flag.wait()  # set: at once
    flag.clear()
    late = asyncio.create_task(flag.wait())
    await settle()
    assert not late.done()
    flag.set()
    assert await late


async def test_a_timed_out_or_cancelled_flag_waiter_leaves_the_others_waiting() -> None:
    flag = Flag()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):
            await flag.wait()
    cancelled = asyncio.create_task(flag.wait())
    kept = asyncio.create_task(flag.wait())
    await settle()
    cancelled.cancel()
    await settle()
    assert cancelled.cancelled()
    assert not kept.done()
    flag.set()
    assert await kept


async def test_a_mailbox_hands_items_out_in_order_and_waits_when_empty() -> None:
    box: Mailbox[str] = Mailbox()
    assert box.empty()
    assert box.qsize() == 0
    for item in ("a", "b", "c"):
        box.put_nowait(item)
    assert box.qsize() == 3
    assert [await box.get() for _ in range(3)] == ["a", "b", "c"]
    assert box.empty()
    getter = asyncio.create_task(box.get())
    await settle()
    assert not getter.done()
    box.put_nowait("d")
    assert await getter == "d"


async def test_each_item_goes_to_one_getter_first_come_first_served() -> None:
    box: Mailbox[int] = Mailbox()
    getters = [asyncio.create_task(box.get()) for _ in range(3)]
    await settle()
    for item in (1, 2, 3):
        box.put_nowait(item)
    assert await asyncio.gather(*getters) == [1, 2, 3]


async def test_a_getter_cancelled_after_being_woken_passes_its_item_on() -> None:
    box: Mailbox[str] = Mailbox()
    first = asyncio.create_task(box.get())
    second = asyncio.create_task(box.get())
    await settle()
    box.put_nowait("x")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it could run
    await settle()
    assert first.cancelled()
    assert await asyncio.wait_for(second, 5) == "x"
    assert box.empty()


async def test_a_getter_cancelled_while_waiting_takes_nothing() -> None:
    box: Mailbox[str] = Mailbox()
    gone = asyncio.create_task(box.get())
    await settle()
    gone.cancel()
    await settle()
    box.put_nowait("y")
    assert box.qsize() == 1
    assert await box.get() == "y"


def test_the_connect_budget_is_per_client_and_per_second() -> None:
    now = [100.2]
    budget = ConnectBudget(3, clock=lambda: now[0])
    assert [budget.admit("user:a") for _ in range(4)] == [True, True, True, False]
    assert budget.admit("addr:10.0.0.1")  # others have their own
    assert budget.admit("user:b")
    now[0] = 101.0  # the next second: a fresh budget
    assert budget.admit("user:a")
