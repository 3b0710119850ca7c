"""The outbox relay: publishes committed outbox rows to RabbitMQ, at least once, in order.

`taskrelay relay` runs `serve()`; `bootstrap()` is its composition root. See docs/relay.md.
"""

from services.relay.bootstrap import bootstrap, serve

__all__ = ["bootstrap", "serve"]
