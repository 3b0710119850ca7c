"""The `Idempotency-Key` header of the POST routes (docs/protocol.md §6): read, and documented.

It is read from the request's raw headers (`idempotency_key`) and put in each POST route's
OpenAPI operation by hand (`KeyedOperation`), not declared as a Litestar header parameter: a
declared one makes Litestar parse every header of the request into a multidict and validate
it through the handler's signature model, ~4 us of the API's CPU for each POST (measured
in-process), for one optional header. The rules are the same: at most 255 characters, or 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.enums import ParamType
from litestar.openapi.spec import OpenAPIType, Operation, Parameter, Schema

from shared.errors import InvalidInput

HEADER = "Idempotency-Key"
MAX_CHARS = 255
_RAW_NAME = HEADER.lower().encode("latin-1")
_MEANING = "Repeat a POST safely: the same key returns the first response."


def idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    """The request's key (the first, if it was sent twice), None without one; a key longer
    than MAX_CHARS is a 400."""
    for name, value in request.scope["headers"]:
        if name == _RAW_NAME:
            key = value.decode("latin-1")
            if len(key) > MAX_CHARS:
                raise InvalidInput(f"{HEADER} must be at most {MAX_CHARS} characters")
            return key
    return None


PARAMETER = Parameter(
    name=HEADER,
    param_in=ParamType.HEADER,
    required=False,
    description=_MEANING,
    schema=Schema(
        one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)],
        max_length=MAX_CHARS,
        description=_MEANING,
    ),
)


@dataclass
class KeyedOperation(Operation):
    """The OpenAPI operation of a POST route: its parameters and the `Idempotency-Key`."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), PARAMETER]
