"""What a benchmark reads about a process from /proc: CPU time used and resident memory, and
the CPU of a whole server's processes."""

from __future__ import annotations

import os
import time
from pathlib import Path


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU time the process has used so far; with `children`, also that of the
    children it has waited for (an RQ worker's work horses, say)."""
    fields = _stat(pid)
    ticks = fields[11:15] if children else fields[11:13]
    return sum(int(f) for f in ticks) / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (field 3, the state, is [0])."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory in KiB (`VmHWM` for the peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"no {field} for process {pid}")


def children(pid: int) -> list[int]:
    """The process's live children (an RQ worker's work horse while a job runs)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(child) for child in text.split()]


def wait_childless(pids: list[int], within: float = 10.0) -> None:
    """Until none of `pids` has a live child (an RQ worker reaped its work horse, whose CPU then
    counts in the worker's), or `within` seconds."""
    deadline = time.monotonic() + within
    while any(children(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)


def named(comm: str) -> list[int]:
    """Every process whose command name is `comm` (`postgres`, `beam.smp`), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == comm:
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile
                continue
    return found


class ServerCpu:
    """CPU that every process of a server (`postgres`, `beam.smp`) uses between this object's
    creation and `used()`, including processes that start or exit in between (the backend of a
    connection a work horse opened and closed): what the server's top process reaped from its
    exited children is added, less what those had used before the first reading. Other work on
    the same server in that time counts too."""

    def __init__(self, comm: str) -> None:
        self._comm = comm
        self._start = self._read()

    def _read(self) -> tuple[dict[int, float], float]:
        pids = set(named(self._comm))
        own: dict[int, float] = {}
        reaped = 0.0
        for pid in pids:
            try:
                parent = int(_stat(pid)[1])
                own[pid] = cpu_seconds(pid)
                if parent not in pids:  # the server's top process
                    reaped += cpu_seconds(pid, children=True) - own[pid]
            except OSError:  # gone meanwhile
                continue
        return own, reaped

    def used(self) -> float:
        (own_before, reaped_before), (own_after, reaped_after) = self._start, self._read()
        live = sum(cpu - own_before.get(pid, 0.0) for pid, cpu in own_after.items())
        gone = sum(cpu for pid, cpu in own_before.items() if pid not in own_after)
        return live + reaped_after - reaped_before - gone
