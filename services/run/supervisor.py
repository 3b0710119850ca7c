"""`taskrelay run`: check the three services and the two ports, migrate, then run api, relay
and worker as children until it is told to stop, and print where to look.

Whatever ends it, nothing it started is left behind: SIGINT, SIGTERM and SIGHUP (the terminal
closed) stop the children in order, as does a stdout or stderr whose reader went away
(`services.run.streams`) or an exception in the supervisor; a SIGKILLed supervisor takes its
children with it (`services.lifeline`). The supervisor owns no business logic: it is the
one-machine composition of the same commands an operator runs separately when scaling out.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.client import ApiClient, ApiError
from services.run import ports, state
from services.run.children import Child
from services.run.preflight import check_all
from services.run.streams import Streams, silence_gone
from services.worker.metrics import DEFAULT_METRICS_PORT
from shared.adapters.postgres.migrate import migrate
from shared.config.settings import Settings
from shared.domain import CONTENT_TYPES
from shared.errors import DependencyUnavailable
from shared.observability.logging import get_logger
from shared.service.auth import issue_token

log = get_logger(__name__)

DEMO_GENERATOR = "services.demo.generator:demo_generator"
STOP_GRACE = 25.0
"""Seconds each child gets after SIGTERM; all stop together, well within protocol §2's 30 s."""
READY_TIMEOUT = 90.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True, slots=True)
class RunOptions:
    host: str
    port: int
    health_port: int
    processes: int | None


def run_system(settings: Settings, options: RunOptions) -> int:
    """Preflight, migrate, supervise; 0 after a stop, 1 if a service or a port is unavailable
    or the supervisor itself failed."""
    asyncio.run(check_all(settings))
    ports.ensure_free(settings.relay.health_host, options.health_port, "--health-port")
    with ports.claim(options.host, options.port, "--port") as api_socket:
        migrate(settings.database)
        secret = settings.auth.secret or secrets.token_urlsafe(32)
        api_url = ports.url_of(api_socket)
        if not settings.auth.secret:
            state.save(state.RunState(api_url, secret, os.getpid()))
        try:
            env = _child_env(secret)
            return asyncio.run(_supervise(options, env, api_socket, ApiClient(api_url, "")))
        finally:
            state.remove(os.getpid())


def _child_env(secret: str) -> dict[str, str]:
    env = dict(os.environ, TASKRELAY_SECRET=secret)
    env.setdefault("TASKRELAY_CONTENT_GENERATOR", DEMO_GENERATOR)
    if sys.stdout.isatty():
        env.setdefault("TASKRELAY_LOG_FORMAT", "console")
    return env


def _children(
    options: RunOptions, env: dict[str, str], api_socket: socket.socket, streams: Streams
) -> list[Child]:
    cli = [sys.executable, "-m", "services.cli"]
    fd = api_socket.fileno()
    api = [*cli, "api", "--host", options.host, "--port", str(options.port), "--fd", str(fd)]
    worker = ["worker"] + (["--processes", str(options.processes)] if options.processes else [])
    relay = [*cli, "relay", "--health-port", str(options.health_port)]
    # Only the API signs or checks tokens: the relay and the worker (and the content generator
    # the worker runs, third-party code) never see the secret.
    no_secret = {name: value for name, value in env.items() if name != "TASKRELAY_SECRET"}
    return [
        Child("api", api, env, streams.write, pass_fds=[fd]),
        Child("relay", relay, no_secret, streams.write),
        Child("worker", [*cli, *worker], no_secret, streams.write),
    ]


async def _supervise(
    options: RunOptions, env: dict[str, str], api_socket: socket.socket, probe: ApiClient
) -> int:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, _stop_on, stopping, signal.Signals(signum).name)
    streams = Streams(loop, lambda name: _stop_on(stopping, f"{name} closed"))
    streams.watch()
    children = _children(options, env, api_socket, streams)
    supervised = [asyncio.create_task(child.supervise(stopping)) for child in children]
    greeting = _greet(options, env["TASKRELAY_SECRET"], probe, stopping, streams.write)
    greeter = asyncio.create_task(greeting)
    for task in [*supervised, greeter]:  # an exception in one of them ends the run
        task.add_done_callback(lambda done: _stop_on_error(stopping, done))
    try:
        await stopping.wait()
    finally:  # an exception here stops the children just the same
        stopping.set()
        greeter.cancel()
        codes = await asyncio.gather(*(child.stop(STOP_GRACE) for child in children))
        for task in [*supervised, greeter]:
            task.cancel()
        ended = await asyncio.gather(*supervised, greeter, return_exceptions=True)
        streams.unwatch()
        api_socket.close()  # a probe still waiting in its backlog is refused, not left hanging
    log.info("stopped", exit_codes=dict(zip((c.name for c in children), codes, strict=True)))
    return 1 if any(isinstance(result, Exception) for result in ended) else 0


def _stop_on(stopping: asyncio.Event, reason: str) -> None:
    if not stopping.is_set():
        stopping.set()
        silence_gone()  # logging must not fail on a terminal or pipe that has just gone
        log.info("stopping", reason=reason)


def _stop_on_error(stopping: asyncio.Event, task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        _stop_on(stopping, f"supervisor error: {error!r}")


async def _greet(
    options: RunOptions,
    secret: str,
    probe: ApiClient,
    stopping: asyncio.Event,
    write: Callable[[bytes], None],
) -> None:
    """Once the API answers, create a small demo task and print where to watch it.

    Whatever answers is an API this run started: the run holds the port (`services.run.ports`).
    """
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
            list(CONTENT_TYPES),
        )
    except (ApiError, DependencyUnavailable) as exc:
        log.error("demo_task_failed", error=str(exc))
        return
    write((_banner(options, client, task["task_id"], token) + "\n").encode())


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
            f"  worker     http://127.0.0.1:{DEFAULT_METRICS_PORT}/metrics   (/livez, /readyz)",
            f"  demo task  {client.page_url(task_id)}",
            f"  token      {token}   (user 'demo')",
            f"  try        {_command()} demo",
            "",
        ]
    )
