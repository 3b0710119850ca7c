"""End-to-end fixtures: the real `taskrelay api` process of this run, an HTTP client, Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from harness.processes import Process, start_api
from harness.resources import SECRET, Resources, isolated
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import Settings
from shared.service.auth import issue_token
from tests.support.browser import Tabs, chromium


@pytest.fixture(name="session_api", scope="session")
def session_api_fixture(resources: Resources) -> Iterator[Process]:
    """The API every module shares unless it needs settings of its own."""
    proc = start_api(resources.env(), name="api-e2e")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(name="api", scope="session")
def api_fixture(session_api: Process) -> Process:
    return session_api


@pytest.fixture(name="base_url", scope="session")
def base_url_fixture(session_api: Process) -> str:
    """The shared API's URL (a module's own `api` fixture does not change it)."""
    return f"http://127.0.0.1:{session_api.port}"  # type: ignore[attr-defined]


@pytest.fixture(name="client", scope="session")
async def client_fixture(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        yield client


@pytest.fixture(name="own", scope="module")
def own_fixture(request: pytest.FixtureRequest) -> Iterator[Resources]:
    """A database, vhost and Redis db of this module's own, for a module whose system runs a
    worker: the session's hold the job messages every other module's tasks left, which a worker
    there would generate first (seconds to minutes, and CPU the other tests need)."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with isolated(f"taskrelay_{module}") as resources:
        yield resources


@pytest.fixture(name="own_uow_factory", scope="module")
async def own_uow_factory_fixture(own: Resources) -> AsyncIterator[UnitOfWorkFactory]:
    uow_factory = UnitOfWorkFactory(Settings.from_env(own.env()).database, pool_size=10)
    try:
        yield uow_factory
    finally:
        await uow_factory.close()


@pytest.fixture(name="chromium", scope="session")
async def chromium_fixture() -> AsyncIterator[Any]:
    """One headless Chromium for the session's browser tests (their modules import Playwright
    or are skipped): a launch costs a second of CPU."""
    async with chromium() as browser:
        yield browser


@pytest.fixture(name="browser")
async def browser_fixture(chromium: Any) -> AsyncIterator[Tabs]:
    """The session's Chromium, as this test sees it: what it opens is closed after it."""
    tabs = Tabs(chromium)
    try:
        yield tabs
    finally:
        await tabs.close()


def auth(user: str, ttl: int = 3600, secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(secret, user, ttl)}"}
