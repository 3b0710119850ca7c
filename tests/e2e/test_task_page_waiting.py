"""The task page tells a waiting user the truth (issue 23, protocol §6 `waiting_since`), in a
real browser.

One RQ process, held by another user's long task (6 s slices, so the wait is long enough to
look at): the visitor's page says it waits for a free worker, and for how long, in English and
in Chinese; once its turn comes, the page says how many items run at once and marks them
generating. A task whose cancel lost the race with its items offers to finish it, and does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness import fairness
from harness.resources import Resources
from harness.wait import wait_until
from tests.support.browser import MARKS, running_system

playwright = pytest.importorskip("playwright.async_api")

pytestmark = MARKS


@pytest.fixture(name="system", scope="module")
def system_fixture(own: Resources) -> Iterator[str]:
    env = own.env(
        TASKRELAY_CONTENT_GENERATOR="harness.generators:paced",
        TASKRELAY_WORKER_SLICE_SECONDS="6",
        TASKRELAY_API_RATE_LIMIT_PER_SECOND="0",
    )
    with running_system(env, "waiting") as api:
        yield api


async def test_a_waiting_task_says_so_then_shows_its_items_in_flight(
    system: str, browser: Any
) -> None:
    hog = await fairness.ask(system, "hog", 160, 0.5, tag="h")

    async def hog_runs() -> bool:
        return any("in_flight" in f.get("data", {}) for f in hog.watch.frames)

    await wait_until(hog_runs, within=30, what="the other user's task to run")
    visitor = await fairness.ask(system, "visitor", 16, 0.5, tag="v")
    page = await browser.new_page()
    expect = playwright.expect
    await page.goto(f"{system}/tasks/{visitor.task_id}?token={fairness.token('visitor')}")
    activity = page.locator("#activity")
    await expect(activity).to_have_attribute("data-state", "waiting")
    await expect(activity).to_contain_text("Waiting for a free worker for")
    await page.locator('button.lang[data-lang="zh-CN"]').click()
    await expect(activity).to_contain_text("正在等待空闲的工作进程")

    await expect(activity).to_have_attribute("data-state", "generating", timeout=30_000)
    await expect(activity).to_have_text("正在同时生成 8 项。")
    generating = page.locator('[data-group="pending"] .item[data-generating]')
    await expect(generating.first.locator(".item-state")).to_have_text("生成中…")
    await visitor.wait_finished(60, status="completed")
    await expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    await expect(activity).to_be_hidden()
    await fairness.finish_all([hog, visitor], 120)
    await page.close()


async def test_a_cancel_that_lost_the_race_offers_to_finish(system: str, browser: Any) -> None:
    racer, cancel_status = await fairness.cancel_in_flight(system, "racer", 8)
    assert cancel_status == 200
    page = await browser.new_page()
    expect = playwright.expect
    await page.goto(f"{system}/tasks/{racer.task_id}?token={fairness.token('racer')}")
    await expect(page.locator("#status")).to_have_attribute("data-status", "cancelled")
    retry = page.locator("#retry")
    await expect(retry).to_have_text("Finish the task (nothing left to generate)")
    await retry.click()
    await expect(page.locator("#action-result")).to_have_text(
        "Nothing left to generate: the task will be finished."
    )
    await expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    await racer.watch.close()
    await page.close()
