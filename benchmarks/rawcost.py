"""The floor: CPU time of one bare aiohttp request to the fake API, measured in this process."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from .fakeproc import API_KEY

__all__ = ["paced_query_cost", "raw_request_cost"]

_HEADERS = {"Authorization": f"Bearer {API_KEY}"}


async def _submit(session: aiohttp.ClientSession, base_url: str, prompt: str) -> str:
    body = {"model": "google/gempix2", "prompt": prompt}
    async with session.post(f"{base_url}/api/image/gen", json=body) as response:
        task_id: str = (await response.json())["data"]["task_id"]
        return task_id


async def _query(session: aiohttp.ClientSession, base_url: str, task_id: str) -> None:
    url = f"{base_url}/api/task/query"
    async with session.get(url, params={"task_id": task_id}) as response:
        await response.json()


async def raw_request_cost(base_url: str, count: int) -> dict[str, float]:
    """CPU seconds of one bare aiohttp request: ``count`` sequential GETs, then POSTs."""
    async with aiohttp.ClientSession(headers=_HEADERS) as session:
        task_id = await _submit(session, base_url, "raw cost")
        for _ in range(min(count, 50)):  # warm up the connection and the code paths
            await _query(session, base_url, task_id)
        started = time.process_time()
        for _ in range(count):
            await _query(session, base_url, task_id)
        per_query = (time.process_time() - started) / count
        started = time.process_time()
        for i in range(count):
            await _submit(session, base_url, f"raw cost {i}")
        per_submit = (time.process_time() - started) / count
    return {"query_cpu": per_query, "submit_cpu": per_submit, "count": count}


async def paced_query_cost(base_url: str, rate: float, count: int) -> float:
    """CPU seconds of one bare aiohttp GET when GETs leave one at a time, ``rate`` per second."""
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(headers=_HEADERS) as session:
        task_id = await _submit(session, base_url, "paced cost")
        await _query(session, base_url, task_id)
        started, due = time.process_time(), loop.time()
        for _ in range(count):
            due += 1.0 / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            await _query(session, base_url, task_id)
        return (time.process_time() - started) / count
