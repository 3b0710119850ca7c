"""The gateway's pure rules: `seq` ordering per socket, the Origin check, token redaction."""

from __future__ import annotations

import logging
import time

import pytest
from prometheus_client import CollectorRegistry

from services.api.gateway.admission import Refused, admit, origin_allowed
from services.api.gateway.close_codes import CloseCode
from services.api.gateway.metrics import GatewayMetrics
from services.api.gateway.watcher import Sequencer
from shared.config.redaction import RedactSecrets
from shared.service.auth import issue_token

SECRET = "unit-secret-" + "z" * 40


def test_frames_at_or_below_the_snapshot_are_dropped() -> None:
    order = Sequencer(last_sent=5, max_held=10)
    assert order.accept(4, "f4") == []
    assert order.accept(5, "f5") == []
    assert order.accept(6, "f6") == ["f6"]
    assert order.accept(6, "f6 again") == []
    assert not order.has_gap


def test_early_frames_wait_for_the_hole_then_go_out_in_order() -> None:
    order = Sequencer(last_sent=0, max_held=10)
    assert order.accept(3, "f3") == []
    assert order.accept(2, "f2") == []
    assert order.has_gap
    assert order.accept(3, "f3 duplicate") == []
    assert order.accept(1, "f1") == ["f1", "f2", "f3"]
    assert not order.has_gap
    assert order.last_sent == 3


def test_a_fresh_snapshot_forgets_what_it_covers_and_releases_what_follows() -> None:
    order = Sequencer(last_sent=1, max_held=10)
    order.accept(4, "f4")
    order.accept(6, "f6")
    assert order.reset(4) == []  # 4 is covered by the snapshot; 5 is still missing
    assert order.has_gap
    assert order.accept(5, "f5") == ["f5", "f6"]
    assert order.reset(3) == []  # an older snapshot never rewinds what was sent
    assert order.last_sent == 6
    assert order.accept(5, "f5 again") == []


def test_too_many_held_frames_mean_overflow() -> None:
    order = Sequencer(last_sent=0, max_held=2)
    for seq in (2, 3, 4):
        order.accept(seq, f"f{seq}")
    assert order.overflowing


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "api:8000", (), True),  # not a browser
        ("http://api:8000", "api:8000", (), True),
        ("http://API:8000/", "api:8000", (), True),
        ("http://example.com", "example.com", (), True),  # default ports on both sides
        ("https://example.com", "example.com:443", (), True),
        ("http://api:8001", "api:8000", (), False),
        ("http://evil.example", "api:8000", (), False),
        ("null", "api:8000", (), False),
        ("http://[::1]:8000", "[::1]:8000", (), True),
        ("https://app.example", "api:8000", ("https://app.example",), True),
        ("http://api:8000", "api:8000", ("https://app.example",), False),
        ("https://anything.example", "api:8000", ("*",), True),
    ],
)
def test_origin_check(origin: str | None, host: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


def _refusal(**overrides: object) -> int:
    request: dict[str, object] = {
        "origin": None,
        "host": "api:8000",
        "token": issue_token(SECRET, "u1", 60),
        "task_id": "3f1c0f34-6a3e-4c2b-9d7e-2a6f1f7e9a10",
        "secret": SECRET,
        "allowed_origins": (),
    }
    request.update(overrides)
    with pytest.raises(Refused) as refused:
        admit(**request)  # type: ignore[arg-type]
    return refused.value.code


def test_admission_close_codes() -> None:
    assert _refusal(token=None) == CloseCode.UNAUTHORIZED == 4401
    assert _refusal(token="garbage") == CloseCode.UNAUTHORIZED
    assert _refusal(origin="http://evil.example") == CloseCode.FORBIDDEN_ORIGIN == 4403
    assert _refusal(task_id="not-a-uuid") == CloseCode.NOT_FOUND == 4404
    admitted = admit(
        origin="http://api:8000",
        host="api:8000",
        token=issue_token(SECRET, "u1", 60),
        task_id="3f1c0f34-6a3e-4c2b-9d7e-2a6f1f7e9a10",
        secret=SECRET,
        allowed_origins=(),
    )
    assert admitted.user_id == "u1"
    assert str(admitted.task_id) == "3f1c0f34-6a3e-4c2b-9d7e-2a6f1f7e9a10"
    assert time.time() + 55 < admitted.expires <= time.time() + 60


@pytest.mark.parametrize(
    "query",
    [
        "token=eyJ.s.g",
        "%74oken=eyJ.s.g",
        "tok%65n=eyJ.s.g",
        "x=1&%54OKEN=eyJ.s.g",
        "access_token=eyJ",
    ],
)
def test_tokens_are_redacted_however_the_key_is_spelled(query: str) -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "%s", (f"/ws?{query}",), None
    )
    assert RedactSecrets().filter(record)
    assert "eyJ" not in record.getMessage()
    assert record.getMessage().endswith("=***")


def test_tokens_are_redacted_from_log_records() -> None:
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", "/ws/tasks/abc?token=eyJ.secret.sig&x=1"),
        None,
    )
    assert RedactSecrets().filter(record)
    assert (
        record.getMessage() == '127.0.0.1:5000 - "WebSocket /ws/tasks/abc?token=***&x=1" [accepted]'
    )


def test_every_close_code_has_a_disconnect_series_from_the_start() -> None:
    registry = CollectorRegistry()
    GatewayMetrics(registry)
    for label in ("client_gone", *(str(code.value) for code in CloseCode)):
        sample = registry.get_sample_value("taskrelay_gateway_disconnects_total", {"code": label})
        assert sample == 0, label
