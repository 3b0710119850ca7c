"""`taskrelay admin` against a running system (CONTRACT §2): a parked outbox row and a
dead-lettered job message are put back through it, and their tasks complete; the `--json`
shapes; exit statuses 2 (bad input, one line) and 1 (a dependency down, named)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from uuid import UUID

import httpx
import pytest

from shared.auth import issue_token
from shared.db import UnitOfWorkFactory
from shared.settings import DatabaseSettings
from tests.e2e.test_nothing_stuck import dead_letter_next_job_message, wait_for_final
from tests.support import resources as res
from tests.support.admin import Ran, admin
from tests.support.processes import free_port, start_api
from tests.support.relay import start_relay
from tests.support.resources import SECRET, Resources
from tests.support.wait import wait_until
from tests.support.worker import start_worker

pytestmark = pytest.mark.slow

OWNER = "admin-e2e"
SMALL = 700
"""Bytes a message may have on the first relay: one concept's dispatch fits, twenty's do not."""


@pytest.fixture(name="isolated")
def isolated_fixture() -> Iterator[Resources]:
    """Resources of this test alone: the outbox and the dead-letter queue hold only its rows."""
    with res.isolated("admin") as resources:
        yield resources


async def _create(client: httpx.AsyncClient, concepts: int) -> UUID:
    body = {
        "roadmap_id": f"admin-{concepts}",
        "concepts": [{"concept_id": f"c{i}", "title": f"Concept {i}"} for i in range(concepts)],
    }
    answer = await client.post("/api/v1/tasks", json=body)
    assert answer.status_code == 201, answer.text
    return UUID(answer.json()["task_id"])


async def test_a_parked_row_and_a_dead_letter_replayed_and_their_tasks_complete(
    isolated: Resources,
) -> None:
    # The worker's reconciler would give the tasks their work again by itself after
    # `stale_after`: made longer than the test, only the replays can finish them.
    env = isolated.env(TASKRELAY_WORKER_STALE_AFTER_SECONDS="3600")
    first_relay = {"TASKRELAY_RELAY_MAX_MESSAGE_BYTES": str(SMALL)}
    uow_factory = UnitOfWorkFactory(DatabaseSettings(url=env["DATABASE_URL"]), pool_size=2)
    token = issue_token(SECRET, OWNER, 3600)
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(start_api(env, name="api-admin"))
        base_url = f"http://127.0.0.1:{api.port}"  # type: ignore[attr-defined]
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
            with start_relay({**env, **first_relay, "TASKRELAY_RELAY_MAX_ATTEMPTS": "1"}):
                big = await _create(client, 20)  # its dispatch is too large here: parked

                async def parked() -> Ran | None:
                    ran = admin(env, "outbox", "--json")
                    return ran if ran.document["parked"] else None

                report = (await wait_until(parked, within=30, what="the parked row")).document
                small = await _create(client, 1)  # published, then dead-lettered
                await dead_letter_next_job_message(isolated.amqp_url)
            (row,) = report["parked"]
            assert set(report) == {"backlog", "oldest_pending_age_seconds", "parked"}
            assert set(row) == {"id", "task_id", "attempts", "last_error"}
            assert (row["task_id"], row["attempts"]) == (str(big), 1)
            assert "too large" in row["last_error"]
            table = admin(env, "outbox")
            assert table.code == 0
            assert f"{row['id']}" in table.stdout
            assert "too large" in table.stdout

            letters = admin(env, "dead-letters", "--json")
            assert letters.code == 0, letters.stderr
            (letter,) = letters.document["messages"]
            assert set(letter) == {"message_id", "routing_key", "reason", "task_id"}
            assert letter["task_id"] == str(small)
            assert letter["routing_key"] == "job.generate_content"
            assert letter["reason"] == "rejected"
            assert admin(env, "dead-letters", "--json").document["messages"] == [letter]

            stack.enter_context(start_relay(env, name="relay-admin-fixed"))  # the cause fixed
            replayed = admin(env, "outbox", "replay", "--all-parked")
            assert replayed.code == 0, replayed.stderr
            assert [line["event"] for line in replayed.logged] == ["admin_outbox_row_replayed"]
            assert replayed.logged[0]["row_id"] == row["id"]
            sent = admin(env, "dead-letters", "replay")
            assert sent.code == 0, sent.stderr
            assert [line["message_id"] for line in sent.logged] == [letter["message_id"]]
            assert admin(env, "dead-letters", "--json").document == {"messages": []}

            stack.enter_context(start_worker(env, 1, name="worker-admin", metrics_port=free_port()))
            for task_id in (big, small):
                final = await wait_for_final(uow_factory, task_id, within=120)
                assert final.status == "completed", (task_id, final)
            after = admin(env, "outbox", "--json").document
            assert after["parked"] == []
            listed = admin(env, "tasks", "--json", "--user", OWNER, "--status", "completed")
            assert {t["task_id"] for t in listed.document["tasks"]} == {str(big), str(small)}
    await uow_factory.close()
