"""The built-in `openai` content generator: one chat completion per content item.

`TASKRELAY_CONTENT_GENERATOR=openai` makes the worker build a `ModelGenerator` from the settings
(`shared.adapters.openai.select_generator`); its `generate` is the coroutine function the job calls
per item (protocol §9). It speaks the chat-completions API through the official SDK's AsyncOpenAI
client, with the SDK's own retries off (`max_retries=0`), so the policy is this module's:

- every request holds one of the deployment's in-flight slots (`shared.adapters.redis.limiter`),
  taken just before it is sent and given back as soon as it is answered;
- a 429 is not a fault of the item: its slot is given back, the item waits what the answer asks
  (`faults.retry_wait`, else a growing backoff) and asks again, with no attempt counted; the
  job's item timeout is the only bound;
- a 5xx, a reset connection or a timeout is tried again after a backoff, up to `MAX_FAULTS` in
  a row; then the item fails with one line naming the status or fault (`faults.given_up`);
- any other 4xx, or a 2xx that is not a usable answer, fails the item at once, saying why.
Each request is counted in `taskrelay_model_*` (shared.observability.metrics). The API key is sent
only in the SDK's Authorization header: every text this module logs or raises is scrubbed of it.

Clients are per event loop: RQ runs each job in a work horse with a loop of its own, and an
HTTP or Redis client belongs to the loop it was first used on.
"""

from __future__ import annotations

import asyncio
import random
import time
import weakref
from dataclasses import dataclass
from typing import Any, cast

import httpx2
import openai
import redis.asyncio as aioredis

from shared.adapters.openai.faults import (
    MAX_FAULTS,
    Fault,
    Malformed,
    Scrubber,
    given_up,
    provider_message,
    read_answer,
    retry_wait,
)
from shared.adapters.openai.prompts import Prompts
from shared.adapters.redis.limiter import InFlightLimit
from shared.config.model import ModelSettings
from shared.domain import clip_error
from shared.domain.backoff import Backoff
from shared.domain.content import ContentRequest, Generated
from shared.errors import GenerationFailed
from shared.observability.logging import get_logger
from shared.observability.metrics import record_model_request

log = get_logger(__name__)

NO_KEY = "unused"
"""Sent when no OPENAI_API_KEY is set: local servers want none, and the SDK insists on one."""


@dataclass(frozen=True, slots=True)
class _Session:
    client: openai.AsyncOpenAI
    limit: InFlightLimit


@dataclass(frozen=True, slots=True)
class _RateLimited:
    wait: float | None
    """What the answer asked for, in seconds; None when it named no time."""


class ModelGenerator:
    """Generates one item's content with one chat completion (and its retries)."""

    def __init__(self, settings: ModelSettings, redis_url: str, prompts: Prompts) -> None:
        self._model = settings.required_model()
        self._settings = settings
        self._redis_url = redis_url
        self._prompts = prompts
        self._timeout = settings.timeout_seconds
        self._scrub = Scrubber(settings.api_key.value if settings.api_key else None)
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Session] = (
            weakref.WeakKeyDictionary()
        )

    async def generate(self, request: ContentRequest) -> Generated:
        """The item's content and usage; GenerationFailed (one line) when the model fails it."""
        session = self._session()
        messages = self._prompts.messages(request)
        faults: list[Fault] = []
        rate_backoff, fault_backoff = Backoff(base=1.0, cap=30.0), Backoff(base=0.5, cap=8.0)
        while True:
            async with session.limit.slot():
                answer = await self._send(session.client, messages)
            if isinstance(answer, Generated):
                return answer
            if isinstance(answer, _RateLimited):
                # Asked for: that long at least (a little more, so waiters do not all come back
                # at the same instant). Asked nothing: a backoff that grows while 429s go on.
                wait = answer.wait * random.uniform(1.0, 1.1) if answer.wait is not None else None
                delay = wait if wait is not None else rate_backoff.next()
                log.info("model_rate_limited", retry_in=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            faults.append(answer)
            if len(faults) >= MAX_FAULTS:
                raise GenerationFailed(given_up(faults))
            delay = fault_backoff.next()
            log.warning(
                "model_request_failed",
                fault=answer.what,
                detail=answer.message[:200],
                retry_in=round(delay, 2),
            )
            await asyncio.sleep(delay)

    async def _send(
        self, client: openai.AsyncOpenAI, messages: list[dict[str, str]]
    ) -> Generated | _RateLimited | Fault:
        """One request; what it came to (a usable answer, a 429, a fault worth retrying), or
        GenerationFailed when the item cannot succeed. Counted in the metrics either way."""
        started = time.monotonic()

        def record(outcome: str, answer: Generated | None = None) -> None:
            usage = answer.usage if answer is not None else None
            prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
            record_model_request(outcome, time.monotonic() - started, prompt, completion)

        try:
            async with asyncio.timeout(self._timeout):  # the whole answer, not each read
                raw = await client.chat.completions.with_raw_response.create(
                    model=self._model, messages=cast(Any, messages)
                )
                text = raw.text
        except openai.RateLimitError as exc:
            record("rate_limited")
            return _RateLimited(retry_wait(exc.response.headers))
        except openai.APIStatusError as exc:
            status, message = exc.status_code, self._message(exc)
            if status >= 500 or status == 408:
                record("server_error")
                return Fault("server_error", f"answered {status}", message)
            record("rejected")
            raise GenerationFailed(clip_error(f"model answered {status}: {message}")) from None
        except (TimeoutError, openai.APITimeoutError, httpx2.TimeoutException):
            record("timeout")
            return Fault("timeout", f"timed out after {self._timeout:g} s")
        except (openai.APIConnectionError, httpx2.TransportError) as exc:
            record("server_error")
            cause = exc.__cause__ or exc
            detail = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
            return Fault("server_error", "connection failed", self._scrub(detail))
        try:
            answer = read_answer(text)
        except Malformed as exc:
            record("malformed")
            raise Malformed(self._scrub(str(exc))) from None
        record("ok", answer)
        return answer

    def _message(self, exc: openai.APIStatusError) -> str:
        try:
            text = exc.response.text
        except (httpx2.HTTPError, UnicodeError):
            text = ""
        return self._scrub(provider_message(exc.body, text))

    def _session(self) -> _Session:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None:
            settings = self._settings
            client = openai.AsyncOpenAI(
                api_key=settings.api_key.value if settings.api_key else NO_KEY,
                base_url=settings.base_url,
                timeout=self._timeout,
                max_retries=0,  # the policy above is ours
            )
            redis = aioredis.Redis.from_url(self._redis_url)
            limit = InFlightLimit(redis, settings.max_in_flight, self._timeout)
            session = self._sessions[loop] = _Session(client, limit)
        return session
