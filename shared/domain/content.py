"""The content generator seam (docs/protocol.md §9) and the built-in generator.

A deployment names its generator with `TASKRELAY_CONTENT_GENERATOR=module:callable`; the worker
calls it once per content item with a `ContentRequest`. It may be a plain or a coroutine
function; it returns a `str` or a JSON-able `dict`, and raising marks that item failed. The
built-in `placeholder_generator` writes real markdown for each content type and never fails,
so a fresh install shows the whole pipeline working before any model is wired in.

A generator that knows what its content cost (the built-in `openai` one, `shared.adapters.openai`)
returns a `Generated`: the content with the provider's token usage, which the job stores
with the item.
A plain `str` or `dict` stays plain content, whatever keys the dict has.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class ContentRequest:
    """What the generator is told about the one item it is asked to produce."""

    task_id: str
    roadmap_id: str
    concept_id: str
    concept_title: str
    content_type: str
    attempt: int
    """1 on the first try of this item, 2 on the second, and so on."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one item's generation cost, as the provider reported them."""

    prompt_tokens: int
    completion_tokens: int

    def as_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


@dataclass(frozen=True, slots=True)
class Generated:
    """Content with what it cost: the item stores both (protocol §9, the item view's `usage`)."""

    content: str | dict[str, Any]
    usage: Usage | None = None


ContentGenerator = Callable[[ContentRequest], "str | dict[str, Any] | Awaitable[Any]"]


def load_generator(spec: str) -> ContentGenerator:
    """Import `module:callable`; a ConfigurationError says what is wrong with the name."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(
            f"TASKRELAY_CONTENT_GENERATOR must be module:callable, got {spec!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import content generator module {module_name!r}: {exc}"
        ) from exc
    generator = getattr(module, attribute, None)
    if not callable(generator):
        raise ConfigurationError(f"{spec!r} does not name a callable in {module_name!r}")
    return generator  # type: ignore[no-any-return]


def placeholder_generator(request: ContentRequest) -> str:
    """Markdown for one item, shaped like the real thing for its content type."""
    title = request.concept_title or request.concept_id
    write = _WRITERS.get(request.content_type, _generic)
    return write(title, request)


def _tutorial(title: str, request: ContentRequest) -> str:
    return (
        f"# {title}\n\n"
        f"## Why it matters\n\n{title} is a step on the roadmap `{request.roadmap_id}`. "
        "This placeholder stands where a generated tutorial will be.\n\n"
        f"## Key ideas\n\n1. What {title} is.\n2. When to use it.\n3. Common mistakes.\n\n"
        f"## Try it\n\nWrite a short example that uses {title}, then explain each line.\n"
    )


def _resources(title: str, _: ContentRequest) -> str:
    return (
        f"# Resources: {title}\n\n"
        f"- **Reference**: the official documentation of {title}.\n"
        f"- **Guide**: an introductory article that walks through {title} step by step.\n"
        f"- **Practice**: exercises that apply {title} to a small project.\n"
    )


def _quiz(title: str, _: ContentRequest) -> str:
    return (
        f"# Quiz: {title}\n\n"
        f"1. In one sentence, what problem does {title} solve?\n"
        f"2. Name a situation where {title} is the wrong tool, and why.\n"
        f"3. True or false: {title} can be learned without practice. Explain.\n"
    )


def _generic(title: str, request: ContentRequest) -> str:
    return f"# {title}\n\nPlaceholder {request.content_type} content for {title}.\n"


_WRITERS: dict[str, Callable[[str, ContentRequest], str]] = {
    "tutorial": _tutorial,
    "resources": _resources,
    "quiz": _quiz,
}
