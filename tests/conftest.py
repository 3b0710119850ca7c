"""Session fixtures: this run's own database, RabbitMQ vhost and Redis db, migrated once.

Every name carries a run id, so parallel or repeated runs on the same servers never meet;
all of it is removed when the run ends.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

from shared.db import UnitOfWorkFactory, create_engine
from shared.settings import Settings
from tests.support import resources as res


@pytest.fixture(name="resources", scope="session")
def resources_fixture() -> Iterator[res.Resources]:
    run = res.run_id()
    db_name, vhost = f"taskrelay_test_{run}", f"taskrelay-test-{run}"
    import asyncio

    database_url = asyncio.run(res.create_database(db_name))
    amqp_url = res.create_vhost(vhost)
    redis_db = res.claim_redis_db(run)
    resources = res.Resources(
        database_url=database_url,
        amqp_url=amqp_url,
        redis_url=f"{res.REDIS_BASE}/{redis_db}",
        vhost=vhost,
        redis_db=redis_db,
    )
    try:
        migrated = subprocess.run(
            [sys.executable, "-m", "services.cli", "migrate"],
            env=resources.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrated.returncode == 0, migrated.stderr
        yield resources
    finally:
        asyncio.run(res.drop_database(db_name))
        res.delete_vhost(vhost)
        res.release_redis_db(redis_db, run)


@pytest.fixture(name="settings", scope="session")
def settings_fixture(resources: res.Resources) -> Settings:
    return Settings.from_env(resources.env())


@pytest.fixture(name="uow_factory", scope="session")
async def uow_factory_fixture(settings: Settings) -> AsyncIterator[UnitOfWorkFactory]:
    engine = create_engine(settings.database, pool_size=20)
    try:
        yield UnitOfWorkFactory(engine)
    finally:
        await engine.dispose()
