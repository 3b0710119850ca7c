"""The WebSocket gateway: browsers watch a task live, fed from RabbitMQ, never stale.

`gateway_lifespan` starts this instance's broker link and closes every socket with 1012 on
shutdown; `GATEWAY_HANDLERS` holds the `/ws/tasks/{task_id}` route; `taskrelay api` serves
sockets with `GatewayWebSocketProtocol`. See docs/gateway.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar

from services.api.gateway.endpoint import Gateway, task_socket
from services.api.gateway.hub import NotificationHub
from services.api.gateway.metrics import GatewayMetrics
from services.api.gateway.protocol import GatewayWebSocketProtocol
from shared.config.settings import Settings

GATEWAY_HANDLERS = [task_socket]


def gateway_lifespan(
    settings: Settings, metrics: GatewayMetrics
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """A lifespan step; it needs `app.state.uow_factory`, so it goes after the database's."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        hub = NotificationHub(settings.broker, settings.api.broker_heartbeat_seconds)
        hub.start()
        gateway = Gateway(
            settings.api, settings.auth.require_secret(), hub, app.state.uow_factory, metrics
        )
        metrics.track(lambda: gateway.sockets, hub.watched_tasks)
        app.state.gateway = gateway
        try:
            yield
        finally:
            await gateway.shutdown()
            await hub.stop()

    return lifespan


__all__ = [
    "GATEWAY_HANDLERS",
    "Gateway",
    "GatewayWebSocketProtocol",
    "NotificationHub",
    "gateway_lifespan",
]
