"""How every process speaks of PostgreSQL, RabbitMQ and Redis when one cannot be reached:
which service, at which URL (never with its password), and the command that starts it.

The start commands are the ones `.ci/run` uses on a machine where a service is down.
"""

from __future__ import annotations

from shared.errors import DependencyUnavailable
from shared.observability.redaction import redact_url, scrub

POSTGRES = "PostgreSQL"
RABBITMQ = "RabbitMQ"
REDIS = "Redis"

START = {
    POSTGRES: "Start it with: pg_ctlcluster --skip-systemctl-redirect "
    "$(ls /etc/postgresql) main start",
    RABBITMQ: "Start it with: rabbitmq-server -detached",
    REDIS: "Start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 "
    '--save ""',
}


def redact(url: str) -> str:
    """The URL with its password (userinfo or `?password=`) replaced by ***, for messages."""
    return redact_url(url)


def unavailable(service: str, url: str, cause: BaseException | str) -> DependencyUnavailable:
    """The error a process raises (and prints in one line) when `service` does not answer."""
    reason = cause if isinstance(cause, str) else (str(cause) or type(cause).__name__)
    reason = scrub(reason, url)  # a driver may quote the URL it was given
    return DependencyUnavailable(service, redact(url), reason, START[service])
