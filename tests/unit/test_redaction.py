"""No secret printed: URL passwords in every form, tokens however the query key is spelled."""

from __future__ import annotations

import pytest

from shared.dependencies import redact, unavailable
from shared.redaction import redact_query, redact_text


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
