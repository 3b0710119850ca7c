"""`taskrelay admin` against a running system (docs/protocol.md §2): a parked outbox row and a
dead-lettered job message are put back through it, and their tasks complete; the `--json`
shapes; exit status 1 (a dependency down, named). Status 2 (bad input, one line) is called in
process: tests/unit/test_cli.py, and for ids the database does not know
tests/integration/test_cli_admin.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from uuid import UUID, uuid4

import httpx
import pytest

from harness import resources as res
from harness.processes import free_port, start_api
from harness.relay import start_relay
from harness.resources import SECRET, Resources
from harness.wait import wait_until
from harness.worker import start_worker, task_row
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import DatabaseSettings
from shared.service.auth import issue_token
from tests.e2e.test_nothing_stuck import dead_letter_next_job_message, wait_for_final
from tests.support import tasks
from tests.support.cli import Ran, admin
from tests.support.republish import outbox_rows, publish
from tests.support.worker import notifications

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
            assert [line["event"] for line in replayed.actions] == ["admin_outbox_row_replayed"]
            assert replayed.actions[0]["row_id"] == row["id"]
            sent = admin(env, "dead-letters", "replay")
            assert sent.code == 0, sent.stderr
            assert [line["message_id"] for line in sent.actions] == [letter["message_id"]]
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


async def test_tasks_are_listed_retried_and_cancelled_as_the_routes_do(
    resources: Resources, uow_factory: UnitOfWorkFactory
) -> None:
    env = resources.env()
    owner = f"admin-{uuid4().hex[:8]}"
    waiting = await tasks.new_task(uow_factory, owner, 2, types=("quiz",))
    failed = await tasks.partial_failure(uow_factory, owner, completed=1, failed=2)

    listed = admin(env, "tasks", "--json", "--user", owner)
    assert listed.code == 0, listed.stderr
    rows = {row["task_id"]: row for row in listed.document["tasks"]}
    assert set(rows) == {str(waiting), str(failed)}
    assert set(rows[str(waiting)]) == {
        "task_id", "owner_id", "status", "age_seconds", "items", "recoveries", "error_message"
    }  # fmt: skip
    assert rows[str(waiting)]["items"] == {"total": 2, "completed": 0, "failed": 0, "pending": 2}
    assert rows[str(failed)]["status"] == "partial_failure"
    assert rows[str(failed)]["items"] == {"total": 3, "completed": 1, "failed": 2, "pending": 0}
    assert rows[str(failed)]["error_message"]
    assert 0 <= rows[str(waiting)]["age_seconds"] < 60
    assert admin(env, "tasks", "--json", "--user", owner, "--older-than", "1h").document == {
        "tasks": []
    }
    only = admin(env, "tasks", "--json", "--user", owner, "--status", "pending").document
    assert [row["task_id"] for row in only["tasks"]] == [str(waiting)]
    table = admin(env, "tasks", "--user", owner)
    assert str(failed) in table.stdout
    assert "1/2/3" in table.stdout

    retried = admin(env, "tasks", "retry", str(failed))
    assert retried.code == 0, retried.stderr
    assert "partial_failure -> processing, 2 item(s) queued again" in retried.stdout
    (line,) = retried.actions
    assert line["event"] == "admin_task_retry"
    assert (line["status_before"], line["status"], line["items"]) == (
        "partial_failure",
        "processing",
        2,
    )
    notes = await notifications(uow_factory, failed)
    assert notes[-1]["step"] == "content_retry_queued"
    assert notes[-1]["message"] == "Retrying 2 failed content items"
    assert (await task_row(uow_factory, failed)).status == "processing"

    cancelled = admin(env, "tasks", "cancel", str(waiting), str(failed))
    assert cancelled.code == 0, cancelled.stderr
    assert [ln["status"] for ln in cancelled.actions] == ["cancelled", "cancelled"]

    again = admin(env, "tasks", "retry", str(waiting))  # cancelled: may be retried
    assert again.code == 0, again.stderr
    refused = admin(env, "tasks", "retry", str(waiting))  # processing now: refused, one line
    assert refused.code == 2
    assert refused.stderr.strip().count("\n") == 0
    assert f"task {waiting}" in refused.stderr


@pytest.mark.parametrize(
    ("args", "variable", "service"),
    [
        (["tasks"], "DATABASE_URL", "PostgreSQL"),
        (["outbox", "--json"], "DATABASE_URL", "PostgreSQL"),
        (["tasks", "cancel", str(UUID(int=7))], "DATABASE_URL", "PostgreSQL"),
        (["dead-letters"], "AMQP_URL", "RabbitMQ"),
        (["dead-letters", "drop", "--yes"], "AMQP_URL", "RabbitMQ"),
    ],
)
def test_a_dependency_down_exits_1_naming_it(
    resources: Resources, args: list[str], variable: str, service: str
) -> None:
    port = free_port()  # nothing listens there
    down = {
        "DATABASE_URL": f"postgresql://postgres:hunter2@127.0.0.1:{port}/taskrelay",
        "AMQP_URL": f"amqp://guest:hunter2@127.0.0.1:{port}/",
    }[variable]
    ran = admin(resources.env(**{variable: down}), *args)
    assert ran.code == 1, ran
    assert ran.stdout == ""
    (line,) = ran.stderr.splitlines()
    assert line.startswith(f"taskrelay admin: {service} is unreachable at ")
    assert "hunter2" not in line


async def test_dead_letters_are_dropped_only_when_confirmed(isolated: Resources) -> None:
    env = isolated.env()
    uow_factory = UnitOfWorkFactory(DatabaseSettings(url=env["DATABASE_URL"]), pool_size=1)
    try:
        task_id = await tasks.new_task(uow_factory, OWNER, 1)
        (row,) = await outbox_rows(uow_factory, task_id, "job")
        await publish(isolated.amqp_url, [row])  # as the relay would
    finally:
        await uow_factory.close()
    await dead_letter_next_job_message(isolated.amqp_url)

    declined = admin(env, "dead-letters", "drop", stdin="n\n")
    assert declined.code == 2
    assert "drop 1 dead-lettered job message(s)?" in declined.stdout
    assert declined.stderr.strip().endswith("not confirmed: nothing dropped")
    no_answer = admin(env, "dead-letters", "drop", stdin="")
    assert no_answer.code == 2
    (letter,) = admin(env, "dead-letters", "--json").document["messages"]
    assert letter["task_id"] == str(task_id)
    table = admin(env, "dead-letters")
    assert letter["message_id"] in table.stdout
    assert "rejected" in table.stdout

    confirmed = admin(env, "dead-letters", "drop", stdin="y\n")
    assert confirmed.code == 0, confirmed.stderr
    assert [ln["event"] for ln in confirmed.actions] == ["admin_dead_letter_dropped"]
    assert admin(env, "dead-letters", "--json").document == {"messages": []}
    nothing = admin(env, "dead-letters", "drop", "--yes")
    assert (nothing.code, nothing.stdout.strip()) == (0, "no dead-lettered job messages")
