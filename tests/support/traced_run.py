"""One retry through the whole system in ONE process, every span kept by the SDK's in-memory
exporter: `python -m tests.support.traced_run` with a test run's environment prints the spans
as JSON lines (tests/integration/test_trace_spans.py reads them).

The API (uvicorn, with the gateway), the relay, the worker's job consumer and the RQ job (an
RQ `SimpleWorker`, which runs jobs in its own process) are the product's own composition
roots and classes, on the real PostgreSQL, RabbitMQ and Redis; only the processes are one.
It runs in a process of its own because a tracer provider is set once per process, and a
test session's other tests must keep the light path of no SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
from typing import Any

import aio_pika
import httpx
import redis
import uvicorn
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rq import Queue, SimpleWorker
from rq.timeouts import TimerDeathPenalty

from harness.processes import free_port
from harness.wait import wait_until
from harness.ws import Watch
from services.api import create_app
from services.api.gateway import GatewayWebSocketProtocol
from services.relay.bootstrap import bootstrap
from services.worker.consumer import JobConsumer
from services.worker.enqueue import JobQueue
from services.worker.jobs import JobContext, install
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import Settings
from shared.domain.content import load_generator
from shared.service.auth import issue_token
from tests.support import tasks

OWNER = "traced-run"


class InlineWorker(SimpleWorker):
    """RQ's in-process worker, run from a thread: signals belong to the main thread, so no
    handlers, and a job's timeout is a timer, not SIGALRM."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


async def run(trace_id: str) -> tuple[dict[str, Any], list[ReadableSpan]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "taskrelay-in-process"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    settings = Settings.from_env(dict(os.environ))
    uow_factory = UnitOfWorkFactory(settings.database, pool_size=4)
    task_id = await tasks.partial_failure(uow_factory, OWNER, completed=2, failed=3)
    install(JobContext(settings, load_generator(settings.worker.content_generator), lambda: False))
    rq_connection = redis.Redis.from_url(settings.redis.url)
    amqp = await aio_pika.connect(settings.broker.url)
    consumer = JobConsumer(uow_factory, JobQueue(rq_connection, settings), prefetch=4)
    relay = bootstrap(settings, free_port())
    stopping = asyncio.Event()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), port=port, log_config=None, ws=GatewayWebSocketProtocol
        )
    )
    async with contextlib.AsyncExitStack() as stack:
        serving = asyncio.create_task(server.serve())
        relaying = asyncio.create_task(relay.relay.run(stopping))
        stack.push_async_callback(_stop, server, serving, stopping, relaying)
        stack.push_async_callback(consumer.stop, 5.0)
        stack.push_async_callback(amqp.close)
        await consumer.start(await amqp.channel())
        await wait_until(lambda: _started(server), within=30, what="the in-process API")

        # First the task's own creation dispatch: its job finds the task partly failed and
        # ends, so the retry's job is the one that generates the items.
        worker = InlineWorker([settings.worker.queue_name], connection=rq_connection)
        queue = Queue(settings.worker.queue_name, connection=rq_connection)
        await wait_until(lambda: _queued(queue), within=30, what="the creation's job")
        await asyncio.to_thread(worker.work, burst=True)

        base_url = f"http://127.0.0.1:{port}"
        token = issue_token(settings.auth.require_secret(), OWNER, 600)
        watch = await Watch.open(base_url, task_id, token)
        stack.push_async_callback(watch.close)
        await watch.wait_frames(1)
        headers = {
            "Authorization": f"Bearer {token}",
            "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
        }
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            answer = await client.post(f"/api/v1/tasks/{task_id}/retry", headers=headers)
        assert answer.status_code == 202, answer.text

        async def completed() -> bool:
            await asyncio.to_thread(worker.work, burst=True)  # every job queued by now
            return any(f.get("status") == "completed" for f in watch.frames[1:])

        await wait_until(completed, within=60, interval=0.2, what="the retried task done")
        final = max(f["seq"] for f in watch.frames[1:])
        last_item = max(f["seq"] for f in watch.frames[1:] if "item" in f.get("data", {}))
        await wait_until(lambda: _delivered(exporter, final), within=10, what="its span")
    await uow_factory.close()
    rq_connection.close()
    provider.force_flush()
    facts = {"task_id": str(task_id), "final_seq": final, "last_item_seq": last_item}
    return facts, list(exporter.get_finished_spans())


async def _queued(queue: Queue) -> bool:
    return bool(await asyncio.to_thread(lambda: queue.count))


async def _started(server: uvicorn.Server) -> bool:
    return server.started


async def _delivered(exporter: InMemorySpanExporter, seq: int) -> bool:
    """Whether the gateway's span of the notification `seq` ended."""
    return any(
        (s.attributes or {}).get("taskrelay.seq") == seq for s in exporter.get_finished_spans()
    )


async def _stop(
    server: uvicorn.Server,
    serving: asyncio.Task[None],
    stopping: asyncio.Event,
    relaying: asyncio.Task[Any],
) -> None:
    stopping.set()
    server.should_exit = True
    await asyncio.gather(serving, relaying, return_exceptions=True)


def as_json(span: ReadableSpan) -> dict[str, Any]:
    context, parent = span.get_span_context(), span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_id": format(parent.span_id, "016x") if parent is not None else None,
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
    }


def main() -> int:
    trace_id = sys.argv[1]
    facts, spans = asyncio.run(run(trace_id))
    print(json.dumps(facts))
    for span in spans:
        print(json.dumps(as_json(span)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
