"""Content generators for worker tests, importable by a worker subprocess by name.

`TASKRELAY_CONTENT_GENERATOR=harness.generators:counting` (subprocesses run with the
repository root as their working directory). `counting` records every call in the run's Redis
database (REDIS_URL, or TASKRELAY_TEST_COUNTS_URL when the worker's Redis is one the test
restarts empty), so a test can count how many times each item was generated and when each
call started; it fails the first attempt of any concept whose id contains "fail" (the seed's
partly failing task) and sleeps `TASKRELAY_TEST_GENERATOR_DELAY` seconds per item (so a test
can cancel, stop or kill a worker mid-job).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import redis
import redis.asyncio as aioredis

from shared.domain.content import ContentRequest

CALLS_PREFIX = "taskrelay-test:generated:"
STARTS_PREFIX = "taskrelay-test:starts:"


def item_field(concept_id: str, content_type: str) -> str:
    return f"{concept_id}/{content_type}"


async def counting(request: ContentRequest) -> dict[str, object]:
    """A coroutine generator that counts its calls in Redis and fails first tries of "fail" ids."""
    return await _counted(request, float(os.environ.get("TASKRELAY_TEST_GENERATOR_DELAY", "0")))


async def paced(request: ContentRequest) -> dict[str, object]:
    """`counting`, waiting like a model call as long as the roadmap id says: a task of roadmap
    `paced-0.25` takes 0.25 s per item, with no CPU (so one worker serves tasks of any pace)."""
    prefix = "paced-"
    seconds = request.roadmap_id[len(prefix) :] if request.roadmap_id.startswith(prefix) else "0"
    return await _counted(request, float(seconds))


async def _counted(request: ContentRequest, delay: float) -> dict[str, object]:
    client = aioredis.Redis.from_url(counts_url())
    field = item_field(request.concept_id, request.content_type)
    try:
        await client.rpush(STARTS_PREFIX + request.task_id, f"{time.time()!r} {field}")
        await client.hincrby(CALLS_PREFIX + request.task_id, field, 1)
    finally:
        await client.aclose()
    await asyncio.sleep(delay)
    if "fail" in request.concept_id and request.attempt == 1:
        raise RuntimeError(f"simulated failure of {field} on attempt {request.attempt}")
    return {"markdown": f"# {request.concept_title}", "attempt": request.attempt}


def counts_url() -> str:
    return os.environ.get("TASKRELAY_TEST_COUNTS_URL") or os.environ["REDIS_URL"]


def counting_sync(request: ContentRequest) -> str:
    """The same contract as a plain function: the worker runs it off the event loop."""
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        client.hincrby(CALLS_PREFIX + request.task_id, item_field(request.concept_id, "sync"), 1)
    finally:
        client.close()
    return f"# {request.concept_title} ({request.content_type})"


async def instant(request: ContentRequest) -> str:
    """Costs nothing: what the throughput benchmark measures is the worker's own overhead."""
    return request.concept_id


async def unbroken_line(request: ContentRequest) -> str:
    """Prints 100 kB without a newline to the worker's stdout: more than `taskrelay run` takes as
    one line of a child's output, which fails the supervisor task reading it."""
    sys.stdout.write("x" * 100_000)
    sys.stdout.flush()
    return request.concept_id


async def enormous_error(request: ContentRequest) -> str:
    """Fails every item with a megabyte of exception text holding a NUL (protocol §7's cut)."""
    raise RuntimeError(f"{request.concept_id} failed\x00" + "E" * 1_000_000)


def calls(redis_url: str, task_id: object) -> dict[str, int]:
    """How many times each item of the task was generated: {"concept/type": count}."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        raw = client.hgetall(f"{CALLS_PREFIX}{task_id}")
    finally:
        client.close()
    return {str(k): int(v) for k, v in raw.items()}


def starts(redis_url: str, task_id: object) -> list[tuple[float, str]]:
    """When each generator call started (epoch seconds), in order."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        raw = client.lrange(f"{STARTS_PREFIX}{task_id}", 0, -1)
    finally:
        client.close()
    entries = [str(entry).split(" ", 1) for entry in raw]
    return [(float(at), field) for at, field in entries]
