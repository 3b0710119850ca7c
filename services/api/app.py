"""`create_app()`: the one composition root of the web process.

The engine is created in the lifespan, inside the server's event loop, never at import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from services.api.errors import EXCEPTION_HANDLERS
from services.api.gateway import GATEWAY_HANDLERS, gateway_lifespan
from services.api.health import health
from services.api.observability import PROBE_HANDLERS, ApiMetrics, RequestObserver
from services.api.page import PAGE_HANDLERS
from services.api.routes import TaskController
from services.api.security import OPENAPI_COMPONENTS, current_user
from services.api.throttle import forget_quiet_clients, rate_limit
from shared.db import UnitOfWorkFactory, create_engine
from shared.settings import Settings


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    settings.auth.require_secret()

    @asynccontextmanager
    async def database(app: Litestar) -> AsyncIterator[None]:
        engine = create_engine(settings.database)
        app.state.uow_factory = UnitOfWorkFactory(engine)
        try:
            yield
        finally:
            await engine.dispose()

    metrics = ApiMetrics()
    app = Litestar(
        route_handlers=[TaskController, health, *PROBE_HANDLERS, *GATEWAY_HANDLERS, *PAGE_HANDLERS],
        lifespan=[database, gateway_lifespan(settings, metrics.gateway), forget_quiet_clients],
        dependencies={"user_id": Provide(current_user)},
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
        state=State({"settings": settings, "metrics": metrics}),
        logging_config=None,  # the process configured structlog already
    )
    # Outermost, like Litestar's own OpenTelemetry plugin: every request, routed or not.
    app.asgi_handler = RequestObserver(app.asgi_handler, metrics)
    return app


def package_version() -> str:
    """The installed package's version: what OpenAPI documents is what runs."""
    try:
        return version("taskrelay")
    except PackageNotFoundError:
        return "0+unknown"
