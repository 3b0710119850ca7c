"""`/tasks/{task_id}?token=...`: the live task page, plain HTML, JS and CSS served by the API.

The page is rendered once with the task as it is now (so it means something before the script
runs), then `static/task.js` keeps it live over `/ws/tasks/{task_id}` and calls the HTTP API
for Retry and Cancel with the same token. The token travels in the URL, so the page asks the
browser to send no Referer and to cache nothing, and its CSP allows only its own scripts.
"""

from __future__ import annotations

import functools
import html
from pathlib import Path
from string import Template
from typing import Any
from uuid import UUID

from litestar import Request, Response, get
from litestar.enums import MediaType
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from shared.auth import verify_token
from shared.db import UnitOfWorkFactory
from shared.errors import NotFound, Unauthorized
from shared.service import get_task_view
from shared.settings import Settings

STATIC_DIR = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}
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
    uows: UnitOfWorkFactory = request.app.state.uow_factory
    try:
        async with uows() as uow:
            view = await get_task_view(uow, user_id, UUID(task_id))
    except (ValueError, NotFound):
        return _error(404, "Task not found", "This task does not exist, or it is not yours.")
    return Response(render(view), media_type=MediaType.HTML, headers=SECURITY_HEADERS)


def render(view: dict[str, Any]) -> str:
    """The page with the task's current state filled in, every value HTML-escaped."""
    items = view["items"]
    total, completed, failed = items["total"], items["completed"], items["failed"]
    percent = round(100 * (completed + failed) / total) if total else 0
    values = {
        "task_id": view["task_id"],
        "roadmap_id": view["roadmap_id"],
        "status": view["status"],
        "status_text": view["status"].replace("_", " "),
        "step": (view["current_step"] or "—").replace("_", " "),
        "error": view["error_message"] or "",
        "error_hidden": "" if view["error_message"] else "hidden",
        "completed": completed,
        "failed": failed,
        "total": total,
        "percent": percent,
    }
    escaped = {k: html.escape(str(v), quote=True) for k, v in values.items()}
    return _template().substitute(escaped)


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
