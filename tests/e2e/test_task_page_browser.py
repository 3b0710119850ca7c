"""The task page tells the whole story, in a real browser (issue 14, docs/protocol.md §6 and §7).

Debian's headless Chromium (`/usr/bin/chromium`) against real API, relay and worker processes:
- the seed's task (21 items, 10 failing their first try) lists the 10 failed items with their
  errors, says how many items Retry will redo, and turns green live during the retry, which is
  started from the keyboard, with no reload; the status change reaches the ARIA live region;
- `Accept-Language: zh-CN` gets the Chinese page (`<html lang="zh-CN">`), the switch goes back to
  English in place, and a phone-width screen needs no sideways scrolling;
- a 3,000-item task renders and takes live updates; the browser times how long each frame's
  handling and each redraw takes, and the test prints the figures (never asserts on them).

Screenshots go to `$TASKRELAY_SCREENSHOTS` (the docs' are made with
`TASKRELAY_SCREENSHOTS=docs/screenshots`), else to a temporary folder whose path is printed.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.client import create_through_api, wait_for_status_through_api
from harness.resources import SECRET, Resources
from shared.service.auth import issue_token
from tests.support.browser import MARKS, running_system, system_env

playwright = pytest.importorskip("playwright.async_api")

pytestmark = MARKS
SEED_TITLES = [
    "变量与类型", "条件语句", "循环", "函数", "作用域", "闭包", "递归", "列表", "字典", "集合",
    "字符串", "文件读写", "异常处理", "模块", "类与对象", "继承", "迭代器", "生成器", "装饰器",
    "并发", "测试",
]  # fmt: skip
FAILING = {1, 2, 4, 6, 8, 10, 13, 15, 17, 19}  # 10 of the 21 concepts fail their first try
WATCH = """() => {
  window.seen = {completed: [], failed: []};
  for (const name of ["completed", "failed"]) {
    const el = document.querySelector(`[data-count="${name}"]`);
    new MutationObserver(() => window.seen[name].push(Number(el.textContent)))
      .observe(el, {childList: true, characterData: true, subtree: true});
  }
}"""
TIMING = """(() => {
  const timing = {frames: [], draws: [], longtasks: []};
  window.timing = timing;
  const Socket = window.WebSocket;
  window.WebSocket = class extends Socket {
    set onmessage(handler) {
      super.onmessage = (event) => {
        const start = performance.now();
        handler(event);
        timing.frames.push(performance.now() - start);
      };
    }
    get onmessage() { return super.onmessage; }
  };
  const raf = window.requestAnimationFrame.bind(window);
  window.requestAnimationFrame = (draw) => raf((at) => {
    const start = performance.now();
    draw(at);
    timing.draws.push(performance.now() - start);
  });
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) timing.longtasks.push(entry.duration);
  }).observe({type: "longtask", buffered: true});
})();"""


@pytest.fixture(name="env", scope="module")
def env_fixture(own: Resources) -> dict[str, str]:
    return system_env(own, item_seconds=0.05)


@pytest.fixture(name="system", scope="module")
def system_fixture(env: dict[str, str]) -> Iterator[str]:
    with running_system(env, "page") as api:
        yield api


@pytest.fixture(name="shots", scope="module")
def shots_fixture() -> Path:
    folder = os.environ.get("TASKRELAY_SCREENSHOTS")
    path = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="taskrelay-page-"))
    path.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {path}")
    return path


async def _seed_task(api: str, token: str) -> str:
    """The seed's task: 21 concepts in one content type, 10 of them fail their first try."""
    concepts = [
        {"concept_id": f"{'fail' if i in FAILING else 'ok'}-{i:02d}", "title": title}
        for i, title in enumerate(SEED_TITLES)
    ]
    return await create_through_api(
        api, token, concepts, ["tutorial"], until="partial_failure", within=120
    )


async def _tab_to(page: Any, selector: str) -> None:
    """Press Tab until `selector` has the focus, as a keyboard user would."""
    for _ in range(30):
        await page.keyboard.press("Tab")
        if await page.evaluate(f"document.activeElement.matches({json.dumps(selector)})"):
            return
    raise AssertionError(f"{selector} cannot be reached with the Tab key")


async def test_seed_task_lists_failures_and_turns_green_live(
    system: str, browser: Any, shots: Path
) -> None:
    token = issue_token(SECRET, "page-user", 3600)
    task_id = await _seed_task(system, token)
    page = await browser.new_page(viewport={"width": 900, "height": 1400})
    expect = playwright.expect
    await page.goto(f"{system}/tasks/{task_id}?token={token}")
    assert await page.get_attribute("html", "lang") == "en"
    await expect(page.locator("#message")).to_have_text("10 of 21 content items failed")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await expect(page.locator("#items")).not_to_have_attribute("aria-busy", "true")
    failed = page.locator('[data-group="failed"] .item')
    await expect(failed).to_have_count(10)
    for i in FAILING:
        row = failed.filter(has_text=SEED_TITLES[i])
        await expect(row.locator(".item-error")).to_have_text(
            f"simulated failure of fail-{i:02d}/tutorial on attempt 1"
        )
        await expect(row.locator(".item-state")).to_have_text("failed")
    await expect(page.locator('[data-count="completed"]')).to_have_text("11")
    await expect(page.locator('[data-group="completed"] .item')).to_have_count(0)  # collapsed
    retry = page.locator("#retry")
    await expect(retry).to_have_text("Retry 10 failed items")
    await page.screenshot(path=str(shots / "task-page-21-en.png"), full_page=True)

    # Keyboard only: open the completed group, then retry.
    await _tab_to(page, '[data-group="completed"] > summary')
    await page.keyboard.press("Enter")
    await expect(page.locator('[data-group="completed"] .item')).to_have_count(11)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    await page.evaluate(WATCH)
    await _tab_to(page, "#retry")
    await page.keyboard.press("Enter")
    await expect(page.locator("#status")).to_have_text("processing", timeout=5000)
    await expect(page.locator("#announcer")).to_contain_text("Task status: processing")

    status = page.locator("#status")
    await expect(status).to_have_text("completed", timeout=120_000)
    await expect(page.locator('[data-count="completed"]')).to_have_text("21", timeout=10_000)
    await expect(failed).to_have_count(0)
    green = page.locator('[data-group="completed"] .item[data-status="completed"]')
    await expect(green).to_have_count(21)
    for i in FAILING:  # the retried items, green in place, their errors gone
        row = green.filter(has_text=SEED_TITLES[i])
        await expect(row.locator(".item-state")).to_have_text("completed")
        await expect(row.locator(".item-error")).to_have_count(0)
    await expect(page.locator("#announcer")).to_contain_text("Task status: completed")
    await expect(retry).to_be_disabled()
    assert navigations == [], "the page must update in place, never reload"
    seen = await page.evaluate("window.seen")
    assert seen["failed"][0] == 0  # the retry moved the 10 failed items to waiting
    assert seen["completed"] == sorted(seen["completed"])  # then green, only forward
    assert any(11 < n < 21 for n in seen["completed"]), seen  # item by item, not all at once
    await page.close()


async def test_chinese_page_switch_and_phone_width(system: str, browser: Any, shots: Path) -> None:
    token = issue_token(SECRET, "page-user-zh", 3600)
    task_id = await _seed_task(system, token)
    context = await browser.new_context(
        viewport={"width": 900, "height": 1400}, extra_http_headers={"Accept-Language": "zh-CN"}
    )
    page = await context.new_page()
    expect = playwright.expect
    await page.goto(f"{system}/tasks/{task_id}?token={token}")
    assert await page.get_attribute("html", "lang") == "zh-CN"
    await expect(page.locator("#connection")).to_have_text("实时：更新会即时显示。")
    await expect(page.locator("#status")).to_have_text("部分失败")
    await expect(page.locator("#step")).to_have_text("生成部分失败")
    await expect(page.locator("#retry")).to_have_text("重试 10 个失败项")
    await expect(page.locator('[data-group="failed"] summary')).to_contain_text("失败")
    failed = page.locator('[data-group="failed"] .item')
    await expect(failed).to_have_count(10)
    first = failed.first  # user data as given: the Chinese title, the generator's English error
    await expect(first.locator(".item-title")).to_have_text(SEED_TITLES[1])
    await expect(first.locator(".item-type")).to_have_text("教程")
    await expect(first.locator(".item-error")).to_have_text(
        "simulated failure of fail-01/tutorial on attempt 1"
    )
    await expect(page.locator("#message")).to_have_text("10 of 21 content items failed")
    await page.screenshot(path=str(shots / "task-page-21-zh-CN.png"), full_page=True)

    await page.evaluate("window.samePage = true")  # a reload would lose it
    await page.get_by_role("button", name="English").click()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.locator("#status")).to_have_text("partial failure")
    await expect(page.locator("#retry")).to_have_text("Retry 10 failed items")
    await expect(first.locator(".item-type")).to_have_text("tutorial")
    assert await page.evaluate("window.samePage === true"), "the switch must not reload"
    assert "lang=en" in page.url  # a reload keeps the reader's choice

    await page.set_viewport_size({"width": 360, "height": 800})
    await page.get_by_role("button", name="简体中文").click()
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{overflow} px of sideways scrolling at phone width"
    await page.screenshot(path=str(shots / "task-page-21-zh-CN-phone.png"), full_page=True)
    await context.close()


async def test_three_thousand_items_render_and_update(
    system: str, browser: Any, shots: Path
) -> None:
    token = issue_token(SECRET, "page-user-3000", 3600)
    concepts = [
        {"concept_id": f"{'fail' if i % 7 == 3 else 'ok'}-{i:04d}", "title": f"Concept {i}"}
        for i in range(1000)
    ]
    task_id = await create_through_api(system, token, concepts)
    context = await browser.new_context(viewport={"width": 900, "height": 1400})
    await context.add_init_script(TIMING)
    page = await context.new_page()
    expect = playwright.expect
    await page.goto(f"{system}/tasks/{task_id}?token={token}")
    await expect(page.locator("#items")).not_to_have_attribute("aria-busy", "true", timeout=60_000)
    load_ms = await page.evaluate("performance.now()")
    counts = page.locator(".group [data-count]")
    shown = sum(int(n) for n in await counts.all_text_contents())
    assert shown == 3000
    await page.evaluate("window.timing.frames = []; window.timing.draws = []")
    await page.evaluate("window.timing.longtasks = []")

    # Live updates with 3,000 items on the page: at least 150 more items done, then cancel.
    done = page.locator('[data-count="completed"]')
    start = int(await done.text_content() or "0") + int(
        await page.locator('[data-count="failed"]').text_content() or "0"
    )
    await page.wait_for_function(
        f"""() => Number(document.querySelector('[data-count="completed"]').textContent) +
            Number(document.querySelector('[data-count="failed"]').textContent) >= {start + 150}""",
        timeout=180_000,
        polling=100,  # not requestAnimationFrame: the timing counts the page's own redraws
    )
    timing = await page.evaluate("window.timing")  # before the screenshots, which cost their own
    await expect(page.locator('[data-group="failed"] .item').first).to_be_visible()
    await page.screenshot(path=str(shots / "task-page-3000-en.png"), full_page=False)
    await page.get_by_role("button", name="简体中文").click()
    await expect(page.locator("#status")).to_have_text("处理中")
    await page.screenshot(path=str(shots / "task-page-3000-zh-CN.png"), full_page=False)

    await page.get_by_role("button", name="取消任务").click()
    await expect(page.locator("#status")).to_have_text("已取消", timeout=30_000)
    rows = await page.locator(".item").count()
    assert rows <= 300, f"{rows} rows drawn: the list must page, not draw all 3,000"
    await wait_for_status_through_api(system, token, task_id, "cancelled", within=30)
    await context.close()
    _report(load_ms, timing)


def _report(load_ms: float, timing: dict[str, list[float]]) -> None:
    frames, draws = sorted(timing["frames"]), sorted(timing["draws"])
    assert frames, "no progress frame was handled"

    def p(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    print(
        f"\n3,000 items: page ready with every item loaded {load_ms:.0f} ms after navigation; "
        f"{len(frames)} frames handled: median {statistics.median(frames):.2f} ms, "
        f"p95 {p(frames, 0.95):.2f} ms, max {frames[-1]:.2f} ms; "
        f"{len(draws)} redraws: median {statistics.median(draws):.2f} ms, "
        f"p95 {p(draws, 0.95):.2f} ms, max {draws[-1]:.2f} ms; "
        f"long tasks (>50 ms) during updates: {len(timing['longtasks'])}"
        + (f", longest {max(timing['longtasks']):.0f} ms" if timing["longtasks"] else "")
    )
