"""The `openai` generator against a chat-completions stub that misbehaves on purpose, with the
real Redis behind its in-flight cap: what each provider fault comes to for the item, that a
429 is waited out and never sent again early, that the cap holds across processes and that a
crashed holder's slot comes back, and that a job stores the content with its usage."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from harness import sql
from harness.model_stub import ModelStub, Reply
from harness.resources import Resources
from services.worker.jobs.generate import lease_keeper
from shared.adapters.openai import select_generator
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.redis.limiter import InFlightLimit
from shared.config.settings import Settings
from shared.domain.content import ContentRequest, Generated, Usage
from shared.errors import GenerationFailed
from shared.service.generation import ContentJob, Pace
from tests.support import tasks

KEY = "sk-test-integration-0123456789abcdef"
ROOT = Path(__file__).parents[2]


def script(user: str, earlier: int) -> Reply:
    """What the stub answers, by the marker in the item's title."""
    if "limited-after" in user and earlier == 0:
        return Reply(429, headers={"Retry-After": "1"})
    if "limited-bare" in user and earlier == 0:
        return Reply(429)
    if "always-500" in user:
        return Reply(500)
    if "flaky" in user and earlier < 2:
        return Reply(503)
    if "reset" in user:
        return Reply(reset=True)
    if "no-choices" in user:
        return Reply(body=b'{"id": "x", "choices": []}')
    if "not-json" in user:
        return Reply(body=b"<html>upstream hiccup</html>")
    if "empty" in user:
        return Reply(body=b'{"choices": [{"message": {"role": "assistant", "content": ""}}]}')
    if "slow" in user:
        return Reply(delay=30)
    if "forbidden" in user:
        body = {"error": {"message": f"Incorrect API key provided: {KEY}."}}
        return Reply(401, body=json.dumps(body).encode())
    return Reply()


@pytest.fixture(name="stub", scope="module")
def stub_fixture() -> Iterator[ModelStub]:
    with ModelStub(delay=0.05, script=script) as stub:
        yield stub


def model_env(resources: Resources, stub: ModelStub, **extra: str) -> dict[str, str]:
    settings = {
        "TASKRELAY_CONTENT_GENERATOR": "openai",
        "TASKRELAY_MODEL": "stub-model",
        "OPENAI_BASE_URL": stub.url,
        "OPENAI_API_KEY": KEY,
        "TASKRELAY_MODEL_TIMEOUT_SECONDS": "1",
    }
    return resources.env(**{**settings, **extra})


async def generate(resources: Resources, stub: ModelStub, title: str) -> Generated:
    generator = select_generator(Settings.from_env(model_env(resources, stub)))
    result = await generator(ContentRequest("t", "roadmap-x", title, title, "quiz", 1))
    assert isinstance(result, Generated)
    return result


async def test_an_answer_gives_content_and_usage_and_the_key_goes_only_in_the_header(
    resources: Resources, stub: ModelStub
) -> None:
    result = await generate(resources, stub, "plain-answer")
    assert isinstance(result.content, str)
    assert "plain-answer" in result.content
    assert isinstance(result.usage, Usage)
    assert result.usage.prompt_tokens > 0
    [seen] = stub.requests_for("plain-answer")
    assert seen.authorization == f"Bearer {KEY}"


async def test_a_429_with_retry_after_is_waited_out_then_asked_again(
    resources: Resources, stub: ModelStub
) -> None:
    await generate(resources, stub, "limited-after")
    first, second = stub.requests_for("limited-after")
    assert second.arrived - first.arrived >= 1.0  # nothing sent before the second passed


async def test_a_429_without_a_time_backs_off_then_asks_again(
    resources: Resources, stub: ModelStub
) -> None:
    await generate(resources, stub, "limited-bare")
    assert len(stub.requests_for("limited-bare")) == 2


async def test_a_5xx_is_retried_and_a_recovering_provider_answers(
    resources: Resources, stub: ModelStub
) -> None:
    result = await generate(resources, stub, "flaky")
    assert "flaky" in str(result.content)
    assert len(stub.requests_for("flaky")) == 3


@pytest.mark.parametrize(
    ("title", "error", "requests"),
    [
        ("always-500", "model answered 500 three times: stub says 500", 3),
        ("reset", "model connection failed three times: ", 3),
        ("slow", "model timed out after 1 s three times", 3),
        ("no-choices", "model answer has no choices", 1),
        ("not-json", "model answer is not JSON: <html>upstream hiccup</html>", 1),
        ("empty", "model answer has empty content", 1),
        ("forbidden", "model answered 401: Incorrect API key provided: ***.", 1),
    ],
)
async def test_each_fault_fails_the_item_with_one_line_saying_why(
    resources: Resources, stub: ModelStub, title: str, error: str, requests: int
) -> None:
    with pytest.raises(GenerationFailed) as failed:
        await generate(resources, stub, title)
    text = str(failed.value)
    assert text.startswith(error)
    assert "\n" not in text
    assert KEY not in text
    assert len(stub.requests_for(title)) == requests


async def test_the_cap_holds_across_processes(resources: Resources) -> None:
    """Two processes want 12 requests at once each; the stub never sees more than 4."""
    with ModelStub(delay=0.3) as stub:
        env = {
            **os.environ,
            # A timeout far over the stub's 0.3 s: a loaded machine must not turn a slow
            # answer into a retry, which would add requests to the 24 counted.
            **model_env(
                resources,
                stub,
                TASKRELAY_MODEL_MAX_IN_FLIGHT="4",
                TASKRELAY_MODEL_TIMEOUT_SECONDS="20",
            ),
            "PYTHONPATH": str(ROOT),
        }
        loads = [
            subprocess.Popen(
                [sys.executable, "-m", "harness.model_load", "12", f"p{n}-"],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(2)
        ]
        outputs = [await asyncio.to_thread(p.communicate, timeout=60) for p in loads]
        assert [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs] == [
            {"ok": 12, "failed": 0}
        ] * 2
        assert len(stub.seen) == 24
        assert stub.peak == 4  # the cap, and reached: the processes did compete


async def test_a_crashed_holders_slot_comes_back(resources: Resources) -> None:
    client = aioredis.Redis.from_url(resources.redis_url)
    key = f"test-slots-{time.monotonic_ns()}"
    try:
        crashed = InFlightLimit(client, 1, slot_seconds=0.5, key=key, margin=0.0)
        held = crashed.slot()
        await held.__aenter__()  # taken, never given back: its holder "died"
        limit = InFlightLimit(client, 1, slot_seconds=10, key=key)
        started = time.monotonic()
        async with asyncio.timeout(5), limit.slot():
            waited = time.monotonic() - started
            assert await limit.holders() == 1
        assert 0.3 <= waited < 3
        assert await limit.holders() == 0
    finally:
        await client.aclose()


async def test_a_job_stores_the_content_with_its_usage(
    resources: Resources, stub: ModelStub, uow_factory: UnitOfWorkFactory
) -> None:
    generator = select_generator(Settings.from_env(model_env(resources, stub)))
    task_id = await tasks.new_task(uow_factory, "model-tests", ["usage-a", "always-500"], ["quiz"])
    await ContentJob(
        uow_factory, generator, keep_lease=lease_keeper(uow_factory.database),
        task_id=task_id, holder="test-usage", item_timeout=30,
        lease_seconds=30, pace=Pace(in_line=False),  # on its own, outside any line
    ).run()  # fmt: skip
    query = "SELECT * FROM content_items WHERE task_id = $1"
    rows: dict[str, Any] = {
        r["concept_id"]: r for r in await sql.fetch(uow_factory, query, task_id)
    }
    done, failed = rows["usage-a"], rows["always-500"]
    assert done["status"] == "completed"
    assert "usage-a" in done["content"]
    assert set(done["usage"]) == {"prompt_tokens", "completion_tokens"}
    assert (failed["status"], failed["content"], failed["usage"]) == ("failed", None, None)
    assert failed["last_error"].startswith("model answered 500 three times")
