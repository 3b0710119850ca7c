"""Who is calling: bearer tokens checked by a middleware, before any body is read."""

from __future__ import annotations

from typing import Any

from litestar.connection import Request
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ASGIApp, Receive, Scope, Send

from shared.auth import bearer_token, verify_token
from shared.errors import InvalidInput, Unauthorized
from shared.settings import Settings

USER_KEY = "user_id"

OPENAPI_COMPONENTS = Components(
    security_schemes={
        "BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
    }
)
SECURITY: list[dict[str, list[str]]] = [{"BearerToken": []}]


class Authenticate(ASGIMiddleware):
    """Middleware of the task routes: a valid bearer token, or 401, before anything else of the
    request is read; the user id is kept for the handlers (`caller`). Then, for a POST, a body
    that names its media type must name JSON, or 415 (`require_json`).

    A middleware, not a guard: Litestar copies the route handler for every guard it calls
    (~11 us of the API's CPU per request, in-process), a middleware is one call.
    """

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        settings: Settings = scope["litestar_app"].state.settings
        secret = settings.auth.require_secret()
        authorization, content_type = "", ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        user = verify_token(secret, bearer_token(authorization))
        scope.setdefault("state", {})[USER_KEY] = user
        if scope.get("method") == "POST":
            require_json(content_type)
        await next_app(scope, receive, send)


def require_json(content_type: str) -> None:
    """A POST body that names its media type must name JSON (no header: read as JSON)."""
    if not content_type:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {media_type!r}")


def caller(request: Request[Any, Any, Any]) -> str:
    """The authenticated user's id, as `Authenticate` kept it for the task routes.

    Read from the request, not injected as a Litestar dependency: resolving one costs ~9 us a
    request, for a value that is already there.
    """
    user = request.scope.get("state", {}).get(USER_KEY)
    if not user:
        raise Unauthorized("a bearer token is required")
    return str(user)


class UnsupportedMediaType(InvalidInput):
    status_code = 415
