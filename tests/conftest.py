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
from typing import Any

import pytest

from harness import resources as res
from harness.servers import PrivatePostgres, PrivateRedis
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import Settings

LANES = {"e2e": 0, "integration": 1, "unit": 2}
"""The order pytest-xdist hands modules out in: the slow lanes first, the pure unit tests last,
so the run ends on short units of work instead of waiting for one slow module started late."""

SLOWEST_FIRST = (
    "tests/e2e/test_worker_faults.py",
    "tests/e2e/test_run.py",
    "tests/e2e/test_trace_export.py",
    "tests/e2e/test_model_e2e.py",
    "tests/integration/test_model_generator.py",
    "tests/e2e/test_relay_ledger.py",
    "tests/e2e/test_task_page_waiting.py",
    "tests/e2e/test_worker_e2e.py",
    "tests/e2e/test_admin.py",
    "tests/e2e/test_schema.py",
    "tests/e2e/test_nothing_stuck.py",
    "tests/e2e/test_fairness.py",
)
"""The modules that took longest (measured 2026-12-05), handed out before the rest of their
lane, slowest first. A stale entry only changes the order."""

SPREAD = {
    "tests/e2e/test_nothing_stuck.py",
    "tests/e2e/test_run_endings.py",
    "tests/e2e/test_secrets_cli.py",
    "tests/e2e/test_admin.py",
    "tests/e2e/test_run.py",
    "tests/e2e/test_api_outage.py",
    "tests/e2e/test_trace_export.py",
    "tests/e2e/test_schema.py",
}
"""Modules whose tests share no module fixture and are slow together: under pytest-xdist they may
run on different workers. Every other module's tests run on one worker, so the processes its
module fixtures start are started once."""


def _handed_out(item: pytest.Item) -> tuple[int, int]:
    module = item.nodeid.split("::", 1)[0]
    slow = SLOWEST_FIRST.index(module) if module in SLOWEST_FIRST else len(SLOWEST_FIRST)
    return slow, LANES.get(item.path.parent.name, len(LANES))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: its order is the order handed out
        items.sort(key=_handed_out)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadscope` (`make test`): a module is one unit of work, but for `SPREAD`'s.

    (Not `xdist_group` marks with `--dist loadgroup`: pytest-xdist groups them by renaming
    `item._nodeid`, which pytest 9.2's `nodeid` no longer reads, so they group nothing.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return nodeid if module in SPREAD else module

    return ByModule(config, log)


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
