"""A small client of taskrelay's HTTP API, for `taskrelay run` and `taskrelay demo`.

It speaks the public API only (docs/protocol.md §6), as any outside program would; blocking urllib
calls run in a thread so the callers' event loops keep going. The base URL may carry a password
(`--url http://user:pw@host`): every text meant for a person (`shown_url`, `page_url`, an
unreachable API's message) shows it as `***` (docs/protocol.md §3).
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from shared.adapters.unavailable import unavailable
from shared.config.redaction import redact_url
from shared.errors import DependencyUnavailable, TaskRelayError


class ApiError(TaskRelayError):
    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        super().__init__(f"HTTP {status}: {detail}")


class ApiClient:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)
        """The base URL to print: its password, if any, masked."""
        self._token = token

    def page_url(self, task_id: str) -> str:
        """The task page's URL, to print (the base URL's password masked)."""
        return f"{self.shown_url}/tasks/{task_id}?token={self._token}"

    def unreachable(self, reason: str, hint: str) -> DependencyUnavailable:
        """The error to raise when the API does not answer; it names no password."""
        return unavailable("the taskrelay API", self.base_url, reason, hint=hint)

    def ws_url(self, task_id: str) -> str:
        scheme, rest = self.base_url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws/tasks/{task_id}?token={self._token}"

    async def create_task(
        self, roadmap_id: str, concepts: list[tuple[str, str]], content_types: list[str]
    ) -> dict[str, Any]:
        body = {
            "roadmap_id": roadmap_id,
            "concepts": [{"concept_id": c, "title": t} for c, t in concepts],
            "content_types": content_types,
        }
        return await self._call("POST", "/api/v1/tasks", body)

    async def get_task(self, task_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/v1/tasks/{task_id}")

    async def retry(self, task_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/api/v1/tasks/{task_id}/retry")

    async def ready(self) -> bool:
        """True once the API answers (its OpenAPI document)."""
        try:
            await asyncio.to_thread(_request, "GET", f"{self.base_url}/schema/openapi.json")
        except (OSError, ApiError):
            return False
        return True

    async def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            return await asyncio.to_thread(_request, method, self.base_url + path, body, headers)
        except urllib.error.URLError as exc:
            raise self.unreachable(str(exc.reason), "Start it with: taskrelay run") from exc


def _request(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            parsed: dict[str, Any] = json.loads(response.read() or b"{}")
            return parsed
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", exc.reason)
        except ValueError:
            detail = exc.reason
        raise ApiError(exc.code, str(detail)) from exc
