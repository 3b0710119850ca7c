"""`create_app()`: the one composition root of the web process.

The unit of work factory (and the asyncpg pool it makes on first use) is created in the
lifespan, inside the server's event loop, never at import. The process's one `Probes` object is
built here too: `taskrelay api` asks it (`app.state.probes`) for the start-up checks before
serving, and `/health` and `/readyz` for their answer once the pool exists. The process's
garbage collector is tuned here too, once started, because it is a decision about the
whole process (every socket pauses when it runs), not about one of its parts.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from services.api.gateway import GATEWAY_HANDLERS, gateway_lifespan
from services.api.health import health
from services.api.http_errors import EXCEPTION_HANDLERS
from services.api.observability import PROBE_HANDLERS, ApiMetrics, RequestObserver
from services.api.page import PAGE_HANDLERS
from services.api.routes import TaskController
from services.api.security import OPENAPI_COMPONENTS
from services.api.throttle import forget_quiet_clients, rate_limit
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.probes import Probes
from shared.adapters.unavailable import POSTGRES, RABBITMQ
from shared.config.settings import Settings


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    settings.auth.require_secret()

    probes = Probes(settings, (POSTGRES, RABBITMQ))

    @asynccontextmanager
    async def database(app: Litestar) -> AsyncIterator[None]:
        app.state.uow_factory = uow_factory = UnitOfWorkFactory(settings.database)
        probes.watch(uow_factory)
        try:
            yield
        finally:
            await uow_factory.close()

    metrics = ApiMetrics()
    app = Litestar(
        route_handlers=[TaskController, health, *PROBE_HANDLERS, *GATEWAY_HANDLERS, *PAGE_HANDLERS],
        lifespan=[
            database,
            gateway_lifespan(settings, metrics.gateway),
            forget_quiet_clients,
            tuned_collector,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=rate_limit(settings),
        request_max_body_size=settings.api.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="taskrelay",
            version=package_version(),
            path="/schema",
            components=OPENAPI_COMPONENTS,
            render_plugins=[SwaggerRenderPlugin()],
        ),
        state=State({"settings": settings, "metrics": metrics, "probes": probes}),
        logging_config=None,  # the process configured structlog already
    )
    # Outermost, like Litestar's own OpenTelemetry plugin: every request, routed or not.
    app.asgi_handler = RequestObserver(app.asgi_handler, metrics)
    return app


@asynccontextmanager
async def tuned_collector(_app: Litestar) -> AsyncIterator[None]:
    """Keep the cyclic garbage collector from stalling every socket at once (last lifespan step).

    With the defaults, full collections re-scan every object the process holds (modules, app,
    metadata, and each socket's objects) and took 150-550 ms under load in bench/ws_fanout.py.
    What exists once the app has started lives as long as the process, so it is frozen out of the
    scans; and young collections run every 50,000 allocations instead of 700, so short-lived
    frame objects die by reference counting before any of them is promoted (p99 at 1,000
    sockets: 5 ms). The price is memory: up to 50,000 young objects wait for a collection.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    yield


def package_version() -> str:
    """The installed package's version: what OpenAPI documents is what runs."""
    try:
        return version("taskrelay")
    except PackageNotFoundError:
        return "0+unknown"
