"""The built-in `openai` content generator (docs/protocol.md §9), and the choice of a generator.

`select_generator(settings)` is what a worker calls at start-up: `TASKRELAY_CONTENT_GENERATOR`
names either `module:callable` (`shared.domain.content.load_generator`) or `openai`, which builds a
`ModelGenerator` from `ModelSettings`, checking everything it can before the first job (the
model is set, the prompts file parses). The SDK is imported only then, so processes that never
generate do not pay for it.

Modules: `settings` (the section), `prompts` (templates, built-in and from a file), `faults`
(the pure reading of answers and retry rules), `limiter` (the deployment-wide in-flight cap in
Redis), `generator` (the requests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.config.model import OPENAI, ModelSettings, Secret
from shared.domain.content import ContentGenerator, load_generator

if TYPE_CHECKING:  # shared.config.settings reads ModelSettings from here
    from shared.config.settings import Settings

__all__ = ["OPENAI", "ModelSettings", "Secret", "select_generator"]


def select_generator(settings: Settings) -> ContentGenerator:
    """The generator the settings name; ConfigurationError (one line) when it cannot be had."""
    spec = settings.worker.content_generator
    if spec != OPENAI:
        return load_generator(spec)
    from shared.adapters.openai.generator import ModelGenerator
    from shared.adapters.openai.prompts import load_prompts

    model = settings.model
    generator = ModelGenerator(model, settings.redis.url, load_prompts(model.prompts))
    return generator.generate
