"""py-spy around a benchmark's measured window, and the top of what it recorded.

`recording(pid, out)` runs `py-spy record -f raw` on a process (and, with `subprocesses`, on the
children it forks, such as RQ work horses) while the block runs. `python -m bench.profile FILE`
prints the top functions of such a file by own time (the leaf frame of a sample) and by
cumulative time (every function on a sample's stack, once per sample; the root chain, on
(almost) every stack, left out).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


@contextlib.contextmanager
def recording(pid: int, out: str | None, *, subprocesses: bool = False) -> Iterator[None]:
    """Record `pid` with py-spy into `out` (raw collapsed stacks) while the block runs."""
    if out is None:
        yield
        return
    # --nonblocking: sampling does not pause the process, so the figures move less under it.
    args = [_py_spy(), "record", "-f", "raw", "-r", "250", "--nonblocking", "-o", out]
    args += ["--pid", str(pid)]
    spy = subprocess.Popen(
        [*args, *(["--subprocesses"] if subprocesses else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # py-spy attaches before the window opens
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        _, err = spy.communicate(timeout=60)
        if spy.returncode not in (0, -signal.SIGINT):
            print(f"py-spy: {err.decode(errors='replace').strip()}", file=sys.stderr)


def top(
    path: str, count: int = 15, within: str | None = None
) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, top by own time, top by cumulative time) of a raw py-spy file; with `within`,
    only the samples whose stack holds a function whose name starts with it."""
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    samples = 0
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [_function(f) for f in stack.split(";") if not f.startswith("process ")]
        if not frames or (within and not any(f.startswith(within) for f in frames)):
            continue
        samples += int(n)
        own[frames[-1]] += int(n)
        for frame in set(frames):
            cumulative[frame] += int(n)
    # The root chain (runpy, the event loop's run, the RQ job's perform...) is on every sample's
    # stack and says nothing: left out of the cumulative list.
    # (A --nonblocking sample can miss the bottom of its stack, so "every" is the most common.)
    most = max(cumulative.values(), default=0)
    below_roots = [(f, n) for f, n in cumulative.most_common() if n < 0.99 * most]
    return samples, own.most_common(count), below_roots[:count]


def _function(frame: str) -> str:
    """`name (path:line)` -> `name (path)`: samples of one function add up across its lines."""
    return re.sub(r":\d+\)$", ")", frame)


def main() -> None:
    parser = argparse.ArgumentParser(description="The top of a raw py-spy recording.")
    parser.add_argument("file")
    parser.add_argument("--count", type=int, default=15)
    parser.add_argument(
        "--within", help="only samples under this function, e.g. BaseWorker.main_work_horse"
    )
    args = parser.parse_args()
    samples, own, cumulative = top(args.file, args.count, args.within)
    for title, rows in (("own", own), ("cumulative", cumulative)):
        print(f"top {args.count} by {title} time ({samples} samples):")
        for frame, n in rows:
            print(f"  {100 * n / max(samples, 1):5.1f}%  {frame}")


if __name__ == "__main__":
    main()
