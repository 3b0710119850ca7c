"""The task routes of docs/protocol.md §6. Each handler commits before it answers.

A POST runs in one unit of work: claim its `Idempotency-Key` (if any), run the service, store
the response with the work, commit, and only then answer.

The `Idempotency-Key` header is read from the request's raw headers (`idempotency_key`) and
put in each POST route's OpenAPI operation by hand (`KeyedOperation`), not declared as a
Litestar header parameter: a declared one makes Litestar parse every header of the request
into a multidict and validate it through the handler's signature model, ~4 us of the API's
CPU for each POST (measured in-process), for one optional header. The rules are the same: at
most 255 characters, or 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol
from uuid import UUID

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.enums import ParamType
from litestar.openapi import spec
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from services.api.bodies import check_json_body
from services.api.http_errors import UNAVAILABLE
from services.api.schemas import (
    CreateTask,
    ErrorView,
    ItemDetailView,
    ItemsPage,
    ItemView,
    RetryView,
    TaskView,
)
from services.api.security import SECURITY, authenticate, caller
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import Settings
from shared.domain import CONTENT_TYPES
from shared.errors import InvalidInput
from shared.service import (
    NewTask,
    cancel_task,
    create_task,
    get_item,
    get_task_view,
    list_items,
    retry_task,
)
from shared.service.idempotency import claim, remember, request_fingerprint
from shared.service.items import DEFAULT_LIMIT, MAX_LIMIT
from shared.service.ports import AbstractUnitOfWork

ItemStatusFilter = Annotated[
    Literal["pending", "completed", "failed"] | None,
    Parameter(required=False, description="Only the items in this status."),
]
Limit = Annotated[
    int,
    Parameter(ge=1, le=MAX_LIMIT, description=f"Items per page, 1 to {MAX_LIMIT}."),
]
Cursor = Annotated[
    str | None,
    Parameter(
        required=False,
        max_length=200,
        description="The `next` of the previous page; a cursor this API did not issue is a 400.",
    ),
]
_MEANINGS = {
    400: "Bad input: a malformed body, parameter or header.",
    401: "No valid bearer token.",
    404: "No such task, or not yours.",
    409: "The task's status refuses it, or a request with this Idempotency-Key still runs.",
    413: "The body is too large.",
    415: "The body is not application/json.",
    422: "This Idempotency-Key was used for a different request.",
    429: "Too many requests from this client (retry after `Retry-After` seconds), or, for a "
    "create or retry, the user's unfinished tasks already hold their limit of items "
    "(`TASKRELAY_API_MAX_OPEN_ITEMS_PER_USER`).",
}


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """The OpenAPI answers for the error statuses a route can give, each with the error schema
    (503 included: every route here needs the database)."""
    specs = {
        code: ResponseSpec(ErrorView, description=_MEANINGS[code], generate_examples=False)
        for code in codes
    }
    return {**specs, **UNAVAILABLE}


READ_ERRORS = error_responses(400, 401, 404, 429)
WRITE_ERRORS = error_responses(400, 401, 404, 409, 413, 415, 422, 429)
CREATE_ERRORS = error_responses(400, 401, 409, 413, 415, 422, 429)
SEQ_HEADER = "X-Task-Seq"
"""The task's `seq` as of the page's read: item frames up to it are already in the page."""


class Answer(Protocol):
    """What a POST's service returns (`TaskView`, `RetryResult`): its JSON shape is `as_dict()`."""

    def as_dict(self) -> dict[str, Any]: ...


Work = Callable[[AbstractUnitOfWork], Awaitable[Answer]]


async def authenticate_with_body(request: Request[Any, Any, Any]) -> None:
    """The create route's `before_request`: the caller first, then the body's decoding."""
    await authenticate(request)
    await check_json_body(request)


KEY_HEADER = "Idempotency-Key"
KEY_MAX_CHARS = 255
_RAW_NAME = KEY_HEADER.lower().encode("latin-1")
_KEY_MEANING = "Repeat a POST safely: the same key returns the first response."


def idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    """The request's key (the first, if it was sent twice), None without one; a key longer
    than KEY_MAX_CHARS is a 400."""
    for name, value in request.scope["headers"]:
        if name == _RAW_NAME:
            key = value.decode("latin-1")
            if len(key) > KEY_MAX_CHARS:
                raise InvalidInput(f"{KEY_HEADER} must be at most {KEY_MAX_CHARS} characters")
            return key
    return None


KEY_PARAMETER = spec.Parameter(
    name=KEY_HEADER,
    param_in=ParamType.HEADER,
    required=False,
    description=_KEY_MEANING,
    schema=spec.Schema(
        one_of=[spec.Schema(type=spec.OpenAPIType.STRING), spec.Schema(type=spec.OpenAPIType.NULL)],
        max_length=KEY_MAX_CHARS,
        description=_KEY_MEANING,
    ),
)


@dataclass
class KeyedOperation(spec.Operation):
    """The OpenAPI operation of a POST route: its parameters and the `Idempotency-Key`."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), KEY_PARAMETER]


class TaskController(Controller):
    path = "/api/v1/tasks"
    # A bearer token on every route, and a JSON body (or none) on every POST: checked before
    # Litestar reads anything else of the request.
    before_request = staticmethod(authenticate)
    security = SECURITY
    tags = ["tasks"]  # noqa: RUF012

    @post(
        "/",
        status_code=201,
        before_request=authenticate_with_body,
        responses=CREATE_ERRORS,
        operation_class=KeyedOperation,
    )
    async def create(self, request: Request[Any, Any, Any], data: CreateTask) -> Response[TaskView]:
        """Create a task, its content items, and dispatch their generation."""
        user_id = caller(request)
        new = NewTask(
            roadmap_id=data.roadmap_id,
            concepts=[(c.concept_id, c.title) for c in data.concepts],
            content_types=list(data.content_types or CONTENT_TYPES),
        )
        return await _run(
            request,
            user_id,
            msgspec.json.encode(data),
            201,
            lambda uow: create_task(uow, user_id, new, max_open_items=_max_open_items(request)),
        )

    @get("/{task_id:uuid}", responses=READ_ERRORS)
    async def read(self, request: Request[Any, Any, Any], task_id: UUID) -> TaskView:
        """The task view."""
        user_id = caller(request)
        async with _uow_factory(request)() as uow:
            view = await get_task_view(uow, user_id, task_id)
        return msgspec.convert(view.as_dict(), TaskView)

    @get("/{task_id:uuid}/items", responses=READ_ERRORS)
    async def items(
        self,
        request: Request[Any, Any, Any],
        task_id: UUID,
        status: ItemStatusFilter = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Response[ItemsPage]:
        """The task's items in a stable order, a page at a time (`next` continues)."""
        user_id = caller(request)
        async with _uow_factory(request)() as uow:
            listing = await list_items(
                uow, user_id, task_id, status=status, limit=limit, cursor=cursor
            )
        page = ItemsPage(msgspec.convert(listing.items, list[ItemView]), listing.next)
        return Response(page, headers={SEQ_HEADER: str(listing.seq)})

    @get("/{task_id:uuid}/items/{concept_id:str}/{content_type:str}", responses=READ_ERRORS)
    async def item(
        self, request: Request[Any, Any, Any], task_id: UUID, concept_id: str, content_type: str
    ) -> ItemDetailView:
        """One item with its generated `content` and the provider's token `usage`."""
        user_id = caller(request)
        async with _uow_factory(request)() as uow:
            item = await get_item(uow, user_id, task_id, concept_id, content_type)
        return msgspec.convert(item, ItemDetailView)

    @post(
        "/{task_id:uuid}/cancel",
        status_code=200,
        responses=WRITE_ERRORS,
        operation_class=KeyedOperation,
    )
    async def cancel(self, request: Request[Any, Any, Any], task_id: UUID) -> Response[TaskView]:
        """Cancel a pending or processing task; the worker stops at the next item."""
        user_id = caller(request)
        return await _run(
            request, user_id, b"", 200, lambda uow: cancel_task(uow, user_id, task_id)
        )

    @post(
        "/{task_id:uuid}/retry",
        status_code=202,
        responses=WRITE_ERRORS,
        operation_class=KeyedOperation,
    )
    async def retry(self, request: Request[Any, Any, Any], task_id: UUID) -> Response[RetryView]:
        """Retry every item that is not completed; answered after the commit."""
        user_id = caller(request)
        limit = _max_open_items(request)
        return await _run(
            request,
            user_id,
            b"",
            202,
            lambda uow: retry_task(uow, user_id, task_id, max_open_items=limit),
        )


async def _run(
    request: Request[Any, Any, Any], user_id: str, body: bytes, status_code: int, work: Work
) -> Response[Any]:
    key = idempotency_key(request)
    async with _uow_factory(request)() as uow:  # its rows carry the request's trace context
        fingerprint = ""
        if key is not None:
            fingerprint = request_fingerprint(request.method, request.url.path, body)
            settings: Settings = request.app.state.settings
            ttl = settings.api.idempotency_ttl_seconds
            stored = await claim(uow, user_id, key, fingerprint, ttl)
            if stored is not None:
                replayed = {"Idempotent-Replayed": "true"}
                return Response(stored.body, status_code=stored.status_code, headers=replayed)
        content = (await work(uow)).as_dict()
        if key is not None:
            await remember(uow, user_id, key, fingerprint, status_code, content)
        await uow.commit()
    # Encoded here, once: the answer's JSON shape is plain data (dicts, lists, scalars).
    body = msgspec.json.encode(content)
    return Response(body, status_code=status_code, media_type=MediaType.JSON)


def _max_open_items(request: Request[Any, Any, Any]) -> int:
    settings: Settings = request.app.state.settings
    return settings.api.max_open_items_per_user


def _uow_factory(request: Request[Any, Any, Any]) -> UnitOfWorkFactory:
    uow_factory: UnitOfWorkFactory = request.app.state.uow_factory
    return uow_factory
