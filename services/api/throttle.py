"""How much of one API instance a single client can take: a request rate per client.

A flood from one client must not take the API down for everyone (docs/security.md). Litestar's
rate-limiting middleware counts each client's HTTP requests per one-second window
(`TASKRELAY_API_RATE_LIMIT_PER_SECOND`, default 100; 0 turns it off) and answers the rest 429
(with `Retry-After`, services/api/http_errors.py), before any guard, body or database work. A client
is the user of a valid token (header or `?token=`), so users behind one proxy address each get
their own budget; without a valid token it is the peer address. WebSockets are bounded
separately, per user (`TASKRELAY_WS_MAX_SOCKETS_PER_USER`, `TASKRELAY_WS_CONNECTS_PER_SECOND`);
bodies by `max_body_bytes`.

Probes (`/livez`, `/readyz`, `/health`, `/metrics`) and the page's static assets are not
counted at all: they share an address with every anonymous client behind the same proxy, so a
flood of anonymous requests would otherwise answer the load balancer's probes and the task
page's script 429. They are cheap by construction: the probes answer from a result at most 1 s
old (`shared.adapters.probes.Probes`), the assets are a few small files.

The peer address is the socket's, unless the operator names the proxies to trust
(`TASKRELAY_API_PROXY_HEADERS`, `TASKRELAY_API_FORWARDED_ALLOW_IPS`, passed to uvicorn): by
default no `X-Forwarded-For` is believed, so a client cannot pick its own address.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar
from litestar.connection import Request
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.stores.memory import MemoryStore

from shared.config.settings import Settings
from shared.errors import Unauthorized
from shared.service.auth import bearer_token, verify_token

STORE = "rate_limit"
UNCOUNTED = ["^/livez$", "^/readyz$", "^/health$", "^/metrics$", "^/static/"]
"""Paths no client's budget covers (Litestar matches them against the request's path)."""
PURGE_SECONDS = 60.0
"""How often counters of clients gone quiet are dropped (the store keeps them until read)."""


def rate_limit(settings: Settings) -> list[DefineMiddleware]:
    """The middleware to install: none when the limit is 0."""
    per_second = settings.api.rate_limit_per_second
    if per_second == 0:
        return []
    config = RateLimitConfig(
        rate_limit=("second", per_second),
        identifier_for_request=client_identity,
        store=STORE,
        exclude=UNCOUNTED,
    )
    return [config.middleware]


def client_identity(request: Request[Any, Any, Any]) -> str:
    """`user:<id>` for a request with a valid token, else `addr:<peer address>`."""
    settings: Settings = request.app.state.settings
    header = request.headers.get("authorization")
    try:
        token = bearer_token(header) if header else request.query_params.get("token", "")
        return "user:" + verify_token(settings.auth.require_secret(), token)
    except Unauthorized:
        return "addr:" + (request.client.host if request.client else "unknown")


@contextlib.asynccontextmanager
async def forget_quiet_clients(app: Litestar) -> AsyncIterator[None]:
    """Lifespan step: Litestar's memory store drops an expired counter only when it is read
    again, so one counter per client ever seen would stay; purge them every minute."""

    async def purge() -> None:
        while True:
            await asyncio.sleep(PURGE_SECONDS)
            store = app.stores.get(STORE)
            if isinstance(store, MemoryStore):  # the default; other stores expire by themselves
                await store.delete_expired()

    task = asyncio.create_task(purge(), name="rate-limit-purge")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
