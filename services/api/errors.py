"""The one place errors become HTTP responses: `{"status_code", "detail"}` JSON, never a 5xx
for bad input.

Domain errors carry their status; Litestar's own client errors (validation, 413, 405) keep
theirs; anything else is logged with its traceback and answered 500 without details.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from shared.errors import DomainError, IdempotencyConflict
from shared.logging import get_logger

log = get_logger(__name__)


def _json(status_code: int, detail: str, extra: Any = None, headers: Any = None) -> Response[Any]:
    body: dict[str, Any] = {"status_code": status_code, "detail": detail}
    if extra:
        body["extra"] = extra
    return Response(body, status_code=status_code, headers=headers)


def domain_error(_: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    headers = {"Retry-After": "1"} if isinstance(exc, IdempotencyConflict) else None
    return _json(exc.status_code, exc.detail, headers=headers)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code >= 500:
        return unexpected_error(request, exc)
    extra = exc.extra if isinstance(exc, ValidationException) else None
    return _json(exc.status_code, exc.detail, extra, exc.headers)


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("request_failed", method=request.method, path=request.url.path, exc_info=exc)
    return _json(500, "Internal Server Error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    DomainError: domain_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
