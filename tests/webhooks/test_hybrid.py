"""Push and poll together: callbacks resolve jobs, the poller's safety net catches lost ones."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ketchup_async import CallbackPayload, ImageResult, KetchupClient, PollPolicy, TaskStatus
from ketchup_async.testing import FakeKetchupServer
from ketchup_async.webhooks import WebhookReceiver

from ..conftest import API_KEY, SCALE, make_client

pytestmark = pytest.mark.anyio

N = 40
#: The safety net far away, so only a callback (or a verify query) can resolve a job.
NO_SAFETY_NET = PollPolicy(callback_grace=1000.0).scaled(SCALE)


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on 127.0.0.1:0; return its runner and base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@asynccontextmanager
async def hooked(
    server: FakeKetchupServer, **options: Any
) -> AsyncIterator[tuple[KetchupClient, WebhookReceiver, str]]:
    """A client for ``server`` and a receiver served on port 0; yields them and the URL."""
    verify = options.pop("verify", False)
    async with make_client(server, **options) as client:
        receiver = WebhookReceiver(client, verify=verify)
        app = web.Application()
        receiver.add_to(app)
        runner, base = await serve(app)
        try:
            yield client, receiver, receiver.callback_url(base)
        finally:
            await runner.cleanup()


@asynccontextmanager
async def racing(
    server: FakeKetchupServer, *, verify: bool = False
) -> AsyncIterator[tuple[KetchupClient, WebhookReceiver, str]]:
    """A client whose first submit is answered only once its task's callback was handled.

    The client talks to ``server`` through a proxy that, on the first submit, completes the
    task and waits until the receiver got its callback before forwarding the answer: the
    callback deterministically beats ``submit()``.
    """
    receivers: list[WebhookReceiver] = []
    raced: list[str] = []

    async def before_answer(task_id: str) -> None:
        if not raced:
            raced.append(task_id)
            server.complete_now(task_id)
            await wait_for(lambda: receivers[0].stats.unknown == 1)

    async with aiohttp.ClientSession() as upstream:

        async def forward(request: web.Request) -> web.Response:
            async with upstream.request(
                request.method,
                f"{server.base_url}{request.rel_url}",
                data=await request.read(),
                headers={"Authorization": request.headers.get("Authorization", "")},
            ) as answer:
                status, raw = answer.status, await answer.read()
            if request.path == "/api/image/gen" and status == 200:
                await before_answer(json.loads(raw)["data"]["task_id"])
            return web.Response(status=status, body=raw, content_type="application/json")

        proxy = web.Application()
        proxy.router.add_route("*", "/{tail:.*}", forward)
        proxy_runner, proxy_url = await serve(proxy)
        try:
            async with make_client(server, base_url=proxy_url, polling=NO_SAFETY_NET) as client:
                receiver = WebhookReceiver(client, verify=verify)
                receivers.append(receiver)
                app = web.Application()
                receiver.add_to(app)
                runner, base = await serve(app)
                try:
                    yield client, receiver, receiver.callback_url(base)
                finally:
                    await runner.cleanup()
        finally:
            await proxy_runner.cleanup()


async def submit_all(client: KetchupClient, url: str, n: int = N) -> list[Any]:
    """Submit ``n`` jobs with ``url`` as callback and wait for every result."""
    jobs = await asyncio.gather(*(client.submit(f"p{i}", callback_url=url) for i in range(n)))
    await asyncio.gather(*(job.wait(10) for job in jobs))
    return jobs


async def test_callbacks_resolve_jobs_with_no_queries(server: FakeKetchupServer) -> None:
    """Jobs with a callback URL resolve from their callbacks; the poller stays quiet."""
    async with hooked(server) as (client, receiver, url):
        jobs = await submit_all(client, url)
    polls = [server.stats.polls[job.task_id] for job in jobs]
    assert receiver.stats.delivered == N
    assert sum(polls) <= N // 10  # only a callback slower than the safety net is polled
    assert max(polls) <= 1


async def test_lost_callbacks_resolve_through_the_safety_net() -> None:
    """With 30% of callbacks dropped, every job still resolves (by a late query)."""
    async with (
        FakeKetchupServer(
            api_keys=(API_KEY,), time_scale=SCALE, seed=11, callback_drop_rate=0.3
        ) as server,
        hooked(server) as (client, receiver, url),
    ):
        jobs = await submit_all(client, url)
    assert all(job.result().images for job in jobs)
    dropped = server.stats.callbacks_dropped
    assert dropped > 0
    polled = sum(1 for job in jobs if server.stats.polls[job.task_id] > 0)
    assert polled >= dropped  # every job whose callback was lost was queried
    assert receiver.stats.delivered >= N - polled  # every other one was resolved by its callback


async def test_duplicate_callbacks_resolve_each_job_once() -> None:
    """Every callback sent twice: each job resolves once, the copies are ignored."""
    async with (
        FakeKetchupServer(
            api_keys=(API_KEY,), time_scale=SCALE, seed=5, callback_duplicate_rate=1.0
        ) as server,
        hooked(server) as (client, receiver, url),
    ):
        resolved: Counter[str] = Counter()
        jobs = await asyncio.gather(*(client.submit(f"p{i}", callback_url=url) for i in range(N)))
        for job in jobs:
            job.add_done_callback(lambda done: resolved.update([done.task_id]))
        await asyncio.gather(*(job.wait(10) for job in jobs))
        await wait_for(lambda: server.stats.callbacks_sent == 2 * N)
    assert resolved == Counter({job.task_id: 1 for job in jobs})
    assert (receiver.stats.delivered, receiver.stats.duplicate) == (N, N)


async def test_callback_before_track_is_applied(server: FakeKetchupServer) -> None:
    """A callback delivered before its job exists makes the job be queried once it is tracked."""
    async with make_client(server) as client:
        task_id = server.create_task("a cat")
        server.complete_now(task_id)
        payload = CallbackPayload(task_id, TaskStatus.SUCCESS, consumed=None)
        assert client.deliver(payload) is False
        job = client.track(task_id, has_callback=True)  # a safety net that would poll late
        result = await job.wait(5)
    assert result.task_id == task_id
    assert result.images  # the API's answer, not the callback's (which had none)
    assert server.stats.polls[task_id] == 1


async def test_early_callback_payload_is_not_trusted(server: FakeKetchupServer) -> None:
    """An early callback's images are never used: the job is resolved from a query."""
    async with make_client(server) as client:
        task_id = server.create_task("a cat")
        server.complete_now(task_id)
        forged = CallbackPayload(task_id, TaskStatus.SUCCESS, (ImageResult("http://10.0.0.1/x"),))
        assert client.deliver(forged) is False
        result = await client.track(task_id, has_callback=True).wait(5)
    assert result.images[0].url == f"{server.cdn_url}/images/{task_id}-0.png"


async def test_callback_racing_ahead_of_submit_is_not_lost(server: FakeKetchupServer) -> None:
    """The callback arrives before submit() has returned the task id: the job still resolves."""
    async with racing(server) as (client, receiver, url):
        job = await client.submit("a cat", callback_url=url)
        result = await job.wait(5)  # queried at once: the early callback is not trusted
    assert receiver.stats.unknown == 1
    assert result.images
    assert server.stats.polls[job.task_id] == 1


async def test_early_callback_teaches_no_render_time(server: FakeKetchupServer) -> None:
    """A job resolved by an early callback does not make the schedule poll others too early."""
    async with racing(server) as (client, _, url):
        early = await client.submit("a cat", callback_url=url)
        await early.wait(5)
        polled = await client.submit("a dog")  # no callback: first polled near completion
        submitted = time.monotonic()
        await polled.wait(5)
    first_poll = server.stats.poll_times[polled.task_id][0] - submitted
    # The prior expects 10 API s (q35 ~8); learning "~0 s" would poll after 1 API s.
    assert first_poll > 4.0 * SCALE


async def test_verify_rejects_a_forged_success() -> None:
    """verify=True: a forged success for a running task does not resolve it; the real one does."""
    async with (
        FakeKetchupServer(
            api_keys=(API_KEY,), time_scale=SCALE, render_time=1000.0, render_sigma=0.0
        ) as server,
        hooked(server, polling=NO_SAFETY_NET, verify=True) as (client, _, url),
    ):
        job = await client.submit("a cat", callback_url=url)
        forged = CallbackPayload(job.task_id, TaskStatus.SUCCESS, consumed=None)
        assert client.deliver(forged, verify=True) is True
        assert not job.done()
        # The verify query answered "still running": still pending.
        await wait_for(lambda: server.stats.requests[("query", 200)] >= 1)
        assert not job.done()
        server.complete_now(job.task_id)  # the real callback arrives, is verified too
        result = await job.wait(5)
    assert result.images[0].url == f"{server.cdn_url}/images/{job.task_id}-0.png"
    assert server.stats.polls[job.task_id] == 2  # one per callback, nothing else


async def test_verify_applies_to_an_early_callback() -> None:
    """verify=True and a callback before submit returned: the job is queried at once."""
    async with (
        FakeKetchupServer(
            api_keys=(API_KEY,), time_scale=SCALE, render_time=1000.0, render_sigma=0.0
        ) as server,
        racing(server, verify=True) as (client, receiver, url),
    ):
        job = await client.submit("a cat", callback_url=url)
        assert not job.done()  # not trusted: queried instead
        result = await job.wait(5)
    assert receiver.stats.unknown == 1
    assert result.task_id == job.task_id
    assert server.stats.polls[job.task_id] == 1
