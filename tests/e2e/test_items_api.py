"""`GET /api/v1/tasks/{task_id}/items` and the view's `last_message` (protocol §6), over HTTP.

Paging walks every item once in a stable order, whatever changes between pages; a filter pages
within one status; cursors are opaque and checked; limits outside 1-500 and unknown statuses
are 4xx; another user's task is 404.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any
from uuid import UUID

import httpx

from harness.client import create_through_api
from harness.resources import SECRET
from shared.adapters.postgres import UnitOfWorkFactory
from shared.domain import Status
from shared.service.auth import issue_token
from tests.e2e.conftest import auth
from tests.support import tasks


def user() -> str:
    return f"items-{uuid.uuid4().hex[:8]}"


async def _create(client: httpx.AsyncClient, owner: str, n_concepts: int) -> str:
    concepts = [{"concept_id": f"c{i:04d}", "title": f"概念 {i}"} for i in range(n_concepts)]
    token = issue_token(SECRET, owner, 3600)
    return await create_through_api(str(client.base_url), token, concepts)


async def _walk(
    client: httpx.AsyncClient, owner: str, task_id: str, **params: Any
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = await client.get(f"/api/v1/tasks/{task_id}/items", params=query, headers=auth(owner))
        assert page.status_code == 200, page.text
        body = page.json()
        assert set(body) == {"items", "next"}
        items.extend(body["items"])
        cursor = body["next"]
        if cursor is None:
            return items


async def test_pages_walk_every_item_once_in_order(
    client: httpx.AsyncClient, uow_factory: UnitOfWorkFactory
) -> None:
    owner = user()
    task_id = await _create(client, owner, 70)  # 210 items
    everything = await _walk(client, owner, task_id, limit=500)
    assert len(everything) == 210
    expected = [(f"c{i:04d}", t) for i in range(70) for t in ("tutorial", "resources", "quiz")]
    assert [(i["concept_id"], i["content_type"]) for i in everything] == expected
    first = everything[0]
    assert set(first) == {
        "concept_id",
        "title",
        "content_type",
        "status",
        "attempts",
        "error",
        "updated_at",
    }
    assert first["title"] == "概念 0"
    assert first["status"] == "pending"
    assert first["attempts"] == 0

    default = await client.get(f"/api/v1/tasks/{task_id}/items", headers=auth(owner))
    assert len(default.json()["items"]) == 100  # the default limit
    assert int(default.headers["x-task-seq"]) == 0

    # Items change status between pages: the walk still sees each item exactly once.
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {"limit": 37, **({"cursor": cursor} if cursor else {})}
        response = await client.get(
            f"/api/v1/tasks/{task_id}/items", params=query, headers=auth(owner)
        )
        pages.extend(response.json()["items"])
        await tasks.store_results(uow_factory, UUID(task_id), "completed", 20)
        cursor = response.json()["next"]
        if cursor is None:
            break
    assert [(i["concept_id"], i["content_type"]) for i in pages] == expected


async def test_status_filter_pages_within_one_status(
    client: httpx.AsyncClient, uow_factory: UnitOfWorkFactory
) -> None:
    owner = user()
    task_id = await _create(client, owner, 40)  # 120 items
    await tasks.store_results(uow_factory, UUID(task_id), "completed", 50)
    await tasks.store_results(uow_factory, UUID(task_id), "failed", 30)
    everything = await _walk(client, owner, task_id, limit=500)
    for status, n in (("completed", 50), ("failed", 30), ("pending", 40)):
        only = await _walk(client, owner, task_id, status=status, limit=7)
        assert len(only) == n
        assert all(i["status"] == status for i in only)
        in_order = [i for i in everything if i["status"] == status]
        assert only == in_order
    failed = await _walk(client, owner, task_id, status="failed")
    assert all(i["attempts"] == 1 for i in failed)


async def test_bad_parameters_are_4xx_and_cursors_are_checked(client: httpx.AsyncClient) -> None:
    owner = user()
    task_id = await _create(client, owner, 2)
    url = f"/api/v1/tasks/{task_id}/items"
    for params in (
        {"limit": 0},
        {"limit": 501},
        {"limit": -1},
        {"limit": "ten"},
        {"status": "processing"},
        {"status": ""},
        {"cursor": "not-a-cursor"},
        {"cursor": "%%%"},
        {"cursor": base64.urlsafe_b64encode(b"i1:*:-5").decode()},
        {"cursor": base64.urlsafe_b64encode(b"i1:*:99999999999").decode()},
        {"cursor": base64.urlsafe_b64encode("i1:*:１".encode()).decode()},
        {"cursor": "x" * 201},
    ):
        response = await client.get(url, params=params, headers=auth(owner))
        assert response.status_code == 400, (params, response.text)
        assert response.json()["status_code"] == 400

    first = await client.get(url, params={"limit": 1, "status": "pending"}, headers=auth(owner))
    cursor = first.json()["next"]
    assert cursor is not None
    same = await client.get(
        url, params={"limit": 1, "status": "pending", "cursor": cursor}, headers=auth(owner)
    )
    assert same.status_code == 200
    assert same.json()["items"][0]["content_type"] == "resources"
    other = await client.get(url, params={"cursor": cursor}, headers=auth(owner))
    assert other.status_code == 400  # a cursor made for another filter
    assert "filter" in other.json()["detail"]
    edge = await client.get(url, params={"limit": 500}, headers=auth(owner))
    assert edge.status_code == 200
    assert edge.json()["next"] is None


async def test_items_of_another_users_task_are_404(client: httpx.AsyncClient) -> None:
    owner = user()
    task_id = await _create(client, owner, 1)
    url = f"/api/v1/tasks/{task_id}/items"
    assert (await client.get(url, headers=auth(user()))).status_code == 404
    assert (await client.get(url)).status_code == 401
    unknown = await client.get(f"/api/v1/tasks/{uuid.uuid4()}/items", headers=auth(owner))
    assert unknown.status_code == 404
    malformed = await client.get("/api/v1/tasks/nope/items", headers=auth(owner))
    assert 400 <= malformed.status_code < 500


async def test_openapi_documents_the_items_route(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    route = schema["paths"]["/api/v1/tasks/{task_id}/items"]["get"]
    assert {p["name"] for p in route["parameters"]} >= {"status", "limit", "cursor"}
    assert {"200", "400", "401", "404"} <= set(route["responses"])
    view = schema["components"]["schemas"]["TaskView"]
    assert "last_message" in view["properties"]


async def test_the_view_carries_the_latest_notification_message(
    client: httpx.AsyncClient, uow_factory: UnitOfWorkFactory
) -> None:
    owner = user()
    task_id = await _create(client, owner, 1)
    url = f"/api/v1/tasks/{task_id}"
    assert (await client.get(url, headers=auth(owner))).json()["last_message"] is None
    await tasks.move(uow_factory, UUID(task_id), Status.PROCESSING)
    view = (await client.get(url, headers=auth(owner))).json()
    assert view["last_message"] == "test"
    assert view["seq"] == 1
    cancelled = await client.post(f"{url}/cancel", headers=auth(owner))
    assert cancelled.json()["last_message"] == "Task cancelled by user"
