"""Where `taskrelay run` leaves what `taskrelay demo` needs when the secret was generated.

The secret `run` generates for itself (when TASKRELAY_SECRET is unset) is written, with the
API's URL, to `run.json` in a directory only this user can use: `$XDG_RUNTIME_DIR/taskrelay-<uid>`,
else `/tmp/taskrelay-<uid>`. In a shared `/tmp` another local user could create that directory
first, or a symlink by that name, and read the secret to forge tokens for anyone; so the
directory is created 0700, and one that is a symlink, not ours, or open to group or others is
refused (ConfigurationError: the command exits with one line saying what to remove). Paths are
opened relative to the checked directory's descriptor, never followed through a symlink, and the
file is written 0600 to a fresh name, then renamed into place. The file goes when `run` stops.
"""

from __future__ import annotations

import contextlib
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


def state_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"taskrelay-{os.getuid()}"


def state_path() -> Path:
    return state_dir() / FILE_NAME


def prepare() -> Path:
    """Create (0700) or check the state directory before `run` starts anything; it stays ours
    (in a sticky /tmp nobody else can replace a directory we own). ConfigurationError if unsafe."""
    with _private_dir(create=True):
        return state_dir()


def save(state: RunState) -> Path:
    """Write the state atomically, readable by this user only; ConfigurationError if unsafe."""
    body = json.dumps({"api_url": state.api_url, "secret": state.secret, "pid": state.pid})
    with _private_dir(create=True) as dir_fd:
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
    """The state of a `taskrelay run` that is still alive, or None; ConfigurationError when
    the directory or file is not this user's alone (then it cannot be trusted)."""
    try:
        with _private_dir(create=False) as dir_fd:
            fd = os.open(FILE_NAME, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
            with os.fdopen(fd) as source:
                _check_private(os.fstat(source.fileno()), state_path(), "file")
                raw = json.loads(source.read())
        state = RunState(str(raw["api_url"]), str(raw["secret"]), int(raw["pid"]))
        os.kill(state.pid, 0)
    except ConfigurationError:
        raise
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def remove(pid: int) -> None:
    """Remove the file if it is this run's."""
    try:
        current = load()
        if current is None or current.pid != pid:
            return
        with _private_dir(create=False) as dir_fd:
            os.unlink(FILE_NAME, dir_fd=dir_fd)
    except (OSError, ConfigurationError):
        return  # nothing of ours to remove


@contextlib.contextmanager
def _private_dir(*, create: bool) -> Iterator[int]:
    """A descriptor of the state directory, checked to be ours alone and not a symlink."""
    path = state_dir()
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
