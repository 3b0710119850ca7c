"""`/ws/tasks/{task_id}`: admit the socket, subscribe, read the snapshot, then stream.

A socket costs no broker work before it is known to be wanted: the token, the client's connects
this second (`ws_connects_per_second`, per user, or per address without a valid token; else
4429), the user's socket count on this instance (`ws_max_sockets_per_user`, else 4429) and the
task's owner (else 4404) are checked before it subscribes. A socket is closed with 4401 when its
token expires. Then the order is the whole point (docs/protocol.md §7): subscribe
first (the hub returns once the task's routing key is bound), then read the snapshot from
PostgreSQL, so every notification committed after the snapshot is already on its way to this
socket's mailbox; the `Watcher` drops those the snapshot covers. One reader task answers the
client's frames; the watcher is the only writer. On shutdown every socket is closed with 1012 so
clients reconnect elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from functools import partial
from typing import Any
from uuid import UUID

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from prometheus_client import CollectorRegistry

from services.api.gateway.admission import Admitted, Refused, admit
from services.api.gateway.close_codes import CLIENT_GONE, REASONS, CloseCode, metric_label
from services.api.gateway.connects import ConnectBudget
from services.api.gateway.hub import NotificationHub
from services.api.gateway.metrics import GatewayMetrics
from services.api.gateway.watcher import SlowConsumer, Watcher, WatchLimits
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import ApiSettings
from shared.errors import DependencyUnavailable, NotFound
from shared.observability.logging import bound_context, get_logger
from shared.service import get_task_view, require_owner

log = get_logger(__name__)

CLOSE_TIMEOUT_SECONDS = 10.0
_encoder = msgspec.json.Encoder()


class Gateway:
    def __init__(
        self,
        settings: ApiSettings,
        secret: str,
        hub: NotificationHub,
        uow_factory: UnitOfWorkFactory,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._settings, self._secret, self._hub, self._uows = settings, secret, hub, uow_factory
        self._metrics = metrics or GatewayMetrics(CollectorRegistry())
        self._limits = WatchLimits(settings.ws_queue_limit, settings.ws_gap_grace_seconds)
        self._watchers: set[Watcher] = set()
        self._per_user: dict[str, int] = {}
        """Open sockets of each user on this instance."""
        self._connects = ConnectBudget(settings.ws_connects_per_second)
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def sockets(self) -> int:
        return len(self._watchers)

    @property
    def broker_connected(self) -> bool:
        """Whether the link that feeds live updates is up (for `/health`)."""
        return self._hub.connected

    def _ended(self, code: int) -> None:
        self._metrics.disconnects.labels(metric_label(code)).inc()

    async def serve(self, socket: WebSocket[Any, Any, Any], task_id: str) -> None:
        await socket.accept()
        try:
            admitted = admit(
                origin=_header(socket, b"origin"),
                host=_header(socket, b"host"),
                token=socket.query_params.get("token"),
                task_id=task_id,
                secret=self._secret,
                allowed_origins=self._settings.allowed_origins,
            )
            if not self._connects.admit(f"user:{admitted.user_id}"):
                raise Refused(CloseCode.TOO_MANY, "too many connects: slow down")
        except Refused as refused:
            code: int = refused.code
            reason = refused.reason
            if code == CloseCode.UNAUTHORIZED and not self._connects.admit(_address(socket)):
                code, reason = CloseCode.TOO_MANY, "too many connects: slow down"
            self._ended(code)
            await socket.close(code, reason)
            return
        with bound_context(task_id=str(admitted.task_id)):
            code = await self._stream(socket, admitted)
        self._ended(code)
        if code != CLIENT_GONE:
            log.info("gateway_socket_closing", code=code, task_id=str(admitted.task_id))
            # Bounded: a peer that reads nothing would keep the close (and this task) waiting.
            with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                    await socket.close(code, REASONS.get(code))

    async def _stream(self, socket: WebSocket[Any, Any, Any], admitted: Admitted) -> int:
        user_id, task_id = admitted.user_id, admitted.task_id
        held = self._per_user.get(user_id, 0)
        if held >= self._settings.ws_max_sockets_per_user:
            return CloseCode.TOO_MANY
        self._per_user[user_id] = held + 1  # no await since the check: a burst cannot overshoot
        key = str(task_id)
        watcher = Watcher(key, self._limits, self._metrics)
        self._watchers.add(watcher)
        self._idle.clear()
        reader = asyncio.create_task(self._read(socket, watcher))
        expiry = asyncio.get_running_loop().call_later(
            max(admitted.expires - time.time(), 0.0), watcher.close, CloseCode.UNAUTHORIZED
        )
        try:
            await self._require_owner(user_id, task_id)  # before any broker work
            await self._hub.subscribe(key, watcher)
            return await watcher.run(partial(self._snapshot, user_id, task_id), socket.send_text)
        except NotFound:
            return CloseCode.NOT_FOUND
        except SlowConsumer:
            log.info("gateway_socket_too_slow")
            return CLIENT_GONE  # it stopped reading: a close frame would not get through
        except (WebSocketDisconnect, OSError):
            return CLIENT_GONE
        except DependencyUnavailable as exc:
            log.warning("gateway_socket_dependency_unavailable", dependency=exc.service)
            return CloseCode.TRY_AGAIN
        except Exception as exc:  # a database outage during a snapshot, say: never a crash
            log.error("gateway_socket_failed", error=repr(exc))
            return CloseCode.INTERNAL
        finally:
            expiry.cancel()
            reader.cancel()
            self._metrics.resyncs.inc(watcher.resyncs)
            await self._hub.unsubscribe(key, watcher)
            self._watchers.discard(watcher)
            self._release(user_id)
            if not self._watchers:
                self._idle.set()

    def _release(self, user_id: str) -> None:
        left = self._per_user.pop(user_id, 1) - 1
        if left > 0:
            self._per_user[user_id] = left

    async def _require_owner(self, user_id: str, task_id: UUID) -> None:
        """NotFound for a stranger's or an unknown task: one read, no lock, no binding."""
        async with self._uows() as uow:
            await require_owner(uow, user_id, task_id)

    async def _snapshot(self, user_id: str, task_id: UUID) -> tuple[int, str]:
        async with self._uows() as uow:
            view = await get_task_view(uow, user_id, task_id)
        frame = {"type": "snapshot", "seq": view.seq, "task": view.as_dict()}
        return view.seq, _encoder.encode(frame).decode()

    async def _read(self, socket: WebSocket[Any, Any, Any], watcher: Watcher) -> None:
        """Answer what the client sends; the socket needs nothing from it."""
        limit = self._settings.ws_max_frame_bytes
        try:
            while True:
                event = await socket.receive()
                if event["type"] != "websocket.receive":
                    break
                data = event.get("text") or event.get("bytes") or ""
                if len(data) > limit:
                    watcher.close(CloseCode.TOO_BIG)
                    return
                watcher.reply(_answer(data))
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass
        watcher.close(CLIENT_GONE)

    async def shutdown(self, grace_seconds: float = 5.0) -> None:
        """Close every socket with 1012 and wait (bounded) for their handlers to finish."""
        for watcher in list(self._watchers):
            watcher.close(CloseCode.SERVICE_RESTART)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace_seconds)


def _header(socket: WebSocket[Any, Any, Any], name: bytes) -> str | None:
    """A request header (`name` in lower case), read from the ASGI scope.

    Not `socket.headers`: that parses every header into a multidict kept in the scope for the
    socket's whole life, 1.7 kB per socket for two values read once (docs/gateway.md, memory).
    """
    for key, value in socket.scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _address(socket: WebSocket[Any, Any, Any]) -> str:
    """The connect-budget key of a client without a valid token: its peer address."""
    client = socket.scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


def _answer(data: str | bytes) -> str:
    """A pong for `{"type": "ping"}`; an error frame for anything else."""
    try:
        frame = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        frame = None  # not JSON, nested past the recursion limit, or a string not UTF-8
    if isinstance(frame, dict) and frame.get("type") == "ping":
        return '{"type":"pong"}'
    detail = 'frame not understood: this socket only answers {"type": "ping"}'
    return _encoder.encode({"type": "error", "detail": detail}).decode()


@websocket("/ws/tasks/{task_id:str}")
async def task_socket(socket: WebSocket[Any, Any, Any], task_id: str) -> None:
    """A task's live stream: a snapshot, then every later notification in `seq` order."""
    gateway: Gateway = socket.app.state.gateway
    await gateway.serve(socket, task_id)
