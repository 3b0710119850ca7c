"""The seed's fixed flow in a real browser: Retry on a partly failed task goes live at once;
and a page whose API restarts reconnects and catches up without a reload.

Playwright drives Debian's headless Chromium (`/usr/bin/chromium`; Playwright's own browser
download is not used) against real API, relay and worker processes. The page of a
`partial_failure` task must show "processing" within a second of the click, without a reload,
then the progress bar at 100 % and "completed". A screenshot of the end state is saved to a
temporary folder (its path is printed) for a person to look at.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.client import create_through_api, wait_for_status_through_api
from harness.processes import free_port, start_api
from harness.resources import SECRET, Resources
from shared.service.auth import issue_token
from tests.support.browser import MARKS, running_system, system_env

playwright = pytest.importorskip("playwright.async_api")

pytestmark = MARKS


RECORD_BAR = """() => {
  window.barValues = [];
  const bar = document.getElementById("progress");
  new MutationObserver(() => window.barValues.push(bar.getAttribute("aria-valuenow")))
    .observe(bar, {attributes: true, attributeFilter: ["aria-valuenow"]});
}"""


@pytest.fixture(name="env", scope="module")
def env_fixture(own: Resources) -> dict[str, str]:
    return system_env(own, item_seconds=0.25)


@pytest.fixture(name="system", scope="module")
def system_fixture(env: dict[str, str]) -> Iterator[str]:
    with running_system(env, "browser") as api:
        yield api


async def _partly_failed_task(api: str, token: str) -> str:
    """The seed's task: 7 concepts x 3 types, 3 concepts fail their first attempt."""
    concepts = [
        {"concept_id": f"{'fail' if i % 2 else 'ok'}-{i}", "title": f"Concept {i}"}
        for i in range(7)
    ]
    return await create_through_api(api, token, concepts, until="partial_failure")


async def test_retry_goes_live_without_a_reload(system: str, browser: Any) -> None:
    token = issue_token(SECRET, "browser-user", 3600)
    task_id = await _partly_failed_task(system, token)
    shots = Path(tempfile.mkdtemp(prefix="taskrelay-browser-"))
    page = await browser.new_page(viewport={"width": 900, "height": 760})
    await page.goto(f"{system}/tasks/{task_id}?token={token}")
    status = page.locator("#status")
    expect = playwright.expect
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await expect(status).to_have_text("partial failure")
    await expect(page.locator("#error")).to_contain_text("failed")
    await page.screenshot(path=str(shots / "1-partial-failure.png"), full_page=True)

    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    await page.evaluate(RECORD_BAR)
    clicked = time.monotonic()
    await page.get_by_role("button", name="Retry").click()
    await expect(status).to_have_text("processing", timeout=1000)
    print(f"click to 'processing': {1000 * (time.monotonic() - clicked):.0f} ms")

    bar = page.get_by_role("progressbar")
    await expect(bar).to_have_attribute("aria-valuenow", "100", timeout=60_000)
    await expect(status).to_have_text("completed", timeout=60_000)
    await expect(page.locator("#count-completed")).to_have_text("21")
    await expect(page.locator("#count-failed")).to_have_text("0")
    await expect(page.locator("#error-box")).to_be_hidden()
    await expect(page.get_by_role("button", name="Retry")).to_be_disabled()
    assert navigations == [], "the page must update in place, never reload"
    shown = [int(v) for v in await page.evaluate("window.barValues")]
    assert shown[0] == round(100 * 12 / 21)  # the 9 failed items are pending again
    assert shown == sorted(shown)  # then only forward, item by item, to 100
    assert len(set(shown)) > 3
    await page.screenshot(path=str(shots / "2-completed.png"), full_page=True)
    print(f"screenshots: {shots}")


async def test_the_page_reconnects_and_resyncs_after_an_api_restart(
    system: str, env: dict[str, str], browser: Any
) -> None:
    token = issue_token(SECRET, "browser-user-2", 3600)
    port = free_port()
    api = start_api(env, port=port, name="api-browser-restart")
    concepts = [{"concept_id": f"ok-{i}", "title": f"Concept {i}"} for i in range(7)]
    task_id = await create_through_api(system, token, concepts)
    try:
        page = await browser.new_page()
        await page.goto(f"http://127.0.0.1:{port}/tasks/{task_id}?token={token}")
        connection = page.locator("#connection")
        expect = playwright.expect
        await expect(connection).to_have_attribute("data-state", "live")
        navigations: list[str] = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url))

        assert await page.locator("#status").text_content() != "completed"  # 21 x 0.25 s
        await asyncio.to_thread(api.stop)  # its sockets are closed with 1012
        await expect(connection).to_have_attribute("data-state", "reconnecting")
        # the task completes while its page is cut off
        await wait_for_status_through_api(system, token, task_id, "completed")
        api = start_api(env, port=port, name="api-browser-restarted")
        await expect(connection).to_have_attribute("data-state", "live", timeout=30_000)
        await expect(page.locator("#status")).to_have_text("completed")
        await expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
        assert navigations == []
    finally:
        api.stop()
