"""One query path: task ids of any printable shape, undocumented statuses kept as sent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from ketchup_async import KetchupClient, PollPolicy, RetryPolicy
from ketchup_async.errors import UnknownStatusError

from .conftest import API_KEY, SCALE

pytestmark = pytest.mark.anyio

ODD_ID = "ta 1/2?x=1&y#z%41+é"


@asynccontextmanager
async def stub(answer: Callable[[str], dict[str, Any]]) -> AsyncIterator[tuple[str, list[str]]]:
    """An API stub answering every query with ``answer(task_id)``; yields (URL, ids seen)."""
    seen: list[str] = []

    async def query(request: web.Request) -> web.Response:
        task_id = request.query["task_id"]
        seen.append(task_id)
        return web.json_response({"code": 0, "message": "ok", "data": answer(task_id)})

    app = web.Application()
    app.router.add_get("/api/task/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def client_for(url: str) -> KetchupClient:
    return KetchupClient(
        api_key=API_KEY,
        base_url=url,
        polling=PollPolicy().scaled(SCALE),
        retry=RetryPolicy().scaled(SCALE),
    )


def success(task_id: str) -> dict[str, Any]:
    return {"task_id": task_id, "status": "success", "result": [{"image": "https://c/a.png"}]}


async def test_track_accepts_and_encodes_any_printable_task_id() -> None:
    """A task id with spaces, slashes and query characters is tracked and sent intact."""
    async with stub(success) as (url, seen), client_for(url) as client:
        result = await client.track(ODD_ID).wait(5)
    assert result.task_id == ODD_ID
    assert seen == [ODD_ID]


async def test_query_keeps_an_undocumented_status_visible() -> None:
    """client.query of a task 'cancelled' raises UnknownStatusError carrying the raw status."""
    async with stub(lambda task_id: {"task_id": task_id, "status": "cancelled"}) as (url, _):
        async with client_for(url) as client:
            with pytest.raises(UnknownStatusError) as caught:
                await client.query("ta1")
    assert caught.value.status == "cancelled"
    assert caught.value.task_id == "ta1"
