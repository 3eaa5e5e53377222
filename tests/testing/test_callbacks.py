"""Tests of ``FakeKetchupServer`` callbacks, received by a local aiohttp app on port 0."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from _raw_api import slow_server
from aiohttp import web

from ketchup_async.testing import FakeKetchupServer


class Receiver:
    """Collects callback POSTs (body, headers, arrival time)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.headers.append(dict(request.headers))
        self.times.append(time.monotonic())
        return web.Response(text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/hook", recv.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    recv.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield recv
    await runner.cleanup()


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` is true (polling every few milliseconds)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


@pytest.mark.anyio
async def test_callback_sent_on_natural_completion(receiver: Receiver) -> None:
    """A task submitted with callback_url gets the exact final-state body POSTed."""
    async with FakeKetchupServer(render_time=1.0, render_sigma=0.0, time_scale=0.01) as server:
        task_id = server.create_task("a cat", callback_url=receiver.url)
        await wait_for(lambda: server.stats.callbacks_sent == 1)
        assert receiver.times[0] >= server.tasks[task_id].completed_at
        assert receiver.bodies[0] == {
            "result": [{"image": f"{server.cdn_url}/images/{task_id}-0.png"}],
            "status": "success",
            "task_id": task_id,
            "consumed": "0.500000",
            "status_reason": {"message": None},
        }


@pytest.mark.anyio
async def test_callback_has_no_auth_header(receiver: Receiver) -> None:
    """Callbacks carry no Authorization header (and no signature)."""
    async with slow_server() as server:
        server.complete_now(server.create_task("a cat", callback_url=receiver.url))
        await wait_for(lambda: len(receiver.headers) == 1)
    assert not any(k.lower() == "authorization" for k in receiver.headers[0])


@pytest.mark.anyio
async def test_complete_now_triggers_failed_callback(receiver: Receiver) -> None:
    """complete_now(status='failed') promptly POSTs a failed body with its reason."""
    async with slow_server() as server:
        task_id = server.create_task("a cat", callback_url=receiver.url)
        server.complete_now(task_id, status="failed", reason="nsfw")
        await wait_for(lambda: len(receiver.bodies) == 1, timeout=2.0)
    assert receiver.bodies[0] == {
        "result": None,
        "status": "failed",
        "task_id": task_id,
        "consumed": "0.000000",
        "status_reason": {"message": "nsfw"},
    }


@pytest.mark.anyio
async def test_callback_dropped(receiver: Receiver) -> None:
    """callback_drop_rate=1 counts the callback as dropped and never POSTs it."""
    async with slow_server(callback_drop_rate=1.0) as server:
        server.complete_now(server.create_task("a cat", callback_url=receiver.url))
        await wait_for(lambda: server.stats.callbacks_dropped == 1)
        await asyncio.sleep(0.02)
        assert (receiver.bodies, server.stats.callbacks_sent) == ([], 0)


@pytest.mark.anyio
async def test_callback_duplicated(receiver: Receiver) -> None:
    """callback_duplicate_rate=1 POSTs the same body twice."""
    async with slow_server(callback_duplicate_rate=1.0) as server:
        server.complete_now(server.create_task("a cat", callback_url=receiver.url))
        await wait_for(lambda: server.stats.callbacks_sent == 2)
    assert receiver.bodies[0] == receiver.bodies[1]


@pytest.mark.anyio
async def test_callback_delay(receiver: Receiver) -> None:
    """callback_delay (scaled API seconds) separates completion from the POST."""
    async with slow_server(callback_delay=2.0, time_scale=0.05) as server:
        task_id = server.create_task("a cat", callback_url=receiver.url)
        server.complete_now(task_id)
        await wait_for(lambda: len(receiver.times) == 1)
        assert receiver.times[0] - server.tasks[task_id].completed_at >= 0.1


@pytest.mark.anyio
async def test_failed_callback_counted_and_loop_survives(receiver: Receiver) -> None:
    """A refused callback POST is counted as failed and later callbacks still go out."""
    async with slow_server() as server:
        server.complete_now(server.create_task("lost", callback_url=closed_port_url()))
        await wait_for(lambda: server.stats.callbacks_failed == 1)
        server.complete_now(server.create_task("kept", callback_url=receiver.url))
        await wait_for(lambda: len(receiver.bodies) == 1)


@pytest.mark.anyio
async def test_callback_sent_once_per_task(receiver: Receiver) -> None:
    """A forced task whose natural completion also comes due is called back only once."""
    async with FakeKetchupServer(render_time=1.0, render_sigma=0.0, time_scale=0.02) as server:
        server.complete_now(server.create_task("a cat", callback_url=receiver.url))
        await asyncio.sleep(0.05)  # past the natural completion (20 ms)
        await wait_for(lambda: len(receiver.bodies) >= 1)
    assert len(receiver.bodies) == 1


@pytest.mark.anyio
async def test_close_with_pending_callbacks_is_clean(receiver: Receiver) -> None:
    """Closing with callbacks still scheduled far in the future cancels cleanly."""
    async with slow_server() as server:
        for i in range(100):
            server.create_task(f"p{i}", callback_url=receiver.url)
    assert receiver.bodies == []
