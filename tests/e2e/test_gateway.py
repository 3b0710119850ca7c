"""The WebSocket gateway end to end (protocol §7): real API and relay processes, real sockets.

Task changes are made through the state machine (`tests/support/tasks.py`, as the worker
makes them) and published by the real relay; sockets are opened with a real client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import socket
import subprocess
from collections.abc import Iterator
from random import Random
from uuid import UUID, uuid4

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from harness import sql
from harness.processes import TASKRELAY, Process, free_port, start_api
from harness.relay import start_relay
from harness.resources import SECRET, Resources
from harness.wait import wait_until, wait_until_sync
from harness.ws import Watch
from shared.adapters.postgres import UnitOfWorkFactory
from shared.service.auth import issue_token
from tests.support import tasks
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.slow


def token_for(user: str) -> str:
    return issue_token(SECRET, user, 3600)


@pytest.fixture(name="relay", scope="module")
def relay_fixture(resources: Resources) -> Iterator[Process]:
    proc = start_relay(resources.env(), "relay-gateway")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(name="api", scope="module")
def api_fixture(base_url: str, relay: Process) -> str:
    """The session's API (tests/e2e/conftest.py), once this module's relay runs."""
    return base_url


async def test_close_codes(api: str, uow_factory: UnitOfWorkFactory) -> None:
    task_id = await tasks.new_task(uow_factory, "alice")
    port = api.rsplit(":", 1)[1]
    cases = [
        (None, None, 4401),
        ("not-a-token", None, 4401),
        (issue_token("another-secret-" + "y" * 40, "alice", 60), None, 4401),
        (token_for("mallory"), None, 4404),
        (token_for("alice"), "https://evil.example", 4403),
        (token_for("alice"), f"http://localhost:{int(port) + 1}", 4403),
    ]
    for token, origin, code in cases:
        watch = await Watch.open(api, task_id, token, origin)
        assert await watch.closed() == code, (token, origin)
        assert watch.frames == []
    for unknown in (uuid4(), "not-a-uuid"):
        watch = await Watch.open(api, unknown, token_for("alice"))
        assert await watch.closed() == 4404


async def test_snapshot_first_then_every_change_in_order(
    api: str, uow_factory: UnitOfWorkFactory
) -> None:
    task_id = await tasks.new_task(uow_factory, "alice", 2, types=("quiz", "tutorial"))
    same_origin = api  # the page's own origin: host:port equals the Host header
    watch = await Watch.open(api, task_id, token_for("alice"), origin=same_origin)
    [snapshot] = await watch.wait_frames(1)
    assert snapshot["type"] == "snapshot"
    assert snapshot["seq"] == 0
    assert snapshot["task"]["task_id"] == str(task_id)
    assert snapshot["task"]["status"] == "pending"
    assert snapshot["task"]["items"]["total"] == 4
    assert snapshot["task"]["last_message"] is None  # no notification yet

    seq = await tasks.start(uow_factory, task_id)
    for key in await tasks.pending_keys(uow_factory, task_id):
        seq = await tasks.item_result(uow_factory, task_id, key, ok=key.concept_id != "c001")
    seq = await tasks.finish(uow_factory, task_id)
    await watch.wait_seq(seq)
    progress = watch.frames[1:]
    assert [f["seq"] for f in progress] == list(range(1, seq + 1))
    assert all(f["type"] == "progress" and f["task_id"] == str(task_id) for f in progress)
    assert set(progress[0]) == {"type", "task_id", "seq", "step", "status", "message", "data"}
    assert progress[0]["status"] == "processing"
    assert progress[-2]["data"]["completed_items"] == 2
    assert progress[-2]["data"]["failed_items"] == 2
    assert progress[-1]["status"] == "partial_failure"
    await watch.close()
    later = await Watch.open(api, task_id, token_for("alice"), origin=same_origin)
    [opened_after] = await later.wait_frames(1)  # a page opened after the end
    assert opened_after["task"]["last_message"] == progress[-1]["message"]
    await later.close()


async def test_client_frames_never_break_the_socket(
    api: str, uow_factory: UnitOfWorkFactory
) -> None:
    task_id = await tasks.new_task(uow_factory, "alice")
    watch = await Watch.open(api, task_id, token_for("alice"))
    await watch.wait_frames(1)
    await watch.send("not json")
    await watch.send('{"type": "subscribe", "task": "someone else\'s"}')
    await watch.send('{"type": "ping"}')
    frames = await watch.wait_frames(4)
    assert [f["type"] for f in frames[1:]] == ["error", "error", "pong"]
    seq = await tasks.start(uow_factory, task_id)
    await watch.wait_seq(seq)
    assert watch.progress_seqs == [seq]
    await watch.send("x" * 10_000)  # over the inbound frame limit
    assert await watch.closed() == 1009


async def _generate(uow_factory: UnitOfWorkFactory, task_id: UUID, pace: float, rng: Random) -> int:
    """Work through the task like the worker: start, one result per item, finish."""
    await tasks.start(uow_factory, task_id)
    for i, key in enumerate(await tasks.pending_keys(uow_factory, task_id)):
        await tasks.item_result(uow_factory, task_id, key, ok=i % 7 != 3)
        await asyncio.sleep(rng.uniform(0, pace))  # spread the changes out in time
    return await tasks.finish(uow_factory, task_id)


async def test_twenty_watchers_joining_at_random_see_each_seq_once(
    api: str, uow_factory: UnitOfWorkFactory, rng: Random
) -> None:
    task_id = await tasks.new_task(uow_factory, "alice", 40)

    async def join() -> Watch:
        await asyncio.sleep(rng.uniform(0, 1.2))  # join at a random moment of the run
        return await Watch.open(api, task_id, token_for("alice"))

    generation = asyncio.create_task(_generate(uow_factory, task_id, pace=0.05, rng=rng))
    watches = await asyncio.gather(*(join() for _ in range(20)))
    final = await generation
    joined_at = set()
    for watch in watches:
        await watch.wait_seq(final)
        snapshot = watch.frames[0]
        assert snapshot["type"] == "snapshot"
        assert watch.snapshots() == [snapshot]
        assert watch.progress_seqs == list(range(snapshot["seq"] + 1, final + 1))
        joined_at.add(snapshot["seq"])
        await watch.close()
    assert len(joined_at) > 3, "the watchers should have joined at different moments"


async def _all_published(uow_factory: UnitOfWorkFactory, task_id: UUID) -> bool:
    query = "SELECT count(*) FROM outbox WHERE task_id = $1 AND published_at IS NULL"
    return await sql.fetchval(uow_factory, query, task_id) == 0


def _bindings(vhost: str, routing_key: str) -> list[str]:
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_bindings", "-p", vhost, "destination_name", "routing_key"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    return sorted(r[0] for r in rows if len(r) == 2 and r[1] == routing_key)


async def test_two_instances_each_bind_only_what_they_watch(
    api: str, resources: Resources, uow_factory: UnitOfWorkFactory, rng: Random
) -> None:
    task_id = await tasks.new_task(uow_factory, "alice", 10)
    key = f"notification.{task_id}"
    second = start_api(resources.env(), name="api-gateway-2")
    try:
        other = f"http://127.0.0.1:{second.port}"  # type: ignore[attr-defined]
        watches = [await Watch.open(url, task_id, token_for("alice")) for url in (api, other)]
        for watch in watches:
            await watch.wait_frames(1)
        queues = _bindings(resources.vhost, key)
        assert len(queues) == 2
        assert all(q.startswith("taskrelay.gateway.") for q in queues)
        final = await _generate(uow_factory, task_id, pace=0.01, rng=rng)
        for watch in watches:
            await watch.wait_seq(final)
            assert watch.progress_seqs == list(range(1, final + 1))
            await watch.close()
        wait_until_sync(lambda: not _bindings(resources.vhost, key), within=15, what="unbinding")
    finally:
        second.stop()


async def test_broker_link_cut_and_restored_resyncs_from_a_fresh_snapshot(
    resources: Resources, relay: Process, uow_factory: UnitOfWorkFactory
) -> None:
    proxy = TcpProxy("127.0.0.1", 5672)
    amqp = resources.amqp_url.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")
    proc = start_api(resources.env(AMQP_URL=amqp), name="api-cut")
    try:
        url = f"http://127.0.0.1:{proc.port}"  # type: ignore[attr-defined]
        task_id = await tasks.new_task(uow_factory, "alice", 6)
        watch = await Watch.open(url, task_id, token_for("alice"))
        first = await tasks.start(uow_factory, task_id)
        await watch.wait_seq(first)  # the link is up and the task bound
        proxy.cut()
        keys = await tasks.pending_keys(uow_factory, task_id)
        for key in keys[:3]:
            during = await tasks.item_result(uow_factory, task_id, key, ok=True)

        async def fresh() -> bool:
            return any(s["seq"] == during for s in watch.snapshots())

        # Restore only once the relay has published them: they are lost to this gateway.
        await wait_until(lambda: _all_published(uow_factory, task_id), within=20, what="relay")
        proxy.restore()
        await wait_until(fresh, within=20, what="a fresh snapshot after the link came back")
        snapshot = next(s for s in watch.snapshots() if s["seq"] == during)
        assert snapshot["task"]["items"]["completed"] == 3
        after = await tasks.item_result(uow_factory, task_id, keys[3], ok=True)
        await watch.wait_seq(after)
        tail = watch.frames[watch.frames.index(snapshot) + 1 :]
        assert [(f["type"], f["seq"]) for f in tail] == [("progress", after)]
        seqs = watch.progress_seqs
        assert seqs == sorted(set(seqs))  # never a repeat, never backwards
        await watch.close()
    finally:
        proc.stop()
        proxy.close()


async def test_shutdown_closes_sockets_with_1012(
    resources: Resources, uow_factory: UnitOfWorkFactory
) -> None:
    task_id = await tasks.new_task(uow_factory, "alice")
    proc = start_api(resources.env(), name="api-shutdown")
    token = token_for("alice")
    watch = await Watch.open(f"http://127.0.0.1:{proc.port}", task_id, token)  # type: ignore[attr-defined]
    await watch.wait_frames(1)
    # uvicorn re-raises SIGTERM once its graceful shutdown is complete: -15 is a clean stop.
    assert await asyncio.to_thread(proc.stop) in (0, -signal.SIGTERM)
    assert await watch.closed() == 1012
    assert "Application shutdown complete" in proc.output()
    assert "token=***" in proc.output()  # uvicorn logged the socket's URL, without the token
    assert token not in proc.output()


def test_api_exits_with_one_line_when_the_broker_is_unreachable(resources: Resources) -> None:
    env = resources.env(AMQP_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    done = subprocess.run(
        [*TASKRELAY, "api", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    reason = done.stderr.strip().splitlines()[-1]  # log lines may come before it
    assert reason.startswith("taskrelay api: RabbitMQ is unreachable at amqp://guest:***@127.0.0.1")
    assert "Start it with: rabbitmq-server -detached" in reason


async def test_a_socket_that_falls_behind_is_closed_with_4008(
    resources: Resources, relay: Process, uow_factory: UnitOfWorkFactory
) -> None:
    proc = start_api(resources.env(TASKRELAY_WS_QUEUE_LIMIT="8"), name="api-overflow")
    try:
        url = f"ws://127.0.0.1:{proc.port}"  # type: ignore[attr-defined]
        task_id = await tasks.new_task(uow_factory, "alice")
        # A small receive buffer (no autotuning), and max_queue=1: the client stops reading
        # from the network once one frame waits, and the network holds little.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.connect(("127.0.0.1", proc.port))  # type: ignore[attr-defined]
        sock.setblocking(False)
        path = f"{url}/ws/tasks/{task_id}?token={token_for('alice')}"
        async with connect(path, sock=sock, max_queue=1) as ws:
            for _ in range(60):  # 15 MB that does not compress: more than the buffers hold
                blob = secrets.token_urlsafe(192 * 1024)
                await tasks.event(uow_factory, task_id, {"blob": blob})
            wait_until_sync(
                lambda: "gateway_socket_closing" in proc.output(), within=60, what="the 4008"
            )
            seqs = []
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    seqs.append(json.loads(message)["seq"])
            assert ws.close_code == 4008
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no hole before the close
            assert len(seqs) < 61
    finally:
        proc.stop()
