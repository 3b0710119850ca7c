"""One supervised child process of `taskrelay run`: started, its output prefixed, restarted
with backoff when it dies, stopped with SIGTERM (then SIGKILL after the grace period).

Children run in their own session, so a Ctrl-C at the terminal reaches only the supervisor,
which then stops them in order instead of each of them racing to exit. Each dies with the
supervisor (`services.lifeline`), so a SIGKILLed supervisor leaves none behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Sequence

from services.lifeline import parent_env
from shared.domain.backoff import Backoff
from shared.observability.logging import get_logger

log = get_logger(__name__)

MIN_BACKOFF = 1.0
MAX_BACKOFF = 30.0
STABLE_AFTER = 30.0
"""A child that ran this long before dying starts again from the shortest backoff."""


class Child:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        write: Callable[[bytes], None],
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.name = name
        self._argv = list(argv)
        self._env = parent_env(env)
        self._write = write
        self._pass_fds = tuple(pass_fds)
        self._proc: asyncio.subprocess.Process | None = None
        self._draining: asyncio.Task[None] | None = None
        self.restarts = 0

    async def supervise(self, stopping: asyncio.Event) -> None:
        """Run the child until `stopping` is set, restarting it whenever it exits."""
        backoff = Backoff(MIN_BACKOFF, MAX_BACKOFF)
        loop = asyncio.get_running_loop()
        while not stopping.is_set():
            started = loop.time()
            code = await self._run_once()
            if stopping.is_set():
                return
            if loop.time() - started >= STABLE_AFTER:
                backoff.reset()
            self.restarts += 1
            delay = backoff.next()
            log.warning("child_exited", child=self.name, exit_code=code, restart_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)

    async def _run_once(self) -> int:
        self._proc = await asyncio.create_subprocess_exec(
            *self._argv,
            env=self._env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            pass_fds=self._pass_fds,
        )
        log.info("child_started", child=self.name, pid=self._proc.pid)
        assert self._proc.stdout is not None
        try:
            await self._pump(self._proc.stdout)
        except Exception:
            # The error ends the run, but the child must not block on a pipe nobody reads while
            # it is stopped: keep emptying it, unseen, until it closes.
            self._draining = asyncio.create_task(_discard(self._proc.stdout))
            raise
        return await self._proc.wait()

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        prefix = f"{self.name:<6} | ".encode()
        while line := await stream.readline():
            self._write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")

    async def stop(self, grace: float) -> int | None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL; the exit code, if it ran."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return proc.returncode if proc else None
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            log.warning("child_killed", child=self.name, pid=proc.pid, after_seconds=grace)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            return await proc.wait()


async def _discard(stream: asyncio.StreamReader) -> None:
    """Read `stream` to its end and drop what it says."""
    while await stream.read(65536):
        pass
