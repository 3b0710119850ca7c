"""`taskrelay run` leaves nothing behind, whatever ends it (issue 15), and refuses busy ports.

Each run starts in its own session, as a terminal starts a job, with a generator slow enough
that its welcome task's job is still running in a work horse when the run is ended. Once
everything is up (the banner printed; run, api, relay, worker, its RQ process and the horse
running), the test records the sessions of the run and of every process below it (each child
of `run` leads its own session; RQ processes and work horses live in the worker's), ends the
run one way, and polls until no live process is left in any of those sessions and both ports
can be bound again. The figure printed with `-s` is the time from the ending to nothing left.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.processes import LOG_DIR, TASKRELAY, free_port, refused_in_one_line, start_api
from harness.resources import Resources
from harness.wait import Timeout, wait_until_sync
from services.lifeline import PARENT_PID_VARIABLE

NOTHING_LEFT_WITHIN = 10.0  # the bound; the wait polls, it does not sleep


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: state, ppid, pgrp, session, ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _processes() -> Iterator[tuple[int, list[str]]]:
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(int(entry.name))
        if fields is not None and fields[0] != "Z":  # a zombie has exited already
            yield int(entry.name), fields


def _tree(root: int) -> dict[int, int]:
    """{pid: session} of `root` and every live process below it."""
    table = dict(_processes())
    tree = {root: int(table[root][3])} if root in table else {}
    grew = True
    while grew:
        below = {pid: int(f[3]) for pid, f in table.items() if int(f[1]) in tree}
        grew = not below.keys() <= tree.keys()
        tree.update(below)
    return tree


def _left_in(sessions: set[int]) -> list[int]:
    return [pid for pid, fields in _processes() if int(fields[3]) in sessions]


def _describe(pid: int) -> str:
    with contextlib.suppress(OSError):
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        return f"pid {pid}: {command}"
    return f"pid {pid}"


def _take_terminal() -> None:
    """In the child, after setsid: make stdin's terminal the new session's own."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Run:
    """`taskrelay run` in its own session. `pipe` goes to the test: "stdout" or "stderr", or
    "terminal": stdin, stdout and stderr on a pseudo-terminal that is the session's own, whose
    closing is a terminal window closing (the kernel hangs it up and sends SIGHUP)."""

    def __init__(self, env: dict[str, str], pipe: str | None = None) -> None:
        self.port, self.health = free_port(), free_port()
        LOG_DIR.mkdir(exist_ok=True)
        self.log_path = LOG_DIR / f"run-endings-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        streams: dict[str, Any] = {
            "stdout": subprocess.PIPE if pipe == "stdout" else self._log,
            "stderr": subprocess.PIPE if pipe == "stderr" else self._log,
        }
        terminal = None
        if pipe == "terminal":
            terminal, tty = os.openpty()
            streams = {"stdin": tty, "stdout": tty, "stderr": tty, "preexec_fn": _take_terminal}
        ports = ["--port", str(self.port), "--health-port", str(self.health)]
        self.popen = subprocess.Popen(
            [*TASKRELAY, "run", *ports, "--processes", "1"],
            env=env,
            start_new_session=True,
            **streams,
        )
        self.pipe = self.popen.stdout or self.popen.stderr
        if terminal is not None:
            os.close(tty)
            self.pipe = os.fdopen(terminal, "rb", buffering=0)
        self._piped = b""
        if self.pipe is not None:
            os.set_blocking(self.pipe.fileno(), False)

    def output(self) -> str:
        if self.pipe is not None and not self.pipe.closed:
            with contextlib.suppress(BlockingIOError):  # drained: nothing more for now
                while chunk := os.read(self.pipe.fileno(), 65536):
                    self._piped += chunk
        return self.log_path.read_text(errors="replace") + self._piped.decode(errors="replace")

    def wait_until_up(self) -> dict[int, int]:
        """Wait for the banner and all six processes; their {pid: session}."""

        def up() -> dict[int, int] | None:
            tree = _tree(self.popen.pid)
            if self.popen.poll() is not None:
                raise AssertionError(f"run exited early:\n{self.output()[-3000:]}")
            return tree if "demo task" in self.output() and len(tree) >= 6 else None

        return wait_until_sync(up, within=120, what="taskrelay run to be up")

    def wait_until_nothing_left(self, sessions: set[int], ending: str) -> None:
        """Poll until no process is left in `sessions` and both ports are free; print how long
        that took."""
        started = time.monotonic()

        def left() -> list[str]:
            self.popen.poll()  # reap the supervisor, as a shell would
            busy = [f"port {p}" for p in (self.port, self.health) if not _port_free(p)]
            return [_describe(pid) for pid in _left_in(sessions)] + busy

        try:
            wait_until_sync(lambda: not left(), within=NOTHING_LEFT_WITHIN, what="nothing left")
        except Timeout as exc:
            raise AssertionError(f"{ending}: left behind {left()}") from exc
        print(f"\n{ending}: nothing left after {time.monotonic() - started:.2f} s")

    def close(self, sessions: set[int]) -> None:
        for pid in _left_in(sessions):  # only after a failure: what this test started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        if self.pipe is not None:
            self.pipe.close()
        self._log.close()


def _signal_group(signum: signal.Signals) -> Callable[[Run], None]:
    return lambda run: os.killpg(run.popen.pid, signum)


def _slow_job_env(resources: Resources, tmp_path: Path) -> dict[str, str]:
    return resources.env(
        XDG_RUNTIME_DIR=str(tmp_path),
        TASKRELAY_CONTENT_GENERATOR="harness.generators:counting",
        TASKRELAY_TEST_GENERATOR_DELAY="1",  # the welcome task's 6 items take 6 s
    )


ENDINGS: dict[str, tuple[str | None, Callable[[Run], None]]] = {
    "SIGHUP to the group": (None, _signal_group(signal.SIGHUP)),
    "SIGINT to the group": (None, _signal_group(signal.SIGINT)),
    "stdout closed": ("stdout", lambda run: run.pipe.close() if run.pipe else None),
    "stderr closed": ("stderr", lambda run: run.pipe.close() if run.pipe else None),
    "terminal closed": ("terminal", lambda run: run.pipe.close() if run.pipe else None),
    "SIGKILL of the supervisor": (None, lambda run: run.popen.kill()),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_run_leaves_nothing_behind(resources: Resources, tmp_path: Path, ending: str) -> None:
    pipe, end = ENDINGS[ending]
    run = Run(_slow_job_env(resources, tmp_path), pipe)
    sessions: set[int] = {run.popen.pid}
    try:
        tree = run.wait_until_up()
        sessions |= set(tree.values())
        assert len(sessions) == 4, tree  # run's own, and one per child: api, relay, worker
        end(run)
        run.wait_until_nothing_left(sessions, ending)
        if ending != "SIGKILL of the supervisor":
            assert run.popen.wait(10) == 0, run.output()[-3000:]  # it may just be a zombie
            assert '"stopped"' in run.log_path.read_text() or pipe in ("stderr", "terminal")
    finally:
        run.close(sessions)


def test_a_worker_killed_alone_takes_its_rq_process_and_work_horse_with_it(
    resources: Resources, tmp_path: Path
) -> None:
    run = Run(_slow_job_env(resources, tmp_path))
    sessions: set[int] = {run.popen.pid}
    try:
        tree = run.wait_until_up()
        sessions |= set(tree.values())
        worker = next(pid for pid in tree if " services.cli worker" in _describe(pid))
        below = [pid for pid, session in tree.items() if session == worker and pid != worker]
        assert len(below) >= 2, tree  # its RQ process, and the horse running the welcome job
        os.kill(worker, signal.SIGKILL)
        wait_until_sync(
            lambda: not _left_in({worker}), within=NOTHING_LEFT_WITHIN, what="its RQ process to end"
        )
        wait_until_sync(  # run restarts the worker, as for any child that dies
            lambda: len(set(_tree(run.popen.pid).values()) - sessions) == 1,
            within=60,
            what="a new worker",
        )
        sessions |= set(_tree(run.popen.pid).values())
        run.popen.terminate()
        run.wait_until_nothing_left(sessions, "SIGTERM after a worker was killed")
        assert run.popen.wait(10) == 0
    finally:
        run.close(sessions)


def test_an_error_in_the_supervisor_ends_the_run_and_leaves_nothing(
    resources: Resources, tmp_path: Path
) -> None:
    """A line of a child's output longer than the supervisor reads fails the task pumping it:
    a real error inside `run`, which must end the run, not leave that child blocked on a full
    pipe nobody reads."""
    env = resources.env(
        XDG_RUNTIME_DIR=str(tmp_path),
        TASKRELAY_CONTENT_GENERATOR="harness.generators:unbroken_line",
    )
    run = Run(env)
    sessions: set[int] = {run.popen.pid}
    try:

        def failed() -> bool:
            sessions.update(_tree(run.popen.pid).values())
            return "supervisor error: ValueError(" in run.output()

        wait_until_sync(failed, within=120, what="the welcome task's job to fail the supervisor")
        assert len(sessions) == 4, sessions
        run.wait_until_nothing_left(sessions, "an error in the supervisor")
        assert run.popen.wait(10) == 1, run.output()[-3000:]
        assert '"stopped"' in run.output()
    finally:
        run.close(sessions)


@pytest.mark.parametrize("option", ["--port", "--health-port"])
def test_a_busy_port_is_one_line_and_exit_1(resources: Resources, option: str) -> None:
    port, health = free_port(), free_port()
    busy = port if option == "--port" else health
    with socket.create_server(("127.0.0.1", busy)):
        args = ["run", "--port", str(port), "--health-port", str(health)]
        line = refused_in_one_line(args, resources.env())
    assert line.startswith(f"taskrelay run: port {busy} ({option}) is not free: ")
    assert "choose other ports with --port and --health-port" in line


def test_a_port_held_by_another_taskrelay_names_it(resources: Resources) -> None:
    env = resources.env()
    api = start_api(env, name="api-holding-the-port")
    try:
        args = ["run", "--port", str(api.port), "--health-port", str(free_port())]  # type: ignore[attr-defined]
        line = refused_in_one_line(args, env)
    finally:
        api.stop()
    assert f"held by another taskrelay (pid {api.pid}: taskrelay api --port " in line
    assert f"stop it with `kill {api.pid}`" in line


def test_a_child_whose_announced_parent_is_gone_exits_at_once(resources: Resources) -> None:
    """The race a SIGKILL during start-up hits: the parent died while the child was importing."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    env = resources.env(**{PARENT_PID_VARIABLE: str(gone.pid)})
    token = [*TASKRELAY, "token", "someone"]
    done = subprocess.run(token, env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, "")

    env[PARENT_PID_VARIABLE] = str(os.getpid())  # its parent indeed: it runs as usual
    done = subprocess.run(token, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(".") == 2  # a JWT
