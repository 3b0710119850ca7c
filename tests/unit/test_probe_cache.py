"""`/health` and `/readyz` need no token and no budget, so they must not cost PostgreSQL a
query each: the API's `Probes` answers through a `DatabaseProbe`, from a result at most 1 s
old, and concurrent probes share the one query in flight."""

from __future__ import annotations

import asyncio

from shared.adapters.probes import DatabaseProbe


async def test_probes_share_one_query_a_second() -> None:
    now = [10.0]
    queries = 0
    release = asyncio.Event()

    async def check() -> bool:
        nonlocal queries
        queries += 1
        await release.wait()
        return True

    probe = DatabaseProbe(check, max_age=1.0, clock=lambda: now[0])
    waiting = [asyncio.create_task(probe.answers()) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [True] * 50
    assert queries == 1  # 50 concurrent probes, one query
    now[0] = 10.9
    assert await probe.answers()
    assert queries == 1  # still fresh
    now[0] = 11.0
    assert await probe.answers()
    assert queries == 2  # 1 s old: asked again


async def test_a_probe_that_gives_up_cancels_no_one_else() -> None:
    release = asyncio.Event()

    async def check() -> bool:
        await release.wait()
        return False

    probe = DatabaseProbe(check)
    impatient = asyncio.create_task(probe.answers())
    patient = asyncio.create_task(probe.answers())
    await asyncio.sleep(0)
    impatient.cancel()
    release.set()
    assert await patient is False
