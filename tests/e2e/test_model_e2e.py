"""The built-in `openai` generator end to end: api, relay and `taskrelay worker --processes 2`
as an operator runs them, against a chat-completions stub that answers in 0.5 s and misbehaves
for some items on purpose, with `TASKRELAY_MODEL_MAX_IN_FLIGHT=4` (issue 25's acceptance).

- a 24-item task completes, and the stub never has more than 4 requests in flight;
- items answered first with 429 + `Retry-After: 1` complete with `attempts` 1, and their second
  request comes a second or more after the first;
- an item whose every answer is 500 fails naming the status, a malformed answer fails saying
  so, the task ends `partial_failure`; no answer of the API is a 5xx, no process dies;
- each item's content and usage are read back through `GET .../items/{concept_id}/{type}`;
- the API key is in no log file, no `/metrics` and no error text;
- a worker without `TASKRELAY_MODEL`, or with a bad prompts file, refuses to start in one line.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.client import create_through_api
from harness.model_stub import ModelStub, Reply
from harness.processes import (
    Process,
    free_port,
    refused_in_one_line,
    start_api,
    start_together,
    stop_all,
)
from harness.relay import start_relay
from harness.resources import SECRET, Resources
from harness.wait import wait_until
from harness.worker import log_lines, start_worker
from shared.domain import FINAL
from shared.service.auth import issue_token

pytestmark = pytest.mark.slow
KEY = "sk-e2e-never-shown-5f2d9c0b7a"
USER = "model-e2e"
TOKEN = issue_token(SECRET, USER, 3600)
TYPES = ["tutorial", "resources", "quiz"]


def script(user: str, earlier: int) -> Reply:
    if "limited" in user and earlier == 0:
        return Reply(429, headers={"Retry-After": "1"})
    if "always-500" in user:
        return Reply(500, body=b'{"error": {"message": "the stub is down"}}')
    if "malformed" in user:
        return Reply(body=b'{"id": "x", "choices": []}')
    return Reply()


@dataclass
class System:
    stub: ModelStub
    api: Process
    relay: Process
    worker: Process
    worker_port: int
    client: httpx.AsyncClient

    @property
    def processes(self) -> list[Process]:
        return [self.api, self.relay, self.worker]


@pytest.fixture(name="system", scope="module")
async def system_fixture(own: Resources) -> AsyncIterator[System]:
    with ModelStub(delay=0.5, script=script) as stub:
        env = own.env(
            TASKRELAY_CONTENT_GENERATOR="openai",
            TASKRELAY_MODEL="stub-model",
            OPENAI_BASE_URL=stub.url,
            OPENAI_API_KEY=KEY,
            TASKRELAY_MODEL_MAX_IN_FLIGHT="4",
            TASKRELAY_WORKER_ITEM_CONCURRENCY="8",  # more than the cap: the cap must hold them
        )
        worker_port = free_port()
        api, relay, worker = start_together(
            lambda: start_api(env, name="api-model"),
            lambda: start_relay(env, name="relay-model"),
            lambda: start_worker(env, 2, name="worker-model", metrics_port=worker_port),
        )
        try:
            base_url = f"http://127.0.0.1:{api.port}"  # type: ignore[attr-defined]
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
                yield System(stub, api, relay, worker, worker_port, client)
        finally:
            stop_all([worker, relay, api])


async def finished(system: System, concepts: list[str], types: list[str]) -> dict[str, Any]:
    base_url = str(system.client.base_url).rstrip("/")
    body = [{"concept_id": c, "title": c} for c in concepts]
    task_id = await create_through_api(base_url, TOKEN, body, types, roadmap_id="model-e2e")

    async def final() -> dict[str, Any] | None:
        view = (await system.client.get(f"/api/v1/tasks/{task_id}")).json()
        return view if view["status"] in FINAL else None

    view: dict[str, Any] = await wait_until(final, within=120, interval=0.3, what="a final task")
    return view


async def item(system: System, task_id: str, concept: str, content_type: str) -> dict[str, Any]:
    answer = await system.client.get(f"/api/v1/tasks/{task_id}/items/{concept}/{content_type}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def test_a_24_item_task_completes_with_never_more_than_4_requests_in_flight(
    system: System,
) -> None:
    view = await finished(system, [f"concept-{i}" for i in range(8)], TYPES)
    assert view["status"] == "completed", view
    assert view["items"]["completed"] == 24
    assert system.stub.peak == 4  # never more, and reached: 8 items of the task wanted to go
    assert len(system.stub.requests_for("concept-")) == 24
    one = await item(system, view["task_id"], "concept-3", "quiz")
    assert one["status"] == "completed"
    assert one["content"].startswith("Stub answer to: ")
    assert "concept-3" in one["content"]
    assert set(one["usage"]) == {"prompt_tokens", "completion_tokens"}
    assert one["usage"]["prompt_tokens"] > 0


async def test_rate_limits_are_waited_out_and_faults_fail_only_their_items(system: System) -> None:
    concepts = ["limited-a", "limited-b", "always-500", "malformed", "fine"]
    view = await finished(system, concepts, ["quiz"])
    assert view["status"] == "partial_failure", view
    for concept in ("limited-a", "limited-b"):
        limited = await item(system, view["task_id"], concept, "quiz")
        assert (limited["status"], limited["attempts"]) == ("completed", 1)
        first, second = system.stub.requests_for(f'"{concept}"')
        assert second.arrived - first.arrived >= 1.0
    failed = await item(system, view["task_id"], "always-500", "quiz")
    assert failed["status"] == "failed"
    assert failed["error"] == "model answered 500 three times: the stub is down"
    malformed = await item(system, view["task_id"], "malformed", "quiz")
    assert (malformed["status"], malformed["error"]) == ("failed", "model answer has no choices")
    assert (malformed["content"], malformed["usage"]) == (None, None)
    fine = await item(system, view["task_id"], "fine", "quiz")
    assert fine["status"] == "completed"
    # Nothing 5xx at the API, nobody died.
    statuses = [line.get("status") for line in log_lines(system.api)]
    assert not [s for s in statuses if isinstance(s, int) and s >= 500]
    assert all(p.alive() for p in system.processes)


async def test_another_users_item_and_an_unknown_item_are_404(system: System) -> None:
    view = await finished(system, ["owned"], ["quiz"])
    other = {"Authorization": f"Bearer {issue_token(SECRET, 'someone-else', 60)}"}
    path = f"/api/v1/tasks/{view['task_id']}/items"
    assert (await system.client.get(f"{path}/owned/quiz", headers=other)).status_code == 404
    assert (await system.client.get(f"{path}/owned/tutorial")).status_code == 404
    assert (await system.client.get(f"{path}/nobody/quiz")).status_code == 404
    assert (await system.client.get(f"{path}/owned%00/quiz")).status_code == 404


async def test_the_key_is_in_no_log_no_metric_and_no_error(system: System) -> None:
    view = await finished(system, ["always-500"], ["quiz"])
    failed = await item(system, view["task_id"], "always-500", "quiz")
    texts = [p.output() for p in system.processes]
    with urllib.request.urlopen(f"http://127.0.0.1:{system.worker_port}/metrics") as answer:
        metrics = answer.read().decode()
    api_metrics = (await system.client.get("/metrics")).text
    texts += [metrics, api_metrics, str(failed), str(view)]
    assert all(KEY not in text for text in texts)
    assert 'taskrelay_model_requests_total{outcome="ok"}' in metrics
    assert 'taskrelay_model_requests_total{outcome="rate_limited"}' in metrics
    assert 'taskrelay_model_requests_total{outcome="server_error"}' in metrics
    assert 'taskrelay_model_tokens_total{kind="completion"}' in metrics
    assert "taskrelay_model_request_seconds_bucket" in metrics
    assert all(s.authorization == f"Bearer {KEY}" for s in system.stub.seen)


def test_a_worker_without_a_model_or_with_bad_prompts_refuses_in_one_line(
    resources: Resources, tmp_path: Path
) -> None:
    bad_prompts = tmp_path / "prompts.toml"
    bad_prompts.write_text('[quiz]\nsystem = "s"\nuser = "about {topic}"\n')
    env = resources.env(TASKRELAY_CONTENT_GENERATOR="openai", OPENAI_API_KEY=KEY)
    line = refused_in_one_line(["worker"], env)
    assert "TASKRELAY_MODEL is not set" in line
    env = {**env, "TASKRELAY_MODEL": "m", "TASKRELAY_PROMPTS": str(bad_prompts)}
    line = refused_in_one_line(["worker"], env)
    assert f"{bad_prompts} line 3" in line
    assert "{topic}" in line
    assert KEY not in line
