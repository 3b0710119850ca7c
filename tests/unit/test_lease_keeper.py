"""`LeaseKeeper`, the job's lease heartbeat, on the in-memory unit of work.

The keeper runs as the worker runs it: a thread of its own, with its own event loop, renewing
through the units of work its opener gives it there (the worker's opener makes a one-connection
pool; here it hands over the fake database and records that it was opened and closed). The
test thread only reads the fake's committed state while the keeper runs, so no two threads
commit at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from harness.wait import wait_until_sync
from shared.domain.records import Lease
from shared.service import NewTask, create_task
from shared.service.lease_keeper import Heartbeat, LeaseKeeper, OwnUnitsOfWork
from tests.unit.fakes import FakeDatabase

HOLDER = "job-1"
SECONDS = 0.3
"""The keeper renews every third of it: about ten renewals a second."""


class Opener:
    """The keeper's units of work: the fake database, opened and closed in the keeper's loop."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.opened = self.closed = 0

    @asynccontextmanager
    async def own(self) -> AsyncIterator[FakeDatabase]:
        self.opened += 1
        try:
            yield self.db
        finally:
            self.closed += 1

    def keep(self, lease: Lease) -> Heartbeat:
        own: OwnUnitsOfWork = self.own
        return LeaseKeeper.keeping(own)(lease, SECONDS)


async def leased(db: FakeDatabase, seconds: float) -> tuple[UUID, Lease]:
    new = NewTask("roadmap", [("c1", "Concept 1")], ["quiz"])
    async with db() as uow:
        task_id = (await create_task(uow, "alice", new)).task_id
        lease = await uow.leases.acquire(task_id, HOLDER, seconds)
        assert lease is not None
        await uow.commit()
    return task_id, lease


async def test_the_keeper_renews_the_lease_from_its_own_thread(db: FakeDatabase) -> None:
    task_id, lease = await leased(db, -1)  # lapsed already, and nobody took it back
    opener = Opener(db)
    keeper = opener.keep(lease)
    try:
        renewed = wait_until_sync(
            lambda: db.state.leases[task_id].expires_at == db.state.clock + SECONDS,
            within=5,
            what="a renewal",
        )
        assert renewed
        assert not keeper.lost
    finally:
        keeper.stop()
    assert (opener.opened, opener.closed) == (1, 1)


async def test_a_renewal_that_finds_the_lease_taken_back_sets_lost(db: FakeDatabase) -> None:
    task_id, lease = await leased(db, -1)
    async with db() as uow:  # the reconciler took it back: a newer generation
        assert await uow.leases.take_back(task_id, lease.generation) == 1
        await uow.commit()
    opener = Opener(db)
    keeper = opener.keep(lease)
    try:
        assert wait_until_sync(lambda: keeper.lost, within=5, what="the lease lost")
    finally:
        keeper.stop()
    assert (opener.opened, opener.closed) == (1, 1)  # it stopped renewing, and closed
    assert db.state.leases[task_id].holder is None
