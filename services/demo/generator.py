"""The content generator `taskrelay run` (and compose) give their workers by default.

For every task but the demo's it is the built-in placeholder generator, unchanged. For the
demo's roadmap it paces items (so progress is visible) and fails the first attempt of
concepts whose id starts with `flaky-`, which is exactly the seed story: a task that ends
`partial_failure`, then a retry that completes it.
"""

from __future__ import annotations

import asyncio

from shared.domain.content import ContentRequest, placeholder_generator

DEMO_ROADMAP = "taskrelay-demo"
FLAKY_PREFIX = "flaky-"
PACE_SECONDS = 0.15


async def demo_generator(request: ContentRequest) -> str:
    if request.roadmap_id == DEMO_ROADMAP:
        await asyncio.sleep(PACE_SECONDS)
        if request.concept_id.startswith(FLAKY_PREFIX) and request.attempt == 1:
            raise RuntimeError(f"demo: {request.concept_title!r} fails on its first attempt")
    return placeholder_generator(request)


def demo_concepts() -> list[tuple[str, str]]:
    """The seed's numbers: 21 concepts, the 10 at odd positions flaky."""
    return [
        (f"{FLAKY_PREFIX if i % 2 else 'concept-'}{i:02d}", f"Concept {i + 1}") for i in range(21)
    ]
