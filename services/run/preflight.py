"""Before `taskrelay run` starts anything: can PostgreSQL, RabbitMQ and Redis be reached?

The checks are every process's own (`shared.adapters.probes.Probes`); PostgreSQL's asks the
maintenance database, as `migrate` has yet to create the configured one. Each failure names the
service, the URL it tried (without password) and how to start it, so a newcomer's first error
is also its fix.
"""

from __future__ import annotations

from shared.adapters.probes import Probes
from shared.adapters.unavailable import POSTGRES, RABBITMQ, REDIS
from shared.config.settings import Settings


async def check_all(settings: Settings) -> None:
    """Raise DependencyUnavailable for the first service that does not answer."""
    await Probes(settings, (POSTGRES, RABBITMQ, REDIS), schema=None).start_up()
