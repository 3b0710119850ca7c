"""The relay's port: `/health` (docs/protocol.md §10), `/livez`, `/readyz` and `/metrics`.

Served by the shared probe responder in the relay's own loop, so the answers always reflect its
live state. Ready means both dependencies answer: a standby is ready (it takes over at once).
"""

from __future__ import annotations

import json
import os

from services.relay.state import RelayMetrics, RelayState
from shared.errors import ConfigurationError
from shared.observability.probe_server import Answer, ProbeServer, probe_routes


class HealthServer:
    def __init__(self, state: RelayState, metrics: RelayMetrics, host: str, port: int) -> None:
        self._state, self._metrics = state, metrics
        routes = probe_routes(self._not_ready, metrics.registry)
        scrape = routes["/metrics"]

        def metrics_route() -> Answer:
            state.export(metrics)
            return scrape()

        routes.update({"/health": self._health, "/metrics": metrics_route})
        self._server = ProbeServer(routes, host, port)

    async def start(self) -> None:
        try:
            await self._server.start()
        except OSError as exc:
            address = self._server.where.removeprefix("http://")
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise ConfigurationError(
                f"cannot serve health on {address}: {reason}; "
                "choose another port with --health-port"
            ) from exc

    async def stop(self) -> None:
        await self._server.stop()

    def _health(self) -> Answer:
        document = self._state.health()
        status = 200 if document["status"] == "ok" else 503
        return status, "application/json", json.dumps(document).encode()

    def _not_ready(self) -> str | None:
        errors = self._state.health()["errors"]
        reasons = [f"{name}: {why}" for name, why in errors.items() if why]
        return "; ".join(reasons) or None
