"""Trace context without an SDK: the light path of `traced()` carries on exactly what
OpenTelemetry's own propagators would, for every kind of incoming `traceparent`."""

from __future__ import annotations

import re

import pytest

from shared.observability import tracing
from shared.observability.tracing import trace_headers, trace_id_of, traced

TRACE_ID = "4bf92f3577b34da6a3ce929b0e0e4736"
VALID = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
NEW_TRACE = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")

CARRIED_ON = [
    VALID,
    f"00-{TRACE_ID}-00f067aa0ba902b7-00",  # not sampled: the flags are kept
    f"00-{TRACE_ID}-00f067aa0ba902b7-03",
    f" \t00-{TRACE_ID}-00f067aa0ba902b7-01 ",  # blanks around the value are allowed
    f"cc-{TRACE_ID}-00f067aa0ba902b7-01-what-a-later-version-adds",  # sent on as version 00
]
REPLACED = [
    "",
    "garbage",
    f"00-{TRACE_ID}-00f067aa0ba902b7-01-extra",  # version 00 has exactly four fields
    f"ff-{TRACE_ID}-00f067aa0ba902b7-01",  # version ff is invalid
    f"00-{'0' * 32}-00f067aa0ba902b7-01",  # zero trace id
    f"00-{TRACE_ID}-{'0' * 16}-01",  # zero parent id
    f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01",  # hex digits are lower case
    f"00-{TRACE_ID}-00f067aa0ba902b7-01-" + "x" * 600,  # longer than 512 characters
]


@pytest.fixture(params=["light", "opentelemetry"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs on both paths: ours, and OpenTelemetry's context and propagators."""
    monkeypatch.setattr(tracing, "_light", lambda: request.param == "light")
    return str(request.param)


def carried(carrier: dict[str, object]) -> tuple[str, dict[str, str]]:
    with traced("work", carrier) as trace_id:
        return trace_id, trace_headers()


@pytest.mark.parametrize("traceparent", CARRIED_ON)
def test_a_valid_traceparent_is_carried_on(path: str, traceparent: str) -> None:
    trace_id, headers = carried({"traceparent": traceparent})
    flags = traceparent.strip().split("-")[3]
    assert trace_id == TRACE_ID
    assert headers == {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-{flags}"}


@pytest.mark.parametrize("traceparent", REPLACED)
def test_an_invalid_traceparent_starts_a_new_trace(path: str, traceparent: str) -> None:
    trace_id, headers = carried({"traceparent": traceparent})
    assert NEW_TRACE.match(headers["traceparent"])
    assert headers["traceparent"].split("-")[1] == trace_id != TRACE_ID


def test_work_without_a_carrier_gets_a_trace_of_its_own(path: str) -> None:
    first, _ = carried({})
    second, headers = carried({"unrelated": "header"})
    assert first != second
    assert headers["traceparent"].split("-")[1] == second


def test_header_names_are_read_in_any_case_and_bytes_as_latin_1(path: str) -> None:
    assert carried({"TraceParent": VALID})[0] == TRACE_ID
    assert carried({"traceparent": VALID.encode()})[0] == TRACE_ID


def test_the_trace_ends_with_its_block_and_the_outer_one_comes_back(path: str) -> None:
    assert trace_headers() == {}
    with traced("outer", {"traceparent": VALID}):
        with traced("inner", {}) as inner:
            assert trace_headers()["traceparent"].split("-")[1] == inner != TRACE_ID
        assert trace_headers() == {"traceparent": VALID}
    assert trace_headers() == {}


def test_tracestate_and_baggage_are_carried_on_by_opentelemetry() -> None:
    """Not the light path's case: such a carrier goes through OpenTelemetry, with the SDK or
    without, so what it carries besides the traceparent is sent on too."""
    carrier = {"traceparent": VALID, "tracestate": "vendor=value", "baggage": "user=alice"}
    trace_id, headers = carried(carrier)
    assert trace_id == TRACE_ID
    assert headers == carrier


def test_the_light_path_is_taken_without_an_sdk_and_with_the_default_propagators() -> None:
    assert tracing._light()


def test_the_trace_id_of_a_header() -> None:
    assert trace_id_of(VALID) == TRACE_ID
    assert trace_id_of(CARRIED_ON[-1]) == TRACE_ID
    assert [trace_id_of(value) for value in REPLACED] == [None] * len(REPLACED)
    assert trace_id_of(None) is None


BIG_BAGGAGE = ",".join(f"key{i:03d}={'v' * 70}" for i in range(100))  # 7.7 kB, 100 valid pairs
LONG_STATE = ",".join(f"v{i:02d}={'s' * 60}" for i in range(20))  # 1.3 kB, 20 valid entries


def test_a_large_baggage_is_not_carried_into_the_work() -> None:
    """A client's 7.7 kB `baggage` would be copied into every row, message and job of its
    work: it is dropped; `traceparent` and a small `tracestate` stay."""
    trace_id, headers = carried(
        {"traceparent": VALID, "tracestate": "vendor=value", "baggage": BIG_BAGGAGE}
    )
    assert trace_id == TRACE_ID
    assert headers == {"traceparent": VALID, "tracestate": "vendor=value"}


def test_a_small_baggage_is_kept_and_a_long_tracestate_is_cut_to_whole_entries() -> None:
    _, headers = carried({"traceparent": VALID, "tracestate": LONG_STATE, "baggage": "a=b"})
    assert headers["baggage"] == "a=b"
    assert headers["traceparent"] == VALID
    assert len(headers["tracestate"]) <= 512
    assert LONG_STATE.startswith(headers["tracestate"] + ",")
    assert len(headers["tracestate"].split(",")) == 7  # 64 + 1 characters an entry
