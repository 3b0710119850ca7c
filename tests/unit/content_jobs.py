"""What the `ContentJob` unit tests share: the job run as the worker runs it, on the fake unit
of work, with a heartbeat and generators of the tests' own.

The job is handed its heartbeat (`shared.service.lease_keeper.KeepLease`): here `Beat`, which
records the lease it keeps and lets a test say the lease was lost. A `Generator` can act on the
task while an item is generated (cancel it, take its lease back, cut the database), standing in
for whatever does that in a deployment.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID, uuid4

from shared.domain import JobDispatch, Notification
from shared.domain.content import ContentGenerator, ContentRequest
from shared.domain.records import Lease
from shared.service import NewTask, create_task
from shared.service.generation import ContentJob, JobOutcome, Pace
from tests.unit.fakes import FakeDatabase

OWNER = "alice"
HOLDER = "job-1"
ALONE = Pace(in_line=False)
"""A job on its own, outside any line of waiting tasks."""
IN_LINE = Pace(item_concurrency=1, slice_seconds=0.0)
"""A job in a deployment's line whose slice is over after its first item."""


class Beat:
    """The job's heartbeat: records the lease it keeps; a test sets `lost` as a renewal that
    found the lease taken back would."""

    def __init__(self) -> None:
        self.lost = False
        self.kept: list[Lease] = []
        self.stopped = False

    def __call__(self, lease: Lease, seconds: float) -> Beat:
        self.kept.append(lease)
        return self

    def stop(self) -> None:
        self.stopped = True


class Generator:
    """A coroutine generator that remembers its calls; `act` runs before the n-th call's
    answer (1 for the first), `fail` names the concepts it raises for."""

    def __init__(
        self,
        act: Callable[[int], Awaitable[None]] | None = None,
        fail: Sequence[str] = (),
    ) -> None:
        self.calls: list[ContentRequest] = []
        self._act = act
        self._fail = fail

    async def __call__(self, request: ContentRequest) -> str:
        self.calls.append(request)
        if self._act is not None:
            await self._act(len(self.calls))
        if request.concept_id in self._fail:
            raise RuntimeError(f"model refused {request.concept_id}")
        return f"# {request.concept_title}"


async def new_task(
    db: FakeDatabase, owner: str = OWNER, concepts: int = 3, *, taken: bool = True
) -> UUID:
    """A task made as the API makes it; with `taken`, its job message was taken by a worker
    (in the inbox, as the consumer records it before the job runs): it is in line."""
    new = NewTask("roadmap", [(f"c{i}", f"Concept {i}") for i in range(1, concepts + 1)], ["quiz"])
    async with db() as uow:
        task_id = (await create_task(uow, owner, new)).task_id
        if taken:
            await uow.inbox.record(uuid4(), task_id, HOLDER)
        await uow.commit()
    return task_id


async def run(
    db: FakeDatabase,
    task_id: UUID,
    generator: ContentGenerator,
    beat: Beat,
    *,
    pace: Pace = ALONE,
    holder: str = HOLDER,
    item_timeout: float = 5.0,
    should_stop: Callable[[], bool] = lambda: False,
    outage_patience: float = 600.0,
) -> JobOutcome:
    job = ContentJob(
        db,
        generator,
        keep_lease=beat,
        task_id=task_id,
        holder=holder,
        item_timeout=item_timeout,
        lease_seconds=30,
        should_stop=should_stop,
        outage_patience=outage_patience,
        pace=pace,
    )
    return await job.run()


def statuses(db: FakeDatabase, task_id: UUID) -> dict[str, str]:
    return {i.key.concept_id: i.status for i in db.state.items[task_id]}


def steps(db: FakeDatabase, task_id: UUID) -> list[str]:
    sent = [m for m in db.state.outbox if isinstance(m, Notification) and m.task_id == task_id]
    seqs = [n.seq for n in sent]
    assert seqs == list(range(1, len(sent) + 1))  # `seq` strictly rising, no gap
    return [n.step for n in sent]


def dispatches(db: FakeDatabase, task_id: UUID) -> list[str]:
    return [
        m.reason for m in db.state.outbox if isinstance(m, JobDispatch) and m.task_id == task_id
    ]
