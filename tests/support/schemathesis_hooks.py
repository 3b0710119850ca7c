"""Schemathesis hooks: hostile bodies beside those the schema describes.

`tests/e2e/test_schema.py` loads this module with `SCHEMATHESIS_HOOKS`. Every generated body may
instead be JSON nested far past 32 levels (arrays and objects, up to the depths that broke the
decoder), a JSON body with bytes that are not UTF-8 inside its strings, or byte-level garbage;
each is sent as is with `Content-Type: application/json`, and none may get a 5xx.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import strategies as st

_VALID_TAIL = b'", "concepts": [{"concept_id": "c1", "title": "One"}]}'

HOSTILE_BODIES = st.one_of(
    st.integers(33, 200_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(33, 20_000).map(lambda n: b'{"a":' * n + b"0" + b"}" * n),
    st.binary(min_size=1, max_size=64).map(lambda raw: b'{"roadmap_id": "' + raw + _VALID_TAIL),
    st.binary(min_size=1, max_size=4096),
)


@schemathesis.hook
def before_generate_body(context: Any, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, HOSTILE_BODIES)
