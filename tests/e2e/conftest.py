"""End-to-end fixtures: the real `taskrelay api` process of this run, and an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from harness.processes import Process, start_api
from harness.resources import SECRET, Resources
from shared.service.auth import issue_token
from tests.support.browser import chromium


@pytest.fixture(name="api", scope="session")
def api_fixture(resources: Resources) -> Iterator[Process]:
    proc = start_api(resources.env(), name="api-e2e")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(name="base_url", scope="session")
def base_url_fixture(api: Process) -> str:
    return f"http://127.0.0.1:{api.port}"  # type: ignore[attr-defined]


@pytest.fixture(name="client", scope="session")
async def client_fixture(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        yield client


@pytest.fixture(name="browser")
async def browser_fixture() -> AsyncIterator[Any]:
    """A headless Chromium for a browser test (its module imports Playwright or is skipped)."""
    async with chromium() as browser:
        yield browser


def auth(user: str, ttl: int = 3600, secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(secret, user, ttl)}"}
