"""Many items generated at once by one process through the `openai` generator, for the tests
and the benchmark that check the deployment-wide in-flight cap from several processes.

`python -m harness.model_load N` reads the settings from the environment (as a worker
does), generates N items concurrently, and prints one JSON line: how many succeeded and failed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable
from typing import Any, cast

from shared.adapters.openai import select_generator
from shared.config.settings import Settings
from shared.domain.content import ContentRequest


async def generate_many(count: int, prefix: str) -> dict[str, int]:
    generator = select_generator(Settings.from_env())
    requests = [
        ContentRequest("task", "load", f"{prefix}{i}", f"Load {prefix}{i}", "quiz", 1)
        for i in range(count)
    ]
    # The `openai` generator this is run with is a coroutine function.
    calls = [cast("Awaitable[Any]", generator(r)) for r in requests]
    results = await asyncio.gather(*calls, return_exceptions=True)
    failed = sum(1 for r in results if isinstance(r, BaseException))
    return {"ok": len(results) - failed, "failed": failed}


if __name__ == "__main__":
    count, prefix = int(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else "item")
    print(json.dumps(asyncio.run(generate_many(count, prefix))))
