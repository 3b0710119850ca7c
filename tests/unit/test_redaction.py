"""No secret printed: URL passwords in every form, tokens however the query key is spelled."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from shared.adapters.unavailable import redact, unavailable
from shared.config.redaction import redact_query, redact_text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:Pw1@h:5432/db", "postgresql://u:***@h:5432/db"),
        (
            "postgresql://u@h/db?password=Pw2&sslmode=off",
            "postgresql://u@h/db?password=***&sslmode=off",
        ),
        ("postgresql://u@h/db?PASS%57ORD=Pw3", "postgresql://u@h/db?PASS%57ORD=***"),
        ("postgresql://u:Pw%404@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:a@b:Pw5@h/db", "postgresql://u:***@h/db"),
        ("redis://:Pw6@h:6379/0", "redis://:***@h:6379/0"),
        ("amqp://guest:Pw7@h:5672/", "amqp://guest:***@h:5672/"),
        ("postgresql://u:Pw8@[::1/db", "postgresql://***"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_no_password_survives_redaction(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_a_driver_message_quoting_the_password_is_scrubbed() -> None:
    error = unavailable("PostgreSQL", "postgresql://u:Pw%40x@h/db", OSError("auth failed for Pw@x"))
    assert "Pw" not in str(error)


@pytest.mark.parametrize(
    "query",
    ["token=T0k", "%74oken=T0k", "tok%65n=T0k", "TOKEN=T0k", "access_token=T0k", "a=1&token=T0k"],
)
def test_token_values_are_masked_by_parsed_key(query: str) -> None:
    assert "T0k" not in redact_query(query)
    assert "T0k" not in redact_text(f'"GET /ws/tasks/x?{query} HTTP/1.1"')


def test_other_query_values_are_kept() -> None:
    assert redact_query("status=failed&limit=5") == "status=failed&limit=5"


NEIGHBOURS = ['"', "'", "<", ">", "#", "?", "\\", "%22", "\t", " "]


@pytest.mark.parametrize("neighbour", NEIGHBOURS)
def test_a_token_pair_is_masked_whatever_stands_before_it(neighbour: str) -> None:
    for query in (
        f"x={neighbour}&token=T0k",
        f"x=1;{neighbour}token=T0k",
        f"a{neighbour}token=T0k",
    ):
        assert "T0k" not in redact_text(f"/ws/tasks/x?{query}"), query
        assert "T0k" not in redact_text(f'1.2.3.4:5 - "WebSocket /ws/tasks/x?{query}" [accepted]')


LOGGING_SCRIPT = textwrap.dedent(
    """
    import logging
    from shared.observability.logging import configure_logging
    from shared.config.settings import Settings

    configure_logging("probe", Settings.from_env().logging)
    path = %r
    # What uvicorn's sansio protocol and websockets' parser write for one socket, at each level.
    logging.getLogger("uvicorn.error").info('%%s - "WebSocket %%s" [accepted]', "1.2.3.4:5", path)
    logging.getLogger("uvicorn.error").debug("< GET %%s HTTP/1.1", path)
    logging.getLogger("websockets.server").debug("< Referer: %%s", "http://h/tasks/t?" + path)
    logging.getLogger("uvicorn.access").warning("%%s", path.encode())  # not a str argument
    """
)


@pytest.mark.parametrize("log_format", ["json", "console"])
@pytest.mark.parametrize("neighbour", ['"', "'", "<", ">", "#"])
def test_no_log_line_of_a_process_carries_the_token(log_format: str, neighbour: str) -> None:
    """The real logging set-up of a process, at DEBUG: nothing a client puts beside the token
    in the query lets it through (the pattern of old stopped at these characters)."""
    path = f"/ws/tasks/t?x={neighbour}&token=T0kenValue"
    env = {**os.environ, "TASKRELAY_LOG_FORMAT": log_format, "TASKRELAY_LOG_LEVEL": "DEBUG"}
    done = subprocess.run(
        [sys.executable, "-c", LOGGING_SCRIPT % path],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stderr.count("token=***") == 4, done.stderr
    assert "T0kenValue" not in done.stderr
