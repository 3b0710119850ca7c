"""Hostile HTTP clients against the real `taskrelay api` (docs/protocol.md §6, docs/security.md).

Bad input is a 4xx, never a 5xx: JSON nested past 32 levels, bodies that are not UTF-8, tokens
whose `sub` is not 1-255 printable characters. Another user's request takes no lock on a task
it does not own. A flood from one client is answered 429 while other users are served.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import asyncpg
import httpx
import jwt
import pytest

from harness.processes import Process, start_api
from harness.resources import SECRET, Resources
from shared.config.settings import Settings
from shared.service.auth import ALGORITHM, ISSUER
from tests.e2e.conftest import auth

BODY = {"roadmap_id": "hostile", "concepts": [{"concept_id": "c1", "title": "One"}]}
CONCEPT = b'{"concept_id": "c1", "title": "One"}'
THREE_ITEMS = {**BODY, "content_types": ["tutorial", "resources", "quiz"]}


def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def forged(sub: object) -> dict[str, str]:
    """A correctly signed token whose `sub` is whatever a hostile issuer put there."""
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + 600, "iss": ISSUER}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm=ALGORITHM)}"}


HOSTILE_BODIES = {
    "array nested 100,000 deep": nested(100_000),
    "object nested 5,000 deep": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "array nested 33 deep": nested(33),
    "33 deep inside a valid task": json.dumps({**BODY, "extra": json.loads(nested(31))}).encode(),
    "a string that is not UTF-8": b'{"roadmap_id": "\xff\xfe", "concepts": [%s]}' % CONCEPT,
    "a key that is not UTF-8": b'{"\xc3\x28": 1}',
    "raw bytes": bytes(range(256)),
    "a lone surrogate escape": b'{"roadmap_id": "\\ud800", "concepts": [%s]}' % CONCEPT,
    "a NUL escape": b'{"roadmap_id": "a\\u0000b", "concepts": [%s]}' % CONCEPT,
}


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
async def test_hostile_bodies_are_4xx(client: httpx.AsyncClient, api: Process, name: str) -> None:
    headers = {**auth(user()), "Content-Type": "application/json"}
    response = await client.post("/api/v1/tasks", content=HOSTILE_BODIES[name], headers=headers)
    assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
    assert response.json()["status_code"] == response.status_code
    assert "RecursionError" not in api.output()
    assert "UnicodeDecodeError" not in api.output()


async def test_nesting_up_to_32_levels_is_read(client: httpx.AsyncClient) -> None:
    """32 levels are JSON this API reads (then refuses for its shape: a 400, not 'too deep')."""
    headers = {**auth(user()), "Content-Type": "application/json"}
    response = await client.post("/api/v1/tasks", content=nested(32), headers=headers)
    assert response.status_code == 400
    assert "deeper than 32" not in response.json()["detail"]
    deep = await client.post("/api/v1/tasks", content=nested(33), headers=headers)
    assert deep.json()["detail"] == "the JSON body is nested deeper than 32 levels"


def test_a_body_cut_short_is_no_server_error(api: Process) -> None:
    """A client that announces more body than it sends, then goes: no 500, no traceback."""
    token = auth(user())["Authorization"]
    head = (
        f"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", api.port), timeout=30) as peer:  # type: ignore[attr-defined]
        peer.sendall(head.encode() + b'{"roadmap_id": "cut')
        peer.shutdown(socket.SHUT_WR)
        answer = peer.recv(65536)
    assert not answer.startswith(b"HTTP/1.1 5"), answer[:100]
    assert "client disconnected prematurely" not in api.output()  # no error-level traceback


BAD_SUBJECTS = ["a\x00b", "x" * 256, "x" * 10_000, "bell\x07", "tab\there", "line\nbreak", ""]
BAD_SUBJECTS += [" ", " alice", "alice ", "\u3000alice", "alice\u00a0"]  # whitespace at an end


@pytest.mark.parametrize("sub", BAD_SUBJECTS, ids=lambda s: repr(s[:12]))
async def test_a_token_subject_that_is_not_printable_is_401(
    client: httpx.AsyncClient, sub: str
) -> None:
    headers = forged(sub)
    created = await client.post("/api/v1/tasks", json=BODY, headers=headers)
    assert created.status_code == 401, created.text
    keyed = await client.post(
        "/api/v1/tasks", json=BODY, headers={**headers, "Idempotency-Key": "k-1"}
    )
    assert keyed.status_code == 401, keyed.text
    read = await client.get(f"/api/v1/tasks/{uuid.uuid4()}", headers=headers)
    assert read.status_code == 401


@pytest.mark.parametrize("sub", ["x" * 255, "Zoë 用户 #1", "a"])
async def test_printable_subjects_up_to_255_characters_are_users(
    client: httpx.AsyncClient, sub: str
) -> None:
    headers = {**forged(sub), "Idempotency-Key": "k-1"}
    created = await client.post("/api/v1/tasks", json=BODY, headers=headers)
    assert created.status_code == 201, created.text


async def test_another_user_takes_no_lock_on_a_task(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """While the owner's worker holds the row lock, a stranger's cancel is a 404 at once; with
    the lock taken before the owner check it waited behind the worker (and could hold it)."""
    alice = user()
    task_id = (await client.post("/api/v1/tasks", json=BODY, headers=auth(alice))).json()["task_id"]
    worker = await asyncpg.connect(settings.database.asyncpg_dsn)
    try:
        async with worker.transaction():
            await worker.execute(
                "SELECT 1 FROM roadmap_tasks WHERE task_id = $1 FOR UPDATE", uuid.UUID(task_id)
            )
            for action in ("cancel", "retry"):
                stranger = client.post(f"/api/v1/tasks/{task_id}/{action}", headers=auth(user()))
                response = await asyncio.wait_for(stranger, 20)  # would block until the lock goes
                assert response.status_code == 404, response.text
    finally:
        await worker.close()
    owner = await client.post(f"/api/v1/tasks/{task_id}/cancel", headers=auth(alice))
    assert owner.status_code == 200


@pytest.fixture(name="throttled_api", scope="module")
def throttled_api_fixture(resources: Resources) -> Iterator[str]:
    env = resources.env(TASKRELAY_API_RATE_LIMIT_PER_SECOND="5")
    proc = start_api(env, name="api-throttled")
    try:
        yield f"http://127.0.0.1:{proc.port}"  # type: ignore[attr-defined]
    finally:
        proc.stop()


async def test_a_flood_from_one_client_leaves_the_api_to_everyone_else(throttled_api: str) -> None:
    # No keep-alive: a pooled connection the server closes after 5 s idle would race a reuse.
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=throttled_api, timeout=60, limits=limits) as http:
        flooder, anonymous, bystander = auth(user()), {"Authorization": "Bearer junk"}, user()
        missing = f"/api/v1/tasks/{uuid.uuid4()}"

        async def flood(headers: dict[str, str]) -> Counter[int]:
            answers = await asyncio.gather(
                *(http.get(missing, headers=headers) for _ in range(150))
            )
            refused = [r for r in answers if r.status_code == 429]
            assert all(r.headers.get("Retry-After") for r in refused)
            assert all(r.json()["status_code"] == 429 for r in refused)
            return Counter(r.status_code for r in answers)

        async def serve_bystander() -> list[int]:
            codes = []
            for _ in range(3):
                created = await http.post("/api/v1/tasks", json=BODY, headers=auth(bystander))
                codes.append(created.status_code)
            return codes

        by_user, by_address, bystander_codes = await asyncio.gather(
            flood(flooder), flood(anonymous), serve_bystander()
        )
    assert by_user[429] > 0, by_user
    assert set(by_user) <= {404, 429}, by_user
    assert by_address[429] > 0, by_address
    assert set(by_address) <= {401, 429}, by_address
    assert bystander_codes == [201, 201, 201]


async def test_a_flood_of_anonymous_requests_leaves_probes_and_assets_alone(
    throttled_api: str,
) -> None:
    """150 anonymous `/livez` at once (5 a second allowed here) while a load balancer probes and
    a browser loads the page's assets from the same address: none of those is 429."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=throttled_api, timeout=60, limits=limits) as http:
        flood = [http.get("/livez") for _ in range(150)]
        wanted = ["/readyz", "/health", "/metrics", "/static/task.js", "/static/task.css"] * 4
        answers = await asyncio.gather(*flood, *(http.get(path) for path in wanted))
        after = await asyncio.gather(*(http.get(path) for path in wanted))
    codes = Counter(r.status_code for r in [*answers, *after])
    assert set(codes) == {200}, codes


async def test_a_forwarded_for_header_buys_no_budget_by_default(throttled_api: str) -> None:
    """No proxy is trusted unless named: a client that makes up a new `X-Forwarded-For` for
    each request is still one address, and is answered 429 past its budget."""
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=throttled_api, timeout=60, limits=limits) as http:
        answers = await asyncio.gather(
            *(
                http.get(
                    f"/api/v1/tasks/{uuid.uuid4()}", headers={"X-Forwarded-For": f"10.9.0.{i}"}
                )
                for i in range(40)
            )
        )
    codes = Counter(r.status_code for r in answers)
    assert codes[429] > 0, codes


@pytest.fixture(name="quota_api", scope="module")
def quota_api_fixture(resources: Resources) -> Iterator[str]:
    proc = start_api(resources.env(TASKRELAY_API_MAX_OPEN_ITEMS_PER_USER="10"), name="api-quota")
    try:
        yield f"http://127.0.0.1:{proc.port}"  # type: ignore[attr-defined]
    finally:
        proc.stop()


async def test_unfinished_items_per_user_are_limited(quota_api: str) -> None:
    """10 open items per user here: three 3-item tasks fit, a fourth is 429 with a detail that
    says why, for creates and retries alike; another user is not held back; a cancel frees
    room. (No worker runs: every task stays pending.)"""
    hoarder, other = auth(user()), auth(user())
    async with httpx.AsyncClient(base_url=quota_api, timeout=30) as http:
        created = [
            await http.post("/api/v1/tasks", json=THREE_ITEMS, headers=hoarder) for _ in range(3)
        ]
        assert [r.status_code for r in created] == [201, 201, 201]
        refused = await http.post("/api/v1/tasks", json=THREE_ITEMS, headers=hoarder)
        assert refused.status_code == 429, refused.text
        assert refused.json()["status_code"] == 429
        assert "9 items waiting" in refused.json()["detail"]
        assert "limit of 10" in refused.json()["detail"]
        keyed = {**hoarder, "Idempotency-Key": "full"}
        assert (
            await http.post("/api/v1/tasks", json=THREE_ITEMS, headers=keyed)
        ).status_code == 429
        assert (
            await http.post("/api/v1/tasks", json=THREE_ITEMS, headers=other)
        ).status_code == 201

        first, second = (r.json()["task_id"] for r in created[:2])
        for task_id in (first, second):
            cancelled = await http.post(f"/api/v1/tasks/{task_id}/cancel", headers=hoarder)
            assert cancelled.status_code == 200
        # 3 open now: a retry of `first` (3) fits, then a retry of `second` (3 more) fits too,
        # and a create after them (3 more: 12) does not.
        assert (await http.post(f"/api/v1/tasks/{first}/retry", headers=hoarder)).status_code == 202
        assert (
            await http.post(f"/api/v1/tasks/{second}/retry", headers=hoarder)
        ).status_code == 202
        again = await http.post("/api/v1/tasks", json=THREE_ITEMS, headers=hoarder)
        assert again.status_code == 429, again.text
        await http.post(f"/api/v1/tasks/{first}/cancel", headers=hoarder)
        over = await http.post(f"/api/v1/tasks/{second}/cancel", headers=hoarder)
        assert over.status_code == 200
        await http.post("/api/v1/tasks", json=THREE_ITEMS, headers=hoarder)  # 6 open
        retried = await http.post(f"/api/v1/tasks/{first}/retry", headers=hoarder)  # 9: fits
        assert retried.status_code == 202
        refused_retry = await http.post(f"/api/v1/tasks/{second}/retry", headers=hoarder)
        assert refused_retry.status_code == 429, refused_retry.text
        view = await http.get(f"/api/v1/tasks/{second}", headers=hoarder)
        assert view.json()["status"] == "cancelled"  # the refused retry changed nothing
