"""What the browser tests share: Debian's Chromium, and a whole system for it to load pages from.

Playwright drives `/usr/bin/chromium` (Playwright's own browser download is not used), started
once per session; each test's pages and contexts are closed after it (`Tabs`). A module's tests
get real relay, worker and API processes, started once and side by side, with the generator the
module asks for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from harness.processes import start_api, start_together, stop_all
from harness.relay import start_relay
from harness.resources import Resources
from harness.worker import start_worker

CHROMIUM = "/usr/bin/chromium"

MARKS = [
    pytest.mark.slow,
    pytest.mark.skipif(  # never skipped in CI, where `make test` installs it
        shutil.which(CHROMIUM) is None and not os.environ.get("CI"),
        reason="needs Debian's chromium: apt-get install chromium (or make browser)",
    ),
]
"""A browser test module's `pytestmark`."""


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium, closed at the end."""
    from playwright.async_api import async_playwright  # only browser test modules need it

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


class Tabs:
    """What one test opens in the session's Chromium: its pages and contexts (each page of
    `new_page` has a context of its own), all closed when the test ends, so no page of an
    earlier test keeps a socket open or runs its script meanwhile."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser
        self._contexts: list[Any] = []

    async def new_page(self, **options: Any) -> Any:
        page = await self._browser.new_page(**options)
        self._contexts.append(page.context)
        return page

    async def new_context(self, **options: Any) -> Any:
        context = await self._browser.new_context(**options)
        self._contexts.append(context)
        return context

    async def close(self) -> None:
        for context in self._contexts:
            with contextlib.suppress(Exception):  # closed by the test already
                await context.close()


def system_env(resources: Resources, item_seconds: float) -> dict[str, str]:
    """The environment of a system whose generator takes `item_seconds` per item (so a page
    can watch it work) and fails the first attempt of concepts whose id contains "fail"."""
    return resources.env(
        TASKRELAY_CONTENT_GENERATOR="harness.generators:counting",
        TASKRELAY_TEST_GENERATOR_DELAY=str(item_seconds),
    )


@contextlib.contextmanager
def running_system(env: dict[str, str], label: str) -> Iterator[str]:
    """Relay, one worker and the API on `env`; the API's base URL."""
    processes = start_together(
        lambda: start_relay(env, name=f"relay-{label}"),
        lambda: start_worker(env, name=f"worker-{label}"),
        lambda: start_api(env, name=f"api-{label}"),
    )
    try:
        yield f"http://127.0.0.1:{processes[2].port}"  # type: ignore[attr-defined]
    finally:
        stop_all(processes)
