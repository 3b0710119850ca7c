"""An in-memory unit of work, so the services can be unit tested without PostgreSQL.

cosmicpython's `FakeUnitOfWork`: the same protocol as the real one (`shared.service.ports`),
over the in-memory repositories of `fake_repositories.py`. Like the database, a unit of work
works on a copy of the committed state: `commit()` publishes the copy, leaving without it
discards the copy.

mypy (strict, run by `make test`) holds the fakes to the ports: `FakeDatabase` subclasses
`AbstractUnitOfWorkFactory`, so the `FakeUnitOfWork` it makes must match `AbstractUnitOfWork`
(not subclassed: the Protocol's repositories are read-only properties, the fake's are plain
attributes), and each fake repository subclasses its Protocol.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Self

from shared.service.ports import AbstractUnitOfWorkFactory
from tests.unit.fake_repositories import (
    FakeIdempotency,
    FakeInbox,
    FakeItems,
    FakeLeases,
    FakeLiveness,
    FakeOutbox,
    FakeState,
    FakeTasks,
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

    async def __aenter__(self) -> Self:
        self._state = copy.deepcopy(self._database.state)
        self.tasks, self.items = FakeTasks(self._state), FakeItems(self._state)
        self.outbox, self.leases = FakeOutbox(self._state), FakeLeases(self._state)
        self.inbox, self.idempotency = FakeInbox(self._state), FakeIdempotency(self._state)
        self.liveness, self.turns = FakeLiveness(self._state), FakeTurns(self._state)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._on_commit = []  # whatever was not committed is dropped with the copy

    async def commit(self) -> None:
        self._database.state = copy.deepcopy(self._state)
        self.committed = True
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

    def __call__(self, headers: Mapping[str, str] | None = None) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)
