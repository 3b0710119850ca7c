"""The repository contract's fixture: the same tests on the fake and on the real repositories.

The tests of `test_repository_contract*.py` take `uows`, a unit-of-work factory that is either
the in-memory fake of the unit tests (`tests/unit/fakes.py`) or the real one on PostgreSQL,
and make the same assertions on both: where the fake and PostgreSQL differ, a contract test
fails on one of them. The real one runs on a database of the contract's own, because the line of
waiting tasks (`turns`) is global to a database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from harness.resources import Resources, isolated
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import Settings
from shared.service.ports import AbstractUnitOfWorkFactory
from tests.unit.fakes import FakeDatabase


@pytest.fixture(name="contract_database", scope="session")
def contract_database_fixture() -> Iterator[Resources]:
    with isolated("taskrelay_contract") as resources:
        yield resources


@pytest.fixture(name="uows", params=["fake", "postgres"])
async def uows_fixture(request: pytest.FixtureRequest) -> AsyncIterator[AbstractUnitOfWorkFactory]:
    """The fake (a new one per test) or the real unit-of-work factory."""
    if request.param == "fake":
        yield FakeDatabase()
        return
    own: Resources = request.getfixturevalue("contract_database")
    uow_factory = UnitOfWorkFactory(Settings.from_env(own.env()).database, pool_size=2)
    try:
        yield uow_factory
    finally:
        await uow_factory.close()
