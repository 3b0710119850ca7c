"""PostgreSQL and Redis servers of a test's own, for fault tests that stop and restart them.

The shared servers on the standard ports are never stopped: a test that needs an outage starts
one of these on a free port, breaks it as it likes, and destroys it at the end. Both keep the
same port across restarts, so a process under test reconnects to the same URL.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

from harness import resources as res
from harness.processes import free_port
from harness.wait import wait_until_sync

# PostgreSQL refuses to run as root: as root, its tools run as the `postgres` user.
PG_USER = "postgres"


def pg_binary(name: str) -> str:
    """`name` from the newest installed PostgreSQL (Debian: /usr/lib/postgresql/<v>/bin)."""
    found = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    if not found:
        found_on_path = shutil.which(name)
        if found_on_path is None:
            raise RuntimeError(f"{name} not found: install the PostgreSQL server (apt postgresql)")
        return found_on_path
    return max(found, key=lambda path: int(Path(path).parts[-3].split(".")[0]))


class PrivateServer(ABC):
    """A server a test owns: started on entering a `with`, destroyed on leaving it."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def destroy(self) -> None:
        """Stop it if it runs and remove whatever it left on disk."""

    def restart(self) -> None:
        """Stop and start again, on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.destroy()


class PrivatePostgres(PrivateServer):
    """A PostgreSQL cluster of the test's own: initdb + pg_ctl on a free port, as user postgres."""

    def __init__(self, base_dir: Path | None = None) -> None:
        """`base_dir` (default: a new temporary directory) must be reachable by user postgres."""
        self._owns_base = base_dir is None
        self.base_dir = (
            Path(tempfile.mkdtemp(prefix="taskrelay-pg-")) if base_dir is None else base_dir
        )
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "socket"
        self.log_path = self.base_dir / "postgres.log"
        self.port = free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=180, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done

    def _init(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base_dir, PG_USER, PG_USER)
            shutil.chown(self.socket_dir, PG_USER, PG_USER)
        initdb = pg_binary("initdb")
        self._run(
            initdb, "-D", str(self.data_dir), "-U", PG_USER, "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip

    def running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        status = self._run(pg_binary("pg_ctl"), "status", "-D", str(self.data_dir), check=False)
        return status.returncode == 0

    def start(self) -> None:
        """initdb on the first start, then start and wait until it accepts connections."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._init()
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1"
            f" -c unix_socket_directories={self.socket_dir}"
            # fsync=off: what is committed survives the server's death (the OS keeps it), not
            # the machine's; synchronous_commit stays on, or an immediate stop loses commits.
            " -c fsync=off"
        )
        self._run(
            pg_binary("pg_ctl"), "start", "-w", "-t", "120",
            "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop -m fast|immediate|smart, and wait until it is down."""
        if mode not in ("fast", "immediate", "smart"):
            raise ValueError(f"unknown stop mode {mode!r}")
        self._run(
            pg_binary("pg_ctl"), "stop", "-w", "-t", "120", "-D", str(self.data_dir), "-m", mode
        )

    def create_database(self, name: str) -> str:
        """An empty database in this cluster; its postgresql:// URL."""
        return res.run_blocking(lambda: res.create_database(name, admin=self.admin_url))

    def destroy(self) -> None:
        """Stop it if it runs (immediately: nothing in it matters any more), remove its files."""
        if self.running():
            self.stop("immediate")
        if self._owns_base:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class PrivateRedis(PrivateServer):
    """A redis-server of the test's own on a free port, keeping nothing on disk."""

    def __init__(self) -> None:
        self.port = free_port()
        self.work_dir = Path(tempfile.mkdtemp(prefix="taskrelay-redis-"))
        self.log_path = self.work_dir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start it as a child process and wait until it answers PING."""
        if self.running():
            return
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    binary, "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--daemonize", "no",
                    "--dir", str(self.work_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until_sync(self._answers, within=30, what=f"the private Redis on port {self.port}")

    def _answers(self) -> bool:
        if not self.running():
            raise RuntimeError(f"redis-server exited:\n{self.log_path.read_text(errors='replace')}")
        client = redis.Redis.from_url(self.url(), socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """SIGKILL its process (by PID): everything in it is gone."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
        self._process.wait(30)
        self._process = None

    def destroy(self) -> None:
        """Kill it; it comes back empty if started again, on the same port."""
        self.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)
