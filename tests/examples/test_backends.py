"""The webhook examples, served on real sockets, against FakeKetchupServer's real callbacks."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ketchup_async import PollPolicy, RetryPolicy, ValidationError
from ketchup_async.testing import FakeKetchupServer

from ..conftest import API_KEY, SCALE

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@functools.cache
def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module (once)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through it
    spec.loader.exec_module(module)
    return module


def bound_socket() -> tuple[socket.socket, str]:
    """A socket bound to 127.0.0.1:0 (so the app's public URL is known before it starts)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def client_options(server: FakeKetchupServer) -> dict[str, Any]:
    """KetchupClient options for ``server``, scaled to its time scale."""
    return {
        "api_key": API_KEY,
        "base_url": server.base_url,
        "polling": PollPolicy().scaled(SCALE),
        "retry": RetryPolicy().scaled(SCALE),
    }


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


async def generate_and_fetch(base: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """POST /generate then GET /jobs/{task_id}: return both JSON answers."""
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/generate", json={"prompt": "a red bicycle"}) as response:
            assert response.status == 202
            started = await response.json()
        async with http.get(f"{base}/jobs/{started['task_id']}?wait=5") as response:
            assert response.status == 200
            return started, await response.json()


@asynccontextmanager
async def aiohttp_example(server: FakeKetchupServer) -> AsyncIterator[tuple[web.Application, str]]:
    """The aiohttp example served on a socket bound to 127.0.0.1:0."""
    example = load_example("aiohttp_backend")
    sock, base = bound_socket()
    app = example.create_app(public_base_url=base, **client_options(server))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        yield app, base
    finally:
        await runner.cleanup()
        sock.close()


async def test_aiohttp_example_resolves_jobs_from_callbacks(server: FakeKetchupServer) -> None:
    """The aiohttp example starts a job and answers its image URL once the callback came."""
    async with aiohttp_example(server) as (app, base):
        started, finished = await generate_and_fetch(base)
        receiver = app[load_example("aiohttp_backend").RECEIVER]
        delivered = receiver.stats.delivered
    task_id = started["task_id"]
    assert finished == {
        "task_id": task_id,
        "status": "success",
        "images": [f"{server.cdn_url}/images/{task_id}-0.png"],
    }
    assert delivered == 1
    assert server.stats.polls[task_id] == 0


async def test_aiohttp_example_refuses_a_bad_request(server: FakeKetchupServer) -> None:
    """POST /generate without a prompt is a 400 naming the field; nothing is submitted."""
    async with (
        aiohttp_example(server) as (_, base),
        aiohttp.ClientSession() as http,
        http.post(f"{base}/generate", json={"images": []}) as response,
    ):
        status, answer = response.status, await response.json()
    assert status == 400
    assert answer["error"].startswith("prompt:")
    assert sum(server.stats.created_per_prompt.values()) == 0


def test_examples_need_a_public_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PUBLIC_BASE_URL the example apps refuse to start with a clear error."""
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    with pytest.raises(ValidationError, match="PUBLIC_BASE_URL"):
        load_example("aiohttp_backend").create_app(api_key=API_KEY)


@asynccontextmanager
async def fastapi_example(server: FakeKetchupServer) -> AsyncIterator[tuple[Any, str]]:
    """The FastAPI example served by uvicorn, in this loop, on a socket bound to port 0."""
    pytest.importorskip("fastapi")
    uvicorn = pytest.importorskip("uvicorn")
    example = load_example("fastapi_webhooks")
    sock, base = bound_socket()
    app = example.create_app(public_base_url=base, **client_options(server))
    config = uvicorn.Config(app, lifespan="on", log_config=None, access_log=False)
    uvicorn_server = uvicorn.Server(config)
    serving = asyncio.create_task(uvicorn_server.serve(sockets=[sock]))
    try:
        await wait_for(lambda: uvicorn_server.started or serving.done())
        assert uvicorn_server.started
        yield app, base
    finally:
        uvicorn_server.should_exit = True
        await serving
        sock.close()


async def test_fastapi_example_resolves_jobs_from_callbacks(server: FakeKetchupServer) -> None:
    """The FastAPI example, served by uvicorn, resolves a job from the API's callback."""
    async with fastapi_example(server) as (app, base):
        started, finished = await generate_and_fetch(base)
        delivered = app.state.receiver.stats.delivered
    task_id = started["task_id"]
    assert finished["images"] == [f"{server.cdn_url}/images/{task_id}-0.png"]
    assert delivered == 1
    assert server.stats.polls[task_id] == 0


async def test_fastapi_example_refuses_bad_callbacks(server: FakeKetchupServer) -> None:
    """The FastAPI callback route answers 404 for a wrong token and 413 for a huge body."""
    async with fastapi_example(server) as (app, base), aiohttp.ClientSession() as http:
        url = app.state.receiver.callback_url(base)
        wrong = await http.post(url + "x", data=b"{}")  # another, longer token
        huge = await http.post(url, data=b"x" * (256 * 1024))
        statuses = (wrong.status, huge.status)
        wrong.release()
        huge.release()
    assert statuses == (404, 413)
    assert dict(app.state.receiver.stats.rejected) == {"token": 1, "too_large": 1}


async def test_aiohttp_example_never_tracks_ids_it_did_not_issue(
    server: FakeKetchupServer,
) -> None:
    """200 made-up task ids are answered 404 and cost the API key no query."""
    async with aiohttp_example(server) as (app, base), aiohttp.ClientSession() as http:
        for i in range(200):
            async with http.get(f"{base}/jobs/ta-bogus-{i}?wait=0") as response:
                assert response.status == 404
            async with http.get(f"{base}/jobs/ta-bogus-{i}/events") as response:
                assert response.status == 404
        client = app[load_example("aiohttp_backend").CLIENT]
        assert client.pending() == 0
    assert sum(server.stats.requests.values()) == 0


def _events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_aiohttp_example_streams_status_as_server_sent_events(
    server: FakeKetchupServer,
) -> None:
    """GET /jobs/{id}/events streams the status changes, then the result, as SSE."""
    async with aiohttp_example(server) as (_, base), aiohttp.ClientSession() as http:
        async with http.post(f"{base}/generate", json={"prompt": "a kite"}) as response:
            task_id = (await response.json())["task_id"]
        async with http.get(f"{base}/jobs/{task_id}/events") as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            events = _events(await asyncio.wait_for(response.text(), 10.0))
    assert events[0] == ("status", {"task_id": task_id, "status": "pending"})
    assert events[-2] == ("status", {"task_id": task_id, "status": "success"})
    assert events[-1] == (
        "result",
        {"task_id": task_id, "images": [f"{server.cdn_url}/images/{task_id}-0.png"]},
    )
