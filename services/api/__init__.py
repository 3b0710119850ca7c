"""The HTTP API, the WebSocket gateway and the task page, composed by `create_app()`."""

from services.api.app import create_app

__all__ = ["create_app"]
