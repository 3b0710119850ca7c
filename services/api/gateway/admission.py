"""Who may open a task's socket: the Origin check and the token (docs/protocol.md §7).

Litestar's CORS middleware does not cover WebSockets, and a browser sends cookies and opens
sockets cross-site freely, so the Origin is checked here: an Origin listed in
`TASKRELAY_ALLOWED_ORIGINS` (or `*`), else one whose host:port is the request's own `Host`. A
request without an Origin header is not a browser and is let through to the token check.
Refusals carry the close code the socket is closed with. Browsers cannot send headers on a
WebSocket, so the token rides in the query string; `shared.config.redaction` keeps it out of
every log line, however the query spells its key.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import UUID

from services.api.gateway.close_codes import CloseCode
from shared.errors import Unauthorized
from shared.service.auth import verify_token_until

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


class Refused(Exception):
    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True, slots=True)
class Admitted:
    user_id: str
    task_id: UUID
    expires: float
    """When the token expires (epoch seconds): the socket is closed with 4401 then."""


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if allowed:
        return "*" in allowed or origin in {a.lower() for a in allowed}
    parts = urlsplit(origin)
    if not parts.hostname or not host:
        return False  # "null" (a sandboxed page or a file) or no Host to compare with
    default = _DEFAULT_PORTS.get(parts.scheme, "")
    return _host_port(parts.netloc, default) == _host_port(host.strip().lower(), default)


def _host_port(netloc: str, default_port: str) -> str:
    """`host:port` with the scheme's default port made explicit, so both sides compare equal."""
    if netloc.endswith("]") or ":" not in netloc.rsplit("]", 1)[-1]:
        return f"{netloc}:{default_port}"
    return netloc


def admit(
    *,
    origin: str | None,
    host: str | None,
    token: str | None,
    task_id: str,
    secret: str,
    allowed_origins: tuple[str, ...],
) -> Admitted:
    """The user, task and token expiry of an acceptable request, or Refused with its code."""
    if not origin_allowed(origin, host, allowed_origins):
        raise Refused(CloseCode.FORBIDDEN_ORIGIN, "origin not allowed")
    try:
        user_id, expires = verify_token_until(secret, token or "")
    except Unauthorized as exc:
        raise Refused(CloseCode.UNAUTHORIZED, str(exc)) from None
    try:
        return Admitted(user_id, UUID(task_id), expires)
    except ValueError:
        raise Refused(CloseCode.NOT_FOUND, "task not found") from None
