"""The settings of the built-in `openai` generator (docs/protocol.md §9), read with all the others.

A section of its own, so every process reads it (the API and relay ignore it) and
docs/configuration.md lists it beside the rest. `OPENAI_BASE_URL` and `OPENAI_API_KEY` keep the
SDK's own names: a deployment that already sets them for other tools sets nothing new. The key
is held as a `Secret`, whose repr shows nothing, so printing the settings never prints it.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.config.reader import Floor, setting
from shared.errors import ConfigurationError

OPENAI = "openai"
"""The value of `TASKRELAY_CONTENT_GENERATOR` that selects the built-in model generator."""


class Secret:
    """A value that must never be shown: its repr and str are masked."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """The built-in `openai` generator: endpoint, model, limits and prompts."""

    model: str | None = setting(
        None,
        "TASKRELAY_MODEL",
        "The model the `openai` generator asks for (e.g. `gpt-4o-mini`, `llama3.2`); required "
        "when `TASKRELAY_CONTENT_GENERATOR=openai`.",
        parse=str,
        shown="none",
    )
    base_url: str = setting(
        "https://api.openai.com/v1",
        "OPENAI_BASE_URL",
        "The chat-completions endpoint's base URL, e.g. `http://127.0.0.1:11434/v1` for a "
        "local server (OpenAI's own by default, as in the SDK).",
    )
    api_key: Secret | None = setting(  # noqa: RUF009 (a field(), as on every other line)
        None,
        "OPENAI_API_KEY",
        "The provider's API key; never logged, never in an error text or a metric. A local "
        "server that wants none can leave it unset.",
        parse=Secret,
        shown="none",
    )
    max_in_flight: int = setting(
        16,
        "TASKRELAY_MODEL_MAX_IN_FLIGHT",
        "Model requests in flight at once across every worker process and machine of the "
        "deployment (held in Redis; a crashed holder's slot comes back).",
        floor=Floor.POSITIVE,
    )
    timeout_seconds: float = setting(
        60.0,
        "TASKRELAY_MODEL_TIMEOUT_SECONDS",
        "Longest one model request may take; a timeout is retried like a 5xx.",
        floor=Floor.POSITIVE,
    )
    prompts: str | None = setting(
        None,
        "TASKRELAY_PROMPTS",
        'A TOML prompts file replacing the built-in prompts (docs/worker.md, "Using a '
        'model"); a bad one stops the worker at start-up, naming the file and line.',
        parse=str,
        shown="the built-in prompts",
    )

    def required_model(self) -> str:
        """The model name; ConfigurationError (one line) when it is not set."""
        if not self.model:
            raise ConfigurationError(
                "TASKRELAY_MODEL is not set: the openai generator needs a model name "
                "(e.g. TASKRELAY_MODEL=gpt-4o-mini)"
            )
        return self.model
