"""A child process that must not outlive the process that started it.

`taskrelay run` starts api, relay and worker; each `taskrelay worker` starts RQ worker
processes, and each of those forks a work horse per job. When a parent is SIGKILLed it cannot
stop its children, so each child asks Linux to SIGKILL it when its parent dies
(PR_SET_PDEATHSIG); a SIGKILLed `taskrelay run` then leaves no orphan holding its ports or
generating content behind the reconciler's back. Elsewhere than Linux this is a no-op.

A parent that execs such a child puts its own PID in the child's environment (`parent_env`);
the child reads it (`announced_parent`) and passes it to `die_with_parent`. The PID makes the
check exact: a parent that died while the child was still importing is noticed too, where
the child's own `getppid()` would already name whoever adopted it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Mapping, MutableMapping

PARENT_PID_VARIABLE = "TASKRELAY_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> None:
    """SIGKILL this process when its parent dies; exit now if `parent` is gone already.

    `parent` is the PID the parent announced; without it, the current parent at the call.
    """
    if not sys.platform.startswith("linux"):
        return
    expected = os.getppid() if parent is None else parent
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != expected:  # the parent died before the request took effect
        os._exit(1)


def parent_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` for a child that must die with this process."""
    return {**env, PARENT_PID_VARIABLE: str(os.getpid())}


def announced_parent(environ: MutableMapping[str, str] = os.environ) -> int | None:
    """The PID `parent_env` put in the environment, if any; the variable is removed, so this
    process's own children (which have another parent) do not inherit it."""
    announced = environ.pop(PARENT_PID_VARIABLE, "")
    return int(announced) if announced.isdigit() else None
