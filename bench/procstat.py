"""What a benchmark reads about a process from /proc: CPU time used and resident memory."""

from __future__ import annotations

import os
import time
from pathlib import Path


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU time the process has used so far; with `children`, also that of the
    children it has waited for (an RQ worker's work horses, say)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = fields[11:15] if children else fields[11:13]
    return sum(int(f) for f in ticks) / os.sysconf("SC_CLK_TCK")


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
