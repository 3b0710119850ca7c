"""The RQ worker processes of one `taskrelay worker`: started, kept alive, stopped.

Each is a fresh interpreter (`python -m services.worker.rq_process`), not a fork of the
supervisor, so it inherits no event loop, engine or broker socket. One that dies unexpectedly is
restarted after a pause that grows while restarts keep failing (Redis away, say) and starts
over once a child has run for a while; on shutdown each gets SIGTERM (a warm shutdown: its
running job hands the rest back at the next item boundary) and, past the grace period, SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time

from services.lifeline import parent_env
from shared.domain.backoff import Backoff
from shared.observability.logging import get_logger

log = get_logger(__name__)

HEALTHY_RUN_SECONDS = 30.0
"""A child that ran this long before dying was healthy: the next restart is quick again."""


class RqProcessPool:
    def __init__(self, size: int, env: dict[str, str] | None = None) -> None:
        self._size = size
        self._env = env
        self._children: list[asyncio.subprocess.Process] = []
        self._started: dict[int, float] = {}
        self._restarts = Backoff(base=1.0, cap=15.0)
        self._stopping = False

    @property
    def alive(self) -> int:
        """Children running now."""
        return sum(1 for child in self._children if child.returncode is None)

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self._children]

    async def start(self) -> None:
        for _ in range(self._size):
            self._children.append(await self._spawn())

    async def supervise(self) -> None:
        """Restart any child that exits while the pool is not stopping."""
        while not self._stopping:
            waits = {asyncio.ensure_future(c.wait()): c for c in self._children}
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for future in pending:
                future.cancel()
            if self._stopping:
                return
            for future in done:
                dead = waits[future]
                ran = time.monotonic() - self._started.pop(dead.pid, 0.0)
                if ran > HEALTHY_RUN_SECONDS:
                    self._restarts.reset()
                pause = self._restarts.next()
                log.error(
                    "rq_worker_exited",
                    pid=dead.pid,
                    returncode=dead.returncode,
                    restart_in=round(pause, 1),
                )
                await asyncio.sleep(pause)
                if self._stopping:
                    return
                self._children[self._children.index(dead)] = await self._spawn()

    async def stop(self, grace: float) -> None:
        self._stopping = True
        for child in self._children:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)
        waits = [asyncio.ensure_future(child.wait()) for child in self._children]
        if not waits:
            return
        _, late = await asyncio.wait(waits, timeout=grace)
        if late:
            log.warning("rq_workers_killed_after_grace", count=len(late), grace=grace)
            for child in self._children:
                if child.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()
            await asyncio.wait(waits, timeout=5)

    async def _spawn(self) -> asyncio.subprocess.Process:
        env = parent_env(os.environ if self._env is None else self._env)  # it dies with us
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.worker.rq_process", env=env
        )
        self._started[child.pid] = time.monotonic()
        log.info("rq_worker_started", pid=child.pid)
        return child
