"""The task page over HTTP: who may see it, what it is sent with, and that it escapes the task.

The page's live behaviour is `test_browser.py`'s; this checks the server side of it.
"""

from __future__ import annotations

from uuid import uuid4

import httpx
import pytest

from harness.resources import SECRET
from shared.adapters.postgres import UnitOfWorkFactory
from shared.service.auth import issue_token
from tests.support import tasks

pytestmark = pytest.mark.slow


@pytest.fixture(name="api", scope="module")
def api_fixture(base_url: str) -> str:
    """The session's API (tests/e2e/conftest.py)."""
    return base_url


async def test_task_page_access_headers_and_escaping(
    api: str, uow_factory: UnitOfWorkFactory
) -> None:
    hostile = '<script>alert("x")</script>'
    task_id = await tasks.new_task(uow_factory, "pat", [("c1", "One")], ("quiz",), hostile)
    token = issue_token(SECRET, "pat", 600)
    async with httpx.AsyncClient(base_url=api) as client:
        page = await client.get(f"/tasks/{task_id}", params={"token": token})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
        assert "script-src" not in page.headers["content-security-policy"]  # 'self' only
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert hostile not in page.text
        assert "&lt;script&gt;" in page.text
        assert 'aria-live="polite"' in page.text
        assert 'role="progressbar"' in page.text
        for asset in ("/static/task.js", "/static/task.css"):
            assert (await client.get(asset)).status_code == 200

        assert (await client.get(f"/tasks/{task_id}")).status_code == 401
        bad = await client.get(f"/tasks/{task_id}", params={"token": "forged"})
        assert bad.status_code == 401
        other = issue_token(SECRET, "someone-else", 600)
        assert (await client.get(f"/tasks/{task_id}", params={"token": other})).status_code == 404
        for unknown in (uuid4(), "not-a-uuid"):
            missing = await client.get(f"/tasks/{unknown}", params={"token": token})
            assert missing.status_code == 404


async def test_task_page_language_follows_accept_language(
    api: str, uow_factory: UnitOfWorkFactory
) -> None:
    task_id = await tasks.new_task(uow_factory, "lin", [("c1", "闭包")], ("quiz",), "rm-lang")
    params = {"token": issue_token(SECRET, "lin", 600)}
    url = f"/tasks/{task_id}"
    async with httpx.AsyncClient(base_url=api) as client:
        for header, lang, word in (
            ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN", "内容生成"),
            ("en-GB,en;q=0.9", "en", "Content generation"),
            ("fr", "en", "Content generation"),
        ):
            page = await client.get(url, params=params, headers={"Accept-Language": header})
            assert f'<html lang="{lang}">' in page.text
            assert word in page.text
            assert "accept-language" in page.headers["vary"].lower()
        chosen = await client.get(
            url, params={**params, "lang": "en"}, headers={"Accept-Language": "zh-CN"}
        )
        assert '<html lang="en">' in chosen.text  # the page's switch, kept on reload
        for name in ("en", "zh-CN"):
            assert (await client.get(f"/static/i18n/{name}.json")).status_code == 200
