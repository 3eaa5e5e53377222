"""Three worker processes behind one callback address: every callback finds its job."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from ketchup_async.testing import FakeKetchupServer
from ketchup_async.webhooks import new_token

from .._redis import free_port
from ..conftest import API_KEY

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

APP = Path(__file__).resolve().parents[2] / "examples" / "multiworker" / "app.py"
WORKERS = 3
JOBS = 30


@pytest.fixture
def workers(server: FakeKetchupServer, redis_url: str) -> Iterator[str]:
    """Three copies of ``examples/multiworker/app.py`` sharing one port; yields its URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "KETCHUP_API_KEY": API_KEY,
        "KETCHUP_BASE_URL": server.base_url,
        "REDIS_URL": redis_url,
        "KETCHUP_WEBHOOK_TOKENS": new_token(),
        "PUBLIC_BASE_URL": base,
        "PORT": str(port),
    }
    procs = [
        subprocess.Popen([sys.executable, str(APP)], env=env, stderr=subprocess.DEVNULL)
        for _ in range(WORKERS)
    ]
    try:
        yield base
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()


async def every_worker(base: str, timeout: float = 30.0) -> dict[int, dict[str, object]]:
    """Each worker's ``/stats``, asking on fresh connections until all of them answered."""
    seen: dict[int, dict[str, object]] = {}
    deadline = time.monotonic() + timeout
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        while len(seen) < WORKERS:
            assert time.monotonic() < deadline, f"only {len(seen)} workers answered"
            try:
                async with http.get(f"{base}/stats") as response:
                    stats = await response.json()
                seen[int(stats["worker"])] = stats
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)  # not listening yet
    return seen


async def test_callbacks_reach_the_worker_that_owns_the_job(
    server: FakeKetchupServer, workers: str
) -> None:
    """Jobs spread over 3 workers all resolve by callback (no query), lag p50 under 50 ms."""
    await every_worker(workers)
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(i: int) -> dict[str, object]:
            async with http.post(f"{workers}/generate", json={"prompt": f"p{i}"}) as response:
                assert response.status == 200, await response.text()
                reply: dict[str, object] = await response.json()
                return reply

        replies = await asyncio.gather(*(one(i) for i in range(JOBS)))
    lags = []
    for reply in replies:
        task = server.tasks[str(reply["task_id"])]
        resolved_at = reply["resolved_at"]
        assert isinstance(resolved_at, float)
        lags.append(resolved_at - task.completed_at)
    stats = await every_worker(workers)
    assert len({reply["worker"] for reply in replies}) > 1, "the jobs did not spread"
    assert sum(int(s["queries"]) for s in stats.values()) == 0  # type: ignore[call-overload]
    relayed = sum(s["webhooks"]["relayed_in"] for s in stats.values())  # type: ignore[index]
    assert relayed > 0
    assert statistics.median(lags) < 0.05
