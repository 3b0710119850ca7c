"""A completed item's content on the task page, in a real browser (issue 25, docs/protocol.md §6).

The `openai` generator answers through the chat-completions stub, whose answer repeats the
prompt: an item whose title is HTML comes back as content holding that HTML. Opening the item
shows it as text (the markup visible, nothing of it run or drawn) with the provider's token
usage, in English and in Chinese.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.client import create_through_api
from harness.model_stub import ModelStub
from harness.resources import SECRET, Resources
from shared.service.auth import issue_token
from tests.support.browser import MARKS, running_system

playwright = pytest.importorskip("playwright.async_api")

pytestmark = MARKS
HOSTILE = '<img src=x onerror="window.pwned = 1"><b>Loops</b>'


@pytest.fixture(name="system", scope="module")
def system_fixture(own: Resources) -> Iterator[str]:
    with ModelStub(delay=0.05) as stub:
        env = own.env(
            TASKRELAY_CONTENT_GENERATOR="openai",
            TASKRELAY_MODEL="stub-model",
            OPENAI_BASE_URL=stub.url,
            OPENAI_API_KEY="sk-browser-test",
        )
        with running_system(env, "model-page") as api:
            yield api


async def test_a_completed_item_opens_to_its_content_as_text(system: str, browser: Any) -> None:
    token = issue_token(SECRET, "model-page-user", 3600)
    concepts = [{"concept_id": "loops", "title": HOSTILE}]
    task_id = await create_through_api(system, token, concepts, ["quiz"], until="completed")
    expect = playwright.expect
    for language, show, usage in [
        ("en", "Show content", "Tokens: "),
        ("zh-CN", "查看内容", "令牌："),
    ]:
        context = await browser.new_context(extra_http_headers={"Accept-Language": language})
        page = await context.new_page()
        await page.goto(f"{system}/tasks/{task_id}?token={token}")
        await expect(page.locator("#items")).not_to_have_attribute("aria-busy", "true")
        await page.locator('[data-group="completed"] > summary').click()
        item = page.locator('[data-group="completed"] .item')
        await expect(item).to_have_count(1)
        opener = item.locator(".item-content > summary")
        await expect(opener).to_have_text(show)
        await opener.click()
        text = item.locator(".content-text")
        await expect(text).to_contain_text("Stub answer to: ")
        await expect(text).to_contain_text(HOSTILE)  # the markup shown as it came
        await expect(item.locator(".content-usage")).to_contain_text(usage)
        assert await item.locator(".content-text img, .content-text b").count() == 0
        assert await page.evaluate("window.pwned === undefined")
        await context.close()
