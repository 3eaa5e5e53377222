"""generate_many: lazy input, bounded concurrency, outcomes never raise, clean exit."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ketchup_async import (
    GenerateRequest,
    GenerationResult,
    ImageResult,
    Job,
    KetchupClient,
    ManyProgress,
    Outcome,
    TaskFailedError,
    ValidationError,
)
from ketchup_async.errors import BudgetExceededError
from ketchup_async.testing import FakeKetchupServer

from .conftest import API_KEY, SCALE, make_client

pytestmark = pytest.mark.anyio


async def test_inputs_are_read_lazily(client: KetchupClient) -> None:
    """A generator of ten million prompts is read only as far as needed."""
    read = 0

    def prompts() -> Iterator[str]:
        nonlocal read
        for i in range(10_000_000):
            read += 1
            yield f"prompt {i}"

    got = 0
    async for outcome in client.generate_many(prompts(), concurrency=8):
        assert outcome.ok
        got += 1
        if got == 5:
            break
    assert read <= 5 + 8 + 1


async def test_async_iterator_of_requests(client: KetchupClient) -> None:
    """An async iterator of GenerateRequest objects is accepted; outcomes carry them."""

    async def requests() -> AsyncIterator[GenerateRequest]:
        for i in range(10):
            yield GenerateRequest(f"async {i}")

    outcomes = [o async for o in client.generate_many(requests())]
    assert {o.request.prompt for o in outcomes if o.request} == {f"async {i}" for i in range(10)}


async def test_at_most_concurrency_jobs_in_flight(server: FakeKetchupServer) -> None:
    """No more than ``concurrency`` jobs are submitted and unresolved at once."""
    async with make_client(server) as client:
        peak = 0
        original = client.submit_request

        async def counting(request: GenerateRequest, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal peak
            job = await original(request, **kwargs)
            peak = max(peak, client.pending())
            return job

        client.submit_request = counting  # type: ignore[method-assign]
        outcomes = [
            o async for o in client.generate_many([f"p{i}" for i in range(60)], concurrency=7)
        ]
    assert len(outcomes) == 60
    assert peak <= 7


async def test_submit_rate_is_honoured(server: FakeKetchupServer) -> None:
    """submit_rate spaces submits out (checked on the fake's clock)."""
    async with make_client(server, submit_rate=100.0) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        outcomes = [o async for o in client.generate_many([f"p{i}" for i in range(21)])]
        elapsed = loop.time() - start
    assert all(o.ok for o in outcomes)
    assert elapsed >= 0.19  # 21 submits at 100/s need at least 0.2 s


async def test_failures_are_outcomes_not_exceptions(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """Invalid inputs and failed tasks become outcomes with errors; iteration goes on."""

    async def fail_soon() -> None:
        while True:
            for task in list(server.tasks.values()):
                if task.prompt == "fail me" and not task.forced:
                    server.complete_now(task.task_id, "failed", reason="nope")
                    return
            await asyncio.sleep(0.001)

    killer = asyncio.ensure_future(fail_soon())
    outcomes = [o async for o in client.generate_many(["ok", "   ", "fail me", 42])]  # type: ignore[list-item]
    await killer
    by_index = {o.index: o for o in outcomes}
    assert by_index[0].ok
    assert isinstance(by_index[1].error, ValidationError)
    assert by_index[1].request is None
    assert isinstance(by_index[2].error, TaskFailedError)
    assert by_index[2].task_id
    assert isinstance(by_index[3].error, ValidationError)


async def test_failed_submit_is_an_outcome(server: FakeKetchupServer) -> None:
    """A refused submit (bad key) is an outcome without a task id."""
    async with make_client(server, api_key="dk-not-accepted") as client:
        outcomes = [o async for o in client.generate_many(["a", "b"])]
    assert [o.task_id for o in outcomes] == [None, None]
    assert all(o.error is not None and not o.ok for o in outcomes)


async def test_breaking_out_stops_submitting_and_tracking(server: FakeKetchupServer) -> None:
    """After break: no more submits, nothing tracked, no task left running."""
    async with make_client(server) as client:
        stream = client.generate_many((f"p{i}" for i in itertools.count()), concurrency=20)
        async for _ in stream:
            break
        await stream.aclose()  # type: ignore[attr-defined]
        submitted = len(server.tasks)
        await asyncio.sleep(0.05)
        assert len(server.tasks) == submitted <= 21
        assert client.pending() == 0
    assert not [t for t in asyncio.all_tasks() if "generate_many" in t.get_name()]


async def test_cancelling_the_consumer_leaves_nothing_running(server: FakeKetchupServer) -> None:
    """Cancelling the task iterating generate_many stops submitting and tracking."""
    async with make_client(server) as client:

        async def consume() -> None:
            async for _ in client.generate_many(
                (f"p{i}" for i in itertools.count()), concurrency=10
            ):
                await asyncio.sleep(10)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        del task  # drop the last reference: the generator is finalised (aclose) by the loop
        await asyncio.sleep(0.05)
        assert client.pending() == 0
        assert not [t for t in asyncio.all_tasks() if "generate_many" in t.get_name()]
        count = len(server.tasks)
        await asyncio.sleep(0.05)
        assert len(server.tasks) == count


async def test_bad_concurrency_is_refused(client: KetchupClient) -> None:
    """concurrency below 1 raises ValidationError naming it."""
    with pytest.raises(ValidationError, match="concurrency"):
        async for _ in client.generate_many(["a"], concurrency=0):
            pass


async def test_error_of_the_input_iterator_propagates(client: KetchupClient) -> None:
    """An exception raised by the caller's iterator ends the iteration with it."""

    def broken() -> Iterator[str]:
        yield "fine"
        raise RuntimeError("input file vanished")

    with pytest.raises(RuntimeError, match="vanished"):
        async for _ in client.generate_many(broken()):
            pass


async def test_slow_consumer_bounds_inputs_read_beyond_those_taken(
    server: FakeKetchupServer,
) -> None:
    """Tasks created never exceed outcomes taken + concurrency, however slow the caller."""
    concurrency = 4
    taken = 0
    async with make_client(server) as client:
        async for outcome in client.generate_many(
            [f"p{i}" for i in range(10)], concurrency=concurrency
        ):
            assert outcome.ok
            assert len(server.tasks) <= taken + concurrency
            taken += 1
            # 30 API seconds (several render times) after the first, then a steady slow loop
            await asyncio.sleep(0.3 if taken == 1 else 0.02)
            assert len(server.tasks) <= taken + concurrency
    assert taken == 10


async def test_same_task_id_for_two_submits_gives_two_outcomes(
    server: FakeKetchupServer,
) -> None:
    """Two submits answered with the same task id: one Outcome per input, each its own request."""
    async with make_client(server) as client:
        original = client.submit_request
        first: list[Job] = []

        async def same_id(request: GenerateRequest, **kwargs: Any) -> Job:
            if not first:
                first.append(await original(request, **kwargs))
                return first[0]
            return client.track(first[0].task_id)  # the poller hands back the same Job

        client.submit_request = same_id  # type: ignore[method-assign]
        outcomes = [o async for o in client.generate_many(["a", "b"])]
    assert sorted(o.index for o in outcomes) == [0, 1]
    assert {o.request.prompt for o in outcomes if o.request} == {"a", "b"}
    assert len({o.task_id for o in outcomes}) == 1


async def test_outcome_unwrap_gives_result_or_raises() -> None:
    """Outcome.unwrap() returns the result of an ok outcome and raises the error otherwise."""
    request = GenerateRequest("a")
    result = GenerationResult("ta1", (ImageResult("https://cdn.example/a.png"),))
    assert Outcome(request, "ta1", result).unwrap().images[0].url == "https://cdn.example/a.png"
    error = TaskFailedError("ta2", "nope")
    with pytest.raises(TaskFailedError):
        Outcome(request, "ta2", error=error).unwrap()


async def test_progress_hook_sees_every_input(server: FakeKetchupServer) -> None:
    """on_progress gets frozen snapshots ending with every input read, submitted and done."""
    seen: list[ManyProgress] = []
    async with make_client(server, api_key=API_KEY) as client:
        outcomes = [
            o
            async for o in client.generate_many(
                ["a", "b", "  ", "c"], concurrency=2, on_progress=seen.append
            )
        ]
    assert len(outcomes) == 4
    last = seen[-1]
    assert (last.read, last.submitted, last.succeeded, last.failed) == (4, 3, 3, 1)
    assert last.done == 4
    assert last.in_flight == 0
    assert all(p.in_flight <= 2 for p in seen)
    assert [p.done for p in seen] == sorted(p.done for p in seen)


async def test_a_failing_progress_hook_ends_the_iteration(client: KetchupClient) -> None:
    """An exception raised by on_progress ends the iteration with it."""

    def broken(progress: ManyProgress) -> None:
        raise RuntimeError("progress bar broke")

    with pytest.raises(RuntimeError, match="progress bar broke"):
        async for _ in client.generate_many(["a"], on_progress=broken):
            pass


async def test_max_credits_never_lets_spend_pass_the_budget(server: FakeKetchupServer) -> None:
    """With 0.5 credits a job and a budget of 3, at most 6 tasks exist; the rest are unsent."""
    async with make_client(server) as client:
        prompts = [f"budget {i}" for i in range(20)]
        outcomes = [o async for o in client.generate_many(prompts, max_credits=3)]
    created = sum(server.stats.created_per_prompt.values())
    spent = sum((o.result.consumed or 0) for o in outcomes if o.result is not None)
    refused = [o for o in outcomes if isinstance(o.error, BudgetExceededError)]
    assert len(outcomes) == 20
    assert created == 6
    assert spent == 3
    assert len(refused) == 14
    assert all(o.task_id is None for o in refused)
    assert str(refused[0].error) == "not submitted: it could push spend past the budget of 3"


async def test_max_credits_runs_one_job_at_a_time_until_a_price_is_known(
    server: FakeKetchupServer,
) -> None:
    """Without a price, no second job is in flight before the first one's cost is known."""
    async with make_client(server) as client:
        peak = 0

        def progress(p: ManyProgress) -> None:
            nonlocal peak
            peak = max(peak, p.submitted - p.succeeded)  # tasks created, not yet resolved

        prompts = [f"one at a time {i}" for i in range(4)]
        outcomes = [
            o async for o in client.generate_many(prompts, max_credits=1, on_progress=progress)
        ]
    assert [o.ok for o in outcomes] == [True, True, False, False]
    assert peak == 1


async def test_max_credits_with_a_price_sends_in_parallel(server: FakeKetchupServer) -> None:
    """A given price lets as many jobs fly as the budget holds at that price."""
    async with make_client(server) as client:
        peak = 0

        def progress(p: ManyProgress) -> None:
            nonlocal peak
            peak = max(peak, p.submitted - p.succeeded)  # tasks created, not yet resolved

        prompts = [f"priced {i}" for i in range(10)]
        outcomes = [
            o
            async for o in client.generate_many(
                prompts, max_credits="2.5", price="0.5", on_progress=progress
            )
        ]
    assert sum(o.ok for o in outcomes) == 5
    assert peak == 5


@pytest.mark.parametrize(
    ("field", "options"),
    [("max_credits", {"max_credits": -1}), ("price", {"max_credits": 1, "price": "x"})],
)
async def test_bad_budget_options_name_the_field(
    field: str, options: dict[str, object], server: FakeKetchupServer
) -> None:
    """A negative budget or a non-numeric price is a ValidationError naming the field."""
    async with make_client(server) as client:
        with pytest.raises(ValidationError) as info:
            client.generate_many(["p"], **options)  # type: ignore[arg-type]
    assert info.value.field == field
    assert not server.stats.requests


async def test_max_credits_holds_with_failures_and_a_break() -> None:
    """Failed tasks and a consumer that breaks early never let more tasks exist than fit."""
    async with FakeKetchupServer(
        api_keys=(API_KEY,), time_scale=SCALE, seed=11, failure_rate=0.3
    ) as server:
        async with make_client(server) as client:
            taken = 0
            outcomes = client.generate_many(
                [f"fail or not {i}" for i in range(40)], max_credits=3, price="0.5"
            )
            async for _ in outcomes:
                taken += 1
                if taken == 4:
                    break
        # What the server will charge for every task it created (failures cost nothing here),
        # including the ones still rendering when the loop broke off.
        charged = sum(0.5 for task in server.tasks.values() if task.outcome == "success")
    assert taken == 4
    assert charged <= 3.0
