"""Tests of ``FakeKetchupServer`` lifecycle and bookkeeping: keys, restart, counters, stats."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from _raw_api import KEY, query, slow_server, submit

from ketchup_async.testing import FakeKetchupServer


@pytest.mark.anyio
async def test_revoke_and_add_key(http: aiohttp.ClientSession) -> None:
    """A revoked key gets 401 and an added key is accepted."""
    async with FakeKetchupServer() as server:
        server.revoke_key(KEY)
        revoked = (await submit(http, server)).status
        server.add_key("dk-new")
        added = (await submit(http, server, headers={"Authorization": "Bearer dk-new"})).status
    assert (revoked, added) == (401, 200)


@pytest.mark.anyio
async def test_restart_keeps_tasks_and_ports(http: aiohttp.ClientSession) -> None:
    """restart() reopens the same ports and keeps every task."""
    async with slow_server() as server:
        task_id = (await (await submit(http, server)).json())["data"]["task_id"]
        urls = (server.base_url, server.cdn_url)
        await server.restart()
        assert (server.base_url, server.cdn_url) == urls
        assert (await query(http, server, task_id)).status == 200


@pytest.mark.anyio
async def test_restart_drops_open_connections() -> None:
    """restart() closes keep-alive connections opened before it."""
    async with FakeKetchupServer() as server:
        host, port = server.base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /_fake/stats HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        await server.restart()
        rest = await asyncio.wait_for(reader.read(), 2.0)  # EOF once dropped
        writer.close()
        await writer.wait_closed()
    assert b"HTTP/1.1" not in rest


@pytest.mark.anyio
async def test_counters_track_requests_and_polls(http: aiohttp.ClientSession) -> None:
    """stats counts responses by (endpoint, status), polls per task and poll times."""
    async with slow_server() as server:
        task_id = (await (await submit(http, server)).json())["data"]["task_id"]
        for _ in range(3):
            await query(http, server, task_id)
        await query(http, server, "missing")
        stats = server.stats
    assert stats.requests[("submit", 200)] == 1
    assert stats.requests[("query", 200)] == 3
    assert stats.requests[("query", 404)] == 1
    assert stats.polls[task_id] == 3
    assert len(stats.poll_times[task_id]) == 3
    assert len(stats.query_times) == 4
    gap = stats.min_poll_gap(task_id)
    assert gap is not None
    assert stats.min_poll_gap_all() == gap
    assert stats.created_per_prompt["a red fox"] == 1


@pytest.mark.anyio
async def test_stats_endpoint_needs_no_auth(http: aiohttp.ClientSession) -> None:
    """GET /_fake/stats returns the stats summary without auth and is not counted."""
    async with slow_server() as server:
        await submit(http, server)
        async with http.get(f"{server.base_url}/_fake/stats") as r:
            summary = await r.json()
    assert r.status == 200
    assert summary["requests"] == {"submit:200": 1}
    assert (summary["tasks"], summary["tasks_created"]) == (1, 1)


@pytest.mark.anyio
async def test_start_twice_and_urls_before_start() -> None:
    """base_url needs a started server and start() cannot run twice."""
    server = FakeKetchupServer()
    with pytest.raises(RuntimeError):
        _ = server.base_url
    async with server:
        with pytest.raises(RuntimeError):
            await server.start()
