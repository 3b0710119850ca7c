"""Logs as a process writes them: run a real interpreter that configures logging, log through
structlog and the standard library, and read its stderr line by line as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

SCRIPT = textwrap.dedent(
    """
    import logging
    from shared.observability.logging import configure_logging, get_logger
    from shared.config.settings import Settings
    from shared.observability.tracing import traced

    configure_logging("probe", Settings.from_env().logging)
    library = logging.getLogger("some.library")
    library.debug("library_debug_line")
    try:
        raise ValueError("boom in a library")
    except ValueError:
        library.exception("library_failed")
    with traced("work", {"traceparent": "00-%s-00f067aa0ba902b7-01"}):
        get_logger("taskrelay").debug("own_debug_line")
        library.info("library_info_line")
    """
)
TRACE_ID = "4bf92f3577b34da6a3ce929b0e0e4736"


def run(level: str) -> list[dict[str, Any]]:
    env = {**os.environ, "TASKRELAY_LOG_FORMAT": "json", "TASKRELAY_LOG_LEVEL": level}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT % TRACE_ID],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in result.stderr.splitlines()]


def by_event(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["event"]: line for line in lines}


def test_a_library_traceback_is_rendered_as_text_in_json() -> None:
    failed = by_event(run("INFO"))["library_failed"]
    assert "exc_info" not in failed
    assert "Traceback (most recent call last)" in failed["exception"]
    assert "ValueError: boom in a library" in failed["exception"]
    assert failed["level"] == "error"
    assert failed["logger"] == "some.library"


def test_debug_reaches_standard_library_loggers_too() -> None:
    events = by_event(run("DEBUG"))
    assert "library_debug_line" in events
    assert "own_debug_line" in events
    quiet = by_event(run("INFO"))
    assert "library_debug_line" not in quiet
    assert "own_debug_line" not in quiet
    assert "library_info_line" in quiet


def test_lines_inside_a_trace_name_its_trace_id() -> None:
    events = by_event(run("DEBUG"))
    assert events["own_debug_line"]["trace_id"] == TRACE_ID
    assert events["library_info_line"]["trace_id"] == TRACE_ID
    assert "trace_id" not in events["library_failed"]


COUNTING_WRITES = textwrap.dedent(
    """
    import io, json, sys

    class Counting(io.TextIOWrapper):
        writes = []

        def write(self, text):
            Counting.writes.append(text)
            return super().write(text)

    sys.stderr = Counting(sys.stderr.buffer, encoding="utf-8", line_buffering=True)
    """
)
"""A script's prelude: every write to stderr is kept in `Counting.writes`."""

ONE_WRITE_A_LINE = textwrap.dedent(
    """
    from shared.observability.logging import configure_logging, get_logger
    from shared.config.settings import Settings

    configure_logging("probe", Settings.from_env().logging)
    for n in range(3):
        get_logger("taskrelay").info("counted_line", n=n)
    print(json.dumps(Counting.writes), file=sys.__stdout__)
    """
)


def writes_of(script: str) -> list[str]:
    """What `script` (after COUNTING_WRITES) wrote to stderr, one item a write."""
    env = {**os.environ, "TASKRELAY_LOG_FORMAT": "json", "TASKRELAY_LOG_LEVEL": "INFO"}
    result = subprocess.run(
        [sys.executable, "-c", COUNTING_WRITES + script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    writes: list[str] = json.loads(result.stdout)
    return writes


def test_each_line_is_one_write() -> None:
    """A line and its newline go out in one write: cheaper, and processes sharing one stderr
    (`taskrelay run`) never split each other's lines."""
    writes = [w for w in writes_of(ONE_WRITE_A_LINE) if "counted_line" in w]
    assert len(writes) == 3, writes
    assert all(w.endswith("\n") and w.count("\n") == 1 for w in writes), writes
    assert [json.loads(w)["n"] for w in writes] == [0, 1, 2]


def test_a_bound_context_restores_what_was_bound_before() -> None:
    from shared.observability.logging import bound_context, log_context

    with bound_context(task_id="outer", job_id="j1"):
        with bound_context(task_id="inner", message_id="m1"):
            bound = log_context()
            assert (bound["task_id"], bound["job_id"], bound["message_id"]) == ("inner", "j1", "m1")
        assert log_context()["task_id"] == "outer"
        assert "message_id" not in log_context()
    assert "task_id" not in log_context()
    assert "job_id" not in log_context()


HELD_LINES = textwrap.dedent(
    """
    import asyncio
    from shared.observability.logging import HELD_CHARS, configure_logging, get_logger, lines_held
    from shared.config.settings import Settings

    configure_logging("probe", Settings.from_env().logging)
    log = get_logger("taskrelay")

    async def main():
        late = asyncio.Event()

        async def after_the_block():
            await late.wait()
            log.info("late_line")

        with lines_held():
            log.info("held_line", n=0)
            task = asyncio.create_task(after_the_block())  # inherits the block's context
            log.info("held_line", n=1)
            Counting.writes.append("-- block ends --")
        late.set()
        await task
        Counting.writes.append("-- long lines --")
        with lines_held():
            for n in range(3):
                log.info("long_line", n=n, text="x" * (HELD_CHARS // 2))

    asyncio.run(main())
    print(json.dumps(Counting.writes), file=sys.__stdout__)
    """
)


def test_held_lines_go_out_together_when_the_block_ends() -> None:
    """A request's lines are one write once it is answered; a line logged after the block
    (by a task it started) goes out at once; held text never grows past one pipe write."""
    writes = [w for w in writes_of(HELD_LINES) if "_line" in w or w.startswith("--")]
    block_end, long_start = writes.index("-- block ends --"), writes.index("-- long lines --")
    assert block_end == 0, writes  # nothing written while the block ran
    held = writes[block_end + 1]
    assert [json.loads(line)["n"] for line in held.splitlines()] == [0, 1]
    assert held.count("\n") == 2
    assert held.endswith("\n")
    assert json.loads(writes[block_end + 2])["event"] == "late_line"
    long_writes = writes[long_start + 1 :]
    assert len(long_writes) == 3, long_writes  # each pair would pass HELD_CHARS
    assert all(len(w.encode()) <= 4096 and w.endswith("\n") for w in long_writes)
    numbers = [json.loads(line)["n"] for w in long_writes for line in w.splitlines()]
    assert numbers == [0, 1, 2]


def test_a_line_is_stamped_with_the_utc_time_to_the_microsecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from shared.observability.logging import utc_timestamp

    stamps = []
    # The date and time of day are kept for a second: the next second must not reuse them.
    for now in (
        1_795_875_051_302_581_999,
        1_795_875_051_999_999_000,
        1_795_875_052_000_001_000,
        500,
    ):
        monkeypatch.setattr(time, "time_ns", lambda now=now: now)
        stamps.append(utc_timestamp())
    assert stamps == [
        "2026-11-28T14:10:51.302581Z",
        "2026-11-28T14:10:51.999999Z",
        "2026-11-28T14:10:52.000001Z",
        "1970-01-01T00:00:00.000000Z",
    ]
