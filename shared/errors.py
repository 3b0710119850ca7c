"""The one error tree of taskrelay.

    TaskRelayError
    ├── ConfigurationError     a setting is missing or malformed (process exits, one line)
    ├── DependencyUnavailable  PostgreSQL, RabbitMQ or Redis cannot be reached
    ├── GenerationFailed       a built-in generator gave up on one item (its text is the error)
    └── DomainError            a request the domain refuses; the API maps each to HTTP once
        ├── NotFound           404: no such task, or not the caller's
        ├── Conflict           409: the task's state does not allow it
        │   └── TransitionRefused   the state machine has no such transition
        ├── IdempotencyConflict     409: the same key is still being processed
        ├── IdempotencyMismatch     422: the same key with a different request
        ├── Unauthorized       401: no token, or a bad or expired one
        └── InvalidInput       400: well-formed but unacceptable input

Lower-level exceptions (asyncpg, aio-pika, redis) are translated at the adapter that sees them.
"""

from __future__ import annotations


class TaskRelayError(Exception):
    """Base of every error taskrelay raises on purpose."""


class ConfigurationError(TaskRelayError):
    """A setting is missing or malformed."""


class DependencyUnavailable(TaskRelayError):
    """A service taskrelay needs cannot be reached."""

    def __init__(self, service: str, url: str, reason: str, hint: str = "") -> None:
        self.service, self.url, self.reason, self.hint = service, url, reason, hint
        text = f"{service} is unreachable at {url}: {reason}"
        super().__init__(f"{text}. {hint}" if hint else text)


class GenerationFailed(TaskRelayError):
    """A built-in generator gave up on one item: the model kept failing, refused the request
    or answered something unusable. The job fails that item with this text, never the job."""


class DomainError(TaskRelayError):
    """A request the domain refuses."""

    status_code = 400

    @property
    def detail(self) -> str:
        return str(self)


class InvalidInput(DomainError):
    status_code = 400


class Unauthorized(DomainError):
    status_code = 401


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class TooMuchOpenWork(DomainError):
    """The user's unfinished tasks already hold their limit of items (docs/protocol.md §3)."""

    status_code = 429


class TransitionRefused(Conflict):
    """The state machine has no transition from the task's status to the one asked for."""

    def __init__(self, current: str, target: str, reason: str = "") -> None:
        self.current, self.target = current, target
        super().__init__(reason or f"a task cannot go from {current} to {target}")


class IdempotencyConflict(Conflict):
    """A request with the same Idempotency-Key is still running."""


class IdempotencyMismatch(DomainError):
    """The Idempotency-Key was used before with a different request."""

    status_code = 422
