"""An in-memory unit of work, so the services can be unit tested without PostgreSQL.

cosmicpython's `FakeUnitOfWork`: the same protocol as the real one (`shared.service.ports`),
over the in-memory repositories of `fake_repositories.py` and `fake_work_repositories.py`.
Like the database, a unit of work works on a copy of the committed state (`fake_state.py`):
`commit()` publishes the copy, leaving without it discards the copy. A commit over another
unit of work's commit (made since this one began) is refused: PostgreSQL would keep both, the
fake cannot merge copies, and losing one silently would hide it. Locks (a task row's, an
advisory one) are held by the open unit of work until it ends, in a table all of them share
(`FakeLocks`); `outages` makes the next units of work fail to start as the real one does while
PostgreSQL is away.

mypy (strict, run by `make test`) holds the fakes to the ports: `FakeDatabase` subclasses
`AbstractUnitOfWorkFactory`, so the `FakeUnitOfWork` it makes must match `AbstractUnitOfWork`
(not subclassed: the Protocol's repositories are read-only properties, the fake's are plain
attributes), and each fake repository subclasses its Protocol.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Self

from shared.adapters.unavailable import POSTGRES, unavailable
from shared.service.ports import AbstractUnitOfWorkFactory
from tests.unit.fake_repositories import FakeItems, FakeOutbox, FakeTasks
from tests.unit.fake_state import FakeLocks, FakeState
from tests.unit.fake_work_repositories import (
    FakeIdempotency,
    FakeInbox,
    FakeLeases,
    FakeLiveness,
    FakeTurns,
)


class FakeUnitOfWork:
    """Works on a copy of the committed state; `commit()` publishes it, leaving discards it."""

    tasks: FakeTasks
    items: FakeItems
    outbox: FakeOutbox
    leases: FakeLeases
    inbox: FakeInbox
    idempotency: FakeIdempotency
    liveness: FakeLiveness
    turns: FakeTurns

    def __init__(self, database: FakeDatabase) -> None:
        self._database = database
        self.committed = False
        self._on_commit: list[Callable[[], None]] = []
        self._state = FakeState()
        self._locks = FakeLocks(database.locks, self)
        self._began_at = 0
        """The database's commit count when this unit of work copied its state."""

    async def __aenter__(self) -> Self:
        if self._database.outages > 0:
            self._database.outages -= 1
            raise unavailable(POSTGRES, "fake://db", "the fake database is away")
        self._began_at = self._database.commits
        self._state = state = copy.deepcopy(self._database.state)
        self.tasks, self.items = FakeTasks(state, self._locks), FakeItems(state)
        self.outbox, self.leases = FakeOutbox(state), FakeLeases(state)
        self.inbox, self.idempotency = FakeInbox(state), FakeIdempotency(state, self._locks)
        self.liveness, self.turns = FakeLiveness(state), FakeTurns(state)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._on_commit = []  # whatever was not committed is dropped with the copy
        self._locks.release_all()

    async def commit(self) -> None:
        database = self._database
        with database.committing:
            if database.commits != self._began_at:
                raise RuntimeError("the fake cannot merge: another unit of work committed since")
            database.state = copy.deepcopy(self._state)
            database.commits += 1
        self.committed = True
        self._locks.release_all()
        callbacks, self._on_commit = self._on_commit, []
        for callback in callbacks:
            callback()

    def on_commit(self, callback: Callable[[], None]) -> None:
        self._on_commit.append(callback)

    async def ping(self) -> None:
        return None


class FakeDatabase(AbstractUnitOfWorkFactory):
    """The fake's committed state, and the factory of units of work over it."""

    def __init__(self) -> None:
        self.state = FakeState()
        self.locks: dict[object, object] = {}
        """Every lock an open unit of work holds, and which one holds it."""
        self.outages = 0
        """How many of the next units of work fail to start with DependencyUnavailable."""
        self.commits = 0
        self.committing = threading.Lock()
        """Held while a commit checks `commits` and publishes (a lease keeper's thread commits
        too)."""

    def __call__(self, headers: Mapping[str, str] | None = None) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)
