"""The client's lifecycle: aclose() never cuts a paid submit, never loses a task id, always ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from ketchup_async import ClientClosedError, KetchupClient, Outcome, RetryPolicy
from ketchup_async.testing import FakeKetchupServer, Faults

from .conftest import API_KEY, SCALE, make_client

pytestmark = pytest.mark.anyio

#: Real seconds a slow submit spends in the fake before it creates the task and answers.
LATENCY = 0.3


@pytest.fixture
async def slow_submits() -> AsyncIterator[FakeKetchupServer]:
    """A fake whose every submit takes LATENCY real seconds before the task is created."""
    async with FakeKetchupServer(
        api_keys=(API_KEY,),
        time_scale=SCALE,
        seed=7,
        submit_faults=Faults(latency=1.0, latency_seconds=LATENCY),
    ) as fake:
        yield fake


async def _until(condition: object, what: str) -> None:
    for _ in range(2000):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


async def test_aclose_lets_a_submit_on_the_wire_finish(slow_submits: FakeKetchupServer) -> None:
    """aclose() during a submit (caller's session): the submit returns the Job of its task."""
    async with aiohttp.ClientSession() as session:
        client = make_client(slow_submits, session=session)
        submit = asyncio.ensure_future(client.submit("on the wire"))
        await _until(lambda: slow_submits.stats.faults_injected["latency"] == 1, "the submit")
        await client.aclose()
        job = await submit
        assert job.task_id in slow_submits.tasks
        with pytest.raises(ClientClosedError):
            await job


async def test_aclose_past_its_bound_names_the_task(slow_submits: FakeKetchupServer) -> None:
    """A submit that lands after aclose(timeout=0) raises ClientClosedError with its task id."""
    async with aiohttp.ClientSession() as session:
        client = make_client(slow_submits, session=session)
        submit = asyncio.ensure_future(client.submit("on the wire"))
        await _until(lambda: slow_submits.stats.faults_injected["latency"] == 1, "the submit")
        await client.aclose(timeout=0)
        with pytest.raises(ClientClosedError) as caught:
            await submit
    assert list(slow_submits.tasks) == [caught.value.task_id]
    assert caught.value.may_have_been_processed is True


@pytest.fixture
async def refusing() -> AsyncIterator[FakeKetchupServer]:
    """A fake that accepts one submit, then answers 429 with Retry-After of one real second."""
    async with FakeKetchupServer(
        api_keys=(API_KEY,),
        time_scale=SCALE,
        seed=7,
        submit_rate_limit=0.001,
        retry_after=100.0,
    ) as fake:
        yield fake


def _patient(server: FakeKetchupServer) -> KetchupClient:
    return make_client(server, retry=RetryPolicy(base=0.005, cap=0.08, retry_after_cap=5.0))


async def test_aclose_during_retry_backoff_is_client_closed(refusing: FakeKetchupServer) -> None:
    """A submit waiting to retry after a 429 ends with ClientClosedError when the client closes."""
    client = _patient(refusing)
    await client.submit("takes the only token")
    submit = asyncio.ensure_future(client.submit("refused"))
    await _until(lambda: refusing.stats.rate_limited == 1, "the 429")
    await client.aclose()
    with pytest.raises(ClientClosedError) as caught:
        await submit
    assert caught.value.may_have_been_processed is False
    assert len(refusing.tasks) == 1


async def test_generate_many_yields_outcomes_when_closed_in_backoff(
    refusing: FakeKetchupServer,
) -> None:
    """aclose() while generate_many's submits wait to retry: outcomes, not a crash."""
    client = _patient(refusing)
    outcomes: list[Outcome] = []

    async def consume() -> None:
        async for outcome in client.generate_many(["a", "b", "c"]):
            outcomes.append(outcome)

    consumer = asyncio.ensure_future(consume())
    await _until(lambda: refusing.stats.rate_limited >= 2, "two 429s")
    await client.aclose()
    await consumer
    assert sorted(o.index for o in outcomes) == [0, 1, 2]
    assert all(isinstance(o.error, ClientClosedError) for o in outcomes)
    created = set(refusing.tasks)
    assert {o.task_id for o in outcomes if o.task_id} == created


async def test_cancelled_aclose_still_finishes(slow_submits: FakeKetchupServer) -> None:
    """Cancelling aclose() does not leave jobs pending; a second aclose() completes the work."""
    async with aiohttp.ClientSession() as session:
        client = make_client(slow_submits, session=session)
        job = client.track("ta-known")
        closing = asyncio.ensure_future(client.aclose())
        await asyncio.sleep(0)
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        await client.aclose()
        assert job.done()
        assert isinstance(job.exception(), ClientClosedError)
        assert client.pending() == 0


async def test_cancelled_aclose_closes_our_session(server: FakeKetchupServer) -> None:
    """Cancelling aclose() still closes the session the client opened."""
    client = make_client(server)
    await client.submit("x")
    closing = asyncio.ensure_future(client.aclose())
    await asyncio.sleep(0)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await client.submit("y")
    assert client.pending() == 0


async def test_break_then_leaving_async_with_reports_every_task(
    server: FakeKetchupServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Every task created is the outcome taken or a task id logged at WARNING."""
    caplog.set_level(logging.WARNING, logger="ketchup_async")
    taken: set[str] = set()
    async with make_client(server) as client:
        async for outcome in client.generate_many([f"p{i}" for i in range(50)], concurrency=8):
            assert outcome.task_id is not None
            taken.add(outcome.task_id)
            await asyncio.sleep(0)  # the next input is read and its submit goes on the wire
            break
    logged = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    created = set(server.tasks)
    assert len(created) > 1
    assert {t for t in created if t not in taken and t not in logged} == set()
    assert server.stats.requests[("submit", 499)] == 0  # no submit was cut on the wire
