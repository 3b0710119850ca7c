"""The JSON body a handler reads: UTF-8, and nested no deeper than 32 levels (docs/protocol.md §6).

Litestar decodes a body with msgspec only when the handler's `data` is extracted; msgspec
raises `RecursionError` past the interpreter's recursion limit (a body of 100,000 `[`) and
`UnicodeDecodeError` for a string that is not UTF-8, and both would reach the client as a 500.
`check_json_body` decodes the body first (the create route calls it once the caller is
authenticated, before its parameters are read), through the same cached `request.json()` so
it is decoded once, and turns both into a 400; it also refuses any nesting deeper than
`MAX_JSON_DEPTH`, which no request shape of this API comes near.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import Request
from litestar.exceptions import SerializationException

from shared.errors import InvalidInput

MAX_JSON_DEPTH = 32
TOO_DEEP = f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels"


async def check_json_body(request: Request[Any, Any, Any]) -> None:
    """Refuse a body that is not UTF-8 or is nested too deep, before the handler reads it."""
    try:
        value = await request.json()
    except RecursionError:
        raise InvalidInput(TOO_DEEP) from None
    except UnicodeDecodeError:
        raise InvalidInput("the body is not valid UTF-8") from None
    except SerializationException:
        return  # malformed JSON: Litestar answers its own 400 when it extracts `data`
    if deeper_than(value, MAX_JSON_DEPTH):
        raise InvalidInput(TOO_DEEP)


def deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (`[]` is one level).

    Iterative, so its own depth is no risk; it stops at the first container past the limit.
    """
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
