"""The HTTP API as a client sees it, against the real `taskrelay api` process (protocol §6)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import asyncpg
import httpx

from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import Settings
from tests.e2e.conftest import auth
from tests.support import tasks

BODY = {
    "roadmap_id": "roadmap-42",
    "concepts": [{"concept_id": "c1", "title": "Closures"}, {"concept_id": "c2", "title": "Scope"}],
}


def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def outbox_count(settings: Settings, task_id: str) -> Counter[str]:
    conn = await asyncpg.connect(settings.database.asyncpg_dsn)
    try:
        rows = await conn.fetch("SELECT kind FROM outbox WHERE task_id = $1", uuid.UUID(task_id))
    finally:
        await conn.close()
    return Counter(r["kind"] for r in rows)


async def test_create_and_read(client: httpx.AsyncClient, settings: Settings) -> None:
    alice = user()
    created = await client.post("/api/v1/tasks", json=BODY, headers=auth(alice))
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["status"] == "pending"
    assert view["seq"] == 0
    assert view["items"]["total"] == 6
    assert view["items"]["by_type"]["quiz"] == {
        "total": 2,
        "completed": 0,
        "failed": 0,
        "pending": 2,
    }
    assert await outbox_count(settings, view["task_id"]) == {"job": 1}

    read = await client.get(f"/api/v1/tasks/{view['task_id']}", headers=auth(alice))
    assert read.status_code == 200
    assert read.json() == view


async def test_another_users_task_is_404(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/v1/tasks", json=BODY, headers=auth(user()))
    task_id = created.json()["task_id"]
    for method, path in [
        ("GET", f"/api/v1/tasks/{task_id}"),
        ("POST", f"/api/v1/tasks/{task_id}/cancel"),
        ("POST", f"/api/v1/tasks/{task_id}/retry"),
    ]:
        response = await client.request(method, path, headers=auth(user()))
        assert response.status_code == 404, (method, path, response.text)
        assert "detail" in response.json()


async def test_retry_answers_after_commit(
    client: httpx.AsyncClient, uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    alice = user()
    task_id = await tasks.partial_failure(uow_factory, alice, completed=11, failed=10)
    conn = await asyncpg.connect(settings.database.asyncpg_dsn)
    try:
        before = await conn.fetchrow("SELECT seq FROM roadmap_tasks WHERE task_id = $1", task_id)
        top = await conn.fetchval("SELECT coalesce(max(id), 0) FROM outbox")
        response = await client.post(f"/api/v1/tasks/{task_id}/retry", headers=auth(alice))
        row = await conn.fetchrow("SELECT * FROM roadmap_tasks WHERE task_id = $1", task_id)
        new = await conn.fetch(
            "SELECT kind, payload FROM outbox WHERE task_id = $1 AND id > $2 ORDER BY id",
            task_id,
            top,
        )
    finally:
        await conn.close()
    assert response.status_code == 202, response.text
    assert (row["status"], row["completed_at"], row["error_message"]) == ("processing", None, None)
    assert row["seq"] == before["seq"] + 1
    assert [r["kind"] for r in new] == ["notification", "job"]
    body = response.json()
    assert body["total_items"] == 10
    assert body["items_by_type"] == {"tutorial": 10}
    assert body["recovery_type"] == "content_retry"
    assert body["task"]["status"] == "processing"
    assert body["task"]["seq"] == row["seq"]


async def test_fifty_concurrent_retries_one_wins(
    client: httpx.AsyncClient, uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    alice = user()
    task_id = await tasks.partial_failure(uow_factory, alice, completed=1, failed=4)
    jobs_before = (await outbox_count(settings, str(task_id)))["job"]
    headers = auth(alice)
    responses = await asyncio.gather(
        *(client.post(f"/api/v1/tasks/{task_id}/retry", headers=headers) for _ in range(50))
    )
    codes = Counter(r.status_code for r in responses)
    assert codes == {202: 1, 409: 49}, codes
    assert (await outbox_count(settings, str(task_id)))["job"] == jobs_before + 1


async def test_cancel_then_retry(client: httpx.AsyncClient) -> None:
    alice = user()
    created = (await client.post("/api/v1/tasks", json=BODY, headers=auth(alice))).json()
    path = f"/api/v1/tasks/{created['task_id']}"
    cancelled = await client.post(f"{path}/cancel", headers=auth(alice))
    assert cancelled.status_code == 200
    assert cancelled.json()["error_message"] == "Task cancelled by user"
    again = await client.post(f"{path}/cancel", headers=auth(alice))
    assert again.status_code == 409
    retried = await client.post(f"{path}/retry", headers=auth(alice))
    assert retried.status_code == 202
    task = retried.json()["task"]
    assert (task["status"], task["completed_at"], task["error_message"]) == (
        "processing",
        None,
        None,
    )


async def created_tasks(settings: Settings, owner: str) -> int:
    conn = await asyncpg.connect(settings.database.asyncpg_dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM roadmap_tasks WHERE owner_id = $1", owner
        )
    finally:
        await conn.close()
    return count


async def test_idempotency_key_replays_and_writes_nothing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    alice, bob = user(), user()
    key = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    first = await client.post("/api/v1/tasks", json=BODY, headers=auth(alice) | key)
    assert first.status_code == 201
    outbox_after_first = await outbox_count(settings, first.json()["task_id"])

    replay = await client.post("/api/v1/tasks", json=BODY, headers=auth(alice) | key)
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers.get("idempotent-replayed") == "true"
    assert await created_tasks(settings, alice) == 1
    assert await outbox_count(settings, first.json()["task_id"]) == outbox_after_first

    other = await client.post("/api/v1/tasks", json=BODY, headers=auth(bob) | key)
    assert other.status_code == 201
    assert other.json()["task_id"] != first.json()["task_id"]
    assert await created_tasks(settings, bob) == 1

    changed = dict(BODY, roadmap_id="another")
    mismatch = await client.post("/api/v1/tasks", json=changed, headers=auth(alice) | key)
    assert mismatch.status_code == 422
    assert "detail" in mismatch.json()
    assert await created_tasks(settings, alice) == 1


async def test_idempotent_retry_replays(
    client: httpx.AsyncClient, uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    alice = user()
    task_id = await tasks.partial_failure(uow_factory, alice, completed=1, failed=2)
    headers = auth(alice) | {"Idempotency-Key": "retry-once"}
    first = await client.post(f"/api/v1/tasks/{task_id}/retry", headers=headers)
    kinds = await outbox_count(settings, str(task_id))
    second = await client.post(f"/api/v1/tasks/{task_id}/retry", headers=headers)
    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json() == first.json()
    assert await outbox_count(settings, str(task_id)) == kinds


async def test_an_idempotency_key_is_at_most_255_characters(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A longer key is refused with a 400 before anything is written; 255 characters work."""
    alice = user()
    too_long = {"Idempotency-Key": "k" * 256}
    refused = await client.post("/api/v1/tasks", json=BODY, headers=auth(alice) | too_long)
    assert refused.status_code == 400
    assert "Idempotency-Key" in refused.json()["detail"]
    assert await created_tasks(settings, alice) == 0
    longest = {"Idempotency-Key": "k" * 255}
    first = await client.post("/api/v1/tasks", json=BODY, headers=auth(alice) | longest)
    replay = await client.post("/api/v1/tasks", json=BODY, headers=auth(alice) | longest)
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.headers.get("idempotent-replayed") == "true"
    assert await created_tasks(settings, alice) == 1


async def test_concurrent_repeats_of_one_key(client: httpx.AsyncClient, settings: Settings) -> None:
    """Repeats racing the first request: each is the stored response or 409, one task made."""
    alice = user()
    headers = auth(alice) | {"Idempotency-Key": "racing"}
    responses = await asyncio.gather(
        *(client.post("/api/v1/tasks", json=BODY, headers=headers) for _ in range(20))
    )
    codes = Counter(r.status_code for r in responses)
    assert set(codes) <= {201, 409}, codes
    assert codes[201] >= 1
    assert len({r.json()["task_id"] for r in responses if r.status_code == 201}) == 1
    assert await created_tasks(settings, alice) == 1


def _bad_requests(task_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    big = b'{"roadmap_id": "r", "concepts": [' + b'{"concept_id": "x", "title": "y"},' * 400_000
    many = [{"concept_id": f"c{i}", "title": "t"} for i in range(1001)]
    return [
        ("malformed json", "/api/v1/tasks", {"content": b"{not json"}),
        ("wrong types", "/api/v1/tasks", {"json": {"roadmap_id": 5, "concepts": "x"}}),
        (
            "unknown content type",
            "/api/v1/tasks",
            {"content": b"<task/>", "headers": {"Content-Type": "application/xml"}},
        ),
        ("empty concepts", "/api/v1/tasks", {"json": {"roadmap_id": "r", "concepts": []}}),
        ("missing concepts", "/api/v1/tasks", {"json": {"roadmap_id": "r"}}),
        ("too many concepts", "/api/v1/tasks", {"json": {"roadmap_id": "r", "concepts": many}}),
        (
            "duplicate concept ids",
            "/api/v1/tasks",
            {"json": {"roadmap_id": "r", "concepts": [BODY["concepts"][0]] * 2}},
        ),
        ("unknown content_types", "/api/v1/tasks", {"json": dict(BODY, content_types=["poem"])}),
        ("empty content_types", "/api/v1/tasks", {"json": dict(BODY, content_types=[])}),
        ("empty roadmap_id", "/api/v1/tasks", {"json": dict(BODY, roadmap_id="")}),
        (
            "NUL in a title",
            "/api/v1/tasks",
            {"json": dict(BODY, concepts=[{"concept_id": "c", "title": "a\u0000b"}])},
        ),
        ("long roadmap_id", "/api/v1/tasks", {"json": dict(BODY, roadmap_id="r" * 201)}),
        (
            "12 MiB body",
            "/api/v1/tasks",
            {"content": big[: 12 * 1024 * 1024], "headers": {"Content-Type": "application/json"}},
        ),
        ("malformed uuid", "/api/v1/tasks/not-a-uuid/retry", {}),
    ]


async def test_bad_input_is_a_4xx_with_detail(client: httpx.AsyncClient) -> None:
    alice = user()
    created = (await client.post("/api/v1/tasks", json=BODY, headers=auth(alice))).json()
    for name, path, kwargs in _bad_requests(created["task_id"]):
        headers = auth(alice) | kwargs.pop("headers", {})
        response = await client.post(path, headers=headers, **kwargs)
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
        assert isinstance(response.json()["detail"], str), name
        assert response.json()["status_code"] == response.status_code, name


async def test_bad_tokens_are_401(client: httpx.AsyncClient) -> None:
    cases = {
        "missing": {},
        "not bearer": {"Authorization": "Basic abc"},
        "garbage": {"Authorization": "Bearer not.a.token"},
        "expired": auth(user(), ttl=-10),
        "forged": auth(user(), secret="another-secret-" + "y" * 40),
    }
    for name, headers in cases.items():
        for method, path, kwargs in [
            ("POST", "/api/v1/tasks", {"json": BODY}),
            ("GET", f"/api/v1/tasks/{uuid.uuid4()}", {}),
        ]:
            response = await client.request(method, path, headers=headers, **kwargs)
            assert response.status_code == 401, (name, path, response.text)
            assert response.json()["detail"], name


async def test_every_post_wants_json_after_a_token(client: httpx.AsyncClient) -> None:
    """The token is checked first, then a POST's media type: 401 comes before 415."""
    alice = user()
    task_id = (await client.post("/api/v1/tasks", json=BODY, headers=auth(alice))).json()["task_id"]
    xml = {"Content-Type": "application/xml"}
    for path in (
        "/api/v1/tasks",
        f"/api/v1/tasks/{task_id}/retry",
        f"/api/v1/tasks/{task_id}/cancel",
    ):
        refused = await client.post(path, content=b"<task/>", headers=auth(alice) | xml)
        assert refused.status_code == 415, (path, refused.text)
        assert "application/xml" in refused.json()["detail"], path
        anonymous = await client.post(path, content=b"<task/>", headers=xml)
        assert anonymous.status_code == 401, (path, anonymous.text)
    # A GET names no body: no media type is asked of it.
    read = await client.get(f"/api/v1/tasks/{task_id}", headers=auth(alice) | xml)
    assert read.status_code == 200, read.text
    # Nothing was cancelled by the refused POSTs.
    assert read.json()["status"] != "cancelled"


async def test_a_body_is_not_decoded_before_the_token_is_checked(
    client: httpx.AsyncClient,
) -> None:
    """JSON nested 100,000 deep earns a 400 once decoded: without a token it is a 401."""
    deep = b"[" * 100_000 + b"]" * 100_000
    as_json = {"Content-Type": "application/json"}
    anonymous = await client.post("/api/v1/tasks", content=deep, headers=as_json)
    assert anonymous.status_code == 401, anonymous.text
    known = await client.post("/api/v1/tasks", content=deep, headers=auth(user()) | as_json)
    assert known.status_code == 400, known.text


async def test_health_needs_no_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["database"] == "up"
