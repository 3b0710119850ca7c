"""The repository contract, part two: leases, turns, the inbox and idempotency keys.

The same assertions on the fake unit of work and on PostgreSQL (`uows`, `conftest.py`), as in
part one (`test_repository_contract.py`). A lease taken for a negative time has lapsed on either
clock, so no test waits for one to run out. The line of waiting tasks is global to a database:
each turns test takes its tasks out of it when it ends (`line`), so the next one starts empty.
The reconciler's read model (`liveness`) is not here: the fake lists the facts a test seeds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from shared.domain.records import Lease, StoredResponse
from shared.service import NewTask, create_task
from shared.service.ports import AbstractUnitOfWorkFactory

LAPSED = -1.0
"""Seconds for a lease that has run out as soon as it is taken."""


def someone() -> str:
    return f"user-{uuid4().hex[:8]}"


async def new_task(uows: AbstractUnitOfWorkFactory, owner: str) -> UUID:
    async with uows() as uow:
        view = await create_task(uow, owner, NewTask("roadmap", [("c1", "T1")], ["quiz"]))
        await uow.commit()
    return view.task_id


async def test_a_lease_is_taken_when_free_lapsed_or_already_the_holder_s(
    uows: AbstractUnitOfWorkFactory,
) -> None:
    task_id = await new_task(uows, someone())
    async with uows() as uow:
        first = await uow.leases.acquire(task_id, "job-1", 30)
        again = await uow.leases.acquire(task_id, "job-1", 30)  # an RQ retry of the same job
        other = await uow.leases.acquire(task_id, "job-2", 30)
        await uow.commit()
    assert (first, again, other) == (Lease(task_id, "job-1", 1), Lease(task_id, "job-1", 2), None)
    assert first is not None
    assert again is not None
    async with uows() as uow:
        assert await uow.leases.held_by(task_id, "job-1") == again
        assert await uow.leases.held_by(task_id, "job-2") is None
        assert await uow.leases.renew(again, LAPSED)
        assert not await uow.leases.renew(first, 30)  # an older generation: taken since
        await uow.commit()
    async with uows() as uow:  # lapsed: anyone may take it, and the old holder is fenced out
        taken = await uow.leases.acquire(task_id, "job-2", 30)
        assert taken == Lease(task_id, "job-2", 3)
        assert taken is not None
        assert not await uow.leases.renew(again, 30)
        assert not await uow.leases.release(again, keep_recoveries=False)
        assert await uow.leases.release(taken, keep_recoveries=False)
        assert await uow.leases.held_by(task_id, "job-2") is None
        assert await uow.leases.acquire(task_id, "job-3", 30) == Lease(task_id, "job-3", 4)


async def test_taking_a_lease_back_needs_it_lapsed_and_unchanged(
    uows: AbstractUnitOfWorkFactory,
) -> None:
    never_leased = await new_task(uows, someone())
    task_id = await new_task(uows, someone())
    async with uows() as uow:
        assert await uow.leases.take_back(never_leased, 0) == 1  # a job that never took it
        live = await uow.leases.acquire(task_id, "job-1", 30)
        assert live is not None
        assert await uow.leases.take_back(task_id, live.generation) is None  # still alive
        assert await uow.leases.renew(live, LAPSED)
        assert await uow.leases.take_back(task_id, live.generation + 1) is None  # read stale
        assert await uow.leases.take_back(task_id, live.generation) == 1
        assert not await uow.leases.renew(live, 30)  # fenced out
        again = await uow.leases.acquire(task_id, "job-2", LAPSED)
        assert again == Lease(task_id, "job-2", live.generation + 2)
        assert await uow.leases.take_back(task_id, again.generation) == 2  # no progress since
        await uow.commit()
    async with uows() as uow:
        resumed = await uow.leases.acquire(task_id, "job-3", 30)
        assert resumed is not None
        assert await uow.leases.release(resumed, keep_recoveries=True)
        assert await uow.leases.take_back(task_id, resumed.generation) == 3  # kept
        await uow.leases.forget(task_id)
        assert await uow.leases.take_back(task_id, resumed.generation + 1) == 1  # forgotten


async def test_a_job_message_is_seen_once_recorded_until_purged(
    uows: AbstractUnitOfWorkFactory,
) -> None:
    message_id, task_id = uuid4(), uuid4()
    async with uows() as uow:
        assert not await uow.inbox.seen(message_id)
        await uow.inbox.record(message_id, task_id, "job-1")
        await uow.inbox.record(message_id, task_id, "job-2")  # a redelivery: no error
        assert await uow.inbox.seen(message_id)
        await uow.commit()
    async with uows() as uow:
        assert await uow.inbox.purge(3600) == 0
        assert await uow.inbox.seen(message_id)
        assert await uow.inbox.purge(0) >= 1  # received in an earlier transaction
        assert not await uow.inbox.seen(message_id)


async def test_an_idempotency_key_is_locked_by_one_request_and_its_answer_kept(
    uows: AbstractUnitOfWorkFactory,
) -> None:
    owner, key = someone(), str(uuid4())
    now = datetime.now(UTC)
    async with uows() as first:
        assert await first.idempotency.try_lock(owner, key)
        assert await first.idempotency.find(owner, key, now - timedelta(hours=1)) is None
        async with uows() as repeat:
            assert not await repeat.idempotency.try_lock(owner, key)  # still running
            assert await repeat.idempotency.try_lock(someone(), key)
        await first.idempotency.save(owner, key, "hash-1", 201, {"task_id": "t", "seq": 0})
        await first.commit()
    async with uows() as later:
        assert await later.idempotency.try_lock(owner, key)
        found = await later.idempotency.find(owner, key, now - timedelta(hours=1))
        assert found == StoredResponse("hash-1", 201, {"task_id": "t", "seq": 0})
        assert await later.idempotency.find(owner, key, now + timedelta(hours=1)) is None
        await later.idempotency.save(owner, key, "hash-2", 202, [1, None])  # expired: replaced
        await later.commit()
    async with uows() as uow:
        replaced = await uow.idempotency.find(owner, key, now - timedelta(hours=1))
    assert replaced == StoredResponse("hash-2", 202, [1, None])


class Line:
    """The tasks a test put in line, taken out of it when the test ends."""

    def __init__(self, uows: AbstractUnitOfWorkFactory) -> None:
        self.uows = uows
        self.tasks: dict[UUID, str] = {}

    async def join(self, owner: str, *, taken: bool = True) -> UUID:
        """A new task of `owner`; with `taken`, a worker took its job message (it is in line)."""
        task_id = await new_task(self.uows, owner)
        self.tasks[task_id] = owner
        if taken:
            async with self.uows() as uow:
                await uow.inbox.record(uuid4(), task_id, f"job-{uuid4()}")
                await uow.commit()
        return task_id

    async def take(self, task_id: UUID) -> float | None:
        async with self.uows() as uow:
            waited = await uow.turns.take(task_id, self.tasks[task_id])
            await uow.commit()
        return waited

    async def standing(self, task_id: UUID) -> tuple[bool, int, str | None]:
        async with self.uows() as uow:
            found = await uow.turns.standing(task_id)
        assert found is not None
        return found.waiting, found.deferrals, found.next_owner


@pytest.fixture(name="line")
async def line_fixture(uows: AbstractUnitOfWorkFactory) -> AsyncIterator[Line]:
    line = Line(uows)
    try:
        yield line
    finally:
        for task_id in line.tasks:
            await line.take(task_id)


async def test_the_next_turn_is_the_waiting_user_served_longest_ago(line: Line) -> None:
    early, late, newcomer = someone(), someone(), someone()
    await line.take(await line.join(early))
    await line.take(await line.join(late))
    a = await line.join(early)
    b = await line.join(late)
    assert await line.standing(b) == (True, 0, early)  # the oldest turn
    c = await line.join(newcomer)
    assert await line.standing(a) == (True, 0, newcomer)  # never served: first
    waited = await line.take(c)
    assert waited is not None
    assert waited >= 0
    assert await line.standing(c) == (False, 0, early)
    assert await line.take(c) is None  # not waiting any more
    async with line.uows() as uow:
        assert await uow.turns.standing(uuid4()) is None


async def test_a_task_no_worker_took_holds_nobody_off(line: Line) -> None:
    mine = await line.join(someone())
    not_taken = await line.join(someone(), taken=False)
    assert await line.standing(not_taken) == (True, 0, line.tasks[mine])
    async with line.uows() as uow:
        assert await uow.turns.others_waiting(not_taken)
        assert not await uow.turns.others_waiting(mine)


async def test_a_turn_given_away_is_counted_until_one_is_taken(line: Line) -> None:
    task_id = await line.join(someone())
    async with line.uows() as uow:
        await uow.tasks.defer(task_id)
        await uow.tasks.defer(task_id)
        await uow.commit()
    assert (await line.standing(task_id))[:2] == (True, 2)
    await line.take(task_id)
    assert await line.standing(task_id) == (False, 0, None)
