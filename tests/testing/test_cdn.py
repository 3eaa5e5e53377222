"""Tests of the fake image CDN (second port) and the data-URI result mode."""

from __future__ import annotations

import base64
import zlib

import aiohttp
import pytest
from _raw_api import UA, query, slow_server


@pytest.mark.anyio
async def test_data_uri_mode(http: aiohttp.ClientSession) -> None:
    """In data_uri mode results are inline base64 PNGs."""
    async with slow_server(result_mode="data_uri") as server:
        task_id = server.create_task("a cat")
        server.complete_now(task_id)
        image = (await (await query(http, server, task_id)).json())["data"]["result"][0]["image"]
    prefix = "data:image/png;base64,"
    assert image.startswith(prefix)
    assert base64.b64decode(image[len(prefix) :]).startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.anyio
async def test_cdn_serves_valid_png(http: aiohttp.ClientSession) -> None:
    """The CDN serves a real 64x64 RGB PNG for a successful task."""
    async with slow_server(images_per_task=2) as server:
        task_id = server.create_task("a cat")
        server.complete_now(task_id)
        async with http.get(f"{server.cdn_url}/images/{task_id}-1.png", headers=UA) as r:
            png = await r.read()
    assert (r.status, r.content_type) == (200, "image/png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    idat_at = png.index(b"IDAT")
    length = int.from_bytes(png[idat_at - 4 : idat_at], "big")
    assert len(zlib.decompress(png[idat_at + 4 : idat_at + 4 + length])) == 64 * (1 + 64 * 3)


@pytest.mark.anyio
async def test_cdn_refuses_default_user_agent(http: aiohttp.ClientSession) -> None:
    """The CDN answers 403 to aiohttp's default 'Python/...' User-Agent."""
    async with slow_server() as server:
        task_id = server.create_task("a cat")
        server.complete_now(task_id)
        async with http.get(f"{server.cdn_url}/images/{task_id}-0.png") as r:
            assert r.status == 403
        assert server.stats.requests[("cdn", 403)] == 1


@pytest.mark.anyio
async def test_cdn_user_agent_check_can_be_disabled(http: aiohttp.ClientSession) -> None:
    """cdn_require_user_agent=False serves any client."""
    async with slow_server(cdn_require_user_agent=False) as server:
        task_id = server.create_task("a cat")
        server.complete_now(task_id)
        async with http.get(f"{server.cdn_url}/images/{task_id}-0.png") as r:
            assert r.status == 200


@pytest.mark.anyio
async def test_cdn_records_headers(http: aiohttp.ClientSession) -> None:
    """CDN request headers are recorded so tests can check no API key leaked."""
    async with slow_server() as server:
        task_id = server.create_task("a cat")
        server.complete_now(task_id)
        async with http.get(f"{server.cdn_url}/images/{task_id}-0.png", headers=UA):
            pass
        recorded = server.stats.cdn_requests
    assert recorded[-1]["User-Agent"] == UA["User-Agent"]
    assert not any(k.lower() == "authorization" for k in recorded[-1])


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["nope.png", "{task_id}-0.png", "{task_id}-1.png", "{task_id}"])
async def test_cdn_404_for_unknown_images(http: aiohttp.ClientSession, name: str) -> None:
    """Unknown names, unfinished tasks and out-of-range indexes are 404 on the CDN."""
    async with slow_server() as server:
        task_id = server.create_task("a cat")
        async with http.get(
            f"{server.cdn_url}/images/{name.format(task_id=task_id)}", headers=UA
        ) as r:
            assert r.status == 404
