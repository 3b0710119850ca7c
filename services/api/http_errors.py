"""The one place errors become HTTP responses: `{"status_code", "detail"}` JSON, never a 5xx
for bad input.

Domain errors carry their status; Litestar's own client errors (validation, 413, 405) keep
theirs; a dependency that is down (PostgreSQL unreachable) is a 503 with `Retry-After` and one
warning line; anything else is logged with its traceback and answered 500 without details.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.types import ExceptionHandlersMap

from services.api.schemas import ErrorView
from shared.errors import DependencyUnavailable, DomainError, IdempotencyConflict
from shared.observability.logging import get_logger

log = get_logger(__name__)

RETRY_AFTER_SECONDS = 3
"""What a 503 tells clients to wait: about how long a PostgreSQL restart keeps it away."""
UNAVAILABLE: dict[int, ResponseSpec] = {
    503: ResponseSpec(
        ErrorView,
        description="PostgreSQL is unreachable; nothing was written. Retry after the "
        "`Retry-After` header's seconds.",
        generate_examples=False,
    )
}
"""The OpenAPI `responses` of every route that needs the database."""
CLIENT_DISCONNECTED = "client disconnected prematurely"
"""The detail of the InternalServerException Litestar raises when a body stops mid-way."""


def _json(status_code: int, detail: str, extra: Any = None, headers: Any = None) -> Response[Any]:
    body: dict[str, Any] = {"status_code": status_code, "detail": detail}
    if extra:
        body["extra"] = extra
    return Response(body, status_code=status_code, headers=headers)


def domain_error(_: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    headers = {"Retry-After": "1"} if isinstance(exc, IdempotencyConflict) else None
    return _json(exc.status_code, exc.detail, headers=headers)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.detail == CLIENT_DISCONNECTED:  # Litestar's 500 for a body cut short: the client's doing
        log.info("request_body_incomplete", method=request.method, path=request.url.path)
        return _json(400, "the request body ended before its announced length")
    if exc.status_code >= 500:
        return unexpected_error(request, exc)
    extra = exc.extra if isinstance(exc, ValidationException) else None
    headers = exc.headers
    if exc.status_code == 429:  # the per-client rate limit counts one-second windows
        headers = {"Retry-After": "1", **(exc.headers or {})}
    return _json(exc.status_code, exc.detail, extra, headers)


def dependency_unavailable(
    request: Request[Any, Any, Any], exc: DependencyUnavailable
) -> Response[Any]:
    """503: nothing was written (the unit of work rolled back); the client may simply retry."""
    log.warning(
        "request_dependency_unavailable",
        method=request.method,
        path=request.url.path,
        dependency=exc.service,
        reason=exc.reason,
    )
    detail = f"{exc.service} is unavailable: try again in a few seconds"
    return _json(503, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("request_failed", method=request.method, path=request.url.path, exc_info=exc)
    return _json(500, "Internal Server Error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    DomainError: domain_error,
    DependencyUnavailable: dependency_unavailable,
    HTTPException: http_error,
    Exception: unexpected_error,
}
