"""Real taskrelay processes for end-to-end and fault tests, started and stopped by PID."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.wait import wait_until_sync

TASKRELAY = [sys.executable, "-m", "services.cli"]
LOG_DIR = Path(tempfile.gettempdir()) / "taskrelay-test-logs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def refused_in_one_line(args: Sequence[str], env: dict[str, str]) -> str:
    """Run `taskrelay ARGS` that must refuse to start: exit 1, nothing on stdout, ONE line on
    stderr (docs/protocol.md §2's start-up failure); that line."""
    done = subprocess.run([*TASKRELAY, *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


class Process:
    """One `taskrelay ...` child; its output goes to a log file the test can read."""

    def __init__(self, args: Sequence[str], env: dict[str, str], name: str) -> None:
        LOG_DIR.mkdir(exist_ok=True)
        self.name = name
        self.log_path = LOG_DIR / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [*TASKRELAY, *args], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash a fault test wants."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not stop in time. Returns the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log.close()
        return self.popen.returncode

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def http_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status < 500)
    except OSError:
        return False


def start_api(env: dict[str, str], port: int | None = None, name: str = "api") -> Process:
    port = port or free_port()
    proc = Process(["api", "--port", str(port)], env, name)
    proc.port = port  # type: ignore[attr-defined]
    try:
        wait_until_sync(
            lambda: http_ready(f"http://127.0.0.1:{port}/schema/openapi.json") or not proc.alive(),
            within=30,
            what=f"the API on port {port}",
        )
    except Exception:
        proc.stop()
        raise
    if not proc.alive():
        proc.stop()
        raise RuntimeError(f"the API exited at start-up:\n{proc.output()}")
    return proc


def start_together(*starts: Callable[[], Process]) -> list[Process]:
    """Run the `start_*` calls side by side (each waits until its process is ready, and most of
    that is waiting on imports and connections); their processes, in the order given. If one
    fails, the others are stopped and its error raised."""
    with concurrent.futures.ThreadPoolExecutor(len(starts)) as pool:
        futures = [pool.submit(start) for start in starts]
        concurrent.futures.wait(futures)
    errors = [error for f in futures if (error := f.exception()) is not None]
    if errors:
        stop_all([f.result() for f in futures if f.exception() is None])
        raise errors[0]
    return [f.result() for f in futures]


def stop_all(processes: Sequence[Process]) -> None:
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.stop()
