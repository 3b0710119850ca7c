"""What a provider's answer means for the item: the pure half of the `openai` generator's policy.

The generator (`shared.adapters.openai.generator`) sends; this module decides, without I/O:
- how long a 429 asks us to wait (`retry_wait`: `retry-after-ms`, `Retry-After` in seconds or as
  an HTTP date, else the `x-ratelimit-reset-*` headers; None when the answer names no time, and
  the caller backs off);
- the one-line error of an item whose requests kept failing (`given_up`), such as
  `model answered 503 three times: <the provider's message>`;
- what a 2xx body holds (`read_answer`): the message text and token usage, or `Malformed`.
Every text that may reach a log line or an item's error goes through `Scrubber`, which masks the
API key: a provider that echoes the key back does not get it stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from shared.domain import clip_error
from shared.domain.content import Generated, Usage
from shared.errors import GenerationFailed

MAX_FAULTS = 3
"""5xx, reset connections and timeouts in a row before the item fails."""
_TIMES = {1: "once", 2: "twice", 3: "three times"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class Malformed(GenerationFailed):
    """A 2xx answer the generator cannot use: the item fails with this text."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One request that failed in a way worth trying again (5xx, reset, timeout)."""

    kind: str
    """The metric's outcome: `server_error` or `timeout`."""
    what: str
    """`answered 503`, `timed out after 60 s`, `connection failed`."""
    message: str = ""


class Scrubber:
    """Masks the API key (and nothing else) in any text about to be logged or stored."""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret if secret and len(secret) >= 4 else None

    def __call__(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text


def retry_wait(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds a 429 asks to wait, from its headers; None when they name no time."""
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    retry_after = headers.get("retry-after")
    if retry_after:
        seconds = _number(retry_after)
        if seconds is not None:
            return seconds
        with_date = _seconds_until(retry_after, now or datetime.now(UTC))
        if with_date is not None:
            return with_date
    resets = [
        _duration(headers.get(h))
        for h in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
    ]
    known = [r for r in resets if r is not None]
    return max(known) if known else None


def given_up(faults: Sequence[Fault]) -> str:
    """The item's error once `faults` (the last MAX_FAULTS in a row) used up its tries."""
    last = faults[-1]
    times = _TIMES.get(len(faults), f"{len(faults)} times")
    if all(f.what == last.what for f in faults):
        head = f"model {last.what} {times}"
    else:
        head = f"model failed {times} ({', '.join(f.what for f in faults)})"
    return clip_error(f"{head}: {last.message}" if last.message else head)


def provider_message(body: object, text: str) -> str:
    """The provider's own words about an error: `error.message` of a JSON body, else its text."""
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str) and message:
            return " ".join(message.split())
    if isinstance(body, str) and body:
        return " ".join(body.split())
    return " ".join(text.split())[:1000]


def read_answer(text: str) -> Generated:
    """The content and usage of a chat-completions answer; Malformed says what is wrong."""
    try:
        answer = json.loads(text)
    except ValueError:
        raise Malformed(f"model answer is not JSON: {_preview(text)}") from None
    if not isinstance(answer, dict):
        raise Malformed(f"model answer is not a JSON object: {_preview(text)}")
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices:
        raise Malformed("model answer has no choices")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str) or not content.strip():
        raise Malformed("model answer has empty content")
    return Generated(content, _usage(answer.get("usage")))


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    if any(isinstance(n, bool) or n < 0 for n in (prompt, completion)):
        return None
    return Usage(prompt, completion)


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return (flat[:200] + "...") if len(flat) > 200 else (flat or "(empty body)")


def _number(raw: str | None) -> float | None:
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 and value == value else None


def _seconds_until(raw: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _duration(raw: str | None) -> float | None:
    """`1s`, `6m0s`, `20ms`, `1h2m3.5s` (OpenAI's reset headers) in seconds; None if not one."""
    if not raw:
        return None
    text = raw.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return _number(text)
    return sum(float(n) * _UNITS[u] for n, u in parts)
