"""Raw HTTP helpers for the fake server's own tests: speak the API without the SDK."""

from __future__ import annotations

from typing import Any

import aiohttp

from ketchup_async.testing import FakeKetchupServer

KEY = "dk-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "google/gempix2"
UA = {"User-Agent": "ketchup-async-tests/1.0"}


def slow_server(**config: Any) -> FakeKetchupServer:
    """A server whose tasks stay pending (1000 API s render) unless forced."""
    return FakeKetchupServer(render_time=1000.0, render_sigma=0.0, **config)


async def submit(
    http: aiohttp.ClientSession,
    server: FakeKetchupServer,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> aiohttp.ClientResponse:
    """POST a submit (a default valid body) and return the read response."""
    payload = body if body is not None else {"model": MODEL, "prompt": "a red fox"}
    url = f"{server.base_url}/api/image/gen"
    async with http.post(url, json=payload, headers=AUTH if headers is None else headers) as r:
        await r.read()
        return r


async def query(
    http: aiohttp.ClientSession,
    server: FakeKetchupServer,
    task_id: str | None,
    headers: dict[str, str] | None = None,
) -> aiohttp.ClientResponse:
    """GET a task query (no task_id parameter when None) and return the read response."""
    params = {} if task_id is None else {"task_id": task_id}
    url = f"{server.base_url}/api/task/query"
    async with http.get(url, params=params, headers=AUTH if headers is None else headers) as r:
        await r.read()
        return r
