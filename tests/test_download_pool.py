"""Downloads' own pool and deadline (``ketchup_async._download.Downloader``): a slow CDN is bounded.

The image host here trickles a 136-byte image at 2 bytes a second (68 s in all), as in the report
that filed the issue: a download is cut at its deadline, and downloads never hold the API's
connections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from ketchup_async import DownloadError, ImageResult, RetryPolicy
from ketchup_async._addresses import HostAllowList
from ketchup_async._download import Downloader
from ketchup_async.testing import FakeKetchupServer

from .conftest import make_client

pytestmark = pytest.mark.anyio

BODY = b"\x89PNG\r\n\x1a\n" + b"\x00" * 128


class Trickle:
    """An image host sending 2 bytes a second; records when requests start."""

    def __init__(self) -> None:
        self.url = ""
        self.started = 0
        self.events: list[str] = []
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.started += 1
        self.events.append("started")
        self.changed.set()
        response = web.StreamResponse(
            headers={"Content-Type": "image/png", "Content-Length": str(len(BODY))}
        )
        await response.prepare(request)
        for i in range(0, len(BODY), 2):
            await response.write(BODY[i : i + 2])
            await asyncio.sleep(1.0)
        return response

    async def wait_started(self, count: int) -> None:
        """Until ``count`` requests have arrived."""
        while self.started < count:
            self.changed.clear()
            await self.changed.wait()


@pytest.fixture
async def trickle() -> AsyncIterator[Trickle]:
    """The trickling image host on 127.0.0.1."""
    host = Trickle()
    app = web.Application()
    app.router.add_get("/{name}", host.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host.url = f"http://127.0.0.1:{runner.addresses[0][1]}/slow.png"
    yield host
    await runner.cleanup()


def _downloader(**kwargs: object) -> Downloader:
    options: dict[str, object] = {
        "allow": HostAllowList.parse(["127.0.0.1"]),
        "retry": RetryPolicy(max_retries=0),
        "timeout": 5.0,
    }
    options.update(kwargs)
    return Downloader(**options)  # type: ignore[arg-type]


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def test_a_trickling_image_is_cut_at_the_deadline(trickle: Trickle, tmp_path: Path) -> None:
    """A 68 s trickle with a 0.5 s deadline: DownloadError soon after, no partial file left."""
    downloader = _downloader(deadline=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(DownloadError, match=r"within its 0\.5 s deadline"):
            await downloader.download(ImageResult(trickle.url), tmp_path / "x")
    finally:
        await downloader.aclose()
    assert time.monotonic() - started < 10
    assert _files(tmp_path) == []


async def test_the_client_applies_download_timeout(
    server: FakeKetchupServer, trickle: Trickle, tmp_path: Path
) -> None:
    """``KetchupClient(download_timeout=...)`` is the deadline of ``client.download``."""
    async with make_client(server, download_timeout=0.3) as client:
        with pytest.raises(DownloadError, match="deadline"):
            await client.download(trickle.url, tmp_path / "x")
    assert _files(tmp_path) == []


async def test_the_pool_bounds_downloads_in_flight(trickle: Trickle, tmp_path: Path) -> None:
    """Four downloads on a pool of two: the third starts only once one of the first two ended."""
    downloader = _downloader(deadline=0.3, max_connections=2)
    events: list[str] = trickle.events

    async def one(i: int) -> None:
        with pytest.raises(DownloadError, match="deadline"):
            await downloader.download(ImageResult(trickle.url), tmp_path / f"x{i}")
        events.append("ended")

    try:
        await asyncio.gather(*(one(i) for i in range(4)))
    finally:
        await downloader.aclose()
    assert events.count("started") == 4
    assert events[:2] == ["started", "started"]
    third = [n for n, e in enumerate(events) if e == "started"][2]
    assert "ended" in events[:third]


async def test_slow_downloads_do_not_delay_a_query(
    server: FakeKetchupServer, trickle: Trickle, tmp_path: Path
) -> None:
    """Four trickling downloads with max_concurrency=4: a query still answers at once."""
    async with make_client(server, max_concurrency=4) as client:
        downloads = [
            asyncio.ensure_future(client.download(trickle.url, tmp_path / f"x{i}"))
            for i in range(4)
        ]
        await asyncio.wait_for(trickle.wait_started(4), 10)
        task_id = server.create_task("a quick one")
        server.complete_now(task_id)
        task = await asyncio.wait_for(client.query(task_id), 5)
        assert task.task_id == task_id
        assert not any(d.done() for d in downloads)
        for download in downloads:
            download.cancel()
        await asyncio.gather(*downloads, return_exceptions=True)
