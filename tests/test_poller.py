"""The shared poller against the fake API: resolution, politeness, faults, shutdown."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from ketchup_async import (
    AuthenticationError,
    CallbackPayload,
    ClientClosedError,
    ImageResult,
    KetchupClient,
    PollPolicy,
    TaskFailedError,
    TaskNotFoundError,
    TaskStatus,
)
from ketchup_async._pacer import _limiter
from ketchup_async.errors import EndpointNotFoundError
from ketchup_async.testing import FakeKetchupServer, Faults

from .conftest import API_KEY, SCALE, make_client

pytestmark = pytest.mark.anyio


async def test_two_thousand_jobs_each_get_their_own_result(server: FakeKetchupServer) -> None:
    """2,000 concurrent jobs all resolve, each with its own task's result."""
    async with make_client(server) as client:
        prompts = [f"prompt number {i}" for i in range(2000)]
        outcomes = [o async for o in client.generate_many(prompts, concurrency=2000)]
    assert len(outcomes) == 2000
    assert sorted(o.index for o in outcomes) == list(range(2000))
    for outcome in outcomes:
        assert outcome.ok
        assert outcome.result is not None
        assert outcome.request is not None
        assert outcome.result.task_id == outcome.task_id
        assert server.tasks[outcome.task_id].prompt == outcome.request.prompt
        assert outcome.task_id in (outcome.result.images[0].url or "")


async def test_failed_task_raises_with_server_reason(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """A task that ends failed raises TaskFailedError carrying the server's reason."""
    job = await client.submit("doomed")
    server.complete_now(job.task_id, "failed", reason="content policy violation")
    with pytest.raises(TaskFailedError) as exc:
        await job
    assert exc.value.task_id == job.task_id
    assert exc.value.reason == "content policy violation"
    assert job.status is TaskStatus.FAILED


async def test_no_task_polled_within_min_interval(server: FakeKetchupServer) -> None:
    """The fake sees no two queries of one task closer than min_interval."""
    policy = PollPolicy(
        min_interval=0.03, max_interval=0.05, rate=2000, expected_duration=0.01, backoff=1.0
    )
    async with make_client(server, polling=policy) as client:
        outcomes = [o async for o in client.generate_many([f"p{i}" for i in range(200)])]
    assert all(o.ok for o in outcomes)
    assert max(server.stats.polls.values()) >= 2  # the floor was actually exercised
    gap = server.stats.min_poll_gap_all()
    assert gap is not None
    assert gap >= 0.03


async def test_query_rate_stays_within_budget(server: FakeKetchupServer) -> None:
    """Over any window, the client's queries never exceed PollPolicy.rate (plus one)."""
    rate = 150.0
    policy = PollPolicy(min_interval=0.01, max_interval=0.02, rate=rate, expected_duration=0.01)
    async with make_client(server, polling=policy) as client:
        jobs = [await client.submit(f"p{i}") for i in range(60)]
        await asyncio.gather(*jobs)
    times = sorted(server.stats.query_times)
    assert len(times) >= 60
    window = 0.2
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t - start < window)
        assert in_window <= rate * window + 2


async def test_query_budget_is_spent_a_tick_at_a_time() -> None:
    """The limiter holds a schedule tick's worth of queries (at least one), at the budget."""
    fast = _limiter(4000.0, 0.01)  # one query per timer wake-up would cap it near 900/s
    assert fast.max_rate == pytest.approx(40.0)
    assert fast.max_rate / fast.time_period == pytest.approx(4000.0)
    slow = _limiter(10.0, 0.1)
    assert slow.max_rate == 1.0
    assert slow.time_period == pytest.approx(0.1)


async def test_poller_slows_down_when_rate_limited() -> None:
    """Against a server allowing fewer queries than the budget, 429s stay rare."""
    async with FakeKetchupServer(
        api_keys=(API_KEY,), time_scale=SCALE, seed=3, query_rate_limit=3.0, retry_after=1.0
    ) as server:
        policy = PollPolicy(min_interval=0.01, max_interval=0.05, rate=2000, expected_duration=0.02)
        async with make_client(server, polling=policy) as client:
            outcomes = [o async for o in client.generate_many([f"p{i}" for i in range(150)])]
            final_rate = client.stats().query_budget or 0.0
        assert all(o.ok for o in outcomes)
        queries = sum(server.stats.polls.values())
        assert server.stats.rate_limited < queries * 0.25
        assert final_rate < 2000


async def test_large_budget_meets_a_small_limit_in_one_storm() -> None:
    """A budget 200x the server's limit: one storm of 429s, not one per halving."""
    scale = 0.02
    async with FakeKetchupServer(
        api_keys=(API_KEY,), time_scale=scale, seed=3, query_rate_limit=10.0, retry_after=1.0
    ) as server:
        policy = PollPolicy(rate=2000.0).scaled(scale)
        async with make_client(server, polling=policy) as client:
            prompts = [f"p{i}" for i in range(300)]
            outcomes = [o async for o in client.generate_many(prompts, concurrency=300)]
        assert all(o.ok for o in outcomes)
        # Halving alone took ~8 storms of up to max_in_flight 429s each (about 100 in all).
        assert server.stats.rate_limited <= policy.max_in_flight + 16


async def test_transient_faults_never_fail_a_job() -> None:
    """With 10% 500s, HTML 502s and resets on queries, every job still resolves."""
    faults = Faults(error_500=0.1, html_502=0.1, reset=0.1)
    async with FakeKetchupServer(
        api_keys=(API_KEY,), time_scale=SCALE, seed=5, query_faults=faults
    ) as server:
        async with make_client(server) as client:
            outcomes = [o async for o in client.generate_many([f"p{i}" for i in range(300)])]
        assert all(o.ok for o in outcomes)
        assert sum(server.stats.faults_injected.values()) > 30


async def test_track_resolves_a_task_submitted_elsewhere(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """track() attaches the poller to another client's task and resolves it."""
    task_id = server.create_task("from another process")
    job = client.track(task_id)
    server.complete_now(task_id)
    result = await job.wait(5)
    assert result.task_id == task_id
    assert result.images


async def test_track_twice_returns_the_same_job(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """Tracking an already tracked task id returns its existing job."""
    task_id = server.create_task("x")
    assert client.track(task_id) is client.track(task_id)


async def test_deliver_resolves_before_any_poll(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """deliver() resolves a job at once; the poller never queried it."""
    job = await client.submit("pushed")
    payload = CallbackPayload(
        job.task_id, TaskStatus.SUCCESS, (ImageResult("https://cdn.test/x.png"),), Decimal("0.5")
    )
    assert client.deliver(payload) is True
    result = await job
    assert result.images[0].url == "https://cdn.test/x.png"
    assert server.stats.polls[job.task_id] == 0
    assert client.deliver(payload) is False  # a duplicate is harmless


async def test_deliver_unknown_id_is_harmless(client: KetchupClient) -> None:
    """deliver() of an unknown task id returns False and raises nothing."""
    assert client.deliver(CallbackPayload("ta-unknown", TaskStatus.FAILED)) is False


async def test_job_cancel_stops_tracking(client: KetchupClient, server: FakeKetchupServer) -> None:
    """Job.cancel() stops polling it; awaiters get CancelledError."""
    job = await client.submit("unwanted")
    waiter = asyncio.ensure_future(job.wait())
    await asyncio.sleep(0)
    assert job.cancel() is True
    with pytest.raises(asyncio.CancelledError):
        await waiter
    polls = server.stats.polls[job.task_id]
    await asyncio.sleep(server.tasks[job.task_id].render_seconds * SCALE * 3)
    assert server.stats.polls[job.task_id] == polls
    assert client.pending() == 0


async def test_cancelling_one_awaiter_keeps_the_job(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """Cancelling one awaiting task leaves the job tracked for the other awaiters."""
    job = await client.submit("shared")
    first = asyncio.ensure_future(job.wait())
    second = asyncio.ensure_future(job.wait())
    await asyncio.sleep(0)
    first.cancel()
    server.complete_now(job.task_id)
    result = await asyncio.wait_for(second, 5)
    assert result.task_id == job.task_id
    assert first.cancelled()


async def test_wait_timeout_keeps_tracking(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """wait(timeout) raises TimeoutError but the job keeps being tracked."""
    task_id = server.create_task("slow")
    job = client.track(task_id)
    with pytest.raises(asyncio.TimeoutError):
        await job.wait(0.01)
    server.complete_now(task_id)
    assert (await job.wait(5)).task_id == task_id


async def test_aclose_fails_pending_jobs(server: FakeKetchupServer) -> None:
    """aclose() with pending jobs fails them with ClientClosedError, promptly."""
    client = make_client(server)
    job = await client.submit("never finishes in time")
    client.track(server.create_task("another"))  # a pending job nobody awaits
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await job
    assert client.pending() == 0


async def test_revoked_key_fails_every_pending_job(server: FakeKetchupServer) -> None:
    """A 401 on a query fails all pending jobs with AuthenticationError; nothing hangs."""
    async with make_client(server) as client:
        jobs = [await client.submit(f"p{i}") for i in range(20)]
        server.revoke_key(API_KEY)
        results = await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), 5)
    assert all(isinstance(r, AuthenticationError) for r in results)


async def test_404_soon_after_submit_keeps_polling() -> None:
    """A task not visible yet (404 within the grace period) is polled again, then resolves."""
    async with FakeKetchupServer(
        api_keys=(API_KEY,), time_scale=SCALE, visibility_delay=15.0
    ) as server:
        async with make_client(server) as client:
            result = await (await client.submit("eventually consistent")).wait(5)
        assert result.images
        assert server.stats.requests[("query", 404)] >= 1


async def test_404_long_after_submit_fails_the_job(server: FakeKetchupServer) -> None:
    """A task still unknown after not_found_grace fails with TaskNotFoundError."""
    policy = PollPolicy().scaled(SCALE)
    async with make_client(server, polling=policy) as client:
        job = client.track("ta00000000-dead-beef")
        with pytest.raises(TaskNotFoundError):
            await job.wait(5)


async def test_wrong_base_url_path_is_a_configuration_error(server: FakeKetchupServer) -> None:
    """Non-API 404s on the first queries fail jobs with EndpointNotFoundError, not 'not found'."""
    async with make_client(server, base_url=f"{server.base_url}/v2") as client:
        job = client.track("ta00000000-dead-beef")
        with pytest.raises(EndpointNotFoundError, match="base URL looks wrong"):
            await job.wait(5)
