"""Where `taskrelay run` leaves what `taskrelay demo` needs when the secret was generated.

The secret `run` generates for itself (when TASKRELAY_SECRET is unset) is written, with the
API's URL, to `run.json` in a directory only this user can use: `$XDG_RUNTIME_DIR/taskrelay-<uid>`,
else `/tmp/taskrelay-<uid>`. In a shared `/tmp` another local user could create that directory
first, or a symlink by that name, and read the secret to forge tokens for anyone; so the
directory is created 0700, and one that is a symlink, not ours, or open to group or others is
never used. Nor may such a directory stop `run` (anyone could block it so): `run` then keeps its
state in a fresh private directory beside it, `tempfile.mkdtemp`'s `taskrelay-<uid>-XXXXXXXX`
(created 0700 under a name no one could pick in advance), and says so in one line; `demo` looks
there too, in every such directory that is this user's alone. Paths are opened relative to the
checked directory's descriptor, never followed through a symlink, and the file is written 0600
to a fresh name, then renamed into place. The file (and a fallback directory) goes when `run`
stops.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ConfigurationError

FILE_NAME = "run.json"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


@dataclass(frozen=True, slots=True)
class RunState:
    api_url: str
    secret: str
    pid: int


def _base() -> Path:
    return Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())


def state_dir() -> Path:
    """Where this run keeps its state: the usual directory, or its private fallback."""
    return _fallback or _usual_dir()


def _usual_dir() -> Path:
    return _base() / f"taskrelay-{os.getuid()}"


def state_path() -> Path:
    return state_dir() / FILE_NAME


_fallback: Path | None = None
"""This run's own `mkdtemp` directory, once the usual one turned out not to be ours alone."""


def prepare() -> str | None:
    """Create (0700) or check the usual state directory before `run` starts anything (in a
    sticky /tmp nobody else can replace a directory we own). When it is not ours alone, make a
    private fallback instead; then the line saying so, else None."""
    global _fallback
    try:
        with _private_dir(_usual_dir(), create=True):
            return None
    except ConfigurationError as unsafe:
        made = tempfile.mkdtemp(prefix=f"taskrelay-{os.getuid()}-", dir=_base())
        _fallback = Path(made)
        return f"{unsafe}; keeping this run's state in {made} instead"


def save(state: RunState) -> Path:
    """Write the state atomically, readable by this user only; ConfigurationError if unsafe."""
    body = json.dumps({"api_url": state.api_url, "secret": state.secret, "pid": state.pid})
    with _private_dir(state_dir(), create=True) as dir_fd:
        temp = f".{FILE_NAME}.{os.getpid()}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)  # left by a run of ours that was killed
        fd = os.open(temp, flags, 0o600, dir_fd=dir_fd)
        with os.fdopen(fd, "w") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, FILE_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    return state_path()


def load() -> RunState | None:
    """The state of a `taskrelay run` of this user that is still alive, or None: from the
    usual directory, else from a fallback one. A directory or file that is not this user's
    alone is never read (it cannot be trusted)."""
    fallbacks = sorted(glob.glob(f"{glob.escape(str(_usual_dir()))}-*"))
    for path in [_usual_dir(), *map(Path, fallbacks)]:
        state = _load_from(path)
        if state is not None:
            return state
    return None


def _load_from(path: Path) -> RunState | None:
    try:
        with _private_dir(path, create=False) as dir_fd:
            fd = os.open(FILE_NAME, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
            with os.fdopen(fd) as source:
                _check_private(os.fstat(source.fileno()), path / FILE_NAME, "file")
                raw = json.loads(source.read())
        state = RunState(str(raw["api_url"]), str(raw["secret"]), int(raw["pid"]))
        os.kill(state.pid, 0)
    except (ConfigurationError, OSError, ValueError, KeyError, TypeError):
        return None
    return state


def remove(pid: int) -> None:
    """Remove the file if it is this run's, and this run's fallback directory."""
    path = state_dir()
    try:
        current = _load_from(path)
        if current is not None and current.pid == pid:
            with _private_dir(path, create=False) as dir_fd:
                os.unlink(FILE_NAME, dir_fd=dir_fd)
        if _fallback is not None:
            os.rmdir(_fallback)
    except (OSError, ConfigurationError):
        return  # nothing of ours to remove


@contextlib.contextmanager
def _private_dir(path: Path, *, create: bool) -> Iterator[int]:
    """A descriptor of `path`, checked to be ours alone and not a symlink."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError as exc:
        if not create and isinstance(exc, FileNotFoundError):
            raise
        raise ConfigurationError(
            f"refusing {path}: it is not a plain directory ({exc.strerror}); remove it"
        ) from None
    try:
        _check_private(os.fstat(fd), path, "directory")
        yield fd
    finally:
        os.close(fd)


def _check_private(info: os.stat_result, path: Path, what: str) -> None:
    if info.st_uid != os.getuid():
        raise ConfigurationError(
            f"refusing {path}: the {what} belongs to uid {info.st_uid}, not to you; remove it"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        mode = oct(stat.S_IMODE(info.st_mode))
        raise ConfigurationError(
            f"refusing {path}: the {what} is open to other users ({mode}); remove it"
        )
