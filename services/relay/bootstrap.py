"""`bootstrap()`: the relay process's one composition root, and `serve()`, which runs it.

Everything is built from the settings here, inside the running event loop; nothing connects
at import. Start-up checks both dependencies once (PostgreSQL through the process's `Probes`,
RabbitMQ by connecting the publisher), so a relay pointed at nothing exits with one line instead
of retrying forever; after that, outages are survived, not fatal.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from datetime import timedelta

from services.relay.health import HealthServer
from services.relay.housekeeping import Housekeeping
from services.relay.partitions import PartitionScheme
from services.relay.publisher import Publisher
from services.relay.relay import Relay
from services.relay.session import OutboxSession
from services.relay.state import RelayMetrics, RelayState
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.probes import Probes
from shared.config.settings import Settings
from shared.errors import ConfigurationError
from shared.observability.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RelayProcess:
    relay: Relay
    health: HealthServer
    publisher: Publisher
    state: RelayState
    probes: Probes


def bootstrap(settings: Settings, health_port: int) -> RelayProcess:
    """Wire the relay from settings; call inside the event loop that will run it."""
    relay_settings = settings.relay
    scheme = PartitionScheme(relay_settings.partitions, relay_settings.max_partitions)
    wake = asyncio.Event()
    state = RelayState(lag_alert_seconds=relay_settings.lag_alert_seconds, partitions=scheme.count)
    metrics = RelayMetrics()
    session = OutboxSession(settings.database.asyncpg_dsn, scheme, wake.set)
    publisher = Publisher(
        settings.broker.url,
        timeout=relay_settings.publish_timeout_seconds,
        max_message_bytes=relay_settings.max_message_bytes,
        heartbeat=relay_settings.broker_heartbeat_seconds,
    )
    housekeeping = Housekeeping(
        UnitOfWorkFactory(settings.database, pool_size=1),  # the figures' and cleanup's 2
        retention_seconds=relay_settings.retention_seconds,
        idempotency_ttl=timedelta(seconds=settings.api.idempotency_ttl_seconds),
        batch_size=relay_settings.cleanup_batch_size,
    )
    relay = Relay(relay_settings, session, publisher, housekeeping, state, metrics, wake)
    return RelayProcess(
        relay,
        HealthServer(state, metrics, relay_settings.health_host, health_port),
        publisher,
        state,
        Probes(settings),
    )


async def _refuse_mixed_partition_counts(settings: Settings) -> None:
    scheme = PartitionScheme(settings.relay.partitions)
    session = OutboxSession(settings.database.asyncpg_dsn, scheme, lambda: None)
    await session.connect()
    try:
        others = await session.other_partition_counts()
    finally:
        await session.close()
    if others:
        raise ConfigurationError(
            f"TASKRELAY_RELAY_PARTITIONS={scheme.count}, but running relays use "
            f"{', '.join(map(str, others))}: every relay of a deployment needs the same count"
        )


async def serve(settings: Settings, health_port: int) -> int:
    """Run one relay until SIGTERM or SIGINT; 0 after a clean stop."""
    process = bootstrap(settings, health_port)
    await process.probes.start_up()
    await _refuse_mixed_partition_counts(settings)
    await process.publisher.connect()  # fail fast, with one line, if RabbitMQ is not there
    await process.publisher.close()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await process.health.start()
    log.info(
        "relay_started",
        health=f"http://{settings.relay.health_host}:{health_port}/health",
        partitions=process.state.partitions,
    )
    try:
        await process.relay.run(stopping)
    finally:
        await process.health.stop()
    return 0
