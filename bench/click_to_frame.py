"""Retry click to browser frame, end to end: p50 and p99 through the real API, relay and gateway.

Usage: .venv/bin/python -m bench.click_to_frame [--retries 300] [--pause 0.05] [--profile FILE]

A fresh database, vhost and Redis db hold the run (removed after it); a real `taskrelay api`,
`relay` and `worker` run on them, with this module's `failing` generator, which fails every
item at once. One task of 3 items (1 concept x 3 types) fails; a WebSocket is open on it all
along. Each round POSTs `/retry` on a kept-alive HTTP/1.1 connection (as the task page's Retry
button's `fetch` does) and times, from just before the request is written: the 202 (`answer`) and
the `content_retry_queued` frame on the socket (`frame`: API commit, NOTIFY, relay publish with
confirm, RabbitMQ, the gateway's queue, the socket). The worker then fails the 3 items again; the
next round starts `--pause` seconds after the task's final frame, so each retry meets a quiet
system, as a user's click would.
The POST goes through `bench.loadgen.KeepAlive`, not httpx: on this machine httpx spent ~2 ms of
the bench's own Python per request (p50 answer 5.9 ms with it, 3.8 ms without, same API), time
a browser's native client does not add to a click.
Issue 13's target: frame p99 <= 10 ms on a quiet machine. `bench.relay_latency` times only the
relay's leg (commit to a consumer on the exchange).
`--profile FILE` records the API with py-spy during the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from bench.frames import TimedSocket, percentile
from bench.loadgen import KeepAlive
from bench.profile import recording
from harness import resources as res
from harness.system import TOKEN, System, running
from shared.config.settings import LoggingSettings
from shared.domain.content import ContentRequest
from shared.observability.logging import configure_logging

FAILED = ("failed", "partial_failure")


async def failing(request: ContentRequest) -> str:
    """Fails every item at once, so the task can be retried again and again."""
    raise RuntimeError(f"bench: {request.concept_id}/{request.content_type} fails")


async def failed_task(system: System) -> tuple[str, TimedSocket]:
    body = {
        "roadmap_id": "bench",
        "concepts": [{"concept_id": "c0", "title": "Concept 0"}],
        "content_types": ["tutorial", "resources", "quiz"],
    }
    answer = await system.client.post("/api/v1/tasks", json=body)
    assert answer.status_code == 201, answer.text
    task_id = answer.json()["task_id"]
    socket = await TimedSocket.open(system.base_url, task_id, TOKEN)
    await socket.wait_for(lambda f: f.get("status") in FAILED or _task_status(f) in FAILED)
    return task_id, socket


def _task_status(frame: dict[str, object]) -> object:
    task = frame.get("task")
    return task.get("status") if isinstance(task, dict) else None


async def rounds(system: System, count: int, pause: float) -> tuple[list[float], list[float]]:
    """(answer seconds, frame seconds) of `count` retries."""
    task_id, socket = await failed_task(system)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    client = await KeepAlive.open(system.api.port, bearer)  # type: ignore[attr-defined]
    answers, frames = [], []
    try:
        for _ in range(count):
            await asyncio.sleep(pause)
            start = len(socket.frames)
            sent = time.perf_counter()
            status, body = await client.post(f"/api/v1/tasks/{task_id}/retry")
            answered = time.perf_counter()
            assert status == 202, body
            queued = await socket.wait_for(
                lambda f: f.get("step") == "content_retry_queued", start, within=30
            )
            answers.append(answered - sent)
            frames.append(queued.at - sent)
            await socket.wait_for(lambda f: f.get("status") in FAILED, start, within=30)
    finally:
        client.close()
        await socket.close()
    return answers, frames


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(1000 * s for s in seconds)
    return (
        f"{name} p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
        f"max {ms[-1]:.1f} ms"
    )


async def run(args: argparse.Namespace) -> None:
    with res.isolated("taskrelay_bench") as resources:
        env = resources.env(
            TASKRELAY_CONTENT_GENERATOR="bench.click_to_frame:failing",
            TASKRELAY_API_RATE_LIMIT_PER_SECOND="0",
        )
        async with running(env, processes=1) as system:
            await rounds(system, 10, args.pause)  # warm-up
            with recording(system.api.pid, args.profile):
                answers, frames = await rounds(system, args.retries, args.pause)
    print(
        f"{len(frames)} retries (load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} "
        f"CPUs): {summary('answer (202)', answers)}; "
        f"{summary('frame (content_retry_queued)', frames)} (target p99 <= 10 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retries", type=int, default=300)
    parser.add_argument("--pause", type=float, default=0.05, help="seconds of quiet per round")
    parser.add_argument("--profile", metavar="FILE", help="py-spy the API into FILE")
    args = parser.parse_args()
    configure_logging("bench", LoggingSettings(level="WARNING"))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
