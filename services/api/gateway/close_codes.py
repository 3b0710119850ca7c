"""The WebSocket close codes the gateway sends, defined once (protocol §7 fixes the 44xx ones).

Admission refuses with them, the endpoint and the watcher end sockets with them, and the
metrics pre-create one `taskrelay_gateway_disconnects_total{code}` series per code, so a new
code is one line here. The 1xxx codes keep RFC 6455's registered meanings; the 4xxx codes are
the application's, and a client must not reconnect after 4401, 4403 or 4404 (nothing would
change), but should after the others.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class CloseCode(IntEnum):
    TOO_BIG = 1009
    """The client sent a frame over `ws_max_frame_bytes`."""
    INTERNAL = 1011
    """Something unexpected failed while serving the socket; never a crash of the process."""
    SERVICE_RESTART = 1012
    """This API instance is stopping: reconnect, to it or another."""
    TRY_AGAIN = 1013
    """A dependency (PostgreSQL) is down: reconnect in a few seconds."""
    TOO_SLOW = 4008
    """The socket fell too far behind its task: reconnect and start from a fresh snapshot."""
    UNAUTHORIZED = 4401
    """No token, or a bad or expired one."""
    FORBIDDEN_ORIGIN = 4403
    """An Origin outside `TASKRELAY_ALLOWED_ORIGINS`."""
    NOT_FOUND = 4404
    """An unknown task, or another user's."""
    TOO_MANY = 4429
    """The user already holds `TASKRELAY_WS_MAX_SOCKETS_PER_USER` sockets on this instance, or
    connected more than `TASKRELAY_WS_CONNECTS_PER_SECOND` times in this second."""


CLIENT_GONE: Final = 0
"""Not a close code: the client went away first, so there is nothing left to send."""

REASONS: Final[dict[int, str]] = {
    CloseCode.TOO_BIG: "frame too big",
    CloseCode.TRY_AGAIN: "try again later",
    CloseCode.TOO_SLOW: "too slow: reconnect and resync",
    CloseCode.NOT_FOUND: "task not found",
    CloseCode.UNAUTHORIZED: "the token has expired",
    CloseCode.TOO_MANY: "too many sockets: close one first",
}
"""The reason sent with a code the endpoint closes with (admission's refusals carry their own)."""


def metric_label(code: int) -> str:
    """The `code` label of the disconnects counter: the number, or `client_gone`."""
    return "client_gone" if code == CLIENT_GONE else str(int(code))
