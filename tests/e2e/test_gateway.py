"""The WebSocket gateway end to end (CONTRACT §7): real API and relay processes, real sockets.

Task changes are made through the state machine (`tests/support/taskflow.py`, as the worker
makes them) and published by the real relay; sockets are opened with a real client.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest

from shared.auth import issue_token
from shared.db import UnitOfWorkFactory
from tests.support import taskflow
from tests.support.processes import Process, free_port, start_api
from tests.support.resources import SECRET, Resources
from tests.support.ws import Watch

pytestmark = pytest.mark.slow


def token_for(user: str) -> str:
    return issue_token(SECRET, user, 3600)


@pytest.fixture(name="relay", scope="module")
def relay_fixture(resources: Resources) -> Iterator[Process]:
    proc = Process(["relay", "--health-port", str(free_port())], resources.env(), "relay")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(name="api", scope="module")
def api_fixture(resources: Resources, relay: Process) -> Iterator[str]:
    proc = start_api(resources.env(), name="api-gateway")
    try:
        yield f"http://127.0.0.1:{proc.port}"  # type: ignore[attr-defined]
    finally:
        proc.stop()


async def test_close_codes(api: str, uow_factory: UnitOfWorkFactory) -> None:
    task_id = await taskflow.new_task(uow_factory, "alice")
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
    task_id = await taskflow.new_task(uow_factory, "alice", concepts=2, types=("quiz", "tutorial"))
    same_origin = api  # the page's own origin: host:port equals the Host header
    watch = await Watch.open(api, task_id, token_for("alice"), origin=same_origin)
    [snapshot] = await watch.wait_frames(1)
    assert snapshot["type"] == "snapshot"
    assert snapshot["seq"] == 0
    assert snapshot["task"]["task_id"] == str(task_id)
    assert snapshot["task"]["status"] == "pending"
    assert snapshot["task"]["items"]["total"] == 4

    seq = await taskflow.start(uow_factory, task_id)
    for key in await taskflow.pending_keys(uow_factory, task_id):
        seq = await taskflow.item_result(uow_factory, task_id, key, ok=key.concept_id != "c1")
    seq = await taskflow.finish(uow_factory, task_id)
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


async def test_client_frames_never_break_the_socket(
    api: str, uow_factory: UnitOfWorkFactory
) -> None:
    task_id = await taskflow.new_task(uow_factory, "alice")
    watch = await Watch.open(api, task_id, token_for("alice"))
    await watch.wait_frames(1)
    await watch.send("not json")
    await watch.send('{"type": "subscribe", "task": "someone else\'s"}')
    await watch.send('{"type": "ping"}')
    frames = await watch.wait_frames(4)
    assert [f["type"] for f in frames[1:]] == ["error", "error", "pong"]
    seq = await taskflow.start(uow_factory, task_id)
    await watch.wait_seq(seq)
    assert watch.progress_seqs == [seq]
    await watch.send("x" * 10_000)  # over the inbound frame limit
    assert await watch.closed() == 1009
