"""Who is calling: bearer tokens checked before anything else of a request is read."""

from __future__ import annotations

from typing import Any

from litestar.connection import Request
from litestar.openapi.spec import Components, SecurityScheme

from shared.config.settings import Settings
from shared.errors import InvalidInput, Unauthorized
from shared.service.auth import bearer_token, verify_token

USER_KEY = "user_id"

OPENAPI_COMPONENTS = Components(
    security_schemes={
        "BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
    }
)
SECURITY: list[dict[str, list[str]]] = [{"BearerToken": []}]


async def authenticate(request: Request[Any, Any, Any]) -> None:
    """`before_request` of the task routes: a valid bearer token, or 401, before anything else
    of the request is read (its parameters, its body); the user id is kept for the handlers
    (`caller`). Then, for a POST, a body that names its media type must name JSON, or 415
    (`require_json`).

    A hook Litestar calls before it reads the handler's parameters, not a middleware: one call,
    where a route middleware added two frames and an exception handler layer that every
    database round trip of the request resumed through; nor a guard, for which Litestar copies
    the route handler on every call.
    """
    scope = request.scope
    settings: Settings = scope["litestar_app"].state.settings
    authorization, content_type = "", ""
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.decode("latin-1")
    user = verify_token(settings.auth.require_secret(), bearer_token(authorization))
    scope.setdefault("state", {})[USER_KEY] = user
    if scope["method"] == "POST":
        require_json(content_type)


def require_json(content_type: str) -> None:
    """A POST body that names its media type must name JSON (no header: read as JSON)."""
    if not content_type:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {media_type!r}")


def caller(request: Request[Any, Any, Any]) -> str:
    """The authenticated user's id, as `authenticate` kept it for the task routes.

    Read from the request, not injected as a Litestar dependency: resolving one costs ~9 us a
    request, for a value that is already there.
    """
    user = request.scope.get("state", {}).get(USER_KEY)
    if not user:
        raise Unauthorized("a bearer token is required")
    return str(user)


class UnsupportedMediaType(InvalidInput):
    status_code = 415
