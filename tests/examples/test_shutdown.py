"""Both example backends shut down on SIGINT/SIGTERM answering every waiting request (503)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ketchup_async.testing import FakeKetchupServer

from ..conftest import API_KEY

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WAITERS = 12
EXIT_BOUND = 20.0  # seconds from the signal to the process' exit


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _terminal_sigint() -> None:
    # A background job starts with SIGINT ignored: give the child a terminal's disposition.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(example: str, server: FakeKetchupServer, port: int) -> subprocess.Popen[bytes]:
    base = f"http://127.0.0.1:{port}"
    environ = {
        **os.environ,
        "KETCHUP_API_KEY": API_KEY,
        "KETCHUP_BASE_URL": server.base_url,
        "PUBLIC_BASE_URL": base,
        "PORT": str(port),
    }
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / example)],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_terminal_sigint,
    )


async def _until_up(http: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30.0
    while True:
        assert proc.poll() is None, "the example exited at startup"
        assert time.monotonic() < deadline, "the example did not start"
        try:
            async with http.get(f"{base}/jobs/none") as response:
                if response.status == 404:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)


async def _wait_for_job(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def _exit_code(proc: subprocess.Popen[bytes]) -> int | None:
    try:
        return await asyncio.to_thread(proc.wait, EXIT_BOUND)
    except subprocess.TimeoutExpired:
        return None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("example", ["aiohttp_backend.py", "fastapi_webhooks.py"])
async def test_waiting_clients_get_503_on_shutdown(example: str, sig: signal.Signals) -> None:
    """N clients waiting on GET /jobs/{id}?wait= all get a 503, and the process exits soon."""
    if example.startswith("fastapi"):
        pytest.importorskip("fastapi")
        pytest.importorskip("uvicorn")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    async with FakeKetchupServer(api_keys=(API_KEY,), render_time=600.0) as server:
        proc = _start(example, server, port)
        try:
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, force_close=True)
            ) as http:
                await _until_up(http, base, proc)
                ids = []
                for i in range(WAITERS):
                    async with http.post(f"{base}/generate", json={"prompt": f"p{i}"}) as r:
                        assert r.status == 202
                        ids.append((await r.json())["task_id"])
                waiters = [
                    asyncio.create_task(_wait_for_job(http, f"{base}/jobs/{task_id}?wait=55"))
                    for task_id in ids
                ]
                await asyncio.sleep(0.5)  # the waiters' requests reach their handlers
                assert await _wait_for_job(http, f"{base}/jobs/{ids[0]}?wait=0") == (
                    202,
                    {"task_id": ids[0], "status": "pending"},
                )
                assert not any(waiter.done() for waiter in waiters)
                signalled = time.monotonic()
                proc.send_signal(sig)
                answers = await asyncio.wait_for(
                    asyncio.gather(*waiters, return_exceptions=True), EXIT_BOUND
                )
                code = await _exit_code(proc)
                elapsed = time.monotonic() - signalled
        finally:
            if proc.poll() is None:
                proc.kill()
            _, stderr = proc.communicate()
    assert code is not None, f"still running {EXIT_BOUND} s after the signal"
    assert elapsed < EXIT_BOUND
    for answer in answers:
        assert not isinstance(answer, BaseException), f"{answer!r}\n{stderr.decode()[-2000:]}"
        assert answer == (503, {"error": "shutting down, try again"})
