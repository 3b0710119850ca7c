"""`taskrelay run`: check the three services, migrate, then run api, relay and worker as
children until Ctrl-C or SIGTERM, and print where to look.

The supervisor owns no business logic: it is the one-machine composition of the same commands
an operator runs separately when scaling out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from services.client import ApiClient, ApiError
from services.run import state
from services.run.children import Child
from services.run.preflight import check_all
from shared.auth import issue_token
from shared.db.migrate import migrate
from shared.errors import DependencyUnavailable
from shared.logging import get_logger
from shared.settings import Settings

log = get_logger(__name__)

DEMO_GENERATOR = "services.demo.generator:demo_generator"
STOP_GRACE = 25.0
"""Seconds each child gets after SIGTERM; all stop together, well within CONTRACT §2's 30 s."""
READY_TIMEOUT = 90.0


@dataclass(frozen=True, slots=True)
class RunOptions:
    host: str
    port: int
    health_port: int
    processes: int | None


def run_system(settings: Settings, options: RunOptions) -> int:
    """Preflight, migrate, supervise; 0 after a clean stop, 1 if a service is unreachable."""
    asyncio.run(check_all(settings))
    migrate(settings.database)
    secret = settings.auth.secret or secrets.token_urlsafe(32)
    api_url = f"http://{options.host}:{options.port}"
    if not settings.auth.secret:
        state.save(state.RunState(api_url, secret, os.getpid()))
    try:
        return asyncio.run(_supervise(options, _child_env(secret), ApiClient(api_url, "")))
    finally:
        state.remove(os.getpid())


def _child_env(secret: str) -> dict[str, str]:
    env = dict(os.environ, TASKRELAY_SECRET=secret)
    env.setdefault("TASKRELAY_CONTENT_GENERATOR", DEMO_GENERATOR)
    if sys.stdout.isatty():
        env.setdefault("TASKRELAY_LOG_FORMAT", "console")
    return env


def _children(options: RunOptions, env: dict[str, str]) -> list[Child]:
    cli = [sys.executable, "-m", "services.cli"]
    worker = ["worker"] + (["--processes", str(options.processes)] if options.processes else [])
    return [
        Child("api", [*cli, "api", "--host", options.host, "--port", str(options.port)], env),
        Child("relay", [*cli, "relay", "--health-port", str(options.health_port)], env),
        Child("worker", [*cli, *worker], env),
    ]


async def _supervise(options: RunOptions, env: dict[str, str], probe: ApiClient) -> int:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    children = _children(options, env)
    supervised = [asyncio.create_task(child.supervise(stopping)) for child in children]
    greeter = asyncio.create_task(_greet(options, env["TASKRELAY_SECRET"], probe, stopping))
    await stopping.wait()
    log.info("stopping", children=[c.name for c in children])
    greeter.cancel()
    codes = await asyncio.gather(*(child.stop(STOP_GRACE) for child in children))
    for task in supervised:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*supervised, greeter)
    log.info("stopped", exit_codes=dict(zip((c.name for c in children), codes, strict=True)))
    return 0


async def _greet(
    options: RunOptions, secret: str, probe: ApiClient, stopping: asyncio.Event
) -> None:
    """Once the API answers, create a small demo task and print where to watch it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT
    while not await probe.ready():
        if stopping.is_set() or loop.time() > deadline:
            log.error("api_not_ready", url=probe.base_url, waited_seconds=READY_TIMEOUT)
            return
        await asyncio.sleep(0.5)
    token = issue_token(secret, "demo", 7 * 24 * 3600)
    client = ApiClient(probe.base_url, token)
    try:
        task = await client.create_task(
            "taskrelay-welcome",
            [("outbox", "The transactional outbox"), ("relay", "Relaying to RabbitMQ")],
            ["tutorial", "resources", "quiz"],
        )
    except (ApiError, DependencyUnavailable) as exc:
        log.error("demo_task_failed", error=str(exc))
        return
    print(_banner(options, client, task["task_id"], token), flush=True)


def _command() -> str:
    """How to call `taskrelay` from another terminal: by name if it is on PATH."""
    installed = Path(sys.executable).parent / "taskrelay"
    if shutil.which("taskrelay") == str(installed) or not installed.exists():
        return "taskrelay"
    return str(installed)


def _banner(options: RunOptions, client: ApiClient, task_id: str, token: str) -> str:
    return "\n".join(
        [
            "",
            "taskrelay is running (Ctrl-C stops it)",
            f"  API        {client.base_url}   (OpenAPI at {client.base_url}/schema)",
            f"  relay      http://127.0.0.1:{options.health_port}/health   and /metrics",
            f"  demo task  {client.page_url(task_id)}",
            f"  token      {token}   (user 'demo')",
            f"  try        {_command()} demo",
            "",
        ]
    )
