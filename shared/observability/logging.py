"""Structured logs for every process: JSON when stderr is not a terminal, readable when it is.

No line carries a secret: every stdlib record and structlog event goes through
`shared.config.redaction` (a token or password in a query string becomes `***`).

Work that concerns one task binds `task_id` (and `message_id`, `job_id`) with `bound_context`
(on a context variable of this module), so every line logged inside carries them, and they are
cleared when the work ends. Format and level come from `LoggingSettings`, read with the rest.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog

from shared.config.redaction import RedactSecrets, redact_event
from shared.config.settings import LoggingSettings


class bound_context:  # lower case: used as a function, `with bound_context(task_id=...)`
    """Bind values (task_id, message_id, job_id) to every log line inside, then restore what
    was bound before.

    The log context is one context variable holding a dict, replaced (never changed in place)
    by each binding: binding costs one dict merge and a line reads one dict. (structlog's
    contextvars keep a variable per key, and each line scanned every variable of the context
    for them.) A class, not a generator: it is entered for every request and job.
    """

    __slots__ = ("_token", "_values")

    def __init__(self, **values: Any) -> None:
        self._values = values

    def __enter__(self) -> None:
        self._token = _log_context.set({**_log_context.get(), **self._values})

    def __exit__(self, *_: object) -> None:
        _log_context.reset(self._token)


_log_context: ContextVar[dict[str, Any]] = ContextVar(
    "taskrelay_log_context",
    default={},  # noqa: B039 - never changed in place: each binding sets a new dict
)


def log_context() -> dict[str, Any]:
    """What is bound for the lines logged here and now (a copy)."""
    return dict(_log_context.get())


_configured = False

HELD_CHARS = 1024
"""Held lines are written before they pass this: at most 4 bytes a character in UTF-8, so a
write stays within PIPE_BUF (4,096 bytes), which a pipe never splits nor interleaves with
another process's writes."""


class lines_held:  # lower case: used as a function, `with lines_held():`
    """Hold the lines logged inside (by this task and the tasks it starts while the block
    runs) and write them in one write(2) when the block ends: an HTTP request's lines, say,
    once it has been answered. A line logged after the block ended is written at once.

    Each write(2) to a pipe costs the writer and wakes its reader (~10 us a line for the API):
    a retry's two lines (its `task_status_updated` and its access line) go out in one.
    """

    __slots__ = ("_token", "lines", "open", "size")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.open = True
        self.size = 0

    def __enter__(self) -> None:
        self._token = _held.set(self)

    def __exit__(self, *_: object) -> None:
        self.open = False
        _held.reset(self._token)
        if self.lines and _line_logger is not None:
            _line_logger.write_lines(self.lines)


_held: ContextVar[lines_held | None] = ContextVar("taskrelay_held_lines", default=None)


class LineLogger(structlog.WriteLogger):
    """structlog's `WriteLogger` (one write(2) a line, whole), except that inside
    `lines_held()` a line waits for the block's end."""

    def msg(self, message: str) -> None:
        held = _held.get()
        if held is None or not held.open:
            super().msg(message)
            return
        if held.lines and held.size + len(message) >= HELD_CHARS:
            lines, held.lines, held.size = held.lines, [], 0
            self.write_lines(lines)
        held.lines.append(message)
        held.size += len(message) + 1

    def write_lines(self, lines: list[str]) -> None:
        super().msg("\n".join(lines))

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


_line_logger: LineLogger | None = None
"""The process's one `LineLogger` (on stderr), once `configure_logging` has run."""


def configure_logging(process: str, settings: LoggingSettings) -> None:
    """Configure structlog and the stdlib root logger once per process."""
    global _configured, _line_logger
    if _configured:
        return
    _configured = True
    _line_logger = line_logger = LineLogger(sys.stderr)
    wanted = settings.format
    json = wanted == "json" or (wanted == "auto" and not sys.stderr.isatty())
    level_number = logging.getLevelName(settings.level)  # the settings accept only real levels
    # JSON: one processor renders (a traceback as text, secrets masked, the line). Console:
    # structlog's own steps, for a person at a terminal.
    rendering: list[Any] = (
        [render_json]
        if json
        else [
            structlog.processors.format_exc_info,
            redact_event,
            structlog.dev.ConsoleRenderer(colors=False),
        ]
    )
    shared_processors: list[Any] = [Annotate(process)]
    structlog.configure(
        processors=[*shared_processors, *rendering],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        # One write(2) a line (print() wrote the line and its newline in two), or one for all
        # the lines of a `lines_held()` block.
        logger_factory=lambda *_: line_logger,
        cache_logger_on_first_use=True,
    )
    # Libraries log through the stdlib: route them through the same renderer, their
    # tracebacks rendered as text (a raw exc_info tuple is not JSON).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
            foreign_pre_chain=[*shared_processors, structlog.stdlib.add_logger_name],
        )
    )
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_number)
    # DEBUG reaches every logger. Above it, chatty libraries are held back: the AMQP client
    # warns, with a traceback, of every lost connection that taskrelay reports itself in one
    # line (broker_down, gateway_broker_lost), so it speaks from ERROR up. uvicorn's access
    # log is replaced by the API's own access line.
    debug = level_number <= logging.DEBUG
    for noisy, floor in (
        ("aiormq", logging.ERROR),
        ("aio_pika", logging.ERROR),
        ("httpx", logging.WARNING),
    ):
        logging.getLogger(noisy).setLevel(level_number if debug else max(floor, level_number))
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


class Annotate:
    """The first processor of every line, structlog's or the standard library's: what is
    bound (`bound_context`), then the process, the level and the time (ISO 8601, UTC).

    One processor for what structlog's `merge_contextvars`, `add_log_level` and
    `TimeStamper` did in three; a value passed to the line itself wins over a bound one.
    """

    __slots__ = ("process",)

    def __init__(self, process: str) -> None:
        self.process = process

    def __call__(self, _: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        for key, value in _log_context.get().items():
            event.setdefault(key, value)
        event.setdefault("process", self.process)
        event["level"] = _LEVELS.get(method, method)
        event["timestamp"] = utc_timestamp()
        return event


def utc_timestamp() -> str:
    """Now in ISO 8601, UTC, to the microsecond: `2026-11-28T14:10:51.302581Z`.

    The date and time of day are formatted once a second; a line only adds its microseconds
    (a third of the cost of `datetime.now(UTC).isoformat()`, for every line)."""
    global _second, _second_text
    second, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    if second != _second:
        _second = second
        _second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_second_text}.{nanoseconds // 1000:06d}Z"


_second, _second_text = -1, ""


_LEVELS = {"warn": "warning", "exception": "error"}
"""Level names of logger methods that are not one (as structlog's `add_log_level`)."""

_encoder = msgspec.json.Encoder(enc_hook=repr)


def render_json(logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
    """The last processor of a JSON line: a traceback as text (structlog's
    `format_exc_info`), secrets masked (`redact_event`), then the line, by msgspec (~3 us less
    a line than `json.dumps`).

    Dates, times and UUIDs become their ISO and hex texts; any other value msgspec does not
    know, its `repr` (as structlog's own fallback); bytes, base64. Text stays UTF-8, not `\\u`
    escapes.
    """
    if "exc_info" in event:
        event = structlog.processors.format_exc_info(logger, method, event)
    return _encoder.encode(redact_event(logger, method, event)).decode()


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


@contextmanager
def silenced(logger_name: str) -> Iterator[None]:
    """Mute a library logger for a moment: a failed first AMQP connect, say, that the caller
    reports itself in one line."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)
