"""Process plumbing shared by the worker's processes: dying with the parent, handing work back.

`die_with_parent` asks Linux to SIGKILL this process when its parent dies, so a SIGKILLed
`taskrelay worker` takes its RQ workers and their work horses with it instead of leaving
orphans that keep generating. `request_handback` is the work horse's SIGUSR1 handler: the RQ
worker sends it on a warm shutdown, and the running job hands the rest of its items back at
the next item boundary (`handback_requested`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from types import FrameType

_PR_SET_PDEATHSIG = 1
_handback = threading.Event()
HANDBACK_SIGNAL = signal.SIGUSR1


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies (Linux; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def request_handback(_signum: int = 0, _frame: FrameType | None = None) -> None:
    _handback.set()


def handback_requested() -> bool:
    return _handback.is_set()


def install_handback_handler() -> None:
    signal.signal(HANDBACK_SIGNAL, request_handback)
