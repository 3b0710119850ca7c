"""`taskrelay`: the one command line of every process (docs/protocol.md §2).

Each subcommand reads the settings once, then hands them to its process's composition root.
A dependency that cannot be reached at start-up ends the process with one line and status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence

from services.admin.parser import add_admin_parser
from services.lifeline import announced_parent, die_with_parent
from services.worker.metrics import DEFAULT_METRICS_PORT
from shared.config.settings import Settings
from shared.errors import ConfigurationError, DependencyUnavailable
from shared.observability.logging import configure_logging
from shared.observability.tracing import configure_tracing

Command = Callable[[argparse.Namespace, Settings], int]


def cmd_migrate(_: argparse.Namespace, settings: Settings) -> int:
    from shared.adapters.postgres.migrate import migrate
    from shared.adapters.unavailable import redact

    created = migrate(settings.database)
    where = redact(settings.database.asyncpg_dsn)
    print(f"database {'created and ' if created else ''}migrated to head: {where}")
    return 0


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from services.api import create_app
    from services.api.gateway import GatewayWebSocketProtocol

    configure_logging("api", settings.logging)
    configure_tracing("api")
    app = create_app(settings)  # no I/O: the pool is made in its lifespan
    asyncio.run(app.state.probes.start_up())
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler
    # that was there before it; a no-op there lets a graceful stop end with status 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        # Trust no proxy unless told which (uvicorn would trust X-Forwarded-For from 127.0.0.1).
        proxy_headers=settings.api.proxy_headers and bool(settings.api.forwarded_allow_ips),
        forwarded_allow_ips=settings.api.forwarded_allow_ips or "",
        timeout_graceful_shutdown=25,
        server_header=False,
        ws=GatewayWebSocketProtocol,  # uvicorn's websockets-sansio, holding less per socket
        ws_max_size=settings.api.ws_max_frame_bytes,
        ws_ping_interval=settings.api.ws_ping_interval_seconds,
        ws_ping_timeout=settings.api.ws_ping_interval_seconds,
        ws_per_message_deflate=False,  # frames are small; deflate doubled memory per socket
    )
    server = uvicorn.Server(config)
    # `taskrelay run` binds the port itself and hands each API it starts the listening socket.
    server.run(sockets=None if args.fd is None else [socket.socket(fileno=args.fd)])
    return 0 if server.started else 1


def cmd_relay(args: argparse.Namespace, settings: Settings) -> int:
    from services.relay import serve

    configure_logging("relay", settings.logging)
    configure_tracing("relay")
    return asyncio.run(serve(settings, args.health_port))


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from services.worker.main import run_worker

    configure_logging("worker", settings.logging)
    configure_tracing("worker")
    processes = args.processes or os.cpu_count() or 1
    return asyncio.run(run_worker(settings, processes, args.metrics_port))


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from services.run import run_system, state
    from services.run.supervisor import RunOptions

    configure_logging("run", settings.logging)
    # A short secret is refused here, not by each child in turn; a generated one's private
    # directory is made (or refused) before anything starts.
    if settings.auth.checked_secret() is None and (notice := state.prepare()) is not None:
        print(f"taskrelay run: {notice}", file=sys.stderr)
    options = RunOptions(args.host, args.port, args.health_port, args.processes)
    try:
        return run_system(settings, options)
    finally:
        state.remove(os.getpid())  # a fallback directory too, even when start-up failed


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from services.demo import run_demo
    from services.run import state

    secret, api_url = settings.auth.checked_secret(), args.url
    if not secret:
        running = state.load()
        if running is None:
            raise ConfigurationError(
                "TASKRELAY_SECRET is not set and no `taskrelay run` of this user is running: "
                "export the secret the system uses"
            )
        secret, api_url = running.secret, args.url or running.api_url
    return asyncio.run(run_demo(api_url or "http://127.0.0.1:8000", secret, args.timeout))


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from shared.service.auth import issue_token

    ttl = args.ttl if args.ttl is not None else settings.auth.default_ttl_seconds
    print(issue_token(settings.auth.require_secret(), args.user_id, ttl))
    return 0


def cmd_admin(args: argparse.Namespace, settings: Settings) -> int:
    from services.admin.commands import run_admin

    return run_admin(args, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskrelay",
        description="Task state changes, their notifications and job dispatches, "
        "written in one PostgreSQL transaction and relayed to RabbitMQ.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("migrate", help="create the database if missing, then migrate to head")
    p.set_defaults(run=cmd_migrate)

    p = sub.add_parser("api", help="HTTP API, WebSocket gateway and task page")
    _listen_options(p)
    p.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)  # from `run`
    p.set_defaults(run=cmd_api)

    p = sub.add_parser("relay", help="publish the outbox to RabbitMQ; several may run at once")
    _health_port_option(p)
    p.set_defaults(run=cmd_relay)

    p = sub.add_parser(
        "worker", help="turn job messages into RQ jobs and run them; several may run at once"
    )
    _processes_option(p)
    p.add_argument(
        "--metrics-port",
        type=_port,
        default=DEFAULT_METRICS_PORT,
        metavar="P",
        help=f"port of /metrics, /livez and /readyz (default {DEFAULT_METRICS_PORT}; 0: off)",
    )
    p.set_defaults(run=cmd_worker)

    p = sub.add_parser(
        "run",
        help="check services and ports, migrate, then run api + relay + worker in the "
        "foreground; whatever ends it ends them too",
        description="Nothing it starts outlives it: SIGINT, SIGTERM, SIGHUP or a closed "
        "stdout or stderr stop the children in order, and on Linux a SIGKILLed run takes them "
        "with it. Exits 1 with one line if a service is unreachable or a port is taken.",
    )
    _listen_options(p)
    _health_port_option(p)
    _processes_option(p)
    p.set_defaults(run=cmd_run)

    p = sub.add_parser(
        "demo", help="against a running system: a task that partly fails, retried, shown live"
    )
    p.add_argument(
        "--url",
        default=None,
        help="the API's base URL (default: that of `taskrelay run`, else http://127.0.0.1:8000)",
    )
    p.add_argument("--timeout", type=float, default=180.0, help="give up after this many seconds")
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("token", help="print a bearer token for a user")
    p.add_argument(
        "user_id",
        metavar="USER_ID",
        type=_user_id,
        help="1-255 printable characters, no whitespace at either end",
    )
    p.add_argument(
        "--ttl",
        type=int,
        default=None,
        metavar="SECONDS",
        help="lifetime in seconds (default: TASKRELAY_TOKEN_TTL_SECONDS, else 86400)",
    )
    p.set_defaults(run=cmd_token)

    add_admin_parser(sub, cmd_admin)
    return parser


def _listen_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")


def _health_port_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--health-port",
        type=int,
        default=8001,
        metavar="P",
        help="port of the relay's /health and /metrics (default 8001; address: "
        "TASKRELAY_RELAY_HEALTH_HOST, else 127.0.0.1)",
    )


def _processes_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--processes",
        type=_positive,
        default=None,
        metavar="N",
        help="RQ worker processes to run (default: the CPU count)",
    )


def _user_id(raw: str) -> str:
    from shared.service.auth import valid_user_id

    if not valid_user_id(raw):
        raise argparse.ArgumentTypeError(
            "a user id is 1 to 255 printable characters, not starting or ending with whitespace"
        )
    return raw


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {value}")
    return value


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    if (parent := announced_parent()) is not None:
        die_with_parent(parent)  # a child of `taskrelay run` dies with it
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's own parser (`admin` says it in one line)
        getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        settings = Settings.from_env()
        run: Command = args.run
        return run(args, settings)
    except (ConfigurationError, DependencyUnavailable) as exc:
        print(f"taskrelay {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
