"""`create_app()`: the one composition root of the web process.

The engine is created in the lifespan, inside the server's event loop, never at import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from services.api.errors import EXCEPTION_HANDLERS
from services.api.gateway import GATEWAY_HANDLERS, gateway_lifespan
from services.api.health import health
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

    return Litestar(
        route_handlers=[TaskController, health, *GATEWAY_HANDLERS, *PAGE_HANDLERS],
        lifespan=[database, gateway_lifespan(settings), forget_quiet_clients],
        dependencies={"user_id": Provide(current_user)},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=rate_limit(settings),
        request_max_body_size=settings.api.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="taskrelay",
            version="1.0.0",
            path="/schema",
            components=OPENAPI_COMPONENTS,
            render_plugins=[SwaggerRenderPlugin()],
        ),
        state=State({"settings": settings}),
        logging_config=None,  # the process configured structlog already
    )
