"""The poller's default (adaptive) query budget against the fake API, at the tests' time scale."""

from __future__ import annotations

import asyncio

import pytest

from ketchup_async import Job, KetchupClient, PollPolicy, RetryPolicy
from ketchup_async.testing import FakeKetchupServer

from .conftest import API_KEY, SCALE, make_client

pytestmark = pytest.mark.anyio


async def _resolved_at(job: Job) -> float:
    await job
    return asyncio.get_running_loop().time()  # the fake's clock: time.monotonic()


async def _submit_all(client: KetchupClient, count: int) -> list[Job]:
    return list(await asyncio.gather(*(client.submit(f"prompt {i}") for i in range(count))))


@pytest.mark.slow
async def test_six_hundred_jobs_at_once_get_a_budget_that_follows_demand() -> None:
    """600 jobs at once, default PollPolicy: the budget is one query per job per min_interval.

    (What that buys in lag is measured by ``make bench``, not here: a timed assertion would
    measure the machine. The old fixed 10 queries/s made 600 jobs wait 34 s.)
    """
    scale = 0.05
    policy = PollPolicy().scaled(scale)
    async with FakeKetchupServer(api_keys=(API_KEY,), time_scale=scale, seed=5) as server:
        async with make_client(server, polling=policy, retry=RetryPolicy().scaled(scale)) as client:
            jobs = await _submit_all(client, 600)
            await jobs[0]  # answered by a query the poller paced with hundreds pending
            budget = client.stats().query_budget
            results = await asyncio.gather(*jobs)
    assert len(results) == 600
    assert budget is not None
    # Demand is what the pending jobs can use: hundreds per min_interval, not a fixed 10/s.
    assert budget * policy.min_interval >= 100


async def test_default_budget_finds_a_query_limit_in_one_storm() -> None:
    """Against a 20 queries/s server, 600 jobs provoke at most one storm of 429s and all
    resolve."""
    async with FakeKetchupServer(
        api_keys=(API_KEY,), time_scale=SCALE, seed=5, query_rate_limit=20.0, retry_after=1.0
    ) as server:
        async with make_client(server) as client:
            jobs = await _submit_all(client, 600)
            results = await asyncio.gather(*jobs)
        assert len(results) == 600
        # One storm, bounded by the queries in flight (how many land depends on the machine's
        # load at this time scale; the window's own bound is pinned in test_pacer.py).
        assert server.stats.rate_limited <= PollPolicy().max_in_flight + 3
