"""The two ports of `taskrelay run`, claimed before anything starts.

`run` binds the API's listening socket itself and hands it to each API child it starts, so
whatever answers on that port is an API this run started: its welcome task cannot reach a
server left over from another run (which holds another secret). The relay's health port is
checked the same way and left for the relay to bind.

A port already taken is one line and exit 1, naming the port and, when the holder is a
taskrelay process of this user (Linux: found through /proc), its PID and how to stop it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from shared.errors import ConfigurationError

BACKLOG = 2048  # uvicorn's default
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def claim(host: str, port: int, option: str) -> socket.socket:
    """A listening socket on host:port, inheritable by a child; ConfigurationError if taken."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:  # socket.gaierror: a host that does not resolve
        raise ConfigurationError(f"cannot listen on {host} (--host): {exc}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(_taken(port, option, exc)) from exc
    return sock


def url_of(sock: socket.socket) -> str:
    """The URL that reaches `sock` from this machine (and no other socket on another address)."""
    host, port = sock.getsockname()[:2]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def ensure_free(host: str, port: int, option: str) -> None:
    """ConfigurationError if host:port cannot be bound now."""
    claim(host, port, option).close()


def _taken(port: int, option: str, exc: OSError) -> str:
    others = "choose other ports with --port and --health-port"
    holder = holder_of(port)
    if holder is None:
        return f"port {port} ({option}) is not free: {exc.strerror}; {others}"
    pid, command = holder
    return (
        f"port {port} ({option}) is held by another taskrelay (pid {pid}: {command}); "
        f"stop it with `kill {pid}`, or {others}"
    )


def holder_of(port: int) -> tuple[int, str] | None:
    """(PID, command line) of a taskrelay process of this user listening on `port`, if any;
    a `taskrelay run` is preferred to its children, since stopping it stops them."""
    inodes = _listening_inodes(port)
    found: list[tuple[int, str]] = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            command = _taskrelay_command(proc)
            if command and any(
                os.readlink(fd).removeprefix("socket:[").removesuffix("]") in inodes
                for fd in (proc / "fd").iterdir()
            ):
                found.append((int(proc.name), command))
    found.sort(key=lambda holder: (" run" not in holder[1], holder[0]))
    return found[0] if found else None


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def _taskrelay_command(proc: Path) -> str:
    """`taskrelay <subcommand> ...` if `proc` runs taskrelay's command line, else ''."""
    argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    for i, arg in enumerate(argv):
        if arg == "services.cli" or Path(arg).name == "taskrelay":
            return " ".join(["taskrelay", *argv[i + 1 :]])
    return ""
