"""``Job.updates()``: live status for UIs, fed by the poller and webhooks, no extra query."""

from __future__ import annotations

import asyncio

import pytest

from ketchup_async import CallbackPayload, ImageResult, Job, KetchupClient, TaskStatus
from ketchup_async._jobs import StatusCell
from ketchup_async._models import GenerationResult
from ketchup_async.testing import FakeKetchupServer

pytestmark = pytest.mark.anyio


class _NoTracker:
    def untrack(self, job: Job) -> None:
        """Nothing to stop."""


def _job() -> tuple[Job, StatusCell, asyncio.Future[GenerationResult]]:
    future: asyncio.Future[GenerationResult] = asyncio.get_running_loop().create_future()
    cell = StatusCell()
    return Job("ta-1", None, future, _NoTracker(), cell), cell, future


async def _collect(job: Job) -> list[TaskStatus]:
    return [status async for status in job.updates()]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_every_consumer_gets_every_change() -> None:
    """Two consumers each get pending, submitted, in_progress, success, then the end."""
    job, cell, _ = _job()
    consumers = [asyncio.create_task(_collect(job)) for _ in range(2)]
    await _settle()
    for status in (TaskStatus.SUBMITTED, TaskStatus.IN_PROGRESS, TaskStatus.SUCCESS):
        cell.status = status
        await _settle()
    expected = [
        TaskStatus.PENDING,
        TaskStatus.SUBMITTED,
        TaskStatus.IN_PROGRESS,
        TaskStatus.SUCCESS,
    ]
    assert await asyncio.wait_for(asyncio.gather(*consumers), 1.0) == [expected, expected]


async def test_a_slow_consumer_keeps_only_the_latest() -> None:
    """A consumer that lags gets the latest status, not a backlog; the writer never waits."""
    job, cell, _ = _job()
    updates = job.updates()
    assert await anext(updates) is TaskStatus.PENDING
    for _ in range(1000):  # the writer is never blocked by a consumer that does not read
        cell.status = TaskStatus.SUBMITTED
        cell.status = TaskStatus.IN_PROGRESS
    assert await anext(updates) is TaskStatus.IN_PROGRESS
    cell.status = TaskStatus.FAILED
    assert [s async for s in updates] == [TaskStatus.FAILED]


async def test_updates_end_when_the_job_ends_without_a_final_status() -> None:
    """A cancelled job (or a closed client) ends the iteration instead of hanging."""
    job, _, future = _job()
    consumer = asyncio.create_task(_collect(job))
    await _settle()
    future.cancel()
    assert await asyncio.wait_for(consumer, 1.0) == [TaskStatus.PENDING]


async def test_a_finished_job_yields_its_final_status_once() -> None:
    """Following a job that is already final yields that status and ends."""
    job, cell, _ = _job()
    cell.status = TaskStatus.SUCCESS
    assert await _collect(job) == [TaskStatus.SUCCESS]


async def test_a_webhook_feeds_updates_without_a_query(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """A job resolved by its callback ends its updates with success; no query was sent."""
    job = await client.submit("pushed", callback_url="https://hooks.example.com/cb/x")
    consumer = asyncio.create_task(_collect(job))
    await _settle()
    image = (ImageResult("https://cdn.test/x.png"),)
    client.deliver(CallbackPayload(job.task_id, TaskStatus.SUCCESS, image))
    assert (await asyncio.wait_for(consumer, 5.0))[-1] is TaskStatus.SUCCESS
    assert server.stats.polls[job.task_id] == 0


async def test_the_poller_feeds_updates_at_no_extra_cost(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """Five consumers follow a polled job to success; the queries are the poller's alone."""
    job = await client.submit("polled")
    consumers = [asyncio.create_task(_collect(job)) for _ in range(5)]
    seen = await asyncio.wait_for(asyncio.gather(*consumers), 10.0)
    await job
    for statuses in seen:
        assert statuses[0] is TaskStatus.PENDING
        assert statuses[-1] is TaskStatus.SUCCESS
        assert len(statuses) == len(set(statuses))  # changes only, no repeats
    assert server.stats.polls[job.task_id] == client.queries_sent
