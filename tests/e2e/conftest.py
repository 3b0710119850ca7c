"""End-to-end fixtures: the real `taskrelay api` process of this run, an HTTP client, Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from harness.processes import Process, start_api
from harness.resources import SECRET, Resources
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
