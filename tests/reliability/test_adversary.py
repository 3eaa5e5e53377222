"""Adversarial tests: the README's money and safety promises under hostile conditions.

Each test is one attack that broke a promise when it was written. Open bugs are marked
``xfail(strict=True)`` with a short diagnosis, so the suite stays green while they are open and
turns red the moment one is fixed (remove the mark then). Stubs listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
from aiohttp import web

from ketchup_async import (
    APIConnectionError,
    KetchupClient,
    PollPolicy,
    RetryPolicy,
)

pytestmark = pytest.mark.anyio

SCALE = 0.01
API_KEY = "dk-adversary0123456789"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def stub_api(submit: Handler, query: Handler | None = None) -> AsyncIterator[str]:
    """A tiny API on 127.0.0.1 with the given submit (and query) handlers; yields its URL."""

    async def default_query(request: web.Request) -> web.Response:
        task_id = request.query["task_id"]
        return web.json_response({"code": 0, "data": {"task_id": task_id, "status": "in_progress"}})

    app = web.Application()
    app.router.add_post("/api/image/gen", submit)
    app.router.add_get("/api/task/query", query or default_query)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def stub_client(base_url: str, **kwargs: object) -> KetchupClient:
    """A client for a stub API, every duration scaled by ``SCALE``."""
    options: dict[str, object] = {
        "api_key": API_KEY,
        "base_url": base_url,
        "polling": PollPolicy().scaled(SCALE),
        "retry": RetryPolicy().scaled(SCALE),
        "timeout": 5.0,
    }
    options.update(kwargs)
    return KetchupClient(**options)  # type: ignore[arg-type]


class Creator:
    """Counts the tasks a stub API 'created' (the money ledger of a stub)."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self._ids = itertools.count(1)

    def create(self) -> str:
        task_id = f"ta{next(self._ids):08d}"
        self.created.append(task_id)
        return task_id


# -- submit classification: a submit the server may have acted on is never sent again ----------


async def test_2xx_without_task_id_is_flagged_may_have_been_processed() -> None:
    """A 2xx submit answer with no usable task id is ambiguous: flagged, never a plain refusal."""
    ledger = Creator()

    async def submit(request: web.Request) -> web.Response:
        ledger.create()  # the origin created (and charged) the task; the answer lost its id
        return web.json_response({"code": 0, "data": {"id": "ta-somewhere"}})

    async with stub_api(submit) as url, stub_client(url) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.submit("a red bicycle")
    assert caught.value.may_have_been_processed is True
    assert len(ledger.created) == 1


async def test_gateway_502_after_create_is_not_resent() -> None:
    """A 502 from a proxy after the origin created the task: one task, flagged, never resent."""
    ledger = Creator()

    async def submit(request: web.Request) -> web.Response:
        task_id = ledger.create()
        if len(ledger.created) == 1:
            return web.Response(
                status=502,
                text="<html><body>502 Bad Gateway</body></html>",
                content_type="text/html",
            )
        return web.json_response({"code": 0, "data": {"task_id": task_id}})

    async with stub_api(submit) as url, stub_client(url) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.submit("a red bicycle")
    assert caught.value.may_have_been_processed is True
    assert len(ledger.created) == 1


# -- generate_many stopping: a paid task id is never silently lost -----------------------------


async def test_anyio_cancel_scope_around_generate_many_still_logs_task_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An anyio deadline around the loop: a submit on the wire lands, its id is logged."""
    ledger = Creator()
    on_wire = asyncio.Event()
    answer = asyncio.Event()

    async def submit(request: web.Request) -> web.Response:
        task_id = ledger.create()
        on_wire.set()
        await answer.wait()  # the submit is on the wire (and charged) until the test says
        return web.json_response({"code": 0, "data": {"task_id": task_id}})

    caplog.set_level(logging.WARNING, logger="ketchup_async")
    async with stub_api(submit) as url:
        client = stub_client(url)
        async with client:

            async def consume() -> None:
                async for _ in client.generate_many(["a red bicycle"]):
                    pass

            async with anyio.create_task_group() as group:
                scope = anyio.CancelScope()

                async def run() -> None:
                    with scope:
                        await consume()

                group.start_soon(run)
                await on_wire.wait()
                scope.cancel()  # anyio re-delivers cancellation until the scope is left
                await asyncio.sleep(0.05)
                answer.set()
            await asyncio.sleep(0.05)
    assert len(ledger.created) == 1
    assert ledger.created[0] in caplog.text


async def test_bulk_run_keeps_a_2xx_without_task_id_uncertain(tmp_path: object) -> None:
    """run_bulk: a submit accepted without a readable task id is uncertain, never requeued."""
    from pathlib import Path

    from ketchup_async import run_bulk

    ledger = Creator()

    async def submit(request: web.Request) -> web.Response:
        ledger.create()
        return web.json_response({"code": 0, "data": {"task_id": ""}})

    out = Path(str(tmp_path)) / "out"
    async with stub_api(submit) as url, stub_client(url) as client:
        summary = await run_bulk(client, ["a red bicycle"], out)
    assert len(ledger.created) == 1
    assert summary.uncertain == 1  # queued would be submitted again by a resume: paid twice


async def test_cancelled_submit_on_the_wire_still_reports_its_task_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ledger invariant: a submit cancelled with its bytes on the wire still logs its task id."""
    ledger = Creator()
    on_wire = asyncio.Event()
    answer = asyncio.Event()

    async def submit(request: web.Request) -> web.Response:
        task_id = ledger.create()
        on_wire.set()
        await answer.wait()
        return web.json_response({"code": 0, "data": {"task_id": task_id}})

    caplog.set_level(logging.WARNING, logger="ketchup_async")
    async with stub_api(submit) as url:
        async with stub_client(url) as client:
            caller = asyncio.ensure_future(client.submit("a red bicycle"))
            await on_wire.wait()
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            answer.set()
            await asyncio.sleep(0.05)
    assert len(ledger.created) == 1
    assert ledger.created[0] in caplog.text
