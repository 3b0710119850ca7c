"""`/tasks/{task_id}?token=...`: the live task page, plain HTML, JS and CSS served by the API.

The page is rendered once with the task as it is now, in the reader's language (so it means
something before the script runs), then `static/task.js` keeps it live over
`/ws/tasks/{task_id}`, lists the items through the items API, and calls the HTTP API for Retry
and Cancel with the same token. The token travels in the URL, so the page asks the browser to
send no Referer and to cache nothing, and its CSP allows only its own scripts; the message
catalogue rides along as a JSON data block (never run as script).
"""

from __future__ import annotations

import functools
import html
import json
from pathlib import Path
from string import Template
from typing import Any
from uuid import UUID

from litestar import Request, Response, get
from litestar.enums import MediaType
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from services.api.i18n import catalogue, negotiate, translate
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import Settings
from shared.errors import NotFound, Unauthorized
from shared.service import get_task_view
from shared.service.auth import verify_token

STATIC_DIR = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}
PAGE_HEADERS = {**SECURITY_HEADERS, "Vary": "Accept-Language"}
"""The page's language follows `Accept-Language`: a shared cache must not mix them up."""
_ERROR_PAGE = Template(
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<title>$title · taskrelay</title><link rel="stylesheet" href="/static/task.css"></head>'
    '<body><main class="task"><h1>$title</h1><p role="alert">$detail</p></main></body></html>'
)


@get("/tasks/{task_id:str}", media_type=MediaType.HTML, include_in_schema=False)
async def task_page(request: Request[Any, Any, Any], task_id: str) -> Response[str]:
    """The task page; 401 without a valid `token`, 404 for an unknown or someone else's task."""
    settings: Settings = request.app.state.settings
    try:
        user_id = verify_token(
            settings.auth.require_secret(), request.query_params.get("token", "")
        )
    except Unauthorized as exc:
        return _error(401, "Not signed in", f"{exc}: open this page with ?token=<your token>.")
    uow_factory: UnitOfWorkFactory = request.app.state.uow_factory
    try:
        async with uow_factory() as uow:
            view = await get_task_view(uow, user_id, UUID(task_id))
    except (ValueError, NotFound):
        return _error(404, "Task not found", "This task does not exist, or it is not yours.")
    language = negotiate(
        request.headers.get("accept-language", ""), request.query_params.get("lang")
    )
    page = render(view.as_dict(), language)
    return Response(page, media_type=MediaType.HTML, headers=PAGE_HEADERS)


def render(view: dict[str, Any], language: str = "en") -> str:
    """The page with the task's current state filled in, every value HTML-escaped."""
    messages = catalogue(language)

    def t(key: str, **values: object) -> str:
        return html.escape(translate(messages, key, **values), quote=True)

    items = view["items"]
    total, completed, failed = items["total"], items["completed"], items["failed"]
    percent = round(100 * (completed + failed) / total) if total else 0
    status = t(f"status_{view['status']}")
    step = view["current_step"]
    values = {
        "lang": language,
        "messages_json": _data_block(messages),
        "en_pressed": str(language == "en").lower(),
        "zh_pressed": str(language == "zh-CN").lower(),
        "page_title": t(
            "page_title",
            status=translate(messages, f"status_{view['status']}"),
            task_id=view["task_id"],
        ),
        "task_id": html.escape(view["task_id"]),
        "roadmap_id": html.escape(view["roadmap_id"]),
        "status": html.escape(view["status"]),
        "status_text": status,
        "step": html.escape(_step(messages, step)),
        "message": html.escape(view.get("last_message") or translate(messages, "no_value")),
        "error": html.escape(view["error_message"] or ""),
        "error_hidden": "" if view["error_message"] else "hidden",
        "completed": str(completed),
        "failed": str(failed),
        "pending": str(items["pending"]),
        "percent": str(percent),
        "percent_text": t("percent_done", n=percent),
        "progress_text": t(
            "progress_text", percent=percent, completed=completed, failed=failed, total=total
        ),
        "count_completed": _number_in(messages, "count_completed", "count-completed", completed),
        "count_failed": _number_in(messages, "count_failed", "count-failed", failed),
        "count_total": _number_in(messages, "count_total", "count-total", total),
        "retry_label": t("retry"),
    }
    values.update({f"t_{key}": t(key) for key in messages})
    return _template().substitute(values)


def _step(messages: dict[str, str], step: str | None) -> str:
    """A known step in the page's language; a step the catalogue lacks, readably as given."""
    if step is None:
        return messages["no_value"]
    return messages.get(f"step_{step}", step.replace("_", " "))


def _number_in(messages: dict[str, str], key: str, element_id: str, n: int) -> str:
    """The message with its `{n}` as a span the script updates in place."""
    before, _, after = messages[key].partition("{n}")
    return f'{html.escape(before)}<span id="{element_id}">{n}</span>{html.escape(after)}'


def _data_block(messages: dict[str, str]) -> str:
    """JSON safe inside `<script type="application/json">`: no `<` can end the block."""
    return json.dumps(messages, ensure_ascii=False).replace("<", "\\u003c")


@functools.cache
def _template() -> Template:
    return Template((STATIC_DIR / "task.html").read_text(encoding="utf-8"))


def _error(status_code: int, title: str, detail: str) -> Response[str]:
    body = _ERROR_PAGE.substitute(title=html.escape(title), detail=html.escape(detail))
    return Response(
        body, status_code=status_code, media_type=MediaType.HTML, headers=SECURITY_HEADERS
    )


PAGE_HANDLERS: list[ControllerRouterHandler] = [
    task_page,
    create_static_files_router(path="/static", directories=[STATIC_DIR], include_in_schema=False),
]
