"""Session fixtures: this run's own database, RabbitMQ vhost and Redis db, migrated once.

Every name carries a run id, so parallel or repeated runs on the same servers never meet (each
pytest-xdist worker is a run of its own); all of it is removed when the run ends. A fault test
that stops a server gets one of its own (`private_postgres`, `private_redis`): the shared
servers are never stopped.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest

from harness import resources as res
from harness.servers import PrivatePostgres, PrivateRedis
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import Settings

LANES = {"e2e": 0, "integration": 1, "unit": 2}
"""The order pytest-xdist hands modules out in: the slow lanes first, so the quick tests fill the
end of the run instead of one slow module started last."""


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test`: `--dist loadgroup`), each module is one group, run by
    one worker, so the processes its module fixtures start are started once; a module marked
    `spread` lets its tests go to any worker."""
    if not hasattr(config, "workerinput"):  # not an xdist worker: nothing to distribute
        return
    items.sort(key=lambda item: LANES.get(item.path.parent.name, len(LANES)))
    for item in items:
        if not item.get_closest_marker("xdist_group") and not item.get_closest_marker("spread"):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.fixture(name="template", scope="session", autouse=True)
def template_fixture() -> Iterator[None]:
    """Migrated databases of this session are copies of one template, migrated (on first use)
    by `taskrelay migrate`: a copy takes milliseconds, a migration seconds."""
    with res.templated("taskrelay_test"):
        yield


@pytest.fixture(name="resources", scope="session")
def resources_fixture(template: None) -> Iterator[res.Resources]:
    with res.isolated("taskrelay_test") as resources:
        yield resources


@pytest.fixture(name="settings", scope="session")
def settings_fixture(resources: res.Resources) -> Settings:
    return Settings.from_env(resources.env())


@pytest.fixture(name="uow_factory", scope="session")
async def uow_factory_fixture(settings: Settings) -> AsyncIterator[UnitOfWorkFactory]:
    uow_factory = UnitOfWorkFactory(settings.database, pool_size=20)
    try:
        yield uow_factory
    finally:
        await uow_factory.close()


@pytest.fixture(name="rng")
def rng_fixture() -> random.Random:
    """Randomness a failure can replay: the seed is printed (pytest shows it with a failure)
    and `TASKRELAY_TEST_SEED=<seed>` runs the test with it again."""
    seed = int(os.environ.get("TASKRELAY_TEST_SEED") or secrets.randbits(32))
    print(f"random seed {seed}: replay with TASKRELAY_TEST_SEED={seed}")
    return random.Random(seed)


@pytest.fixture(name="private_postgres")
def private_postgres_fixture() -> Iterator[PrivatePostgres]:
    """A running PostgreSQL cluster of this test's own, destroyed after it."""
    with PrivatePostgres() as server:
        yield server


@pytest.fixture(name="private_redis")
def private_redis_fixture() -> Iterator[PrivateRedis]:
    """A running redis-server of this test's own (nothing on disk), killed after it."""
    with PrivateRedis() as server:
        yield server
