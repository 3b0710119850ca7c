"""PostgreSQL stopped under a real `taskrelay api`: 503 with Retry-After, never 500 (protocol §6).

The API runs against a migrated database on a private PostgreSQL, which each test stops (fast
or immediate shutdown) and starts again: during the outage every route answers 503 with a
`Retry-After` header and a JSON body, `/health` says the database is down, a WebSocket is
closed with 1013, nothing is written, nothing is logged with a traceback; once PostgreSQL is
back the same requests succeed without restarting the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from harness import resources as res
from harness.processes import Process, start_api
from harness.servers import PrivatePostgres
from harness.wait import wait_until
from harness.worker import log_lines
from harness.ws import Watch
from shared.service.auth import issue_token
from tests.e2e.conftest import auth
from tests.support.proxy import TcpProxy

BODY = {"roadmap_id": "roadmap-outage", "concepts": [{"concept_id": "c1", "title": "Closures"}]}
OUTAGE_WITHIN = 60.0
"""How long PostgreSQL may take to come back and the API to notice, on a loaded machine."""

pytestmark = pytest.mark.slow


@dataclass
class Setup:
    postgres: PrivatePostgres
    resources: res.Resources
    api: Process
    client: httpx.AsyncClient
    user: str

    @property
    def base_url(self) -> str:
        return str(self.client.base_url).rstrip("/")

    async def watch(self, task_id: str) -> Watch:
        return await Watch.open(self.base_url, task_id, issue_token(res.SECRET, self.user, 3600))

    async def call(self, method: str, path: str, key: str | None = None) -> httpx.Response:
        headers = auth(self.user)
        if key is not None:
            headers["Idempotency-Key"] = key
        body = BODY if path == "/api/v1/tasks" else None
        return await self.client.request(method, path, json=body, headers=headers)

    async def create(self) -> str:
        created = await self.call("POST", "/api/v1/tasks")
        assert created.status_code == 201, created.text
        return str(created.json()["task_id"])

    def assert_clean_log(self) -> None:
        """No request failed with a traceback or an error line: an outage is a warning."""
        assert self.api.alive(), self.api.output()
        log = self.api.output()
        assert "Traceback" not in log, log
        levels = {line.get("level") for line in log_lines(self.api)}
        assert not levels & {"error", "critical"}, log


@pytest.fixture(name="setup")
async def setup_fixture(private_postgres: PrivatePostgres) -> AsyncIterator[Setup]:
    with contextlib.ExitStack() as stack:
        resources = stack.enter_context(res.isolated_on("taskrelay_test_outage", private_postgres))
        # Its clients fire as fast as they can at one user's tasks: the flood limit is not
        # what these tests are about (tests/e2e/test_hostile_http.py is).
        env = resources.env(TASKRELAY_API_RATE_LIMIT_PER_SECOND="0")
        api = stack.enter_context(start_api(env, name="api-outage"))
        base_url = f"http://127.0.0.1:{api.port}"  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            user = f"user-{uuid.uuid4().hex[:8]}"
            yield Setup(private_postgres, resources, api, client, user)


def outage_requests(task_id: str) -> list[tuple[str, str, str | None]]:
    """Every route that needs PostgreSQL, POSTs with and without an Idempotency-Key."""
    key = uuid.uuid4().hex
    requests: list[tuple[str, str, str | None]] = [("GET", f"/api/v1/tasks/{task_id}", None)]
    for path in ("/api/v1/tasks", f"/api/v1/tasks/{task_id}/cancel"):
        requests += [("POST", path, None), ("POST", path, f"{key}-{path}")]
    requests += [("POST", f"/api/v1/tasks/{task_id}/retry", None)]
    requests += [("POST", f"/api/v1/tasks/{task_id}/retry", f"{key}-retry")]
    return requests


def assert_unavailable(response: httpx.Response) -> None:
    what = f"{response.request.method} {response.request.url.path}"
    assert response.status_code == 503, (what, response.status_code, response.text)
    assert int(response.headers["Retry-After"]) > 0, what
    body = response.json()
    assert body["status_code"] == 503, (what, body)
    assert "PostgreSQL" in body["detail"], (what, body)
    assert "://" not in body["detail"], (what, body)  # no URL, so no credentials


async def task_count(setup: Setup) -> int:
    conn = await asyncpg.connect(setup.resources.database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM roadmap_tasks WHERE owner_id = $1", setup.user
        )
        return count
    finally:
        await conn.close()


async def health_once(setup: Setup, status: int) -> httpx.Response:
    """`/health` once it answers `status`: it answers from a database check at most 1 s old
    (so a flood of probes costs PostgreSQL one query a second), so it may lag that much."""

    async def answered() -> httpx.Response | None:
        health = await setup.client.get("/health")
        return health if health.status_code == status else None

    found = await wait_until(answered, within=5, what=f"/health to answer {status}")
    assert found is not None
    return found


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_an_outage_is_503_with_retry_after_then_the_api_works_again(
    setup: Setup, mode: str
) -> None:
    task_id = await setup.create()
    requests = outage_requests(task_id)

    await asyncio.to_thread(setup.postgres.stop, mode)
    for method, path, key in requests:
        assert_unavailable(await setup.call(method, path, key))
    health = await health_once(setup, 503)  # /health's check of PostgreSQL is up to 1 s old
    assert health.json()["database"] == "down"
    assert health.json()["status"] == "down"
    watch = await setup.watch(task_id)
    assert await watch.closed(within=30) == 1013

    await asyncio.to_thread(setup.postgres.start)

    async def back() -> bool:
        return (await setup.call("GET", f"/api/v1/tasks/{task_id}")).status_code == 200

    await wait_until(back, within=OUTAGE_WITHIN, what="the API to read a task again")
    assert await task_count(setup) == 1, "a request during the outage wrote something"
    # Nothing of the outage's requests was kept, their Idempotency-Keys included: each one now
    # runs for the first time.
    expected = {"/api/v1/tasks": 201, "/cancel": 200, "/retry": 202}
    for method, path, key in requests[1:]:
        if key is None:
            continue
        response = await setup.call(method, path, key)
        status = next(code for end, code in expected.items() if path.endswith(end))
        assert response.status_code == status, (path, response.text)
        assert "Idempotent-Replayed" not in response.headers
    health = await health_once(setup, 200)
    assert health.json() | {"sockets": 0} == {
        "status": "ok",
        "database": "up",
        "broker": "up",
        "sockets": 0,
    }
    watch = await setup.watch(task_id)
    assert (await watch.wait_frames(1, within=30))[0]["type"] == "snapshot"
    await watch.close()
    setup.assert_clean_log()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_requests_in_flight_across_a_stop_are_never_500(setup: Setup, mode: str) -> None:
    task_ids = [await setup.create() for _ in range(3)]
    statuses: Counter[int] = Counter()
    unavailable: list[httpx.Response] = []
    phase = {"name": "before"}
    seen: Counter[str] = Counter()
    stop = asyncio.Event()

    async def client_loop(n: int) -> None:
        requests = outage_requests(task_ids[n % len(task_ids)])
        turn = n
        while not stop.is_set():
            method, path, key = requests[turn % len(requests)]
            turn += 1
            started_in = phase["name"]
            response = await setup.call(method, path, key)
            statuses[response.status_code] += 1
            if response.status_code == 503:
                unavailable.append(response)
            if response.status_code < 500 and started_in == "after":
                seen["ok after"] += 1
            seen[started_in] += 1

    async def responses(what: str, n: int) -> bool:
        return seen[what] >= n

    loops = [asyncio.create_task(client_loop(n)) for n in range(6)]
    try:
        await wait_until(lambda: responses("before", 20), within=60, what="traffic")
        phase["name"] = "stopping"
        await asyncio.to_thread(setup.postgres.stop, mode)
        phase["name"] = "down"
        await wait_until(lambda: responses("down", 20), within=60, what="answers while down")
        await asyncio.to_thread(setup.postgres.start)
        phase["name"] = "after"
        await wait_until(
            lambda: responses("ok after", 20), within=OUTAGE_WITHIN, what="answers again"
        )
    finally:
        stop.set()
        await asyncio.gather(*loops, return_exceptions=True)

    assert statuses[500] == 0, statuses
    assert set(statuses) <= {200, 201, 202, 409, 503}, statuses
    assert unavailable, statuses
    for response in unavailable:
        assert_unavailable(response)
    setup.assert_clean_log()


async def test_health_says_when_the_broker_link_is_down(resources: res.Resources) -> None:
    """PostgreSQL up, the gateway's RabbitMQ link cut: `degraded`, 503, `broker: down`."""
    proxy = TcpProxy("127.0.0.1", 5672)
    amqp = resources.amqp_url.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")
    try:
        with start_api(resources.env(AMQP_URL=amqp), name="api-health") as api:
            url = f"http://127.0.0.1:{api.port}/health"  # type: ignore[attr-defined]
            async with httpx.AsyncClient(timeout=30) as client:

                async def health_is(status_code: int, **fields: str) -> bool:
                    response = await client.get(url)
                    body = response.json()
                    return response.status_code == status_code and body | fields == body

                ok = {"status": "ok", "database": "up", "broker": "up"}
                await wait_until(lambda: health_is(200, **ok), within=30, what="healthy")
                proxy.cut()
                down = {"status": "degraded", "database": "up", "broker": "down"}
                await wait_until(lambda: health_is(503, **down), within=30, what="broker down")
                proxy.restore()
                await wait_until(lambda: health_is(200, **ok), within=60, what="broker back")
            assert "Traceback" not in api.output(), api.output()
    finally:
        proxy.close()


async def test_openapi_documents_the_503(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    routes = [
        ("/api/v1/tasks", "post"),
        ("/api/v1/tasks/{task_id}", "get"),
        ("/api/v1/tasks/{task_id}/cancel", "post"),
        ("/api/v1/tasks/{task_id}/retry", "post"),
        ("/health", "get"),
    ]
    for path, method in routes:
        assert "503" in schema["paths"][path][method]["responses"], (path, method)
