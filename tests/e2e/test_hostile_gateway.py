"""Hostile WebSocket clients against a real `taskrelay api` (docs/protocol.md §7, docs/security.md).

The API reaches RabbitMQ through a TCP proxy that counts the bytes it sends, so a test can see
whether a socket cost broker work (a binding). Sockets per user are capped at 3 here.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import aio_pika
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from harness.processes import Process, start_api
from harness.resources import SECRET, Resources
from harness.wait import wait_until
from harness.ws import Watch
from shared.adapters.postgres import UnitOfWorkFactory
from shared.domain.messages import EXCHANGE
from shared.service.auth import issue_token
from tests.support import raw_ws, tasks
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.slow

MAX_SOCKETS = 3


@dataclass(frozen=True)
class Api:
    url: str
    proc: Process
    broker: TcpProxy

    def sockets(self) -> int:
        with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
            count: int = json.loads(response.read())["sockets"]
            return count


@pytest.fixture(name="api", scope="module")
def api_fixture(resources: Resources) -> Iterator[Api]:
    broker = TcpProxy("127.0.0.1", 5672)
    amqp = resources.amqp_url.replace("127.0.0.1:5672", f"127.0.0.1:{broker.port}")
    env = resources.env(AMQP_URL=amqp, TASKRELAY_WS_MAX_SOCKETS_PER_USER=str(MAX_SOCKETS))
    proc = start_api(env, name="api-hostile-ws")
    try:
        yield Api(f"http://127.0.0.1:{proc.port}", proc, broker)  # type: ignore[attr-defined]
    finally:
        proc.stop()
        broker.close()


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def token_for(user: str) -> str:
    return issue_token(SECRET, user, 3600)


async def no_sockets(api: Api) -> None:
    async def idle() -> bool:
        return api.sockets() == 0

    await wait_until(idle, within=30, what="every socket of the API finished")


async def test_sockets_of_strangers_cost_no_broker_work(
    api: Api, uow_factory: UnitOfWorkFactory
) -> None:
    task_id = await tasks.new_task(uow_factory, "alice")
    before = api.broker.sent
    own = await Watch.open(api.url, task_id, token_for("alice"))
    await own.wait_frames(1)

    async def bound() -> bool:  # the control: the owner's socket does bind its task
        return api.broker.sent > before

    await wait_until(bound, within=30, what="the owner's binding sent to the broker")
    await own.close()
    await no_sockets(api)  # the owner's unbind went out too

    before = api.broker.sent
    for task, user in [(task_id, "mallory")] * 10 + [(uuid4(), "alice") for _ in range(10)]:
        watch = await Watch.open(api.url, task, token_for(user))
        assert await watch.closed(within=30) == 4404
        assert watch.frames == []
    await no_sockets(api)
    # 20 bindings and unbindings would be thousands of bytes; heartbeats are 8 bytes each.
    assert api.broker.sent - before < 200, api.broker.sent - before


async def test_the_socket_past_the_cap_is_closed_4429(
    api: Api, uow_factory: UnitOfWorkFactory
) -> None:
    task_id = await tasks.new_task(uow_factory, "carol")
    held = [await Watch.open(api.url, task_id, token_for("carol")) for _ in range(MAX_SOCKETS)]
    for watch in held:
        await watch.wait_frames(1)
    for task in (task_id, uuid4()):  # the cap is checked before the task is even looked up
        extra = await Watch.open(api.url, task, token_for("carol"))
        assert await extra.closed(within=30) == 4429
        assert extra.frames == []
    other_task = await tasks.new_task(uow_factory, "dave")
    other = await Watch.open(api.url, other_task, token_for("dave"))
    await other.wait_frames(1)  # another user is not held back

    await held.pop().close()

    async def admitted_again() -> bool:
        again = await Watch.open(api.url, task_id, token_for("carol"))
        try:
            await again.wait_frames(1, within=10)
        except AssertionError:
            return False
        held.append(again)
        return True

    await wait_until(admitted_again, within=30, what="a socket once one was closed")
    for watch in [*held, other]:
        await watch.close()
    await no_sockets(api)


@pytest.mark.parametrize("key", ["token", "%74oken", "tok%65n", "%54oken", "%74%6F%6B%65%6E"])
async def test_no_token_in_the_logs_however_the_query_spells_it(
    api: Api, uow_factory: UnitOfWorkFactory, key: str
) -> None:
    user = f"logged-{uuid4().hex[:8]}"
    task_id = await tasks.new_task(uow_factory, user)
    token = token_for(user)
    ws_url = f"{api.url.replace('http', 'ws', 1)}/ws/tasks/{task_id}?{key}={token}"
    try:
        async with connect(ws_url, open_timeout=10) as socket:
            opened = json.loads(await socket.recv(decode=True))["type"]
    except ConnectionClosed as closed:
        opened = str(closed.rcvd.code if closed.rcvd else None)
    page = await asyncio.to_thread(status_of, f"{api.url}/tasks/{task_id}?{key}={token}")
    # Keys the server decodes to `token` authenticate (the risk is real); `Token` does not.
    assert (opened, page) == (("4401", 401) if key == "%54oken" else ("snapshot", 200))
    await no_sockets(api)
    logged = api.proc.output()
    assert f"/ws/tasks/{task_id}?{key}=***" in logged
    assert token not in logged
    assert token.split(".")[2] not in logged  # not even the signature


async def test_garbage_frames_get_an_error_frame_not_a_crash(
    api: Api, uow_factory: UnitOfWorkFactory
) -> None:
    task_id = await tasks.new_task(uow_factory, "erin")
    watch = await Watch.open(api.url, task_id, token_for("erin"))
    await watch.wait_frames(1)
    garbage: list[str | bytes] = ["[" * 4000, b'"\xff\xfe"', b"\x00\x01\x02", '{"type":' * 500]
    for frame in garbage:
        await watch.send(frame)  # type: ignore[arg-type]
    await watch.send('{"type": "ping"}')
    frames = await watch.wait_frames(1 + len(garbage) + 1, within=30)
    assert [f["type"] for f in frames[1:]] == ["error"] * len(garbage) + ["pong"]
    assert watch.close_code is None
    await watch.close()
    assert "Task exception was never retrieved" not in api.proc.output()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


FLOOD_BYTES = 48 * 2**20


async def test_a_ping_flood_that_never_reads_holds_the_server_to_a_bound(
    api: Api, uow_factory: UnitOfWorkFactory
) -> None:
    """Pings at line rate, no read: the server stops reading once its unsent pongs pass a
    bound, so the client cannot push more than the kernels' buffers hold (on the old code it
    pushed all 48 MiB and the server buffered every pong)."""
    task_id = await tasks.new_task(uow_factory, "frank")
    port = int(api.url.rsplit(":", 1)[1])
    target = f"/ws/tasks/{task_id}?token={token_for('frank')}"
    sock, head = raw_ws.open_raw(port, target, rcvbuf=65536)
    assert head.startswith(b"HTTP/1.1 101"), head
    before = rss_bytes(api.proc.pid)
    chunk = raw_ws.masked_frame(raw_ws.PING, b"p" * 125) * 8192
    try:
        sent = await asyncio.to_thread(raw_ws.send_until_stalled, sock, chunk, FLOOD_BYTES, 3.0)
        grown = rss_bytes(api.proc.pid) - before
    finally:
        sock.close()
    print(f"ping flood: {sent / 2**20:.1f} MiB sent, API RSS grew {grown / 2**20:.1f} MiB")
    assert sent < FLOOD_BYTES // 2, sent
    assert grown < 16 * 2**20, grown
    await no_sockets(api)


CONNECTS_PER_SECOND = 5


@pytest.fixture(name="paced_api", scope="module")
def paced_api_fixture(resources: Resources) -> Iterator[str]:
    env = resources.env(TASKRELAY_WS_CONNECTS_PER_SECOND=str(CONNECTS_PER_SECOND))
    proc = start_api(env, name="api-paced-ws")
    try:
        yield f"http://127.0.0.1:{proc.port}"  # type: ignore[attr-defined]
    finally:
        proc.stop()


async def burst(url: str, task_id: object, token: str | None, count: int) -> list[Watch]:
    return list(await asyncio.gather(*(Watch.open(url, task_id, token) for _ in range(count))))


async def test_connects_past_the_budget_are_closed_4429(
    paced_api: str, uow_factory: UnitOfWorkFactory
) -> None:
    """30 connects in a burst from one user: at most two one-second windows' worth (10) are
    served, the rest closed 4429 with no frame; as many anonymous ones from one address are
    4429 past the budget, not 4401; another user is served meanwhile."""
    task_id = await tasks.new_task(uow_factory, "henry")
    watches = await burst(paced_api, task_id, token_for("henry"), 30)
    anonymous = await burst(paced_api, task_id, None, 30)
    other = await Watch.open(paced_api, await tasks.new_task(uow_factory, "ivy"), token_for("ivy"))
    await other.wait_frames(1)

    async def all_answered() -> bool:
        return all(w.frames or w.close_code for w in [*watches, *anonymous])

    await wait_until(all_answered, within=30, what="a snapshot or a close on every socket")
    served = sum(1 for w in watches if w.frames)
    assert all(w.close_code == 4429 for w in watches if not w.frames)
    refused = Counter([await watch.closed(within=10) for watch in anonymous])
    for watch in [*watches, other]:
        await watch.close()
    assert 0 < served <= 2 * CONNECTS_PER_SECOND, served
    assert set(refused) == {4401, 4429}, refused
    assert refused[4401] <= 2 * CONNECTS_PER_SECOND, refused


async def test_a_socket_is_closed_4401_when_its_token_expires(
    api: Api, uow_factory: UnitOfWorkFactory
) -> None:
    task_id = await tasks.new_task(uow_factory, "jack")
    watch = await Watch.open(api.url, task_id, issue_token(SECRET, "jack", 2))
    await watch.wait_frames(1)
    assert await watch.closed(within=15) == 4401
    await no_sockets(api)


async def publish_notification(amqp_url: str, routing_key: str, body: dict[str, object]) -> None:
    """What anyone allowed to publish to the exchange can send: any key, any body."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(EXCHANGE)
        await exchange.publish(
            aio_pika.Message(json.dumps(body).encode(), content_type="application/json"),
            routing_key=routing_key,
        )
    finally:
        await connection.close()


async def test_a_notification_goes_only_to_the_task_its_routing_key_names(
    api: Api, resources: Resources, uow_factory: UnitOfWorkFactory
) -> None:
    """Mallory publishes under her own task's key a body naming Alice's task, then the genuine
    notification of Alice's task follows: Alice's socket gets the genuine one (on the old code
    the forged frame took its `seq`, and the genuine one was dropped as a duplicate)."""
    alice_task = await tasks.new_task(uow_factory, "alice-rk")
    mallory_task = await tasks.new_task(uow_factory, "mallory-rk")
    alice = await Watch.open(api.url, alice_task, token_for("alice-rk"))
    mallory = await Watch.open(api.url, mallory_task, token_for("mallory-rk"))
    await alice.wait_frames(1)
    await mallory.wait_frames(1)  # both tasks' keys are bound on this instance now

    def frame(message: str) -> dict[str, object]:
        return {
            "task_id": str(alice_task),
            "seq": 1,
            "step": "processing",
            "status": "processing",
            "message": message,
            "data": {},
        }

    await publish_notification(resources.amqp_url, f"notification.{mallory_task}", frame("forged"))
    await publish_notification(resources.amqp_url, f"notification.{alice_task}", frame("genuine"))

    async def progressed() -> bool:
        return bool(alice.progress_seqs)

    await wait_until(progressed, within=10, what="alice's progress frame")
    assert [f["message"] for f in alice.frames if f["type"] == "progress"] == ["genuine"]
    assert mallory.progress_seqs == []
    for watch in (alice, mallory):
        await watch.close()
    assert "gateway_misrouted_notification" in api.proc.output()
