"""The relay's loops: lead or stand by, drain the outbox in batches, keep the broker link.

One loop owns the dedicated session (leadership, claims, marks) so its queries never overlap;
the broker link, the backlog figures and the cleanup each have a loop of their own. A lost
dependency is logged once, shown on /health with its reason, and reconnected with backoff; nothing
is charged to the rows for an outage. On stop, the batch in flight is finished and marked,
then the locks are released so a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from services.relay.housekeeping import Housekeeping
from services.relay.publisher import BatchOutcome, Publisher
from services.relay.session import OutboxSession
from services.relay.state import RelayMetrics, RelayState
from shared.adapters.postgres.outbox import OutboxRow
from shared.config.settings import RelaySettings
from shared.domain.backoff import Backoff, backoff_delay
from shared.errors import DependencyUnavailable
from shared.observability.logging import bound_context, get_logger
from shared.observability.tracing import trace_id_of

log = get_logger(__name__)

STANDBY_POLL_SECONDS = 0.5
"""How often a standby tries the leadership locks: takeover well within 5 s of a death."""
STATS_INTERVAL_SECONDS = 1.0


class Relay:
    def __init__(
        self,
        settings: RelaySettings,
        session: OutboxSession,
        publisher: Publisher,
        housekeeping: Housekeeping,
        state: RelayState,
        metrics: RelayMetrics,
        wake: asyncio.Event,
    ) -> None:
        self._settings = settings
        self._session = session
        self._publisher = publisher
        self._housekeeping = housekeeping
        self._state = state
        self._metrics = metrics
        self._wake = wake
        """Set by NOTIFY on the session: a commit wrote outbox rows."""
        self._db_errors: dict[str, str | None] = {"session": None, "stats": None}
        self._broker_ready = asyncio.Event()
        self._in_flight: _Batch | None = None
        self._passed_over = False
        """Whether the last claim skipped the tasks of a batch in flight (their later rows
        may be due without a NOTIFY to say so)."""

    async def run(self, stopping: asyncio.Event) -> None:
        """Run until `stopping` is set; returns once leadership is released."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._broker_loop(stopping))
                group.create_task(self._stats_loop(stopping))
                group.create_task(self._cleanup_loop(stopping))
                group.create_task(self._wake_on_stop(stopping))
                await self._session_loop(stopping)
        finally:
            await self._session.close()
            self._state.owned = frozenset()
            await self._publisher.close()
            await self._housekeeping.close()
            log.info("relay_stopped", published_total=self._state.published_total)

    # --- leadership and batches -------------------------------------------------------------

    async def _session_loop(self, stopping: asyncio.Event) -> None:
        backoff = Backoff()
        while not stopping.is_set():
            try:
                if not self._session.connected:
                    await self._session.connect()
                    self._database_ok("session")
                    backoff.reset()
                await self._step(stopping)
            except DependencyUnavailable as exc:
                self._state.owned = self._session.owned
                self._database_down("session", exc)
                await self._abandon_in_flight()
                await _sleep(stopping, backoff.next())
        try:
            await self._settle_in_flight()  # SIGTERM: finish the batch in flight
        except DependencyUnavailable as exc:
            self._database_down("session", exc)

    async def _step(self, stopping: asyncio.Event) -> None:
        before = self._state.owned
        owned = self._state.owned = await self._session.acquire()
        if owned != before:
            log.info("relay_role", role=self._state.role, partitions=sorted(owned))
        if not owned or not self._publisher.connected:
            await self._settle_in_flight()
            if not owned:
                await _sleep(stopping, STANDBY_POLL_SECONDS)
            else:
                await self._session.probe()
                await _wait_any(stopping, self._broker_ready, within=0.5)
            return
        if self._in_flight is not None and len(self._in_flight.rows) < self._settings.batch_size:
            # The last claim took every due row (live traffic, or a backlog's tail): no
            # backlog to overlap with, so settle it before claiming, and the claim skips no task.
            await self._settle_in_flight()
            if not self._wake.is_set() and not self._passed_over and owned == before:
                # No commit has been notified since that claim, which passed over no task and
                # no partition gained since: a claim now would come back empty (under live
                # traffic, one empty claim per row). Wait for the next NOTIFY, or the poll.
                await self._wait_for_commit(stopping)
                return
        # Pipelined behind a full batch: claim and send the next one while the previous awaits
        # its confirms. A task never has rows in two batches in flight, so its order never
        # depends on them.
        self._wake.clear()
        busy = self._in_flight.task_ids if self._in_flight else []
        rows = await self._session.claim(self._settings.batch_size, busy)
        self._passed_over = bool(busy)
        previous = self._in_flight
        self._in_flight = _Batch(rows, self._publisher.publish(rows)) if rows else None
        await self._settle(previous)
        # An empty claim behind a batch in flight skipped that batch's tasks, whose later rows
        # may be due now that it is marked: claim again at once. No NOTIFY announces a backlog.
        if not rows and previous is None:
            await self._wait_for_commit(stopping)

    async def _wait_for_commit(self, stopping: asyncio.Event) -> None:
        """Until a NOTIFY wakes the relay, or the poll interval passes, or it is asked to stop
        (which wakes it too). Once a live row, so one future and one timer, not two tasks."""
        if stopping.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.poll_interval_seconds):
                await self._wake.wait()

    async def _wake_on_stop(self, stopping: asyncio.Event) -> None:
        await stopping.wait()
        self._wake.set()

    async def _settle_in_flight(self) -> None:
        batch, self._in_flight = self._in_flight, None
        await self._settle(batch)

    async def _settle(self, batch: _Batch | None) -> None:
        """Wait for a batch's confirms, mark what was confirmed, schedule what failed."""
        if batch is None:
            return
        rows, outcome = batch.rows, await batch.outcome
        done = outcome.confirmed + outcome.unroutable
        marked = await self._session.mark_published(done)
        committed = {row.id: row.committed_at for row in rows}
        for row_id in marked:
            seconds = outcome.confirmed_at.get(row_id, 0.0) - committed[row_id]
            self._metrics.latency.observe(max(0.0, seconds))
        self._count(rows, outcome, len(marked))
        await self._session.mark_failed(
            [self._failure(row, error) for row, error in outcome.failed]
        )
        if outcome.lost:
            self._metrics.failed.labels("connection").inc(len(rows) - len(done))

    async def _abandon_in_flight(self) -> None:
        """The session is gone: whatever was sent will be published again by the next owner."""
        batch, self._in_flight = self._in_flight, None
        if batch is not None:
            await batch.outcome

    def _count(self, rows: list[OutboxRow], outcome: BatchOutcome, marked: int) -> None:
        kinds = {row.id: row.kind for row in rows}
        for row_id in outcome.confirmed:
            self._metrics.published.labels(kinds[row_id]).inc()
        self._metrics.unroutable.inc(len(outcome.unroutable))
        self._state.published(marked)

    def _failure(self, row: OutboxRow, error: str) -> tuple[int, str, float | None]:
        attempt = row.attempts + 1
        parked = attempt >= self._settings.max_attempts
        delay = None if parked else self._next_attempt_delay(attempt)
        self._metrics.failed.labels("row").inc()
        names = {"task_id": str(row.task_id), "message_id": str(row.message_id)}
        if trace_id := trace_id_of(row.traceparent):
            names["trace_id"] = trace_id
        with bound_context(**names):
            if parked:
                log.error("outbox_row_parked", attempts=attempt, error=error)
            else:
                log.warning("outbox_row_failed", attempts=attempt, error=error, retry_in=delay)
        return row.id, error, delay

    def _next_attempt_delay(self, attempt: int) -> float:
        """How long a failed row waits before its next attempt (`next_attempt_at`)."""
        s = self._settings
        return backoff_delay(attempt, s.backoff_base_seconds, s.backoff_max_seconds)

    # --- the broker link --------------------------------------------------------------------

    async def _broker_loop(self, stopping: asyncio.Event) -> None:
        backoff = Backoff()
        while not stopping.is_set():
            try:
                await self._publisher.connect()
            except DependencyUnavailable as exc:
                self._broker_down(exc.reason)
                await _sleep(stopping, backoff.next())
                continue
            backoff.reset()
            if self._state.broker_error:
                log.info("broker_up", url=self._publisher.where())
            self._state.broker_error = None
            self._broker_ready.set()
            await _wait_any(stopping, self._publisher.lost)
            self._broker_ready.clear()
            if not stopping.is_set():
                self._broker_down("the connection to RabbitMQ was lost")

    def _broker_down(self, reason: str) -> None:
        if self._state.broker_error != reason:
            log.warning("broker_down", url=self._publisher.where(), reason=reason)
        self._state.broker_error = reason

    # --- figures and cleanup ----------------------------------------------------------------

    async def _stats_loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                backlog = await self._housekeeping.backlog()
            except DependencyUnavailable as exc:
                self._database_down("stats", exc)
            else:
                self._database_ok("stats")
                self._state.backlog = backlog.pending
                self._state.oldest_pending_age = backlog.oldest_age_seconds
                self._state.parked = backlog.parked
            self._state.export(self._metrics)
            await _sleep(stopping, STATS_INTERVAL_SECONDS)

    async def _cleanup_loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await _sleep(stopping, self._settings.cleanup_interval_seconds)
            if stopping.is_set() or 0 not in self._state.owned:
                continue  # the owner of partition 0 cleans up for everyone
            try:
                rows, records = await self._housekeeping.cleanup(stopping)
            except DependencyUnavailable as exc:
                self._database_down("stats", exc)
                continue
            if rows or records:
                log.info("outbox_cleaned", rows=rows, idempotency_records=records)

    def _database_down(self, source: str, exc: DependencyUnavailable) -> None:
        if self._db_errors[source] != exc.reason:
            log.warning("database_down", source=source, url=exc.url, reason=exc.reason)
        self._db_errors[source] = exc.reason
        self._state.database_error = self._db_errors["session"] or self._db_errors["stats"]

    def _database_ok(self, source: str) -> None:
        if self._db_errors[source]:
            log.info("database_up", source=source)
        self._db_errors[source] = None
        self._state.database_error = self._db_errors["session"] or self._db_errors["stats"]


class _Batch:
    """A batch whose frames are on their way; `outcome` resolves when every confirm is in."""

    def __init__(self, rows: list[OutboxRow], publishing: Coroutine[Any, Any, BatchOutcome]):
        self.rows = rows
        self.task_ids = sorted({row.task_id for row in rows})
        self.outcome: asyncio.Future[BatchOutcome] = asyncio.ensure_future(publishing)


async def _sleep(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when the relay is asked to stop."""
    await _wait_any(stopping, within=seconds)


async def _wait_any(*events: asyncio.Event, within: float | None = None) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
